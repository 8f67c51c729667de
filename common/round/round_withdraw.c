/* Sites that will not report (issue 10 items 8 and 11): a site whose task
 * failed or whose update was refused (it says so with a SiteFailure), or
 * whose key was revoked, leaves the open round at once, with an audit
 * record, so the round closes when the others are in instead of waiting
 * for its deadline. A refused update alone does not withdraw a site: it
 * may send a corrected one within the round. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/log.h"
#include "round/round_engine_internal.h"

void mfl_engine_maybe_close(mfl_round_engine_t *self, uint64_t now_ms)
{
    if (self->phase != MFL_ENGINE_ROUND)
        return;
    if (self->n_accepted + self->n_withdrawn >= self->n_selected &&
        self->n_accepted >= self->config.min_sites && self->n_accepted > 0)
        mfl_engine_close_round(self, now_ms, false);
}

static void s_record(mfl_round_engine_t *self, mfl_engine_site_t *s, mfl_audit_kind_t kind,
                     uint32_t round, const char *reason)
{
    s->n_failures += kind == MFL_AUDIT_SITE_FAILED;
    s->failed_wall_ms = self->clock.wall_ms(self->clock.ctx);
    snprintf(s->last_failure, sizeof s->last_failure, "%s", reason ? reason : "");
    if (!self->audit)
        return;
    mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, kind, round, s->id);
    snprintf(rec.reason, sizeof rec.reason, "%s", reason ? reason : "");
    (void)mfl_engine_audit_append(self, &rec, true); /* owed if the log is down */
}

/* Takes `s` out of the open round (if it is in it and has not reported). */
static void s_leave_round(mfl_round_engine_t *self, mfl_engine_site_t *s, uint64_t now_ms)
{
    if (self->phase == MFL_ENGINE_ROUND && s->selected && !s->reported && !s->withdrawn) {
        s->withdrawn = true;
        self->n_withdrawn++;
        mfl_engine_flow_release(self, s->id);
        mfl_engine_maybe_close(self, now_ms);
    }
}

/* Takes `s` out of the open evaluation; finishes it if all others are in. */
static void s_leave_eval(mfl_round_engine_t *self, mfl_engine_site_t *s)
{
    if (self->phase != MFL_ENGINE_EVAL || !s->eval_sent || s->eval_reported)
        return;
    s->eval_sent = false;
    bool all = true;
    for (size_t i = 0; i < self->n_sites; i++)
        all = all && (!self->sites[i].eval_sent || self->sites[i].eval_reported);
    if (all)
        mfl_engine_finish_eval(self);
}

int mfl_round_engine_site_withdraw(mfl_round_engine_t *self, const char *site,
                                   mfl_engine_withdraw_t why, bool evaluation, uint32_t round,
                                   const uint8_t *nonce, size_t nonce_len, const char *reason,
                                   uint64_t now_ms)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, site);
    if (!s)
        return -1;
    if (why == MFL_ENGINE_SITE_REVOKED) {
        uint32_t r = self->phase == MFL_ENGINE_EVAL ? self->eval_round : self->round;
        s->revoked = true;
        s->connected = false;
        mfl_warn("site %s: key revoked; session ended%s", site,
                 self->phase == MFL_ENGINE_ROUND && s->selected && !s->reported
                     ? ", no longer waited for in this round"
                     : "");
        s_record(self, s, MFL_AUDIT_SITE_REVOKED, r, reason);
        s_leave_round(self, s, now_ms);
        s_leave_eval(self, s);
        mfl_engine_flow_release(self, site);
        return 0;
    }
    /* A failure names the task: the open round's (or evaluation's) round
     * and nonce, else it is late and changes nothing. */
    const uint8_t *want = evaluation ? self->eval_nonce : self->nonce;
    bool open = evaluation ? self->phase == MFL_ENGINE_EVAL && round == self->eval_round
                           : self->phase == MFL_ENGINE_ROUND && round == self->round;
    if (!open || nonce_len != MFL_ENGINE_NONCE_BYTES ||
        sodium_memcmp(nonce, want, MFL_ENGINE_NONCE_BYTES) != 0) {
        mfl_debug("site %s: failure report for %s %u ignored (not the open one)", site,
                  evaluation ? "evaluation" : "round", round);
        return -1;
    }
    if (evaluation ? !s->eval_sent || s->eval_reported
                   : !s->selected || s->reported || s->withdrawn)
        return -1;
    mfl_warn("%s %u: site %s could not do its task: %s", evaluation ? "evaluation" : "round",
             round, site, reason && *reason ? reason : "(no reason given)");
    s_record(self, s, MFL_AUDIT_SITE_FAILED, round, reason);
    if (evaluation)
        s_leave_eval(self, s);
    else
        s_leave_round(self, s, now_ms);
    return 0;
}

const char *mfl_round_engine_site_failure(const mfl_round_engine_t *self, size_t i,
                                          uint32_t *n_failures, uint64_t *wall_ms,
                                          bool *revoked)
{
    if (i >= self->n_sites)
        return NULL;
    const mfl_engine_site_t *s = &self->sites[i];
    if (n_failures)
        *n_failures = s->n_failures;
    if (wall_ms)
        *wall_ms = s->failed_wall_ms;
    if (revoked)
        *revoked = s->revoked;
    return s->last_failure;
}
