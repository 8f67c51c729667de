/* The round engine and a failing audit log (issue 10, item 5): nothing is
 * folded, opened or closed without its record. A failed append marks the
 * engine "audit down": updates are refused (REJECT_AUDIT_UNAVAILABLE), no
 * round opens, a round at its deadline waits; records owed (a round
 * closed or abandoned whose record failed) are kept. Each tick retries
 * every second: owed records first, then a note of the gap; past
 * audit_give_up_ms the run stops with an error naming the log. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "round/round_engine_internal.h"

void mfl_engine_fail(mfl_round_engine_t *self, const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    mfl_error("%s", text);
    self->phase = MFL_ENGINE_FAILED;
    if (self->sink.finished)
        self->sink.finished(self->sink.ctx);
}

int mfl_engine_audit_append(mfl_round_engine_t *self, const mfl_audit_record_t *rec, bool owed)
{
    if (!self->audit)
        return 0;
    char err[300];
    /* Owed records go first: the chain keeps the order of events. */
    if (!self->audit_down && mfl_audit_append(self->audit, rec, NULL, err, sizeof err) == 0)
        return 0;
    if (!self->audit_down) {
        snprintf(self->audit_err, sizeof self->audit_err, "%s", err);
        mfl_error("audit log: %s; refusing updates and holding rounds until it can be "
                  "written (retrying every %d ms, giving up after %.0f s)",
                  err, MFL_ENGINE_AUDIT_RETRY_MS, self->config.audit_give_up_ms / 1000.0);
        self->audit_down = true;
        self->audit_down_timed = false;
    }
    if (owed) {
        mfl_audit_record_t *copy = malloc(sizeof *copy);
        if (copy && self->n_audit_pending < MFL_ENGINE_AUDIT_PENDING) {
            memcpy(copy, rec, sizeof *copy);
            if (!copy->time_ms)
                copy->time_ms = self->clock.wall_ms(self->clock.ctx); /* when it happened */
            self->audit_pending[self->n_audit_pending++] = copy;
        } else {
            free(copy);
            mfl_error("audit log: a %s record for round %" PRIu64 " is lost (too many owed)",
                      mfl_audit_kind_name(rec->kind), rec->round);
        }
    }
    return -1;
}

/* One retry: the owed records, then a log_opened note saying how long the
 * log could not be written. 0 once all are written. */
static int s_retry(mfl_round_engine_t *self, uint64_t now_ms)
{
    char err[300];
    while (self->n_audit_pending) {
        if (mfl_audit_append(self->audit, self->audit_pending[0], NULL, err, sizeof err) < 0) {
            snprintf(self->audit_err, sizeof self->audit_err, "%s", err);
            return -1;
        }
        free(self->audit_pending[0]);
        memmove(self->audit_pending, self->audit_pending + 1,
                --self->n_audit_pending * sizeof *self->audit_pending);
    }
    mfl_audit_record_t *note = calloc(1, sizeof *note);
    if (!note)
        return -1;
    mfl_audit_record_init(note, MFL_AUDIT_LOG_OPENED, self->round, NULL);
    snprintf(note->reason, sizeof note->reason,
             "writing again after %.1f s unwritable (%.150s); %" PRIu64
             " updates refused meanwhile",
             (double)(now_ms - self->audit_down_since_ms) / 1000.0, self->audit_err,
             self->audit_refused);
    int rc = mfl_audit_append(self->audit, note, NULL, err, sizeof err);
    free(note);
    if (rc < 0)
        snprintf(self->audit_err, sizeof self->audit_err, "%s", err);
    return rc;
}

void mfl_engine_audit_tick(mfl_round_engine_t *self, uint64_t now_ms)
{
    if (!self->audit_down || self->phase == MFL_ENGINE_FAILED)
        return;
    if (!self->audit_down_timed) {
        self->audit_down_timed = true;
        self->audit_down_since_ms = now_ms;
        self->audit_retry_at_ms = now_ms + MFL_ENGINE_AUDIT_RETRY_MS;
        return;
    }
    if (mfl_audit_failed(self->audit)) {
        mfl_engine_fail(self, "audit log: %s; it cannot be written again by this process: "
                        "stopping (θ of round %u is the last checkpoint; check the volume, "
                        "then restart: the run resumes from it)", self->audit_err,
                        self->rounds_done);
        return;
    }
    if (now_ms < self->audit_retry_at_ms)
        return;
    self->audit_retry_at_ms = now_ms + MFL_ENGINE_AUDIT_RETRY_MS;
    if (s_retry(self, now_ms) == 0) {
        mfl_info("audit log writable again after %.1f s; %" PRIu64 " updates were refused "
                 "meanwhile; rounds continue",
                 (double)(now_ms - self->audit_down_since_ms) / 1000.0, self->audit_refused);
        self->audit_down = false;
        self->audit_err[0] = '\0';
        self->audit_refused = 0;
        return;
    }
    if (now_ms - self->audit_down_since_ms >= self->config.audit_give_up_ms)
        mfl_engine_fail(self, "audit log: %s; still unwritable after %.0f s: stopping, since "
                        "no update may be taken without its record (θ of round %u is the "
                        "last checkpoint; free space on the log's volume and restart: the run "
                        "resumes from it)", self->audit_err,
                        (double)(now_ms - self->audit_down_since_ms) / 1000.0,
                        self->rounds_done);
}

void mfl_engine_audit_rejected(mfl_round_engine_t *self, const char *peer,
                               const mfl_update_header_t *h, const uint8_t *signed_header,
                               size_t signed_len, const uint8_t *sig, size_t sig_len)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    /* Bounded: a hostile (allow-listed) site cannot fill the disk; an id
     * the engine does not hold (over-long) is not recorded at all. */
    if (!self->audit || self->audit_down || !s || s->reject_recorded > MFL_ENGINE_REJECT_RECORDS)
        return;
    s->reject_recorded++;
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    if (!rec)
        return;
    char err[256];
    /* The site's signed header, when it decodes, is kept as evidence
     * (verify does not require it to match: it may be the bad part). */
    if (!(signed_header && sig && sig_len == 64 &&
          mfl_audit_record_from_update(rec, MFL_AUDIT_UPDATE_REJECTED, signed_header,
                                       signed_len, sig, err, sizeof err) == 0)) {
        mfl_audit_record_init(rec, MFL_AUDIT_UPDATE_REJECTED, h ? h->round : 0, peer);
        if (h && h->nonce_len && h->nonce_len <= MFL_AUDIT_NONCE_MAX) {
            memcpy(rec->nonce, h->nonce, h->nonce_len);
            rec->nonce_len = h->nonce_len;
        }
        rec->n = h ? h->n_samples : 0;
    }
    if (strcmp(rec->site, peer) != 0) /* the header names another site: record the peer */
        snprintf(rec->site, sizeof rec->site, "%s", peer);
    if (s->reject_recorded > MFL_ENGINE_REJECT_RECORDS)
        snprintf(rec->reason, sizeof rec->reason,
                 "%s: %.160s (more rejections of this site in this round are not recorded)",
                 mfl_engine_reject_name(self->last_reject), self->last_reject_text);
    else
        snprintf(rec->reason, sizeof rec->reason, "%s: %.200s",
                 mfl_engine_reject_name(self->last_reject), self->last_reject_text);
    (void)mfl_engine_audit_append(self, rec, false);
    free(rec);
}

void mfl_engine_audit_free(mfl_round_engine_t *self)
{
    for (size_t i = 0; i < self->n_audit_pending; i++)
        free(self->audit_pending[i]);
    self->n_audit_pending = 0;
}

const char *mfl_round_engine_audit_error(const mfl_round_engine_t *self)
{
    return self->audit_down ? self->audit_err : NULL;
}
