/* Federated model selection as a phase of the round engine (selection.h,
 * docs/SELECTION.md). Before the real training, each candidate setting is
 * trained for selection.rounds rounds from θ₀ (the same init_seed, the same
 * round seeds), then every connected site scores it on its validation rows
 * (an EvalTask with the selection fields set: only validation metrics come
 * back), and the next candidate starts. After the last one the rule picks
 * the winner, which is recorded (audit, metrics, the state file) and then
 * trained for rounds.count rounds as if it had been configured.
 *
 * Selection rounds write no checkpoint and no round_opened / round_closed
 * record (their records are of kind `selection`): a coordinator stopped
 * during selection starts it again from candidate 0 and, as every candidate
 * is a function of (config, sites' data), reaches the same winner and the
 * same θ. Once the winner is on record (checkpoint_dir/selection.state), a
 * restart goes straight to the winner's training and resumes it from its
 * checkpoints as any run does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "round/round_engine_internal.h"

static void s_state_path(const mfl_round_engine_t *self, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/selection.state", self->config.checkpoint_dir);
}

static void s_apply(mfl_round_engine_t *self, size_t i)
{
    const mfl_select_candidate_t *c = &self->config.selection.candidates[i];
    self->config.learner = c->learner;
    self->config.server = c->server;
    self->config.eval_adapt_steps = c->adapt_steps;
    self->config.eval_adapt_lr = c->adapt_lr;
    self->config.federated_scaling = c->federated_scaling;
}

int mfl_engine_select_start(mfl_round_engine_t *self, char *err, size_t errlen)
{
    mfl_select_config_t *sel = &self->config.selection;
    if (!sel->enabled || !sel->n_candidates)
        return 0;
    self->sel_rule = mfl_select_rule_resolve(sel->rule, self->config.learner.loss);
    mfl_select_digest(sel, self->config.seed, self->config.init_seed, self->sel_digest);
    for (size_t i = 0; i < MFL_SELECT_MAX_CANDIDATES; i++)
        self->sel_means[i] = self->sel_loss[i] = NAN;
    char path[MFL_COORD_PATH_MAX + 32];
    s_state_path(self, path, sizeof path);
    size_t winner = 0;
    int found = mfl_select_state_read(path, self->sel_digest, sel->n_candidates, &winner, err,
                                      errlen);
    if (found < 0)
        return -1;
    if (found == 1) {
        char desc[MFL_SELECT_DESC_MAX];
        mfl_select_describe(&sel->candidates[winner], desc, sizeof desc);
        mfl_info("model selection: candidate %zu (%s) won earlier (%s); training it", winner + 1,
                 desc, path);
        self->sel_decided = true;
        self->sel_winner = winner;
        s_apply(self, winner);
        return 0;
    }
    /* No winner on record: selection (again) from the first candidate.
     * A checkpoint here would be a run that trained without it. */
    if (mfl_engine_has_checkpoint(self)) {
        mfl_errf(err, errlen, "%s: a checkpoint is there but no model selection result (%s); "
                 "this run trained without selection: turn selection.enabled off to resume "
                 "it, or use another output.checkpoint_dir", self->config.checkpoint_dir, path);
        return -1;
    }
    self->selecting = true;
    self->sel_index = 0;
    s_apply(self, 0);
    mfl_info("model selection: %zu candidates, %u rounds each, validation %.3g of each site's "
             "training rows (seed %llu), rule: mean validation %s", sel->n_candidates,
             sel->rounds, sel->validation_fraction, (unsigned long long)sel->validation_seed,
             mfl_select_rule_name(self->sel_rule));
    return 0;
}

uint32_t mfl_engine_rounds_target(const mfl_round_engine_t *self)
{
    return self->selecting ? self->config.selection.rounds : self->config.rounds;
}

void mfl_engine_select_task(const mfl_round_engine_t *self, mfl_task_selection_t *sel)
{
    memset(sel, 0, sizeof *sel);
    if (!self->selecting)
        return;
    sel->candidate = (uint32_t)self->sel_index + 1;
    sel->validation_fraction = self->config.selection.validation_fraction;
    sel->validation_seed = self->config.selection.validation_seed;
}

int mfl_engine_audit_selection(mfl_round_engine_t *self, uint64_t round, const char *site,
                               uint64_t n, double score, const char *reason)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_SELECTION, round, site);
    rec.n = n;
    rec.norm = isfinite(score) && score >= 0 ? score : 0.0;
    if (reason) /* cut to the record's cap: the metrics line has it whole */
        snprintf(rec.reason, sizeof rec.reason, "%.*s", (int)(sizeof rec.reason - 1), reason);
    return mfl_engine_audit_append(self, &rec, true);
}

static double s_score(mfl_select_rule_t rule, const mfl_select_score_t *s)
{
    return mfl_select_mean(rule, s, 1, NULL);
}

void mfl_engine_select_report(mfl_round_engine_t *self, const char *site,
                              const mfl_eval_report_t *r)
{
    if (self->n_sel_scores == self->cap_sel_scores) {
        size_t cap = self->cap_sel_scores ? 2 * self->cap_sel_scores : 16;
        mfl_select_score_t *s = realloc(self->sel_scores, cap * sizeof *s);
        if (s)
            self->sel_scores = s;
        char(*n)[MFL_ENGINE_SITE_MAX] = s ? realloc(self->sel_score_site, cap * sizeof *n) : NULL;
        if (!s || !n) {
            mfl_error("model selection: out of memory keeping site %s's scores; not counted",
                      site);
            return;
        }
        self->sel_score_site = n;
        self->cap_sel_scores = cap;
    }
    mfl_select_score_t *sc = &self->sel_scores[self->n_sel_scores];
    sc->loss = r->loss;
    sc->accuracy = r->accuracy;
    sc->auroc = r->auroc;
    sc->n = r->n;
    snprintf(self->sel_score_site[self->n_sel_scores], MFL_ENGINE_SITE_MAX, "%s", site);
    self->n_sel_scores++;
    size_t k = self->sel_index + 1;
    mfl_info("selection candidate %zu/%zu, site %s: validation loss %.4g acc %.4f auroc %.4f, "
             "n %llu", k, self->config.selection.n_candidates, site, r->loss, r->accuracy,
             r->auroc, (unsigned long long)r->n);
    char why[200];
    snprintf(why, sizeof why, "candidate %zu validation: loss %.6g accuracy %.6g auroc %.6g; "
             "score (%s) in norm", k, r->loss, r->accuracy, r->auroc,
             mfl_select_rule_name(self->sel_rule));
    (void)mfl_engine_audit_selection(self, k, site, r->n, s_score(self->sel_rule, sc), why);
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"selection_eval\",\"candidate\":%zu,\"site\":\"%s\","
                "\"loss\":%.9g,\"accuracy\":%.9g,\"auroc\":%.9g,\"n\":%llu}\n", k, site,
                isfinite(r->loss) ? r->loss : -1.0, isfinite(r->accuracy) ? r->accuracy : -1.0,
                isfinite(r->auroc) ? r->auroc : -1.0, (unsigned long long)r->n);
        fflush(self->metrics);
    }
}

/* The winner: recorded (audit, metrics, state file), applied, θ₀ of its
 * model; the real training opens at round 1. */
static void s_decide(mfl_round_engine_t *self)
{
    const mfl_select_config_t *sel = &self->config.selection;
    size_t w = mfl_select_pick(self->sel_rule, self->sel_means, self->sel_loss,
                               sel->n_candidates);
    char desc[MFL_SELECT_DESC_MAX], why[512], err[512];
    mfl_select_describe(&sel->candidates[w], desc, sizeof desc);
    snprintf(why, sizeof why, "winner: candidate %zu of %zu by mean validation %s %.6g: %s", w + 1,
             sel->n_candidates, mfl_select_rule_name(self->sel_rule), self->sel_means[w], desc);
    mfl_info("model selection: %s", why);
    (void)mfl_engine_audit_selection(self, w + 1, NULL, sel->n_candidates, self->sel_means[w],
                                     why);
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"selection\",\"winner\":%zu,\"candidates\":%zu,"
                "\"rule\":\"%s\",\"score\":%.9g,\"setting\":\"%s\"}\n", w + 1,
                sel->n_candidates, mfl_select_rule_name(self->sel_rule),
                isfinite(self->sel_means[w]) ? self->sel_means[w] : -1.0, desc);
        fflush(self->metrics);
    }
    char path[MFL_COORD_PATH_MAX + 32];
    s_state_path(self, path, sizeof path);
    if (mfl_select_state_write(path, self->sel_digest, w, err, sizeof err) < 0) {
        mfl_engine_fail(self, "model selection: cannot record the winner: %s", err);
        return;
    }
    self->selecting = false;
    self->sel_decided = true;
    self->sel_winner = w;
    mfl_engine_unbind(self);
    s_apply(self, w);
    if (mfl_engine_bind(self, err, sizeof err) < 0) {
        mfl_engine_fail(self, "model selection: the winner's model: %s", err);
        return;
    }
}

void mfl_engine_select_next(mfl_round_engine_t *self)
{
    const mfl_select_config_t *sel = &self->config.selection;
    size_t k = self->sel_index;
    size_t used = 0;
    double mean = mfl_select_mean(self->sel_rule, self->sel_scores, self->n_sel_scores, &used);
    self->sel_means[k] = mean;
    self->sel_sites[k] = used;
    self->sel_loss[k] = mfl_select_mean(MFL_SELECT_RULE_LOSS, self->sel_scores,
                                        self->n_sel_scores, NULL);
    char desc[MFL_SELECT_DESC_MAX], why[512];
    mfl_select_describe(&sel->candidates[k], desc, sizeof desc);
    snprintf(why, sizeof why, "candidate %zu of %zu: mean validation %s %.6g (loss %.6g) over "
             "%zu sites: %s", k + 1, sel->n_candidates, mfl_select_rule_name(self->sel_rule), mean,
             self->sel_loss[k], used, desc);
    mfl_info("model selection: %s", why);
    (void)mfl_engine_audit_selection(self, k + 1, NULL, used, mean, why);
    if (self->metrics) {
        fprintf(self->metrics, "{\"event\":\"selection_candidate\",\"candidate\":%zu,"
                "\"rule\":\"%s\",\"score\":%.9g,\"loss\":%.9g,\"sites\":%zu,\"setting\":\"%s\"}\n",
                k + 1, mfl_select_rule_name(self->sel_rule), isfinite(mean) ? mean : -1.0,
                isfinite(self->sel_loss[k]) ? self->sel_loss[k] : -1.0, used, desc);
        fflush(self->metrics);
    }
    self->n_sel_scores = 0;
    self->rounds_done = 0;
    self->round = 1;
    self->attempt = 0;
    self->phase = MFL_ENGINE_WAITING;
    if (k + 1 >= sel->n_candidates) {
        s_decide(self);
    } else {
        char err[512];
        self->sel_index = k + 1;
        mfl_engine_unbind(self);
        s_apply(self, self->sel_index);
        if (mfl_engine_bind(self, err, sizeof err) < 0) {
            mfl_engine_fail(self, "model selection: candidate %zu: %s", self->sel_index + 1,
                            err);
            return;
        }
    }
    if (self->phase == MFL_ENGINE_FAILED)
        return;
    mfl_engine_hash_theta(self);
    if (self->on_theta)
        self->on_theta(self->on_theta_ctx, self->views, self->theta_tensor_hash,
                       self->n_tensors);
}

bool mfl_round_engine_selection(const mfl_round_engine_t *self, size_t *candidate,
                                size_t *n_candidates, size_t *winner, const char **rule)
{
    const mfl_select_config_t *sel = &self->config.selection;
    if (!sel->enabled || !sel->n_candidates)
        return false;
    if (candidate)
        *candidate = self->selecting ? self->sel_index + 1 : 0;
    if (n_candidates)
        *n_candidates = sel->n_candidates;
    if (winner)
        *winner = self->sel_decided ? self->sel_winner + 1 : 0;
    if (rule)
        *rule = mfl_select_rule_name(self->sel_rule);
    return true;
}

double mfl_round_engine_selection_score(const mfl_round_engine_t *self, size_t i)
{
    return i < MFL_SELECT_MAX_CANDIDATES ? self->sel_means[i] : NAN;
}
