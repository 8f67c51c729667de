/* A round at one site: meta-train from θ, privacy (clip + noise), and the
 * signed UpdateHeader. See mfl_site_worker_round() in site_worker.h. */
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fed/quant.h"
#include "meta/learner_dp.h"
#include "site/site_worker_internal.h"
#include "wire/message.h"

/* A standard normal from libsodium's CSPRNG (Box-Muller): privacy noise
 * must not be predictable from the training seed. */
static double s_csprng_normal(void)
{
    for (;;) {
        uint64_t a, b;
        randombytes_buf(&a, sizeof(a));
        randombytes_buf(&b, sizeof(b));
        double u1 = (double)(a >> 11) * 0x1.0p-53, u2 = (double)(b >> 11) * 0x1.0p-53;
        if (u1 > 0)
            return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    }
}

/* Applies the decided plan to Δ: clip to norm S, then add N(0, (σS)²) per
 * coordinate from the CSPRNG, or N(0, (σS)²/t) with distributed noise
 * (plan->noise_shares = t, mfl_privacy_plan_share). Returns the pre-clip
 * norm. */
static double s_apply_privacy(mfl_site_worker_t *self, const mfl_privacy_plan_t *plan)
{
    double pre_clip = mfl_site_l2(self->delta, self->n_state);
    if (!plan->dp && !plan->clip_only)
        return pre_clip;
    if (pre_clip > plan->clip_norm) {
        float scale = (float)(plan->clip_norm / pre_clip);
        for (size_t i = 0; i < self->n_state; i++)
            self->delta[i] *= scale;
    }
    double sd = mfl_privacy_plan_applied_sigma(plan) * plan->clip_norm;
    if (sd > 0) {
        for (size_t i = 0; i < self->n_state; i++)
            self->delta[i] += (float)(sd * s_csprng_normal());
    }
    return pre_clip;
}

/* The task's privacy request, from RoundTask.privacy and its batch size. */
static void s_request(const mfl_round_task_t *task, mfl_privacy_request_t *req)
{
    memset(req, 0, sizeof *req);
    const mfl_task_privacy_t *p = &task->privacy;
    if (p->enabled) {
        req->enabled = true;
        req->clip_norm = p->clip_norm;
        req->noise_multiplier = p->noise_multiplier;
    }
    req->batch_size = task->algorithm.batch_size;
}

/* The residual this round starts from. A task for a later round than the
 * last encoded one commits that round's residual (its round closed); a
 * task for the same or an earlier round (a retried attempt, a coordinator
 * resumed from its checkpoint) starts again from the committed one, so a
 * retry encodes exactly as the first attempt would have: the bytes depend
 * on the rounds the run kept, not on attempts. Copies it into
 * residual_next, which this round's encoding then updates. -1 on OOM. */
static int s_residual_begin(mfl_site_worker_t *self, uint32_t round)
{
    size_t n = self->n_state ? self->n_state : 1;
    if (!self->residual)
        self->residual = calloc(n, sizeof(float));
    if (!self->residual_next)
        self->residual_next = calloc(n, sizeof(float));
    if (!self->residual || !self->residual_next)
        return -1;
    if (self->residual_round && round > self->residual_round) {
        float *t = self->residual;
        self->residual = self->residual_next;
        self->residual_next = t;
    }
    memcpy(self->residual_next, self->residual, self->n_state * sizeof(float));
    self->residual_round = round;
    return 0;
}

/* Encodes Δ as the task asks (fed/quant.h): Δ + residual per tensor into
 * self->encoded, the new residual into residual_next, and Δ replaced by
 * the decoded values, so what the result reports is what the coordinator
 * will fold. float32 after lossy rounds adds the residual (and leaves 0). */
static int s_encode_delta(mfl_site_worker_t *self, const mfl_round_task_t *task, char *err,
                          size_t errlen)
{
    uint32_t enc = task->update_encoding;
    self->encoding = MFL_QUANT_FP32;
    if (enc == MFL_QUANT_FP32) {
        if (self->residual) {
            if (s_residual_begin(self, task->round) < 0)
                return mfl_errf(err, errlen, "out of memory encoding Δ"), -1;
            for (size_t i = 0; i < self->n_state; i++) {
                self->delta[i] += self->residual_next[i];
                self->residual_next[i] = 0;
            }
        }
        return 0;
    }
    if (enc > MFL_QUANT_INT8 || !(self->encodings_offered & (1u << enc)))
        return mfl_errf(err, errlen, "site '%s' round %u: the coordinator asks for update "
                        "encoding %u (%s), which this site does not offer (upload.encodings)",
                        self->site, task->round, enc,
                        mfl_quant_name((mfl_quant_kind_t)enc)), -1;
    size_t nt = mfl_learner_n_tensors(self->learner);
    if (s_residual_begin(self, task->round) < 0)
        return mfl_errf(err, errlen, "out of memory encoding Δ"), -1;
    uint8_t *e = realloc(self->encoded, 2 * self->n_state + 4); /* + a float's room */
    if (e)
        self->encoded = e;
    float *sc = realloc(self->scales, (nt ? nt : 1) * sizeof(float));
    if (sc)
        self->scales = sc;
    if (!e || !sc)
        return mfl_errf(err, errlen, "out of memory encoding Δ"), -1;
    uint64_t stream = mfl_site_worker_stream(self->site, task->round);
    for (size_t t = 0; t < nt; t++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(self->learner, t);
        mfl_rng_t qr;
        mfl_rng_seed(&qr, task->seed ^ MFL_QUANT_STREAM, stream + 1 + t);
        uint8_t *out = self->encoded + mfl_quant_bytes((mfl_quant_kind_t)enc, ti->offset);
        float *d = self->delta + ti->offset;
        if (mfl_quant_encode((mfl_quant_kind_t)enc, d, ti->count, self->residual_next + ti->offset,
                             &qr, out, &self->scales[t]) < 0 ||
            mfl_quant_decode((mfl_quant_kind_t)enc, out, ti->count, self->scales[t], d) < 0)
            return mfl_errf(err, errlen, "site '%s' round %u: Δ + residual is not finite",
                            self->site, task->round), -1;
    }
    self->encoding = enc;
    return 0;
}

/* BLAKE2b-256 of each learner tensor's bytes as they travel: float32
 * (little-endian on every target we build for; see the static check
 * below), or the encoded bytes of a lossy round. */
/* Tensor t's bytes as they travel (float32 or encoded) and their size. */
static const uint8_t *s_wire_bytes(const mfl_site_worker_t *self, const mfl_tensor_info_t *ti,
                                   size_t *bytes)
{
    if (self->encoding == MFL_QUANT_FP32) {
        *bytes = ti->count * sizeof(float);
        return (const uint8_t *)(self->delta + ti->offset);
    }
    mfl_quant_kind_t k = (mfl_quant_kind_t)self->encoding;
    *bytes = mfl_quant_bytes(k, ti->count);
    return self->encoded + mfl_quant_bytes(k, ti->offset);
}

/* A chunked round (docs/WIRE.md "Chunked uploads"): the hash of each chunk
 * of chunk_values values, and each tensor's hash over its chunks' hashes.
 * One pass over the bytes, as for a whole tensor. */
static int s_hash_chunks(mfl_site_worker_t *self, size_t n_tensors, uint64_t cv)
{
    size_t n = 0;
    for (size_t t = 0; t < n_tensors; t++)
        n += (size_t)mfl_chunk_count(mfl_learner_tensor(self->learner, t)->count, cv);
    if (n > self->cap_chunks) {
        uint8_t *c = realloc(self->chunk_hashes, n * MFL_SITE_HASH_BYTES);
        if (!c)
            return -1;
        self->chunk_hashes = c;
        self->cap_chunks = n;
    }
    size_t elem = self->encoding == MFL_QUANT_FP32
                      ? sizeof(float)
                      : mfl_quant_bytes((mfl_quant_kind_t)self->encoding, 1);
    size_t at = 0;
    for (size_t t = 0; t < n_tensors; t++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(self->learner, t);
        size_t bytes, first = at;
        const uint8_t *p = s_wire_bytes(self, ti, &bytes);
        for (size_t off = 0; off < bytes; off += (size_t)cv * elem, at++) {
            size_t len = bytes - off < (size_t)cv * elem ? bytes - off : (size_t)cv * elem;
            crypto_generichash(self->chunk_hashes + at * MFL_SITE_HASH_BYTES,
                               MFL_SITE_HASH_BYTES, p + off, len, NULL, 0);
        }
        mfl_chunk_tensor_hash(self->chunk_hashes + first * MFL_SITE_HASH_BYTES, at - first,
                              self->hashes + t * MFL_SITE_HASH_BYTES);
    }
    self->n_chunks = n;
    return 0;
}

static int s_hash_tensors(mfl_site_worker_t *self, size_t n_tensors, uint64_t chunk_values)
{
    uint8_t *h = realloc(self->hashes, (n_tensors ? n_tensors : 1) * MFL_SITE_HASH_BYTES);
    if (!h)
        return -1;
    self->hashes = h;
    self->chunk_values = chunk_values;
    self->n_chunks = 0;
    if (chunk_values)
        return s_hash_chunks(self, n_tensors, chunk_values);
    for (size_t t = 0; t < n_tensors; t++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(self->learner, t);
        if (self->encoding == MFL_QUANT_FP32) {
            mfl_tensor_hash(self->delta + ti->offset, ti->count, h + t * MFL_SITE_HASH_BYTES);
            continue;
        }
        mfl_quant_kind_t k = (mfl_quant_kind_t)self->encoding;
        crypto_generichash(h + t * MFL_SITE_HASH_BYTES, MFL_SITE_HASH_BYTES,
                           self->encoded + mfl_quant_bytes(k, ti->offset),
                           mfl_quant_bytes(k, ti->count), NULL, 0);
    }
    return 0;
}
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "tensor bytes are hashed in memory order, which must be little-endian");

static int s_build_header(mfl_site_worker_t *self, const mfl_round_task_t *task,
                          const mfl_site_round_result_t *out, const mfl_privacy_plan_t *plan,
                          char *err, size_t errlen)
{
    size_t nt = mfl_learner_n_tensors(self->learner);
    if (s_hash_tensors(self, nt, task->upload_chunk_values))
        return mfl_errf(err, errlen, "out of memory hashing Δ"), -1;
    /* With DP on, every statistic is noised-and-accounted or not sent
     * (docs/PRIVACY.md lists every field). "Not sent" is explicit: the field
     * holds 0 and is listed in not_sent, never a fake measurement.
     *   policy withholds (allow_unnoised_stats: false): n_samples, losses,
     *     n_tasks and pre-clip norm are not sent (the coordinator weights
     *     the site 1);
     *   DP-SGD (record): losses are never computed (they would be
     *     unnoised) and there is no Δ-level clip, so losses and pre-clip
     *     norm are not sent whatever the policy allows. */
    bool withhold = !plan->send_stats;
    uint32_t not_sent = 0;
    if (withhold)
        not_sent |= MFL_STAT_N_SAMPLES | MFL_STAT_LOSSES | MFL_STAT_N_TASKS | MFL_STAT_PRE_CLIP_NORM;
    if (plan->record)
        not_sent |= MFL_STAT_LOSSES | MFL_STAT_PRE_CLIP_NORM;
    mfl_update_header_t hdr;
    memset(&hdr, 0, sizeof hdr);
    hdr.round = task->round;
    memcpy(hdr.nonce, task->nonce, task->nonce_len);
    hdr.nonce_len = task->nonce_len;
    snprintf(hdr.site, sizeof hdr.site, "%s", self->site);
    hdr.not_sent = not_sent;
    hdr.n_samples = not_sent & MFL_STAT_N_SAMPLES ? 0 : out->metrics.n_samples;
    hdr.has_metrics = true;
    hdr.metrics.loss_before = not_sent & MFL_STAT_LOSS_BEFORE ? 0 : out->metrics.loss_before;
    hdr.metrics.loss_after = not_sent & MFL_STAT_LOSS_AFTER ? 0 : out->metrics.loss_after;
    hdr.metrics.n_tasks = not_sent & MFL_STAT_N_TASKS ? 0 : out->metrics.n_tasks;
    hdr.has_privacy = true;
    hdr.privacy.applied = plan->dp || plan->clip_only;
    hdr.privacy.clip_norm = hdr.privacy.applied ? plan->clip_norm : 0;
    /* What was added; with distributed noise the σ/√t share, the t and
     * the σ the round is accounted at (the sum's) go with it. */
    hdr.privacy.noise_multiplier = hdr.privacy.applied ? mfl_privacy_plan_applied_sigma(plan) : 0;
    hdr.privacy.noise_shares = plan->noise_shares;
    hdr.privacy.sum_noise_multiplier = plan->noise_shares ? plan->noise_multiplier : 0;
    hdr.privacy.pre_clip_norm = not_sent & MFL_STAT_PRE_CLIP_NORM ? 0 : out->pre_clip_norm;
    hdr.privacy.epsilon_spent = plan->epsilon_after;
    snprintf(hdr.privacy.mechanism, sizeof hdr.privacy.mechanism, "%s",
             plan->record ? "dpsgd" : plan->dp ? "gaussian-site" : plan->clip_only ? "clip" : "");
    hdr.privacy.sample_rate = plan->dp ? plan->q : 0;
    hdr.privacy.steps = plan->dp ? plan->steps : 0;
    hdr.privacy.delta = plan->delta;
    hdr.privacy.stats_withheld = withhold;
    hdr.delta_norm = out->delta_norm;
    hdr.chunk_values = task->upload_chunk_values;
    if (self->has_audit_head) {
        hdr.has_audit_head = true;
        hdr.audit_seq = self->audit_seq;
        memcpy(hdr.audit_head, self->audit_head, sizeof hdr.audit_head);
    }
    return mfl_update_header_encode(&hdr, self->hashes, nt, &self->header, &self->header_len,
                                    err, errlen);
}

static int s_finish_round(mfl_site_worker_t *self, const mfl_round_task_t *task,
                          const mfl_privacy_plan_t *pl, mfl_site_round_result_t *out, char *err,
                          size_t errlen);

static int s_round(mfl_site_worker_t *self, const mfl_round_task_t *task, const float *theta,
                   size_t n_theta, mfl_site_round_result_t *out, char *err, size_t errlen)
{
    if (mfl_site_worker_prepare(self, &task->algorithm, task->model_spec, n_theta, err, errlen))
        return -1;
    if (mfl_site_check_finite(theta, n_theta))
        return mfl_errf(err, errlen, "round %u: θ contains NaN or Inf", task->round), -1;

    /* The hospital's policy first: a refused task costs no training. */
    mfl_privacy_request_t req;
    mfl_privacy_plan_t plan;
    s_request(task, &req);
    char why[512], unsupported[300] = "";
    if (self->policy.mode == MFL_PRIVACY_MODE_RECORD) {
        req.dp_steps = mfl_learner_dp_steps(&self->learner_config, self->policy.sample_rate,
                                            unsupported, sizeof unsupported);
        req.dp_unsupported = unsupported;
    }
    if (mfl_privacy_decide(&self->policy, self->ledger_known ? &self->spent : NULL, &req,
                           self->train->n, &plan, why, sizeof why)) {
        if (!self->ledger_known && strncmp(why, "privacy.ledger", 14) == 0)
            mfl_errf(err, errlen, "%s: %s", why, self->ledger_why);
        else
            mfl_errf(err, errlen, "%s", why);
        return MFL_SITE_ROUND_DECLINED;
    }
    mfl_privacy_plan_share(&self->policy, task->has_secagg, task->secagg.threshold, &plan);

    char sub[512];
    if (plan.record && mfl_algo_episodic_head(self->learner_config.algo,
                                              self->learner_config.loss,
                                              mfl_learner_n_outputs(self->learner),
                                              self->train->n_classes))
        return mfl_errf(err, errlen, "site '%s' round %u: record-level DP-SGD trains on all "
                        "%zu classes at once, but the model's head has %zu outputs (N-way "
                        "episodes); use a head with one output per class, or site-level "
                        "privacy", self->site, task->round, self->train->n_classes,
                        mfl_learner_n_outputs(self->learner)), -1;
    if (plan.record) { /* DP-SGD over all training rows; no task sampler */
        mfl_dpsgd_params_t dp = {plan.clip_norm, plan.noise_multiplier, plan.q};
        uint64_t steps = 0;
        if (mfl_learner_meta_train_dp(self->learner, theta, self->train, &dp, self->delta,
                                      &out->metrics, &steps, sub, sizeof sub))
            return mfl_errf(err, errlen, "site '%s' round %u: %s", self->site, task->round, sub),
                   -1;
        MFL_ASSERT(steps == plan.steps); /* what was accounted is what ran */
        return s_finish_round(self, task, &plan, out, err, errlen);
    }

    const mfl_learner_config_t *lc = &self->learner_config;
    const mfl_task_algorithm_t *spec = &task->algorithm;
    mfl_sampler_t *sampler;
    bool head = mfl_algo_episodic_head(lc->algo, lc->loss, mfl_learner_n_outputs(self->learner),
                                       self->train->n_classes);
    if (lc->algo >= MFL_ALGO_PROTONET || head) {
        /* Metric methods, and gradient methods whose head is narrower than
         * the label space: N-way episodes (the head's width sets N). */
        size_t n_way = head ? mfl_learner_n_outputs(self->learner)
                     : spec->n_way ? spec->n_way : self->train->n_classes;
        size_t k_shot = spec->k_shot ? spec->k_shot : 5;
        size_t n_query = spec->n_query ? spec->n_query : 5;
        size_t nc = self->train->n_classes;
        size_t *classes = calloc(nc ? nc : 1, sizeof(size_t));
        if (!classes)
            return mfl_errf(err, errlen, "out of memory"), -1;
        for (size_t c = 0; c < nc; c++)
            classes[c] = c;
        sampler = mfl_sampler_new_episodes(self->train, classes, nc, n_way, k_shot, n_query,
                                           sub, sizeof(sub));
        free(classes);
    } else if (self->train->group && lc->algo != MFL_ALGO_FEDAVG) {
        /* Grouped rows (a series' patients): each patient is a task. */
        sampler = mfl_sampler_new_groups(self->train, spec->batch_size, sub, sizeof(sub));
    } else {
        /* The site is the task: support and query batches of batch_size rows
         * (0 = all rows) from the training split. */
        size_t b = spec->batch_size < self->train->n ? spec->batch_size : 0;
        sampler = mfl_sampler_new_site(self->train, b, b, sub, sizeof(sub));
    }
    if (!sampler)
        return mfl_errf(err, errlen, "site '%s' round %u: cannot sample tasks: %s", self->site,
                        task->round, sub), -1;
    mfl_rng_t rng;
    mfl_rng_seed(&rng, task->seed, mfl_site_worker_stream(self->site, task->round));
    int rc = mfl_learner_meta_train(self->learner, theta, sampler, &rng, self->delta,
                                    &out->metrics, sub, sizeof(sub));
    mfl_sampler_destroy(&sampler);
    if (rc)
        return mfl_errf(err, errlen, "site '%s' round %u: %s", self->site, task->round, sub),
               -1;
    return s_finish_round(self, task, &plan, out, err, errlen);
}

/* After local training: site-level clip + noise (if planned), the
 * accountant, the header and its signature. */
static int s_finish_round(mfl_site_worker_t *self, const mfl_round_task_t *task,
                          const mfl_privacy_plan_t *pl, mfl_site_round_result_t *out, char *err,
                          size_t errlen)
{
    mfl_privacy_plan_t plan = *pl;
    if (out->metrics.n_samples == 0)
        out->metrics.n_samples = self->train->n;
    /* DP-SGD already bounded each record: Δ is post-processing, sent as is. */
    out->pre_clip_norm = plan.record ? mfl_site_l2(self->delta, self->n_state)
                                     : s_apply_privacy(self, &plan);
    if (plan.dp && mfl_privacy_accountant_add(&self->spent, plan.q, plan.noise_multiplier,
                                              (double)plan.steps, err, errlen))
        return -1;
    if (s_encode_delta(self, task, err, errlen))
        return -1;
    out->delta = self->delta;
    out->n_delta = self->n_state;
    /* Without privacy or encoding Δ is unchanged since the pre-clip norm:
     * skip a pass. */
    out->delta_norm = (plan.dp && !plan.record) || plan.clip_only || self->residual
                          ? mfl_site_l2(self->delta, self->n_state)
                          : out->pre_clip_norm;
    out->encoding = self->encoding;
    out->encoded = self->encoding ? self->encoded : NULL;
    out->scales = self->encoding ? self->scales : NULL;
    if (s_build_header(self, task, out, &plan, err, errlen))
        return -1;
    out->tensor_hashes = self->hashes;
    out->chunk_values = self->chunk_values;
    out->chunk_hashes = self->chunk_values ? self->chunk_hashes : NULL;
    out->n_chunks = self->n_chunks;
    out->header = self->header;
    out->header_len = self->header_len;
    if (self->sign_sk) {
        unsigned long long siglen = 0;
        crypto_sign_detached(out->signature, &siglen, self->header, self->header_len,
                             self->sign_sk);
        out->signature_len = (size_t)siglen;
    }
    return 0;
}

int mfl_site_worker_round(mfl_site_worker_t *self, const mfl_round_task_t *task,
                          const float *theta, size_t n_theta, mfl_site_round_result_t *out,
                          char *err, size_t errlen)
{
    if (!task || !theta || !out)
        return mfl_errf(err, errlen, "round: missing task, θ or result"), -1;
    memset(out, 0, sizeof(*out));
    if (mfl_site_scaling_apply(self, &task->scaling, err, errlen) < 0)
        return -1;
    /* A selection round trains on the training rows minus the validation part. */
    mfl_site_data_swap_t saved;
    if (mfl_site_validation_enter(self, &task->selection, &saved, err, errlen) < 0)
        return -1;
    int rc = s_round(self, task, theta, n_theta, out, err, errlen);
    mfl_site_validation_leave(self, &saved);
    return rc;
}
