/* Closing a round: server step, atomic checkpoint, audit record, progress
 * line and metrics line; abandoning a round; evaluation results. */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/fileio.h"
#include "fed/checkpoint.h"
#include "fed/vec.h"
#include "round/round_engine_internal.h"

#define CHECKPOINTS_KEPT 3

static void s_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The coordinator's audit log fsyncs once per round, not per record
 * (docs/AUDIT.md; the mode is set where the engine opens the log): appends
 * only write, and these sync points make them durable. A failed sync is
 * logged like a failed append; the log is then closed for writing and every
 * later record fails loudly too. */
/* A failed sync closes the log for good (audit_log.c): the engine goes
 * audit down and its next tick stops the run. */
static void s_audit_sync_failed(mfl_round_engine_t *self, const char *err)
{
    mfl_error("audit log: round %u: %s", self->round, err);
    if (!self->audit_down) {
        snprintf(self->audit_err, sizeof self->audit_err, "%s", err);
        self->audit_down = true;
        self->audit_down_timed = false;
    }
}

static void s_audit_sync(mfl_round_engine_t *self)
{
    /* Never let a record reach the disk ahead of the checkpoint it reports
     * (see mfl_engine_close_round); a failure is logged by the join and
     * acted on at the next close. */
    (void)mfl_engine_checkpoint_join(self);
    char err[300];
    if (self->audit && mfl_audit_sync(self->audit, err, sizeof err) < 0)
        s_audit_sync_failed(self, err);
}

int mfl_engine_audit_round(mfl_round_engine_t *self, mfl_audit_kind_t kind, const char *reason)
{
    if (!self->audit)
        return 0;
    /* Selection rounds are not the run's rounds: their opening and close
     * are `selection` records, so a restart never takes them for the
     * run's (round_select.c). */
    if (self->selecting &&
        (kind == MFL_AUDIT_ROUND_OPENED || kind == MFL_AUDIT_ROUND_CLOSED)) {
        char why[200];
        snprintf(why, sizeof why, "candidate %zu: selection round %u %s%s%s",
                 self->sel_index + 1, self->round,
                 kind == MFL_AUDIT_ROUND_OPENED ? "opened" : "closed", reason ? ": " : "",
                 reason ? reason : "");
        mfl_audit_record_t rec;
        mfl_audit_record_init(&rec, MFL_AUDIT_SELECTION, self->round, NULL);
        memcpy(rec.nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
        rec.nonce_len = MFL_ENGINE_NONCE_BYTES;
        rec.n = kind == MFL_AUDIT_ROUND_OPENED ? self->n_selected : self->n_accepted;
        if (kind == MFL_AUDIT_ROUND_CLOSED) {
            rec.has_delta_hash = true;
            memcpy(rec.delta_hash, self->theta_hash, 32);
        }
        snprintf(rec.reason, sizeof rec.reason, "%s", why);
        return mfl_engine_audit_append(self, &rec, kind != MFL_AUDIT_ROUND_OPENED);
    }
    mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, kind, self->round, NULL);
    memcpy(rec.nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
    rec.nonce_len = MFL_ENGINE_NONCE_BYTES;
    rec.n = kind == MFL_AUDIT_ROUND_OPENED  ? self->n_selected
            : kind == MFL_AUDIT_RUN_ABORTED ? 0 /* no round closed: reason says */
                                            : self->n_accepted;
    if (kind == MFL_AUDIT_ROUND_CLOSED) {
        rec.has_delta_hash = true;
        memcpy(rec.delta_hash, self->theta_hash, 32); /* θ after the step */
    }
    if (reason)
        snprintf(rec.reason, sizeof rec.reason, "%s", reason);
    /* What already happened (θ stepped and checkpointed, a round given
     * up, the run stopped) is owed to the log; a round not yet opened
     * simply does not open. */
    bool owed = kind != MFL_AUDIT_ROUND_OPENED;
    if (mfl_engine_audit_append(self, &rec, owed) < 0)
        return -1;
    /* An abandoned round or an aborted run writes no checkpoint: their
     * records are the round's last, so this is its sync point. */
    if (kind == MFL_AUDIT_ROUND_ABANDONED || kind == MFL_AUDIT_RUN_ABORTED)
        s_audit_sync(self);
    return 0;
}

/* mfl_audit_delta_hash of the flat Δ, from its tensors: the layout is
 * contiguous in tensor order, so hashing them one after another hashes
 * exactly the flat bytes. */
static void s_delta_hash(const mfl_round_engine_t *self, const mfl_tensor_t *t,
                         uint8_t out[32])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    if (self->rd_fn) { /* a spooled update (round_chunked.c) */
        char err[160];
        for (size_t at = 0; at < self->n_state; at += MFL_ENGINE_READ_BLOCK) {
            size_t n = self->n_state - at < MFL_ENGINE_READ_BLOCK ? self->n_state - at
                                                                   : MFL_ENGINE_READ_BLOCK;
            if (self->rd_fn(self->rd_ctx, at, self->rd_buf, n, err, sizeof err) < 0)
                memset(self->rd_buf, 0, n * sizeof(float)); /* checked by the norm pass */
            crypto_generichash_update(&st, (const unsigned char *)self->rd_buf,
                                      n * sizeof(float));
        }
        crypto_generichash_final(&st, out, 32);
        return;
    }
    for (size_t i = 0; i < self->n_tensors; i++) {
        mfl_tensor_piece_t one;
        size_t nr;
        const mfl_tensor_piece_t *r = mfl_tensor_pieces(&t[i], &one, &nr);
        for (size_t k = 0; k < nr; k++)
            crypto_generichash_update(&st, (const unsigned char *)r[k].data,
                                      (size_t)r[k].count * sizeof(float));
    }
    crypto_generichash_final(&st, out, 32);
}

int mfl_engine_audit_update(mfl_round_engine_t *self, const mfl_update_header_t *h,
                            const mfl_tensor_t *tensors, double norm, const char *note,
                            const uint8_t *signed_header, size_t signed_len, const uint8_t *sig,
                            size_t sig_len)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t rec;
    char err[256];
    bool kept = false;
    if (signed_header && sig && sig_len == 64) {
        /* The record keeps what the site signed, so it verifies on its own. */
        kept = mfl_audit_record_from_update(&rec, MFL_AUDIT_UPDATE_ACCEPTED, signed_header,
                                            signed_len, sig, err, sizeof err) == 0;
        if (kept && rec.has_privacy && rec.privacy.delta == 0) /* a header without its δ */
            rec.privacy.delta = self->config.target_delta;
        if (!kept) /* recorded without it (the transport checked the signature) */
            mfl_warn("audit log: round %u, site %s: %s; recorded without its signed header",
                     self->round, h->site, err);
    }
    if (!kept) {
        mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_ACCEPTED, self->round, h->site);
        memcpy(rec.nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
        rec.nonce_len = MFL_ENGINE_NONCE_BYTES;
        rec.has_delta_hash = true;
        if (h->digest_error[0])
            s_delta_hash(self, tensors, rec.delta_hash);
        else
            memcpy(rec.delta_hash, h->digest, sizeof rec.delta_hash);
        rec.norm = norm;
        rec.n = h->n_samples;
    }
    if (note && note[0])
        snprintf(rec.reason, sizeof rec.reason, "%s", note);
    return mfl_engine_audit_append(self, &rec, false);
}

/* The helper: makes the checkpoint just renamed into place durable (file,
 * then directory), then prunes old ones; pruning after the sync keeps the
 * previous, durable checkpoint until this one is. Touches only ck_* fields
 * and the checkpoint directory, which the engine leaves alone until it
 * joins (mfl_engine_checkpoint_join). */
static void *s_ck_main(void *arg)
{
    mfl_round_engine_t *self = arg;
    self->ck_rc = mfl_checkpoint_sync(self->ck_path, self->ck_err, sizeof self->ck_err);
    if (self->ck_rc == 0 &&
        mfl_checkpoint_prune(self->config.checkpoint_dir, CHECKPOINTS_KEPT, self->ck_prune_err,
                             sizeof self->ck_prune_err) < 0)
        return NULL;
    self->ck_prune_err[0] = '\0';
    return NULL;
}

int mfl_engine_checkpoint_join(mfl_round_engine_t *self)
{
    if (!self->ck_running)
        return self->ck_rc < 0 ? -1 : 0; /* a failed sync stays failed */
    pthread_join(self->ck_thread, NULL);
    self->ck_running = false;
    if (self->ck_rc < 0) {
        mfl_error("checkpoint: %s (the checkpoint may not survive a power loss)", self->ck_err);
        return -1;
    }
    if (self->ck_prune_err[0])
        mfl_warn("checkpoint: %s", self->ck_prune_err);
    return 0;
}

/* The audit log's sync on a helper while the checkpoint is encoded and
 * written (see s_checkpoint). */
typedef struct {
    mfl_audit_t *audit;
    int rc;
    char err[300];
} s_audit_job_t;

static void *s_audit_main(void *arg)
{
    s_audit_job_t *j = arg;
    j->rc = mfl_audit_sync(j->audit, j->err, sizeof j->err);
    return NULL;
}

/* Below this θ size (floats) the checkpoint is written in microseconds and
 * a thread would cost more than the overlap saves. */
#define S_OVERLAP_THREAD_MIN ((size_t)1 << 18) /* 1 MiB */

/* Syncs the audit log and writes checkpoint `rounds_done`. The round's
 * records must be on disk before the checkpoint can be (a durable
 * checkpoint is never ahead of the records of the updates folded into it),
 * i.e. before the rename: for a big θ the sync runs on a helper while
 * this thread encodes and writes the temp file, and the rename waits for
 * it. Renamed into place here (a restarted process finds it as soon as
 * this returns, whatever kills this one), made durable by another helper
 * while the next round runs. */
static int s_checkpoint(mfl_round_engine_t *self)
{
    mfl_checkpoint_t ck;
    char err[512];
    memset(&ck, 0, sizeof ck);
    snprintf(ck.run_id, sizeof ck.run_id, "seed-%" PRIu64, self->config.seed);
    ck.round = self->rounds_done;
    ck.seed = self->config.seed;
    mfl_rng_seed(&ck.rng, self->config.seed, self->rounds_done);
    ck.optim_kind = (uint32_t)self->config.server.kind;
    memcpy(ck.model_hash, self->model_hash, 32);
    ck.n_params = self->n_state;
    ck.theta = self->theta;
    /* θ̂ the sites were sent this round (compressed broadcast): the next
     * round's difference is to it, also after a restart (version 2) */
    if (mfl_engine_bcast_active(self))
        ck.broadcast = self->bcast;
    ck.n_optim_state = mfl_server_step_state_size(self->step);
    float *state = NULL;
    if (ck.n_optim_state) {
        state = malloc(ck.n_optim_state * sizeof(float));
        if (!state) {
            mfl_error("checkpoint: out of memory");
            return -1;
        }
    }
    mfl_server_step_state_export(self->step, state, &ck.optim_steps);
    ck.optim_state = state;
    /* The previous checkpoint must be durable before this one exists (the
     * fallback after a power loss) and before pruning can see both; and
     * before the sync below makes its round_closed record durable. */
    if (mfl_engine_checkpoint_join(self) < 0) {
        free(state);
        s_audit_sync(self);
        return -1;
    }
    s_audit_job_t aj = {self->audit, 0, ""};
    pthread_t audit_thread;
    bool auditing = self->audit && self->n_state >= S_OVERLAP_THREAD_MIN &&
                    pthread_create(&audit_thread, NULL, s_audit_main, &aj) == 0;
    if (!auditing)
        s_audit_sync(self);
    mfl_checkpoint_staged_t *stg = &self->ck_staged;
    int rc = mfl_mkdir_p(self->config.checkpoint_dir, 0755, err, sizeof err);
    if (rc == 0 && mfl_checkpoint_path(self->config.checkpoint_dir, ck.round, self->ck_path,
                                       sizeof self->ck_path) < 0) {
        snprintf(err, sizeof err, "%.300s: checkpoint directory path too long",
                 self->config.checkpoint_dir);
        rc = -1;
    }
    if (rc == 0)
        rc = mfl_checkpoint_stage(self->ck_path, &ck, stg, err, sizeof err);
    free(state);
    if (auditing) {
        pthread_join(audit_thread, NULL);
        if (aj.rc < 0)
            mfl_error("audit log: round %u: %s", self->round, aj.err);
    }
    if (rc == 0)
        rc = mfl_checkpoint_publish(stg, err, sizeof err);
    if (rc < 0) {
        mfl_checkpoint_discard(stg);
        mfl_error("checkpoint: %s", err);
        return -1;
    }
    self->ck_rc = 0;
    self->ck_err[0] = self->ck_prune_err[0] = '\0';
    self->ck_running = pthread_create(&self->ck_thread, NULL, s_ck_main, self) == 0;
    if (!self->ck_running) {
        s_ck_main(self); /* no thread: sync here, as before */
        self->ck_running = false;
        if (self->ck_rc < 0) {
            mfl_error("checkpoint: %s", self->ck_err);
            return -1;
        }
        if (self->ck_prune_err[0])
            mfl_warn("checkpoint: %s", self->ck_prune_err);
    }
    return 0;
}

/* θ's hash on a helper thread (see mfl_engine_close_round); below this size
 * starting a thread costs more than it saves. */
#define S_HASH_THREAD_MIN ((size_t)1 << 18) /* floats: 1 MiB */

void mfl_engine_hash_theta(mfl_round_engine_t *self)
{
    for (size_t i = 0; i < self->n_tensors; i++)
        crypto_generichash(self->theta_tensor_hash + 32 * i, 32,
                           (const unsigned char *)self->views[i].data,
                           (unsigned long long)self->views[i].count * sizeof(float), NULL, 0);
    mfl_audit_update_digest(self->theta_tensor_hash, self->n_tensors, self->theta_hash);
}

static void *s_hash_main(void *arg)
{
    mfl_engine_hash_theta(arg);
    return NULL;
}

static void s_metrics_line(mfl_round_engine_t *self, const mfl_round_summary_t *m)
{
    if (!self->metrics)
        return;
    char hash[65];
    s_hex(self->theta_hash, 32, hash);
    /* null: no accepted update sent its losses (DP sites do not) */
    char lb[32] = "null", la[32] = "null";
    if (isfinite(m->loss_before))
        snprintf(lb, sizeof lb, "%.9g", m->loss_before);
    if (isfinite(m->loss_after))
        snprintf(la, sizeof la, "%.9g", m->loss_after);
    if (self->selecting)
        fprintf(self->metrics, "{\"event\":\"selection_round\",\"candidate\":%zu,",
                self->sel_index + 1);
    else
        fprintf(self->metrics, "{\"event\":\"round\",");
    fprintf(self->metrics,
            "\"round\":%u,\"rounds\":%u,\"attempt\":%u,\"selected\":%zu,"
            "\"accepted\":%zu,\"rejected\":%zu,\"failed\":%zu,\"loss_before\":%s,"
            "\"loss_after\":%s,"
            "\"weight\":%.9g,\"delta_norm\":%.9g,\"seconds\":%.6f,\"wall_seconds\":%.6f,"
            "\"at_deadline\":%s,"
            "\"theta_blake2b\":\"%s\"}\n",
            m->round, m->rounds, m->attempt, m->n_selected, m->n_accepted, m->n_rejected,
            m->n_failed, lb, la, m->total_weight, m->delta_norm,
            m->seconds, m->wall_seconds, m->at_deadline ? "true" : "false", hash);
    fflush(self->metrics);
}

void mfl_engine_close_round(mfl_round_engine_t *self, uint64_t now_ms, bool at_deadline)
{
    char err[256];
    mfl_round_summary_t m;
    memset(&m, 0, sizeof m);
    m.round = self->round;
    m.rounds = mfl_engine_rounds_target(self);
    m.attempt = self->attempt;
    m.n_selected = self->n_selected;
    m.n_accepted = self->n_accepted;
    m.n_rejected = self->n_rejected_round;
    m.n_failed = self->n_withdrawn;
    m.total_weight = self->weight_sum;
    /* over the updates that sent losses; NaN (null in the metrics line,
     * "not sent" in status and report) when none did */
    m.loss_before = self->loss_weight_sum > 0 ? self->loss_before_sum / self->loss_weight_sum : NAN;
    m.loss_after = self->loss_weight_sum > 0 ? self->loss_after_sum / self->loss_weight_sum : NAN;
    /* Monotonic and sub-millisecond: now_ms is whole milliseconds, too
     * coarse for rounds of a few ms (small models). */
    m.seconds = mfl_clock_mono_s() - self->opened_mono_s;
    m.at_deadline = at_deadline;

    /* The plain mean is written over the fixed-point sums' storage (no
     * second 4·P buffer at the close; the sums are reset when the next
     * round opens or this one is abandoned); robust rules need a buffer. */
    bool robust = self->config.aggregator != MFL_AGG_MEAN;
    float *mean = robust ? malloc(self->n_state * sizeof(float)) : NULL;
    if (robust && !mean) {
        mfl_error("round %u: out of memory for the mean of %zu parameters; θ unchanged, round "
                  "retried", self->round, self->n_state);
        mfl_engine_abandon_round(self, now_ms);
        return;
    }
    int agg_rc = 0;
    if (robust) {
        agg_rc = mfl_engine_robust_mean(self, mean, err, sizeof err);
        mfl_engine_robust_reset(self);
    } else {
        mean = mfl_aggregate_mean_in_place(self->agg);
        if (!mean) {
            agg_rc = -1;
            snprintf(err, sizeof err, "no update to average");
        }
    }
    if (agg_rc < 0 ||
        mfl_server_step_apply(self->step, self->theta, mean, err, sizeof err) < 0) {
        if (robust)
            free(mean);
        /* Every update passed the finiteness and bound checks, so this is
         * a step that would make θ non-finite: keep θ, retry the round. */
        mfl_error("round %u: server step refused (%s); θ unchanged, round retried",
                  self->round, err);
        mfl_engine_abandon_round(self, now_ms);
        return;
    }
    m.delta_norm = sqrt(mfl_vec_sumsq(mean, self->n_state));
    if (robust)
        free(mean);
    else if (self->n_state >= MFL_ENGINE_RELEASE_SUMS_PARAMS)
        /* the mean is in θ now: free the sums (2 × 4P) before θ's broadcast
         * copy is made; the next round's first fold allocates them again
         * (issue 17: the coordinator holds θ, its copy OR the sums) */
        mfl_aggregate_release(self->agg);
    /* θ's tensor hashes and digest (the broadcast's TensorHeaders,
     * RoundTask.model_hash, the round_closed record, metrics: one BLAKE2b
     * pass for all) on a helper while this thread syncs the audit log and
     * encodes the checkpoint (its own checksum pass): between rounds the
     * sites wait, so a core is free. Both only read θ. */
    pthread_t hash_thread;
    bool hashing = self->n_state >= S_HASH_THREAD_MIN &&
                   pthread_create(&hash_thread, NULL, s_hash_main, self) == 0;
    if (!hashing)
        mfl_engine_hash_theta(self);
    self->rounds_done = self->round;
    /* The previous checkpoint's sync (helper thread) ends before the
     * previous round's round_closed record can reach the disk (the audit
     * sync in s_checkpoint joins it first): a durable log never reports a
     * round closed whose checkpoint a power loss could still take away.
     * The round's audit records (round_opened, each update_accepted, the
     * previous round's round_closed) reach the disk before the checkpoint
     * does, so a durable checkpoint is never ahead of the records of the
     * updates folded into it: s_checkpoint syncs the log before the
     * rename. Checkpoint first: once it is on disk the round is done,
     * whatever happens to the lines below. */
    /* Selection rounds keep no checkpoint: a restart runs selection again
     * (round_select.c); their records still reach the disk here. */
    int ck = 0;
    if (self->selecting)
        s_audit_sync(self);
    else
        ck = s_checkpoint(self);
    if (hashing)
        pthread_join(hash_thread, NULL);
    /* θ's copy for the next broadcast, made ahead (not with a compressed
     * broadcast: the sites are sent θ̂, made when the round opens) */
    if (self->on_theta && !mfl_engine_bcast_active(self))
        self->on_theta(self->on_theta_ctx, self->views, self->theta_tensor_hash,
                       self->n_tensors);
    if (ck < 0) {
        /* Not saved, so not done: status and the log count the rounds on
         * disk ("FAILED after 15 of 200", not 16). */
        self->rounds_done = self->round - 1;
        self->phase = MFL_ENGINE_FAILED;
        mfl_error("round %u: cannot write the checkpoint; stopping (θ of round %u is the "
                  "last on disk)", self->round, self->round - 1);
        if (self->sink.finished)
            self->sink.finished(self->sink.ctx);
        return;
    }
    /* The checkpoint is the round; if its record cannot be written now it
     * is owed (written first once the log works; a restart reconciles
     * it from the checkpoint) and the next round waits for it. */
    (void)mfl_engine_audit_round(self, MFL_AUDIT_ROUND_CLOSED, at_deadline ? "deadline" : NULL);
    m.wall_seconds = mfl_clock_mono_s() - self->opened_mono_s;
    char loss[80];
    snprintf(loss, sizeof loss, "%s", m.n_accepted ? "losses not sent (DP or SecAgg)" : "no update");
    if (isfinite(m.loss_before) && isfinite(m.loss_after))
        snprintf(loss, sizeof loss, "loss before %.4g → after %.4g", m.loss_before,
                 m.loss_after);
    mfl_info("%sround %u/%u: %zu/%zu sites, %s, %.2f s%s", self->selecting ? "selection " : "",
             m.round, m.rounds, m.n_accepted, m.n_selected, loss, m.seconds,
             at_deadline ? " (closed at the deadline)" : "");
    s_metrics_line(self, &m);
    self->last = m;
    self->have_summary = true;
    self->round++;
    self->attempt = 0;
    for (size_t i = 0; i < self->n_sites; i++)
        self->sites[i].selected = self->sites[i].reported = false;
    if (self->sink.round_closed)
        self->sink.round_closed(self->sink.ctx, &m);
    mfl_engine_after_close(self, now_ms);
}

void mfl_round_engine_on_theta(mfl_round_engine_t *self, mfl_engine_theta_fn *fn, void *ctx)
{
    self->on_theta = fn;
    self->on_theta_ctx = ctx;
}

void mfl_engine_abandon_round(mfl_round_engine_t *self, uint64_t now_ms)
{
    (void)now_ms;
    char reason[256];
    if (self->abandon_note[0])
        snprintf(reason, sizeof reason, "%s", self->abandon_note);
    else
        snprintf(reason, sizeof reason, "%zu of %zu selected sites reported; min_sites is %u",
                 self->n_accepted, self->n_selected, self->config.min_sites);
    self->abandon_note[0] = '\0';
    mfl_engine_secagg_end(self, true, reason);
    mfl_warn("%sround %u/%u abandoned (attempt %u): %s; θ unchanged, retrying",
             self->selecting ? "selection " : "", self->round, mfl_engine_rounds_target(self),
             self->attempt, reason);
    (void)mfl_engine_audit_round(self, MFL_AUDIT_ROUND_ABANDONED, reason); /* owed if it fails */
    if (self->n_state >= MFL_ENGINE_RELEASE_SUMS_PARAMS)
        mfl_aggregate_release(self->agg);
    else
        mfl_aggregate_reset(self->agg);
    mfl_engine_robust_reset(self);
    for (size_t i = 0; i < self->n_sites; i++)
        self->sites[i].selected = self->sites[i].reported = false;
    if (self->config.max_attempts && self->attempt >= self->config.max_attempts) {
        mfl_error("round %u: %u attempts failed; giving up (max_attempts)", self->round,
                  self->attempt);
        self->phase = MFL_ENGINE_FAILED;
        if (self->sink.finished)
            self->sink.finished(self->sink.ctx);
        return;
    }
    self->phase = MFL_ENGINE_WAITING;
}

/* A treatment site's report: a policy value is finite and not the 0 that a
 * site predating the fields leaves in all of them (a real value of 0 would
 * need every held-out patient to have done badly under every policy). */
static int s_has_policy(const mfl_eval_report_t *r)
{
    const double v[] = {r->value, r->value_before, r->value_local, r->value_best_arm,
                        r->value_given};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (isfinite(v[i]) && v[i] != 0)
            return 1;
    return 0;
}

static double s_or_neg(double v)
{
    return isfinite(v) ? v : -1.0;
}

void mfl_engine_log_eval(mfl_round_engine_t *self, const char *site, const mfl_eval_report_t *r)
{
    if (isfinite(r->rmse) && isnan(r->accuracy))
        mfl_info("eval after round %u, site %s: adapted loss %.4g rmse %.4g mae %.4g r2 %.4f "
                 "(before: rmse %.4g; local-only: rmse %.4g), n %llu", r->round, site, r->loss,
                 r->rmse, r->mae, r->r2, r->rmse_before, r->rmse_local,
                 (unsigned long long)r->n);
    else
        mfl_info("eval after round %u, site %s: adapted loss %.4g acc %.4f auroc %.4f (before: "
                 "acc %.4f; local-only: acc %.4f), n %llu", r->round, site, r->loss,
                 r->accuracy, r->auroc, r->accuracy_before, r->accuracy_local,
                 (unsigned long long)r->n);
    if (s_has_policy(r))
        mfl_info("eval after round %u, site %s: policy value %.4f (before %.4f, local-only "
                 "%.4f, best arm for all %.4f, arms given %.4f)", r->round, site, r->value,
                 r->value_before, r->value_local, r->value_best_arm, r->value_given);
    if (self->metrics) {
        fprintf(self->metrics,
                "{\"event\":\"eval\",\"round\":%u,\"site\":\"%s\",\"loss\":%.9g,"
                "\"accuracy\":%.9g,\"auroc\":%.9g,\"sensitivity\":%.9g,\"specificity\":%.9g,"
                "\"n\":%llu,\"loss_before\":%.9g,\"accuracy_before\":%.9g,\"auroc_before\":%.9g,"
                "\"accuracy_local\":%.9g,\"auroc_local\":%.9g,\"n_support\":%llu",
                r->round, site, isfinite(r->loss) ? r->loss : -1.0,
                isfinite(r->accuracy) ? r->accuracy : -1.0, isfinite(r->auroc) ? r->auroc : -1.0,
                isfinite(r->sensitivity) ? r->sensitivity : -1.0,
                isfinite(r->specificity) ? r->specificity : -1.0, (unsigned long long)r->n,
                isfinite(r->loss_before) ? r->loss_before : -1.0,
                isfinite(r->accuracy_before) ? r->accuracy_before : -1.0,
                isfinite(r->auroc_before) ? r->auroc_before : -1.0,
                isfinite(r->accuracy_local) ? r->accuracy_local : -1.0,
                isfinite(r->auroc_local) ? r->auroc_local : -1.0,
                (unsigned long long)r->n_support);
        /* Per-site adaptation only (eval.adapt_search): what the site chose. */
        if (r->adapt_lr_used > 0)
            fprintf(self->metrics, ",\"adapt_steps_used\":%u,\"adapt_lr_used\":%.9g",
                    r->adapt_steps_used, (double)r->adapt_lr_used);
        /* Regression reports only (a classification line is unchanged). */
        if (isfinite(r->rmse) && isnan(r->accuracy))
            fprintf(self->metrics, ",\"rmse\":%.9g,\"mae\":%.9g,\"r2\":%.9g,"
                    "\"rmse_before\":%.9g,\"rmse_local\":%.9g", r->rmse,
                    isfinite(r->mae) ? r->mae : -1.0, isfinite(r->r2) ? r->r2 : -1.0,
                    isfinite(r->rmse_before) ? r->rmse_before : -1.0,
                    isfinite(r->rmse_local) ? r->rmse_local : -1.0);
        /* Binary reports: the early-warning operating point (specificity 0.9). */
        if (isfinite(r->auroc))
            fprintf(self->metrics, ",\"sens_at_spec90\":%.9g,\"sens_at_spec90_local\":%.9g",
                    isfinite(r->sens_at_spec90) ? r->sens_at_spec90 : -1.0,
                    isfinite(r->sens_at_spec90_local) ? r->sens_at_spec90_local : -1.0);
        /* Treatment reports only (docs/METRICS.md). */
        if (s_has_policy(r))
            fprintf(self->metrics, ",\"policy_value\":%.9g,\"policy_value_before\":%.9g,"
                    "\"policy_value_local\":%.9g,\"policy_value_best_arm\":%.9g,"
                    "\"policy_value_given\":%.9g", s_or_neg(r->value),
                    s_or_neg(r->value_before), s_or_neg(r->value_local),
                    s_or_neg(r->value_best_arm), s_or_neg(r->value_given));
        fprintf(self->metrics, "}\n");
        fflush(self->metrics);
    }
    if (self->sink.eval_report) {
        mfl_eval_summary_t s = {r->round, site, r};
        self->sink.eval_report(self->sink.ctx, &s);
    }
}
