/* The round engine's state machine (see round_engine.h). Round closing,
 * checkpoints and output files live in round_close.c; this file holds the
 * sites, the round's opening and the checks on incoming updates. */
#include "round/round_engine_internal.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "fed/vec.h"

uint64_t mfl_round_seed(uint64_t run_seed, uint32_t round)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, run_seed, 0x726f756e64ull ^ (uint64_t)round); /* "round" */
    return mfl_rng_u64(&r);
}

const char *mfl_engine_phase_name(mfl_engine_phase_t phase)
{
    switch (phase) {
    case MFL_ENGINE_WAITING: return "waiting";
    case MFL_ENGINE_ROUND: return "round";
    case MFL_ENGINE_EVAL: return "eval";
    case MFL_ENGINE_DONE: return "done";
    case MFL_ENGINE_FAILED: return "failed";
    case MFL_ENGINE_ABORTED: return "aborted";
    }
    return "?";
}

/* ---- sites --------------------------------------------------------- */

mfl_engine_site_t *mfl_engine_find_site(mfl_round_engine_t *self, const char *id)
{
    for (size_t i = 0; i < self->n_sites; i++) {
        if (strcmp(self->sites[i].id, id) == 0)
            return &self->sites[i];
    }
    return NULL;
}

/* Finds or adds `id`; keeps the table sorted by id so selection does not
 * depend on connection order. NULL on OOM or an over-long id. */
static mfl_engine_site_t *s_site_get(mfl_round_engine_t *self, const char *id)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, id);
    if (s)
        return s;
    if (strlen(id) >= MFL_ENGINE_SITE_MAX || !*id)
        return NULL;
    if (self->n_sites == self->cap_sites) {
        size_t cap = self->cap_sites ? 2 * self->cap_sites : 16;
        mfl_engine_site_t *t = realloc(self->sites, cap * sizeof *t);
        if (!t)
            return NULL;
        self->sites = t;
        self->cap_sites = cap;
    }
    size_t pos = 0;
    while (pos < self->n_sites && strcmp(self->sites[pos].id, id) < 0)
        pos++;
    memmove(&self->sites[pos + 1], &self->sites[pos], (self->n_sites - pos) * sizeof *self->sites);
    self->n_sites++;
    s = &self->sites[pos];
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    return s;
}

static size_t s_connected(const mfl_round_engine_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_sites; i++)
        n += self->sites[i].connected;
    return n;
}

void mfl_round_engine_site_seen(mfl_round_engine_t *self, const char *site, uint64_t now_ms)
{
    mfl_engine_site_t *s = s_site_get(self, site);
    if (!s)
        return;
    if (!s->connected)
        mfl_info("site %s connected", site);
    s->connected = true;
    s->last_seen_ms = now_ms;
}

void mfl_round_engine_site_gone(mfl_round_engine_t *self, const char *site)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, site);
    if (s && s->connected) {
        s->connected = false;
        mfl_info("site %s left", site);
    }
    mfl_engine_flow_release(self, site);
}

void mfl_round_engine_site_encodings(mfl_round_engine_t *self, const char *site,
                                     uint32_t mask)
{
    mfl_engine_site_t *s = s_site_get(self, site);
    if (s)
        s->encodings = mask | 1u;
}

void mfl_round_engine_site_broadcast(mfl_round_engine_t *self, const char *site, uint32_t mask,
                                     const uint8_t *base)
{
    mfl_engine_site_t *s = s_site_get(self, site);
    if (!s)
        return;
    s->broadcasts = mask | 1u;
    s->has_base = base != NULL;
    if (base)
        memcpy(s->base, base, sizeof s->base);
}

uint32_t mfl_engine_site_encoding(const mfl_round_engine_t *self, const mfl_engine_site_t *s)
{
    uint32_t e = self->config.upload_encoding;
    return e < 32 && (s->encodings & (1u << e)) ? e : 0;
}

void mfl_round_engine_site_hello(mfl_round_engine_t *self, const char *site, uint64_t n_train,
                                 uint64_t now_ms)
{
    mfl_round_engine_site_seen(self, site, now_ms);
    mfl_engine_site_t *s = mfl_engine_find_site(self, site);
    if (!s)
        return;
    s->n_train = n_train;
    s->revoked = false; /* re-admitted: its key is back in the allow-list */
    /* A new session: a grant the site held belongs to its old connection
     * (it asks again once its update is ready). */
    mfl_engine_flow_release(self, site);
    /* A restarted site lost its task: send it again (same nonce, same
     * seed, so its answer is the one it would have sent). */
    if (self->phase == MFL_ENGINE_ROUND && s->selected && !s->reported) {
        mfl_engine_send_round_task(self, s);
    } else if (self->phase == MFL_ENGINE_EVAL && !s->eval_reported) {
        /* A site that joins while an evaluation is open is evaluated too:
         * a hospital that never trained can join for the evaluation only.
         * The evaluation's deadline does not move for it. */
        if (!s->eval_sent)
            mfl_info("eval after round %u: site %s joined late; evaluating it too",
                     self->eval_round, site);
        s->eval_sent = true;
        mfl_engine_send_eval_task(self, s);
    }
}

/* ---- tasks ------------------------------------------------------------ */

void mfl_engine_fill_algorithm(const mfl_round_engine_t *self, mfl_task_algorithm_t *a)
{
    mfl_task_algorithm_from_learner(&self->config.learner, self->config.n_way,
                                    self->config.k_shot, self->config.n_query, a);
}

void mfl_engine_send_round_task(mfl_round_engine_t *self, mfl_engine_site_t *s)
{
    if (!self->sink.send_round_task)
        return;
    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    mfl_engine_fill_algorithm(self, &task.algorithm);
    task.privacy.enabled = self->config.dp_enabled;
    task.privacy.clip_norm = self->config.clip_norm;
    task.privacy.noise_multiplier = self->config.noise_multiplier;
    task.privacy.target_delta = self->config.target_delta;
    task.round = self->round;
    memcpy(task.nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
    task.nonce_len = MFL_ENGINE_NONCE_BYTES;
    snprintf(task.model_spec, sizeof task.model_spec, "%s", self->config.learner.model_spec);
    memcpy(task.model_hash, self->theta_hash, sizeof self->theta_hash);
    task.model_hash_len = sizeof self->theta_hash;
    task.deadline_unix_ms = self->deadline_unix_ms; /* display only: the site's clock may differ */
    task.seed = self->round_seed;
    /* The log's signed head as of its last sync: the site keeps it, so a
     * log cut short later shows against the site's (docs/AUDIT.md). */
    if (self->audit) {
        mfl_audit_signed_head(self->audit, &task.audit_seq, task.audit_head,
                              task.audit_head_sig);
        snprintf(task.audit_writer, sizeof task.audit_writer, "%s", self->audit_writer);
        task.has_audit_head = true;
    }
    task.update_encoding = mfl_engine_site_encoding(self, s);
    task.upload_chunk_values = mfl_engine_chunk_values(self, s);
    mfl_engine_select_task(self, &task.selection);
    mfl_engine_scaling_task(self, &task.scaling);
    mfl_engine_secagg_fill_task(self, &task);
    /* θ, or θ̂ in full or as a difference (round_broadcast.c) */
    const mfl_tensor_t *model = mfl_engine_bcast_task(self, s, &task);
    if (self->sink.send_round_task(self->sink.ctx, s->id, &task, model, self->n_tensors) < 0)
        mfl_warn("round %u: could not send the task to site %s (the deadline decides)",
                 self->round, s->id);
}

void mfl_engine_send_eval_task(mfl_round_engine_t *self, mfl_engine_site_t *s)
{
    if (!self->sink.send_eval_task)
        return;
    mfl_eval_task_t task;
    memset(&task, 0, sizeof task);
    mfl_engine_fill_algorithm(self, &task.algorithm);
    task.round = self->eval_round;
    memcpy(task.nonce, self->eval_nonce, MFL_ENGINE_NONCE_BYTES);
    task.nonce_len = MFL_ENGINE_NONCE_BYTES;
    snprintf(task.model_spec, sizeof task.model_spec, "%s", self->config.learner.model_spec);
    memcpy(task.model_hash, self->theta_hash, sizeof self->theta_hash);
    task.model_hash_len = sizeof self->theta_hash;
    task.adapt_steps = self->config.eval_adapt_steps;
    task.adapt_lr = self->config.eval_adapt_lr;
    mfl_engine_select_task(self, &task.selection);
    if (self->selecting && self->config.selection.score_search)
        task.selection.adapt_search = true; /* scored as eval.adapt_search deploys it */
    if (self->config.eval_adapt_search && !self->selecting) {
        /* Each site picks its adaptation on its own validation rows. */
        task.selection.adapt_search = true;
        task.selection.validation_fraction = self->config.selection.validation_fraction;
        task.selection.validation_seed = self->config.selection.validation_seed;
    }
    mfl_engine_scaling_task(self, &task.scaling);
    if (self->moments_phase) {
        /* Federated standardisation's setup: the fit rows' moments, i.e.
         * without selection's validation part when selection runs. */
        memset(&task.selection, 0, sizeof task.selection);
        task.moments = true;
        task.scaling.n = 0;
        if (self->config.selection.enabled) {
            task.selection.validation_fraction = self->config.selection.validation_fraction;
            task.selection.validation_seed = self->config.selection.validation_seed;
        }
    }
    if (self->sink.send_eval_task(self->sink.ctx, s->id, &task, self->views, self->n_tensors) < 0)
        mfl_warn("eval after round %u: could not send the task to site %s", self->eval_round,
                 s->id);
}

/* Selects sites for the round: all connected ones, or a seeded sample of
 * ceil(fraction · n) (at least min_sites when possible) in site-id order. */
static size_t s_select(mfl_round_engine_t *self)
{
    size_t n = 0;
    size_t *idx = malloc((self->n_sites ? self->n_sites : 1) * sizeof *idx);
    if (!idx)
        return 0;
    for (size_t i = 0; i < self->n_sites; i++) {
        self->sites[i].selected = false;
        self->sites[i].reported = false;
        self->sites[i].reject_logged = 0;
        self->sites[i].reject_recorded = 0;
        self->sites[i].withdrawn = false;
        if (self->sites[i].connected)
            idx[n++] = i;
    }
    size_t k = n;
    if (self->config.sites_fraction < 1.0) {
        k = (size_t)ceil(self->config.sites_fraction * (double)n - 1e-9);
        if (k < self->config.min_sites)
            k = self->config.min_sites;
        if (k > n)
            k = n;
        if (k == 0 && n > 0)
            k = 1;
        mfl_rng_t rng;
        mfl_rng_seed(&rng, self->round_seed, 0x73656c656374ull); /* "select" */
        mfl_rng_shuffle(&rng, idx, n);
    }
    /* Robust rules keep every Δ until the close: at most max_updates. */
    if (self->config.aggregator != MFL_AGG_MEAN && k > self->config.robust_max_updates)
        k = self->config.robust_max_updates;
    for (size_t i = 0; i < k; i++)
        self->sites[idx[i]].selected = true;
    free(idx);
    return k;
}

static void s_open_round(mfl_round_engine_t *self, uint64_t now_ms)
{
    self->round_seed = mfl_round_seed(self->config.seed, self->round);
    randombytes_buf(self->nonce, sizeof self->nonce);
    self->n_selected = s_select(self);
    self->n_accepted = 0;
    self->n_rejected_round = 0;
    self->n_withdrawn = 0;
    self->loss_before_sum = 0;
    self->loss_after_sum = 0;
    self->weight_sum = 0;
    self->loss_weight_sum = 0;
    if (self->n_state >= MFL_ENGINE_RELEASE_SUMS_PARAMS)
        mfl_aggregate_release(self->agg); /* allocated by the first fold, after θ went out */
    else
        mfl_aggregate_reset(self->agg);
    mfl_engine_robust_reset(self);
    mfl_engine_flow_reset(self);
    self->opened_ms = now_ms;
    self->opened_mono_s = mfl_clock_mono_s();
    self->deadline_ms = now_ms + self->config.deadline_ms;
    self->deadline_unix_ms = mfl_round_engine_wall_of(self, self->deadline_ms);
    self->phase = MFL_ENGINE_ROUND;
    self->attempt++;
    /* θ̂ of this round (compressed broadcast): what the record names */
    (void)mfl_engine_bcast_open(self);
    char bcast_note[160];
    bool bcast_noted = mfl_engine_bcast_reason(self, bcast_note, sizeof bcast_note) > 0;
    if (mfl_engine_audit_round(self, MFL_AUDIT_ROUND_OPENED, bcast_noted ? bcast_note : NULL) <
        0) {
        /* Not on record, so not opened: no task leaves (audit down; the
         * tick retries, then opens it). */
        self->phase = MFL_ENGINE_WAITING;
        self->attempt--;
        for (size_t i = 0; i < self->n_sites; i++)
            self->sites[i].selected = false;
        return;
    }
    mfl_debug("round %u/%u (attempt %u): %zu sites selected", self->round,
              mfl_engine_rounds_target(self),
              self->attempt, self->n_selected);
    self->abandon_note[0] = '\0';
    mfl_engine_secagg_open(self, now_ms);
    for (size_t i = 0; i < self->n_sites; i++) {
        if (self->sites[i].selected)
            mfl_engine_send_round_task(self, &self->sites[i]);
    }
}

static void s_open_eval(mfl_round_engine_t *self, uint64_t now_ms, bool final)
{
    self->eval_round = self->rounds_done;
    self->eval_final = final;
    randombytes_buf(self->eval_nonce, sizeof self->eval_nonce);
    self->eval_deadline_ms = now_ms + self->config.eval_deadline_ms;
    size_t sent = 0;
    for (size_t i = 0; i < self->n_sites; i++) {
        mfl_engine_site_t *s = &self->sites[i];
        s->eval_sent = s->connected;
        s->eval_reported = false;
        sent += s->eval_sent;
    }
    self->phase = MFL_ENGINE_EVAL;
    if (!sent) {
        mfl_warn("evaluation after round %u: no site connected; skipped", self->eval_round);
        mfl_engine_finish_eval(self);
        return;
    }
    for (size_t i = 0; i < self->n_sites; i++) {
        if (self->sites[i].eval_sent)
            mfl_engine_send_eval_task(self, &self->sites[i]);
    }
}

void mfl_engine_after_close(mfl_round_engine_t *self, uint64_t now_ms)
{
    uint32_t done = self->rounds_done;
    if (done >= mfl_engine_rounds_target(self))
        s_open_eval(self, now_ms, true);
    else if (!self->selecting && self->config.eval_every && done % self->config.eval_every == 0)
        s_open_eval(self, now_ms, false);
    else
        self->phase = MFL_ENGINE_WAITING;
}

void mfl_engine_finish_eval(mfl_round_engine_t *self)
{
    if (self->moments_phase) { /* federated standardisation's moments are in */
        mfl_engine_scaling_done(self);
        return;
    }
    if (self->selecting) { /* a candidate's validation scores are in */
        mfl_engine_select_next(self);
        return;
    }
    if (self->eval_final) {
        /* "Run finished" means the last checkpoint is on disk. */
        if (mfl_engine_checkpoint_join(self) < 0) {
            self->phase = MFL_ENGINE_FAILED;
            if (self->sink.finished)
                self->sink.finished(self->sink.ctx);
            return;
        }
        self->phase = MFL_ENGINE_DONE;
        mfl_engine_record_finished(self);
        /* The run's last sync point of the audit log (deferred mode: the
         * last round_closed is not on disk yet). */
        char aerr[300];
        if (self->audit && mfl_audit_sync(self->audit, aerr, sizeof aerr) < 0)
            mfl_error("audit log: %s", aerr);
        mfl_info("run finished: %u rounds", self->rounds_done);
        if (self->sink.finished)
            self->sink.finished(self->sink.ctx);
    } else {
        self->phase = MFL_ENGINE_WAITING;
    }
}

/* ---- rejections and updates ---------------------------------------- */

void mfl_engine_reject(mfl_round_engine_t *self, const char *peer, mfl_reject_t reason,
                       uint32_t round, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    self->n_rejected_total++;
    self->n_rejected_round++;
    self->last_reject = reason;
    snprintf(self->last_reject_text, sizeof self->last_reject_text, "%s", text);
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    uint32_t bit = (uint32_t)1 << ((unsigned)reason & 31u);
    /* Logged once per (site, reason, round): a misbehaving site must not
     * flood the log, but every first occurrence names peer and reason. */
    if (!s || !(s->reject_logged & bit)) {
        mfl_warn("round %u: rejected message from site %s: %s: %s", round, peer,
                 mfl_engine_reject_name(reason), text);
        if (s)
            s->reject_logged |= bit;
    }
    if (self->sink.reject)
        self->sink.reject(self->sink.ctx, peer, reason, round, text);
}

const char *mfl_engine_reject_name(mfl_reject_t reason)
{
    return mfl_reject_reason_name((int)reason);
}

/* Tensor names and shapes must equal the learner's layout exactly. */
static int s_check_shapes(mfl_round_engine_t *self, const char *peer,
                          const mfl_tensor_t *t, size_t n, uint32_t round)
{
    if (n != self->n_tensors) {
        mfl_engine_reject(self, peer, MFL_REJECT_SHAPE, round,
                          "%zu tensors, expected %zu", n, self->n_tensors);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const mfl_tensor_t *want = &self->views[i];
        bool same = t[i].name && strcmp(t[i].name, want->name) == 0 && t[i].ndim == want->ndim &&
                    t[i].count == want->count &&
                    (t[i].data || t[i].n_pieces || self->rd_fn);
        for (size_t d = 0; same && d < want->ndim; d++)
            same = t[i].shape[d] == want->shape[d];
        if (!same) {
            mfl_engine_reject(self, peer, MFL_REJECT_SHAPE, round,
                              "tensor %zu ('%s', %llu elements) does not match '%s' "
                              "(%llu elements)", i, t[i].name ? t[i].name : "",
                              (unsigned long long)t[i].count, want->name,
                              (unsigned long long)want->count);
            return -1;
        }
    }
    return 0;
}

/* ‖Δ‖₂ of a spooled update, tensor by tensor in blocks: bit-identical to
 * s_norm of the same values in memory. -1 if an element is non-finite
 * (*bad: its flat index) or a read failed (*bad = n_state + 1). */
static double s_norm_read(mfl_round_engine_t *self, size_t *bad)
{
    double sq = 0;
    char err[160];
    *bad = self->n_state;
    for (size_t i = 0; i < self->n_tensors; i++) {
        mfl_vec_sumsq_t acc;
        mfl_vec_sumsq_init(&acc);
        size_t off = self->tensor_offset[i], count = (size_t)self->views[i].count;
        for (size_t at = 0; at < count; at += MFL_ENGINE_READ_BLOCK) {
            size_t n = count - at < MFL_ENGINE_READ_BLOCK ? count - at : MFL_ENGINE_READ_BLOCK;
            if (self->rd_fn(self->rd_ctx, off + at, self->rd_buf, n, err, sizeof err) < 0) {
                mfl_warn("reading a spooled update: %s", err);
                *bad = self->n_state + 1;
                return -1;
            }
            mfl_vec_sumsq_add(&acc, self->rd_buf, n);
            size_t k = mfl_vec_first_nonfinite(self->rd_buf, n);
            if (k < n) {
                *bad = off + at + k;
                return -1;
            }
        }
        sq += mfl_vec_sumsq_end(&acc);
    }
    return sqrt(sq);
}

/* ‖Δ‖₂ straight from the received tensors (no flat copy: the aggregate
 * folds them where they are), or -1 if some element is non-finite (*bad
 * gets its flat index). Summed tensor by tensor in layout order, as the
 * flat copy's norm was; the squares' sum is finite iff every element is,
 * so the index is looked for only on a reject. */
static double s_norm(mfl_round_engine_t *self, const mfl_tensor_t *t, size_t *bad)
{
    double sq = 0;
    if (self->rd_fn) /* a spooled update: read block by block (same sums, fed/vec.h) */
        return s_norm_read(self, bad);
    for (size_t i = 0; i < self->n_tensors; i++) {
        /* run by run when the tensor is left in its frames: the same
         * partial sums as one pass over it (fed/vec.h) */
        mfl_tensor_piece_t one;
        size_t nr;
        const mfl_tensor_piece_t *r = mfl_tensor_pieces(&t[i], &one, &nr);
        mfl_vec_sumsq_t acc;
        mfl_vec_sumsq_init(&acc);
        for (size_t k = 0; k < nr; k++)
            mfl_vec_sumsq_add(&acc, r[k].data, (size_t)r[k].count);
        sq += mfl_vec_sumsq_end(&acc);
    }
    if (!isfinite(sq)) {
        *bad = self->n_state;
        for (size_t i = 0; i < self->n_tensors && *bad == self->n_state; i++) {
            mfl_tensor_piece_t one;
            size_t nr, off = 0;
            const mfl_tensor_piece_t *r = mfl_tensor_pieces(&t[i], &one, &nr);
            for (size_t k = 0; k < nr && *bad == self->n_state; off += r[k].count, k++) {
                size_t at = mfl_vec_first_nonfinite(r[k].data, (size_t)r[k].count);
                if (at < r[k].count)
                    *bad = self->tensor_offset[i] + off + at;
            }
        }
        return -1;
    }
    return sqrt(sq);
}

/* self->parts: the update's runs (a run per tensor, or per frame of a
 * tensor left in its frames) at their flat offsets; `flat` (a scaled or
 * kept copy) instead when given. Their number, or 0 when out of memory. */
static size_t s_parts(mfl_round_engine_t *self, const mfl_tensor_t *tensors, const float *flat)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n_tensors; i++)
        n += flat || !tensors[i].n_pieces ? 1 : tensors[i].n_pieces;
    if (n > self->cap_parts) {
        mfl_aggregate_part_t *p = realloc(self->parts, n * sizeof *p);
        if (!p)
            return 0;
        self->parts = p;
        self->cap_parts = n;
    }
    size_t at = 0;
    for (size_t i = 0; i < self->n_tensors; i++) {
        size_t off = self->tensor_offset[i];
        if (flat) {
            self->parts[at++] = (mfl_aggregate_part_t){off, flat + off, (size_t)tensors[i].count};
            continue;
        }
        mfl_tensor_piece_t one;
        size_t nr;
        const mfl_tensor_piece_t *r = mfl_tensor_pieces(&tensors[i], &one, &nr);
        for (size_t k = 0; k < nr; off += r[k].count, k++)
            self->parts[at++] = (mfl_aggregate_part_t){off, r[k].data, (size_t)r[k].count};
    }
    return at;
}

/* The weight a site's update counts with: its claimed sample count, at
 * most what it declared at Hello (n_train, when it declared one) and at
 * most server.max_weight; a cap is noted for the audit record. */
static double s_weight(const mfl_round_engine_t *self, const mfl_engine_site_t *s,
                       uint64_t n_samples, char *note, size_t note_len)
{
    double w = (double)n_samples;
    const char *by = NULL;
    if (s->n_train && w > (double)s->n_train) {
        w = (double)s->n_train;
        by = "the training rows it declared at Hello";
    }
    if (self->config.max_weight > 0 && w > self->config.max_weight) {
        w = self->config.max_weight;
        by = "server.max_weight";
    }
    if (by) {
        size_t used = strlen(note);
        snprintf(note + used, note_len - used, "%sweight %.6g (claims %llu samples; capped by %s)",
                 used ? "; " : "", w, (unsigned long long)n_samples, by);
    }
    return w;
}

/* s_take for a spooled update (self->rd_fn): the mean folds it block by
 * block (mfl_aggregate_add_read: only the 1 MiB block buffer is held);
 * a robust rule keeps it, so it is read into its flat copy. */
static int s_take_read(mfl_round_engine_t *self, const char *peer, mfl_engine_site_t *s,
                       const mfl_update_header_t *h, double norm, double scale, double w,
                       const char *note, const uint8_t *signed_header,
                       size_t signed_header_len, const uint8_t *signature,
                       size_t signature_len)
{
    uint32_t round = h->round;
    char err[256];
    bool robust = self->config.aggregator != MFL_AGG_MEAN;
    mfl_engine_read_fn *rd = scale != 1.0 ? mfl_engine_read_scaled : mfl_engine_read;
    self->rd_scale = scale;
    float *flat = NULL;
    if (robust) {
        flat = malloc(self->n_state * sizeof(float));
        if (!flat || rd(self, 0, flat, self->n_state, err, sizeof err) < 0) {
            mfl_engine_reject(self, peer, MFL_REJECT_TOO_LARGE, round,
                              "coordinator cannot hold a Δ of %zu parameters: %s",
                              self->n_state, flat ? err : "out of memory");
            free(flat);
            return -1;
        }
    } else if (mfl_aggregate_add_read(self->agg, rd, self, self->rd_buf, MFL_ENGINE_READ_BLOCK,
                                      w, err, sizeof err) < 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_NORM, round,
                          "aggregate refused the update: %s", err);
        return -1;
    }
    /* Folded (or kept) only with its record written: otherwise taken back
     * out (exactly: fixed point, read again) and refused. */
    if (mfl_engine_audit_update(self, h, NULL, norm, note, signed_header, signed_header_len,
                                signature, signature_len) < 0) {
        if (!robust && mfl_aggregate_remove_read(self->agg, rd, self, self->rd_buf,
                                                 MFL_ENGINE_READ_BLOCK, w) < 0)
            mfl_error("round %u: could not take site %s's update back out of the aggregate",
                      round, peer);
        free(flat);
        self->audit_refused++;
        mfl_engine_reject(self, peer, MFL_REJECT_AUDIT_UNAVAILABLE, round,
                          "the coordinator cannot write its audit log (%s); update not taken",
                          self->audit_err);
        return -1;
    }
    if (robust) {
        free(s->delta);
        s->delta = flat;
    }
    return 0;
}

/* Folds (mean) or keeps (robust rules) the update, Δ·scale with weight w,
 * and writes its update_accepted record; without the record it is taken
 * back out and refused. 0, or -1 after rejecting it. */
static int s_take(mfl_round_engine_t *self, const char *peer, mfl_engine_site_t *s,
                  const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                  double norm, double scale, double w, const char *note,
                  const uint8_t *signed_header, size_t signed_header_len,
                  const uint8_t *signature, size_t signature_len)
{
    uint32_t round = h->round;
    char err[256];
    float *flat = NULL;
    bool robust = self->config.aggregator != MFL_AGG_MEAN;
    if (self->rd_fn)
        return s_take_read(self, peer, s, h, norm, scale, w, note, signed_header,
                           signed_header_len, signature, signature_len);
    if (robust || scale != 1.0) {
        flat = malloc(self->n_state * sizeof(float));
        if (!flat) {
            mfl_engine_reject(self, peer, MFL_REJECT_TOO_LARGE, round,
                              "coordinator out of memory for a Δ of %zu parameters",
                              self->n_state);
            return -1;
        }
        for (size_t i = 0; i < self->n_tensors; i++) {
            mfl_tensor_piece_t one;
            size_t nr;
            const mfl_tensor_piece_t *r = mfl_tensor_pieces(&tensors[i], &one, &nr);
            float *to = flat + self->tensor_offset[i];
            for (size_t k = 0; k < nr; to += r[k].count, k++)
                for (size_t j = 0; j < r[k].count; j++)
                    to[j] = (float)(scale * (double)r[k].data[j]);
        }
    }
    size_t n_parts = s_parts(self, tensors, flat);
    if (!n_parts) {
        free(flat);
        mfl_engine_reject(self, peer, MFL_REJECT_TOO_LARGE, round,
                          "coordinator out of memory for an update's %zu tensors",
                          self->n_tensors);
        return -1;
    }
    if (!robust && mfl_aggregate_add_parts(self->agg, self->parts, n_parts, w, err,
                                           sizeof err) < 0) {
        free(flat);
        mfl_engine_reject(self, peer, MFL_REJECT_NORM, round,
                          "aggregate refused the update: %s", err);
        return -1;
    }
    /* Folded (or kept) only with its record written: otherwise taken back
     * out (exactly: fixed point) and refused. */
    if (mfl_engine_audit_update(self, h, tensors, norm, note, signed_header, signed_header_len,
                                signature, signature_len) < 0) {
        if (!robust)
            (void)mfl_aggregate_remove_parts(self->agg, self->parts, n_parts, w);
        free(flat);
        self->audit_refused++;
        mfl_engine_reject(self, peer, MFL_REJECT_AUDIT_UNAVAILABLE, round,
                          "the coordinator cannot write its audit log (%s); update not taken",
                          self->audit_err);
        return -1;
    }
    if (robust) {
        free(s->delta);
        s->delta = flat;
    } else {
        free(flat);
    }
    return 0;
}

mfl_engine_site_t *mfl_engine_update_admit(mfl_round_engine_t *self, const char *peer,
                                           bool granted, const mfl_update_header_t *h,
                                           uint64_t now_ms)
{
    const mfl_reject_t R_SITE = MFL_REJECT_WRONG_SITE;
    uint32_t round = h ? h->round : 0;
    mfl_round_engine_site_seen(self, peer, now_ms);
    if (!h) {
        mfl_engine_reject(self, peer, MFL_REJECT_BAD_MESSAGE, 0,
                          "no update header");
        return NULL;
    }
    if (strcmp(h->site, peer) != 0) {
        mfl_engine_reject(self, peer, R_SITE, round,
                          "header names site '%s' but the connection is site '%s'", h->site,
                          peer);
        return NULL;
    }
    if (self->phase == MFL_ENGINE_ABORTED) {
        /* Sites finishing the round in flight when the operator aborted:
         * expected, not a fault, so info (once per site) rather than warn,
         * not counted as a rejection, and no Reject sent (the Bye already
         * told the site why; a Reject would make it log a warning). */
        mfl_engine_site_t *late = mfl_engine_find_site(self, peer);
        uint32_t bit = (uint32_t)1 << ((unsigned)MFL_REJECT_WRONG_ROUND & 31u);
        if (!late || !(late->reject_logged & bit))
            mfl_info("site %s: update for round %u arrived after the operator aborted the "
                     "run; dropped", peer, h->round);
        if (late)
            late->reject_logged |= bit;
        return NULL;
    }
    if (self->config.secagg_enabled && self->secagg_io.send) {
        /* The coordinator must never see a Δ in clear in a securely
         * aggregated run, not even one it would then drop. */
        mfl_engine_reject(self, peer, MFL_REJECT_SECAGG_PHASE, round,
                          "secure aggregation is on: send the masked input, not an update");
        return NULL;
    }
    if (self->phase != MFL_ENGINE_ROUND || h->round != self->round) {
        mfl_engine_reject(self, peer, MFL_REJECT_WRONG_ROUND, round,
                          "update for round %u, but %s", h->round,
                          self->phase == MFL_ENGINE_ROUND ? "another round is open"
                                                          : "no round is open");
        return NULL;
    }
    if (h->nonce_len != MFL_ENGINE_NONCE_BYTES ||
        sodium_memcmp(h->nonce, self->nonce, MFL_ENGINE_NONCE_BYTES) != 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_REPLAY, round,
                          "nonce does not match this attempt of round %u (stale or replayed)",
                          self->round);
        return NULL;
    }
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    if (!s || !s->selected || s->withdrawn) {
        mfl_engine_reject(self, peer, MFL_REJECT_NOT_SELECTED, round,
                          s && s->withdrawn ? "site withdrew from round %u (failure reported "
                                              "or an update refused)"
                                            : "site was not selected for round %u",
                          self->round);
        return NULL;
    }
    if (s->reported) {
        mfl_engine_reject(self, peer, MFL_REJECT_DUPLICATE, round,
                          "site already reported for round %u", self->round);
        return NULL;
    }
    if (!granted) {
        mfl_engine_reject(self, peer, MFL_REJECT_NOT_GRANTED, round,
                          "update sent without an upload grant (send UploadReady, wait for "
                          "UploadGrant)");
        return NULL;
    }
    /* In chunks exactly when its task asked (the daemon refuses a chunked
     * header on a whole Update before it gets here), so the coordinator
     * never holds a big update as one message. */
    uint64_t want_cv = mfl_engine_chunk_values(self, s);
    if (h->chunk_values != want_cv) {
        if (want_cv)
            mfl_engine_reject(self, peer, MFL_REJECT_CHUNK, round,
                              "the task asked for chunks of %llu values; the update is signed "
                              "for %llu", (unsigned long long)want_cv,
                              (unsigned long long)h->chunk_values);
        else
            mfl_engine_reject(self, peer, MFL_REJECT_CHUNK, round,
                              "the task asked for one message; the update is signed for "
                              "chunks of %llu values", (unsigned long long)h->chunk_values);
        return NULL;
    }
    return s;
}

int mfl_engine_update(mfl_round_engine_t *self, const char *peer, bool granted,
                      const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                      size_t n_tensors, const uint8_t *signed_header, size_t signed_header_len,
                      const uint8_t *signature, size_t signature_len, uint64_t now_ms)
{
    mfl_engine_site_t *s = mfl_engine_update_admit(self, peer, granted, h, now_ms);
    if (!s)
        return -1;
    uint32_t round = h->round;
    if (s_check_shapes(self, peer, tensors, n_tensors, round) < 0)
        return -1;
    /* The encoding this site was asked for, and no other: a lossy update
     * the coordinator did not ask for, or a float32 one that ignored the
     * task, is refused (the signed hashes cover the bytes as they came). */
    uint32_t want = mfl_engine_site_encoding(self, s);
    for (size_t i = 0; i < n_tensors; i++)
        if (tensors[i].encoding != want) {
            mfl_engine_reject(self, peer, MFL_REJECT_ENCODING, round,
                              "tensor '%s' arrived as encoding %u; the task asked for %u",
                              tensors[i].name, tensors[i].encoding, want);
            return -1;
        }
    size_t bad = 0;
    double norm = s_norm(self, tensors, &bad);
    if (norm < 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_NONFINITE, round,
                          "Δ[%zu] is NaN or infinite", bad);
        return -1;
    }
    /* Above the bound: rejected, or (rounds.norm_action: clip) scaled
     * down onto it. */
    double scale = 1.0;
    char note[200] = "";
    if (self->config.norm_bound > 0 && norm > self->config.norm_bound) {
        if (!self->config.norm_clip) {
            mfl_engine_reject(self, peer, MFL_REJECT_NORM, round,
                              "‖Δ‖ = %.6g exceeds the bound %.6g", norm,
                              self->config.norm_bound);
            return -1;
        }
        scale = self->config.norm_bound / norm;
        snprintf(note, sizeof note, "clipped from norm %.6g to %.6g", norm,
                 self->config.norm_bound);
    }
    /* n_samples not sent (a DP site withholding its count): weight 1. */
    bool n_sent = !(h->not_sent & MFL_STAT_N_SAMPLES);
    if (n_sent && h->n_samples == 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_BAD_MESSAGE, round,
                          "n_samples is 0");
        return -1;
    }
    if (self->audit_down) {
        self->audit_refused++;
        mfl_engine_reject(self, peer, MFL_REJECT_AUDIT_UNAVAILABLE, round,
                          "the coordinator cannot write its audit log (%s); update not taken",
                          self->audit_err);
        return -1;
    }
    double w = s_weight(self, s, n_sent ? h->n_samples : 1, note, sizeof note);
    if (s_take(self, peer, s, h, tensors, norm, scale, w, note, signed_header,
               signed_header_len, signature, signature_len) < 0)
        return -1;
    s->reported = true;
    mfl_engine_bcast_reported(self, s); /* it trained from θ̂, so it holds it */
    self->n_accepted++;
    self->weight_sum += w;
    if (h->has_metrics && !(h->not_sent & MFL_STAT_LOSSES)) {
        self->loss_before_sum += w * h->metrics.loss_before;
        self->loss_after_sum += w * h->metrics.loss_after;
        self->loss_weight_sum += w;
    }
    if (self->n_accepted == self->n_selected)
        mfl_engine_close_round(self, now_ms, false);
    else if (self->n_withdrawn)
        mfl_engine_maybe_close(self, now_ms);
    return 0;
}

int mfl_round_engine_update(mfl_round_engine_t *self, const char *peer,
                            const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                            size_t n_tensors, const uint8_t *signed_header,
                            size_t signed_header_len, const uint8_t *signature,
                            size_t signature_len, uint64_t now_ms)
{
    /* Without flow control every update counts as granted. With it, the
     * slot frees whatever becomes of the update (it is here: its memory is
     * spent), and goes to the next waiting site once the update is handled. */
    bool small = (uint64_t)self->n_state * sizeof(float) <= self->small_upload_bytes;
    bool granted = !self->gate || small || mfl_upload_gate_holds(self->gate, peer);
    uint64_t rejected_before = self->n_rejected_total;
    int rc = mfl_engine_coded(tensors, n_tensors)
                 ? mfl_engine_update_coded(self, peer, granted, h, tensors, n_tensors,
                                           signed_header, signed_header_len, signature,
                                           signature_len, now_ms)
                 : mfl_engine_update(self, peer, granted, h, tensors, n_tensors, signed_header,
                                     signed_header_len, signature, signature_len, now_ms);
    if (rc < 0 && self->n_rejected_total != rejected_before)
        mfl_engine_audit_rejected(self, peer, h, signed_header, signed_header_len, signature,
                                  signature_len);
    if (self->gate && mfl_upload_gate_holds(self->gate, peer))
        mfl_engine_flow_release(self, peer);
    return rc;
}

int mfl_round_engine_eval_report(mfl_round_engine_t *self, const char *peer,
                                 const mfl_eval_report_t *r, uint64_t now_ms)
{
    mfl_round_engine_site_seen(self, peer, now_ms);
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    uint32_t round = r ? r->round : 0;
    if (!r || strcmp(r->site, peer) != 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_WRONG_SITE, round,
                          "eval report names another site");
        return -1;
    }
    if (self->phase != MFL_ENGINE_EVAL || r->round != self->eval_round ||
        r->nonce_len != MFL_ENGINE_NONCE_BYTES ||
        sodium_memcmp(r->nonce, self->eval_nonce, MFL_ENGINE_NONCE_BYTES) != 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_WRONG_ROUND, round,
                          "no evaluation with this round and nonce is open");
        return -1;
    }
    if (!s || !s->eval_sent || s->eval_reported) {
        mfl_engine_reject(self, peer, MFL_REJECT_DUPLICATE, round,
                          "site already reported (or was not asked) for this evaluation");
        return -1;
    }
    s->eval_reported = true;
    if (self->moments_phase)
        mfl_engine_scaling_report(self, peer, r);
    else if (self->selecting)
        mfl_engine_select_report(self, peer, r);
    else
        mfl_engine_log_eval(self, peer, r);
    bool all = true;
    for (size_t i = 0; i < self->n_sites; i++)
        all = all && (!self->sites[i].eval_sent || self->sites[i].eval_reported);
    if (all)
        mfl_engine_finish_eval(self);
    return 0;
}

void mfl_round_engine_tick(mfl_round_engine_t *self, uint64_t now_ms)
{
    for (size_t i = 0; i < self->n_sites; i++) {
        mfl_engine_site_t *s = &self->sites[i];
        if (s->connected && self->config.site_timeout_ms &&
            now_ms > s->last_seen_ms + self->config.site_timeout_ms) {
            s->connected = false;
            mfl_warn("site %s silent for %.1f s: considered gone", s->id,
                     (double)(now_ms - s->last_seen_ms) / 1000.0);
            mfl_engine_flow_release(self, s->id);
        }
    }
    mfl_engine_flow_expire(self, now_ms);
    mfl_engine_audit_tick(self, now_ms);
    switch (self->phase) {
    case MFL_ENGINE_ROUND:
        /* With the log unwritable a round at its deadline waits: neither
         * its close nor its abandonment could be recorded. */
        if (mfl_engine_secagg_tick(self, now_ms))
            break; /* the attempt's phases have their own deadlines */
        if (self->phase == MFL_ENGINE_ROUND && now_ms >= self->deadline_ms && !self->audit_down) {
            if (self->n_accepted >= self->config.min_sites)
                mfl_engine_close_round(self, now_ms, true);
            else
                mfl_engine_abandon_round(self, now_ms);
        }
        break;
    case MFL_ENGINE_EVAL:
        if (now_ms >= self->eval_deadline_ms) {
            size_t missing = 0;
            for (size_t i = 0; i < self->n_sites; i++)
                missing += self->sites[i].eval_sent && !self->sites[i].eval_reported;
            mfl_warn("evaluation after round %u: deadline passed, %zu site(s) did not report",
                     self->eval_round, missing);
            mfl_engine_finish_eval(self);
        }
        break;
    case MFL_ENGINE_WAITING: {
        if (self->paused || self->audit_down)
            break;
        size_t need = self->started ? self->config.min_sites : self->config.wait_for_sites;
        size_t have = s_connected(self);
        if (have >= need) {
            self->started = true;
            self->waiting_logged = 0;
            /* A run resumed after its last round still owes the final
             * evaluation: it too waits for the sites. */
            if (mfl_engine_scaling_owed(self)) {
                /* Federated standardisation first: every task after it
                 * carries the pooled scaling. */
                mfl_info("federated standardisation: asking %zu site(s) for their fit rows' "
                         "moments", have);
                self->moments_phase = true;
                s_open_eval(self, now_ms, false);
            } else if (self->rounds_done >= mfl_engine_rounds_target(self)) {
                s_open_eval(self, now_ms, true);
            } else {
                s_open_round(self, now_ms);
            }
        } else if (self->waiting_logged != have + 1) {
            /* Once per change, so an operator sees why nothing happens. */
            if (self->rounds_done >= mfl_engine_rounds_target(self))
                mfl_info("final evaluation after round %u waits for sites: %zu connected, "
                         "%zu needed", self->rounds_done, have, need);
            else
                mfl_info("%sround %u/%u waits for sites: %zu connected, %zu needed",
                         self->selecting ? "selection " : "", self->round,
                         mfl_engine_rounds_target(self), have, need);
            self->waiting_logged = have + 1;
        }
        break;
    }
    case MFL_ENGINE_DONE:
        if (self->finish_pending) { /* a finished run restarted: nothing to do */
            self->finish_pending = false;
            if (self->sink.finished)
                self->sink.finished(self->sink.ctx);
        }
        break;
    case MFL_ENGINE_FAILED:
    case MFL_ENGINE_ABORTED:
        break;
    }
}

/* ---- clock ------------------------------------------------------------ */

static uint64_t s_real_wall(void *ctx) { (void)ctx; return mfl_clock_wall_ms(); }
static uint64_t s_real_mono(void *ctx) { (void)ctx; return mfl_clock_mono_ms(); }

void mfl_round_engine_set_clock(mfl_round_engine_t *self, const mfl_engine_clock_t *clock)
{
    if (clock && clock->wall_ms && clock->mono_ms)
        self->clock = *clock;
    else
        self->clock = (mfl_engine_clock_t){NULL, s_real_wall, s_real_mono};
}

uint64_t mfl_round_engine_now(const mfl_round_engine_t *self)
{
    return self->clock.mono_ms(self->clock.ctx);
}

uint64_t mfl_round_engine_wall_of(const mfl_round_engine_t *self, uint64_t mono_ms)
{
    uint64_t wall = self->clock.wall_ms(self->clock.ctx);
    uint64_t mono = self->clock.mono_ms(self->clock.ctx);
    if (mono_ms >= mono)
        return wall + (mono_ms - mono);
    return wall > mono - mono_ms ? wall - (mono - mono_ms) : 0;
}

/* ---- accessors ------------------------------------------------------- */

mfl_engine_phase_t mfl_round_engine_phase(const mfl_round_engine_t *self) { return self->phase; }
uint32_t mfl_round_engine_round(const mfl_round_engine_t *self) { return self->round; }
uint32_t mfl_round_engine_rounds_done(const mfl_round_engine_t *self) { return self->rounds_done; }
const float *mfl_round_engine_theta(const mfl_round_engine_t *self) { return self->theta; }

const uint8_t *mfl_round_engine_theta_hash(const mfl_round_engine_t *self)
{
    return self->theta_hash;
}
size_t mfl_round_engine_n_state(const mfl_round_engine_t *self) { return self->n_state; }
uint64_t mfl_round_engine_rejections(const mfl_round_engine_t *self)
{
    return self->n_rejected_total;
}
size_t mfl_round_engine_n_sites(const mfl_round_engine_t *self) { return self->n_sites; }
bool mfl_round_engine_paused(const mfl_round_engine_t *self) { return self->paused; }

void mfl_round_engine_pause(mfl_round_engine_t *self, bool paused)
{
    if (self->paused != paused)
        mfl_info("run %s by the operator", paused ? "paused" : "resumed");
    self->paused = paused;
}

void mfl_round_engine_abort(mfl_round_engine_t *self)
{
    if (self->phase == MFL_ENGINE_DONE || self->phase == MFL_ENGINE_FAILED ||
        self->phase == MFL_ENGINE_ABORTED)
        return;
    /* An operator's decision, not a fault: info, and its own phase and
     * audit record so neither status nor an auditor takes it for a failure. */
    char why[128];
    snprintf(why, sizeof why, "aborted by the operator after %u of %u rounds",
             self->rounds_done, self->config.rounds);
    mfl_info("run %s; last checkpoint kept (a restart resumes from it)", why);
    self->phase = MFL_ENGINE_ABORTED;
    (void)mfl_engine_audit_round(self, MFL_AUDIT_RUN_ABORTED, why);
    if (self->sink.finished)
        self->sink.finished(self->sink.ctx);
}

const mfl_round_summary_t *mfl_round_engine_last_summary(const mfl_round_engine_t *self)
{
    return self->have_summary ? &self->last : NULL;
}

bool mfl_round_engine_knows(const mfl_round_engine_t *self, const char *site)
{
    for (size_t i = 0; i < self->n_sites; i++) {
        if (strcmp(self->sites[i].id, site) == 0)
            return true;
    }
    return false;
}

bool mfl_round_engine_is_selected(const mfl_round_engine_t *self, const char *site)
{
    if (self->phase != MFL_ENGINE_ROUND)
        return false;
    for (size_t i = 0; i < self->n_sites; i++) {
        if (strcmp(self->sites[i].id, site) == 0)
            return self->sites[i].selected;
    }
    return false;
}

const uint8_t *mfl_round_engine_nonce(const mfl_round_engine_t *self)
{
    return self->phase == MFL_ENGINE_ROUND ? self->nonce : NULL;
}

const char *mfl_round_engine_site_at(const mfl_round_engine_t *self, size_t i,
                                     uint64_t *last_seen_ms, bool *connected)
{
    if (i >= self->n_sites)
        return NULL;
    if (last_seen_ms)
        *last_seen_ms = self->sites[i].last_seen_ms;
    if (connected)
        *connected = self->sites[i].connected;
    return self->sites[i].id;
}
