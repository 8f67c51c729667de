/* The task codec: plain task structs <-> protocol messages. See
 * task_codec.h; the plain types are in task.h. */
#include "wire/task_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "core/log.h"

/* The plain reasons are the protocol's numbers. */
#define S_SAME(x) _Static_assert((int)MFL_REJECT_##x == (int)METAFL__REJECT_REASON__REJECT_##x, \
                                 "MFL_REJECT_" #x " differs from the protocol")
S_SAME(UNSPECIFIED);
S_SAME(BAD_MESSAGE);
S_SAME(WRONG_SITE);
S_SAME(WRONG_ROUND);
S_SAME(REPLAY);
S_SAME(DUPLICATE);
S_SAME(NOT_SELECTED);
S_SAME(SHAPE);
S_SAME(NONFINITE);
S_SAME(NORM);
S_SAME(SIGNATURE);
S_SAME(HASH);
S_SAME(TOO_LARGE);
S_SAME(SCHEMA);
S_SAME(VERSION);
S_SAME(NOT_GRANTED);
S_SAME(AUDIT_UNAVAILABLE);
S_SAME(ENCODING);
S_SAME(DATA);
S_SAME(SECAGG_PHASE);
S_SAME(SECAGG_LENGTH);
S_SAME(SECAGG_MALFORMED);
S_SAME(SECAGG_SHARES);
S_SAME(SECAGG_REFUSED);
S_SAME(CHUNK);

#define S_SAME_KIND(x) _Static_assert((int)MFL_MSG_##x == (int)METAFL__MESSAGE_KIND__##x, \
                                      "MFL_MSG_" #x " differs from the protocol")
S_SAME_KIND(HELLO);
S_SAME_KIND(WELCOME);
S_SAME_KIND(ROUND_TASK);
S_SAME_KIND(UPDATE);
S_SAME_KIND(EVAL_TASK);
S_SAME_KIND(EVAL_REPORT);
S_SAME_KIND(HEARTBEAT);
S_SAME_KIND(REJECT);
S_SAME_KIND(BYE);
S_SAME_KIND(UPLOAD_READY);
S_SAME_KIND(UPLOAD_GRANT);
S_SAME_KIND(SITE_FAILURE);
S_SAME_KIND(SECAGG_KEYS);
S_SAME_KIND(SECAGG_SHARES);
S_SAME_KIND(SECAGG_MASKED);
S_SAME_KIND(SECAGG_SURVIVORS);
S_SAME_KIND(SECAGG_SIGNOFF);
S_SAME_KIND(SECAGG_UNMASK);
S_SAME_KIND(SECAGG_REVEALS);
S_SAME_KIND(SECAGG_END);
S_SAME_KIND(UPDATE_BEGIN);
S_SAME_KIND(UPDATE_CHUNK);

/* Copies a protobuf string (NULL = "") into dst[cap]; -1 with err naming
 * `field` if it does not fit. */
static int s_text(const char *field, const char *src, char *dst, size_t cap, char *err,
                  size_t errlen)
{
    const char *s = src ? src : "";
    size_t n = strlen(s);
    if (n >= cap)
        return mfl_errf(err, errlen, "%s: longer than %zu characters", field, cap - 1), -1;
    memcpy(dst, s, n + 1);
    return 0;
}

/* Copies bytes into dst[cap], *len their count; -1 with err if over cap. */
static int s_bytes(const char *field, const ProtobufCBinaryData *src, uint8_t *dst, size_t cap,
                   size_t *len, char *err, size_t errlen)
{
    if (src->len > cap)
        return mfl_errf(err, errlen, "%s: %zu bytes, over %zu", field, src->len, cap), -1;
    if (src->len)
        memcpy(dst, src->data, src->len);
    *len = src->len;
    return 0;
}

static ProtobufCBinaryData s_bin(const uint8_t *data, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)data}; /* protobuf-c's field is not const; never written */
    return b;
}

void mfl_task_algorithm_to_msg(const mfl_task_algorithm_t *a, Metafl__AlgorithmSpec *m)
{
    metafl__algorithm_spec__init(m);
    m->name = (char *)a->name;
    m->inner_steps = a->inner_steps;
    m->inner_lr = a->inner_lr;
    m->meta_batch = a->meta_batch;
    m->outer_steps = a->outer_steps;
    m->outer_lr = a->outer_lr;
    m->batch_size = a->batch_size;
    m->local_epochs = a->local_epochs;
    m->n_way = a->n_way;
    m->k_shot = a->k_shot;
    m->n_query = a->n_query;
    m->loss = (char *)a->loss;
    m->pos_weight = a->pos_weight;
    m->relation_spec = (char *)a->relation_spec;
    m->outer_optim = (char *)a->outer_optim;
}

int mfl_task_algorithm_from_msg(const Metafl__AlgorithmSpec *m, mfl_task_algorithm_t *a,
                                char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (!m)
        return mfl_errf(err, errlen, "task has no algorithm"), -1;
    if (s_text("algorithm.name", m->name, a->name, sizeof a->name, err, errlen) ||
        s_text("algorithm.loss", m->loss, a->loss, sizeof a->loss, err, errlen) ||
        s_text("algorithm.relation_spec", m->relation_spec, a->relation_spec,
               sizeof a->relation_spec, err, errlen) ||
        s_text("algorithm.outer_optim", m->outer_optim, a->outer_optim, sizeof a->outer_optim,
               err, errlen))
        return -1;
    a->inner_steps = m->inner_steps;
    a->inner_lr = m->inner_lr;
    a->meta_batch = m->meta_batch;
    a->outer_steps = m->outer_steps;
    a->outer_lr = m->outer_lr;
    a->batch_size = m->batch_size;
    a->local_epochs = m->local_epochs;
    a->n_way = m->n_way;
    a->k_shot = m->k_shot;
    a->n_query = m->n_query;
    a->pos_weight = m->pos_weight;
    return 0;
}

/* A task's selection fields: candidate ≤ MFL_TASK_SELECTION_MAX and, for a
 * selection task, a finite validation fraction in (0, 0.9]; an ordinary
 * task (candidate 0) carries no fraction. */
static int s_selection_from_msg(uint32_t candidate, double fraction, uint64_t seed,
                                bool search, mfl_task_selection_t *out, char *err,
                                size_t errlen)
{
    if (search && !(fraction > 0 && fraction <= MFL_TASK_VALIDATION_MAX))
        return mfl_errf(err, errlen, "adapt_search needs a validation_fraction in (0, %g], "
                        "got %g", MFL_TASK_VALIDATION_MAX, fraction), -1;
    out->adapt_search = search;
    if (candidate > MFL_TASK_SELECTION_MAX)
        return mfl_errf(err, errlen, "selection_candidate %u is over the cap %d", candidate,
                        MFL_TASK_SELECTION_MAX), -1;
    if (candidate && !(fraction > 0 && fraction <= MFL_TASK_VALIDATION_MAX))
        return mfl_errf(err, errlen, "validation_fraction %g is not in (0, %g]", fraction,
                        MFL_TASK_VALIDATION_MAX), -1;
    if (!candidate && !search && fraction != 0)
        return mfl_errf(err, errlen, "validation_fraction %g without a selection_candidate",
                        fraction), -1;
    out->candidate = candidate;
    /* never −0.0 (not on the wire) */
    out->validation_fraction = candidate || search ? fraction : 0.0;
    out->validation_seed = seed;
    return 0;
}

/* A task's scaling lists: none, or the same length ≤ MFL_TASK_SCALING_MAX,
 * finite, every scale > 0. */
static int s_scaling_from_msg(size_t n_mean, const float *mean, size_t n_scale,
                              const float *scale, mfl_task_scaling_t *out, char *err,
                              size_t errlen)
{
    if (n_mean != n_scale)
        return mfl_errf(err, errlen, "scaling_mean has %zu values, scaling_scale %zu", n_mean,
                        n_scale), -1;
    if (n_mean > MFL_TASK_SCALING_MAX)
        return mfl_errf(err, errlen, "scaling: %zu features (at most %d)", n_mean,
                        MFL_TASK_SCALING_MAX), -1;
    for (size_t j = 0; j < n_mean; j++) {
        if (!isfinite(mean[j]) || !isfinite(scale[j]) || !(scale[j] > 0))
            return mfl_errf(err, errlen, "scaling feature %zu: mean %g scale %g (finite, "
                            "scale > 0)", j, (double)mean[j], (double)scale[j]), -1;
        out->mean[j] = mean[j];
        out->scale[j] = scale[j];
    }
    out->n = (uint32_t)n_mean;
    return 0;
}

void mfl_round_task_to_msg(const mfl_round_task_t *t, mfl_round_task_msg_t *out)
{
    metafl__round_task__init(&out->msg);
    metafl__privacy_settings__init(&out->privacy);
    mfl_task_algorithm_to_msg(&t->algorithm, &out->algorithm);
    out->privacy.enabled = t->privacy.enabled;
    out->privacy.clip_norm = t->privacy.clip_norm;
    out->privacy.noise_multiplier = t->privacy.noise_multiplier;
    out->privacy.target_delta = t->privacy.target_delta;
    out->msg.round = t->round;
    out->msg.nonce = s_bin(t->nonce, t->nonce_len);
    out->msg.model_spec = (char *)t->model_spec;
    out->msg.model_hash = s_bin(t->model_hash, t->model_hash_len);
    out->msg.algorithm = &out->algorithm;
    out->msg.privacy = &out->privacy;
    out->msg.deadline_unix_ms = t->deadline_unix_ms;
    out->msg.seed = t->seed;
    if (t->has_audit_head) {
        out->msg.audit_seq = t->audit_seq;
        out->msg.audit_head = s_bin(t->audit_head, sizeof t->audit_head);
        out->msg.audit_head_sig = s_bin(t->audit_head_sig, sizeof t->audit_head_sig);
        out->msg.audit_writer = (char *)t->audit_writer;
    }
    out->msg.update_encoding = t->update_encoding;
    out->msg.upload_chunk_values = t->upload_chunk_values;
    if (t->has_broadcast_base)
        out->msg.broadcast_base = s_bin(t->broadcast_base, MFL_TASK_HASH_BYTES);
    out->msg.selection_candidate = t->selection.candidate;
    out->msg.validation_fraction = t->selection.validation_fraction;
    out->msg.validation_seed = t->selection.validation_seed;
    if (t->scaling.n && t->scaling.n <= MFL_TASK_SCALING_MAX) {
        out->msg.n_scaling_mean = out->msg.n_scaling_scale = t->scaling.n;
        out->msg.scaling_mean = (float *)t->scaling.mean;
        out->msg.scaling_scale = (float *)t->scaling.scale;
    }
    if (t->has_secagg) {
        metafl__sec_agg_setup__init(&out->secagg);
        out->secagg.threshold = t->secagg.threshold;
        out->secagg.neighbours = t->secagg.neighbours;
        out->secagg.length = t->secagg.length;
        out->secagg.word_bits = t->secagg.word_bits == 32 ? 32 : 0; /* 64: as before */
        out->secagg.frac_bits = t->secagg.word_bits == 32 ? t->secagg.frac_bits : 0;
        out->secagg.masked_grant = t->secagg.masked_grant;
        size_t n = t->secagg.n_sites <= MFL_TASK_SECAGG_MAX_SITES ? t->secagg.n_sites
                                                                  : MFL_TASK_SECAGG_MAX_SITES;
        for (size_t i = 0; i < n; i++)
            out->secagg_sites[i] = (char *)t->secagg.sites[i];
        out->secagg.n_sites = n;
        out->secagg.sites = out->secagg_sites;
        out->msg.secagg = &out->secagg;
    }
}

/* RoundTask.secagg into t->secagg: complete or refused. */
static int s_secagg_setup(const Metafl__SecAggSetup *m, mfl_round_task_t *t, char *err,
                          size_t errlen)
{
    if (m->n_sites == 0 || m->n_sites > MFL_TASK_SECAGG_MAX_SITES)
        return mfl_errf(err, errlen, "secagg.sites: %zu sites (1..%d)", m->n_sites,
                        MFL_TASK_SECAGG_MAX_SITES), -1;
    for (size_t i = 0; i < m->n_sites; i++) {
        const char *id = m->sites[i] ? m->sites[i] : "";
        if (!id[0])
            return mfl_errf(err, errlen, "secagg.sites[%zu]: empty", i), -1;
        if (s_text("secagg.sites", id, t->secagg.sites[i], sizeof t->secagg.sites[i], err,
                   errlen))
            return -1;
        if (i > 0 && strcmp(t->secagg.sites[i - 1], id) >= 0)
            return mfl_errf(err, errlen, "secagg.sites[%zu]: '%s' not after '%s'", i, id,
                            t->secagg.sites[i - 1]), -1;
    }
    t->secagg.n_sites = m->n_sites;
    t->secagg.threshold = m->threshold;
    t->secagg.neighbours = m->neighbours;
    t->secagg.length = m->length;
    if (m->word_bits != 0 && m->word_bits != 64 && m->word_bits != 32)
        return mfl_errf(err, errlen, "secagg.word_bits: %u (64 or 32)", m->word_bits), -1;
    t->secagg.word_bits = m->word_bits; /* 0 and 64: 64-bit words */
    /* F's range is checked where the aggregate is built (site_secagg.c) */
    if (m->word_bits != 32 && m->frac_bits != 0)
        return mfl_errf(err, errlen, "secagg.frac_bits: %u with 64-bit words (must be 0)",
                        m->frac_bits), -1;
    t->secagg.frac_bits = m->frac_bits;
    t->secagg.masked_grant = m->masked_grant;
    t->has_secagg = true;
    return 0;
}

int mfl_round_task_from_msg(const Metafl__RoundTask *m, mfl_round_task_t *t, char *err,
                            size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (s_bytes("nonce", &m->nonce, t->nonce, sizeof t->nonce, &t->nonce_len, err, errlen) ||
        s_bytes("model_hash", &m->model_hash, t->model_hash, sizeof t->model_hash,
                &t->model_hash_len, err, errlen) ||
        s_text("model_spec", m->model_spec, t->model_spec, sizeof t->model_spec, err, errlen) ||
        mfl_task_algorithm_from_msg(m->algorithm, &t->algorithm, err, errlen))
        return -1;
    t->round = m->round;
    if (m->privacy) {
        t->privacy.enabled = m->privacy->enabled;
        t->privacy.clip_norm = m->privacy->clip_norm;
        t->privacy.noise_multiplier = m->privacy->noise_multiplier;
        t->privacy.target_delta = m->privacy->target_delta;
    }
    t->deadline_unix_ms = m->deadline_unix_ms;
    t->seed = m->seed;
    /* The head is optional: a malformed one is dropped, not fatal (the
     * site then simply has no head of this round to record). */
    if (m->audit_head.len == MFL_TASK_HASH_BYTES && m->audit_head_sig.len == 64 &&
        m->audit_writer && m->audit_writer[0] &&
        strlen(m->audit_writer) < sizeof t->audit_writer) {
        t->has_audit_head = true;
        t->audit_seq = m->audit_seq;
        memcpy(t->audit_head, m->audit_head.data, MFL_TASK_HASH_BYTES);
        memcpy(t->audit_head_sig, m->audit_head_sig.data, 64);
        snprintf(t->audit_writer, sizeof t->audit_writer, "%s", m->audit_writer);
    }
    t->update_encoding = m->update_encoding;
    if (m->upload_chunk_values &&
        (m->upload_chunk_values < MFL_CHUNK_VALUES_MIN ||
         m->upload_chunk_values > MFL_CHUNK_VALUES_MAX))
        return mfl_errf(err, errlen, "upload_chunk_values %llu outside [%u, %u]",
                        (unsigned long long)m->upload_chunk_values, MFL_CHUNK_VALUES_MIN,
                        MFL_CHUNK_VALUES_MAX), -1;
    t->upload_chunk_values = m->upload_chunk_values;
    if (m->broadcast_base.len) {
        if (m->broadcast_base.len != MFL_TASK_HASH_BYTES)
            return mfl_errf(err, errlen, "broadcast_base: %zu bytes (a base is %d)",
                            m->broadcast_base.len, MFL_TASK_HASH_BYTES), -1;
        memcpy(t->broadcast_base, m->broadcast_base.data, MFL_TASK_HASH_BYTES);
        t->has_broadcast_base = true;
    }
    if (m->secagg && s_secagg_setup(m->secagg, t, err, errlen) < 0)
        return -1;
    if (s_scaling_from_msg(m->n_scaling_mean, m->scaling_mean, m->n_scaling_scale,
                           m->scaling_scale, &t->scaling, err, errlen) < 0)
        return -1;
    return s_selection_from_msg(m->selection_candidate, m->validation_fraction,
                                m->validation_seed, false, &t->selection, err, errlen);
}

void mfl_eval_task_to_msg(const mfl_eval_task_t *t, mfl_eval_task_msg_t *out)
{
    metafl__eval_task__init(&out->msg);
    mfl_task_algorithm_to_msg(&t->algorithm, &out->algorithm);
    out->msg.round = t->round;
    out->msg.nonce = s_bin(t->nonce, t->nonce_len);
    out->msg.model_spec = (char *)t->model_spec;
    out->msg.model_hash = s_bin(t->model_hash, t->model_hash_len);
    out->msg.algorithm = &out->algorithm;
    out->msg.adapt_steps = t->adapt_steps;
    out->msg.adapt_lr = t->adapt_lr;
    out->msg.adapt_search = t->selection.adapt_search;
    out->msg.selection_candidate = t->selection.candidate;
    out->msg.validation_fraction = t->selection.validation_fraction;
    out->msg.validation_seed = t->selection.validation_seed;
    if (t->scaling.n && t->scaling.n <= MFL_TASK_SCALING_MAX) {
        out->msg.n_scaling_mean = out->msg.n_scaling_scale = t->scaling.n;
        out->msg.scaling_mean = (float *)t->scaling.mean;
        out->msg.scaling_scale = (float *)t->scaling.scale;
    }
    out->msg.moments = t->moments;
}

int mfl_eval_task_from_msg(const Metafl__EvalTask *m, mfl_eval_task_t *t, char *err,
                           size_t errlen)
{
    memset(t, 0, sizeof *t);
    if (s_bytes("nonce", &m->nonce, t->nonce, sizeof t->nonce, &t->nonce_len, err, errlen) ||
        s_bytes("model_hash", &m->model_hash, t->model_hash, sizeof t->model_hash,
                &t->model_hash_len, err, errlen) ||
        s_text("model_spec", m->model_spec, t->model_spec, sizeof t->model_spec, err, errlen) ||
        mfl_task_algorithm_from_msg(m->algorithm, &t->algorithm, err, errlen))
        return -1;
    t->round = m->round;
    t->adapt_steps = m->adapt_steps;
    t->adapt_lr = m->adapt_lr;
    t->moments = m->moments;
    if (s_scaling_from_msg(m->n_scaling_mean, m->scaling_mean, m->n_scaling_scale,
                           m->scaling_scale, &t->scaling, err, errlen) < 0)
        return -1;
    if (t->moments && (m->selection_candidate || m->adapt_search))
        return mfl_errf(err, errlen, "moments with a selection_candidate or adapt_search"), -1;
    if (t->moments) { /* the fit rows: training rows minus this validation part */
        if (!(m->validation_fraction >= 0 && m->validation_fraction <= MFL_TASK_VALIDATION_MAX))
            return mfl_errf(err, errlen, "moments: validation_fraction %g is not in [0, %g]",
                            m->validation_fraction, MFL_TASK_VALIDATION_MAX), -1;
        t->selection.validation_fraction = m->validation_fraction == 0 ? 0.0
                                                                       : m->validation_fraction;
        t->selection.validation_seed = m->validation_seed;
        return 0;
    }
    return s_selection_from_msg(m->selection_candidate, m->validation_fraction,
                                m->validation_seed, m->adapt_search, &t->selection, err,
                                errlen);
}

void mfl_eval_report_to_msg(const mfl_eval_report_t *r, Metafl__EvalReport *m)
{
    metafl__eval_report__init(m);
    m->round = r->round;
    m->nonce = s_bin(r->nonce, r->nonce_len);
    m->site = (char *)r->site;
    m->loss = r->loss;
    m->accuracy = r->accuracy;
    m->auroc = r->auroc;
    m->sensitivity = r->sensitivity;
    m->specificity = r->specificity;
    m->n = r->n;
    m->loss_before = r->loss_before;
    m->accuracy_before = r->accuracy_before;
    m->auroc_before = r->auroc_before;
    m->accuracy_local = r->accuracy_local;
    m->auroc_local = r->auroc_local;
    m->n_support = r->n_support;
    m->rmse = r->rmse;
    m->mae = r->mae;
    m->r2 = r->r2;
    m->rmse_before = r->rmse_before;
    m->rmse_local = r->rmse_local;
    m->adapt_steps_used = r->adapt_steps_used;
    m->adapt_lr_used = r->adapt_lr_used;
    m->sens_at_spec90 = r->sens_at_spec90;
    m->sens_at_spec90_local = r->sens_at_spec90_local;
    m->policy_value = r->value;
    m->policy_value_before = r->value_before;
    m->policy_value_local = r->value_local;
    m->policy_value_best_arm = r->value_best_arm;
    m->policy_value_given = r->value_given;
    if (r->n_moments && r->n_moments <= MFL_TASK_SCALING_MAX) {
        m->moments_n = r->moments_n;
        m->n_moments_sum = m->n_moments_sum_sq = r->n_moments;
        m->moments_sum = (double *)r->moments_sum;
        m->moments_sum_sq = (double *)r->moments_sum_sq;
    }
}

int mfl_eval_report_from_msg(const Metafl__EvalReport *m, mfl_eval_report_t *r, char *err,
                             size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (s_bytes("nonce", &m->nonce, r->nonce, sizeof r->nonce, &r->nonce_len, err, errlen) ||
        s_text("site", m->site, r->site, sizeof r->site, err, errlen))
        return -1;
    r->round = m->round;
    r->loss = m->loss;
    r->accuracy = m->accuracy;
    r->auroc = m->auroc;
    r->sensitivity = m->sensitivity;
    r->specificity = m->specificity;
    r->n = m->n;
    r->loss_before = m->loss_before;
    r->accuracy_before = m->accuracy_before;
    r->auroc_before = m->auroc_before;
    r->accuracy_local = m->accuracy_local;
    r->auroc_local = m->auroc_local;
    r->n_support = m->n_support;
    r->rmse = m->rmse;
    r->mae = m->mae;
    r->r2 = m->r2;
    r->rmse_before = m->rmse_before;
    r->rmse_local = m->rmse_local;
    r->adapt_steps_used = m->adapt_steps_used;
    r->adapt_lr_used = m->adapt_lr_used == 0 ? 0.0f : m->adapt_lr_used; /* not −0 */
    r->sens_at_spec90 = m->sens_at_spec90;
    r->sens_at_spec90_local = m->sens_at_spec90_local;
    r->value = m->policy_value;
    r->value_before = m->policy_value_before;
    r->value_local = m->policy_value_local;
    r->value_best_arm = m->policy_value_best_arm;
    r->value_given = m->policy_value_given;
    if (m->n_moments_sum != m->n_moments_sum_sq)
        return mfl_errf(err, errlen, "moments_sum has %zu values, moments_sum_sq %zu",
                        m->n_moments_sum, m->n_moments_sum_sq), -1;
    if (m->n_moments_sum > MFL_TASK_SCALING_MAX)
        return mfl_errf(err, errlen, "moments: %zu features (at most %d)", m->n_moments_sum,
                        MFL_TASK_SCALING_MAX), -1;
    for (size_t j = 0; j < m->n_moments_sum; j++) {
        if (!isfinite(m->moments_sum[j]) || !isfinite(m->moments_sum_sq[j]) ||
            m->moments_sum_sq[j] < 0)
            return mfl_errf(err, errlen, "moments feature %zu: sum %g, sum of squares %g "
                            "(finite, ≥ 0)", j, m->moments_sum[j], m->moments_sum_sq[j]), -1;
        r->moments_sum[j] = m->moments_sum[j];
        r->moments_sum_sq[j] = m->moments_sum_sq[j];
    }
    r->n_moments = (uint32_t)m->n_moments_sum;
    r->moments_n = r->n_moments ? m->moments_n : 0;
    return 0;
}

/* The digest of the header's tensor hashes, or why there is none. */
static void s_digest(const Metafl__UpdateHeader *m, mfl_update_header_t *h)
{
    if (m->n_tensor_hashes > MFL_UPDATE_MAX_TENSORS) {
        snprintf(h->digest_error, sizeof h->digest_error,
                 "update has %zu tensors, over the audit limit of %d", m->n_tensor_hashes,
                 MFL_UPDATE_MAX_TENSORS);
        return;
    }
    uint8_t *hashes = malloc(MFL_TASK_HASH_BYTES * (m->n_tensor_hashes ? m->n_tensor_hashes : 1));
    if (!hashes) {
        snprintf(h->digest_error, sizeof h->digest_error, "out of memory");
        return;
    }
    for (size_t i = 0; i < m->n_tensor_hashes; i++) {
        if (m->tensor_hashes[i].len != MFL_TASK_HASH_BYTES) {
            snprintf(h->digest_error, sizeof h->digest_error,
                     "tensor hash %zu is %zu bytes, not 32", i, m->tensor_hashes[i].len);
            free(hashes);
            return;
        }
        memcpy(hashes + MFL_TASK_HASH_BYTES * i, m->tensor_hashes[i].data, MFL_TASK_HASH_BYTES);
    }
    mfl_update_digest(hashes, m->n_tensor_hashes, h->digest);
    free(hashes);
}

/* The first field listed in h->not_sent that nevertheless carries a
 * value (a site must not both withhold and send it), or NULL. */
static const char *s_not_sent_clash(const mfl_update_header_t *h)
{
    uint32_t ns = h->not_sent;
    if ((ns & MFL_STAT_N_SAMPLES) && h->n_samples)
        return "n_samples";
    if ((ns & MFL_STAT_LOSS_BEFORE) && h->metrics.loss_before != 0)
        return "metrics.loss_before";
    if ((ns & MFL_STAT_LOSS_AFTER) && h->metrics.loss_after != 0)
        return "metrics.loss_after";
    if ((ns & MFL_STAT_N_TASKS) && h->metrics.n_tasks)
        return "metrics.n_tasks";
    if ((ns & MFL_STAT_PRE_CLIP_NORM) && h->privacy.pre_clip_norm != 0)
        return "privacy.pre_clip_norm";
    return NULL;
}
#define S_SAME_STAT(x) _Static_assert(MFL_STAT_##x == 1u << METAFL__UPDATE_STAT__UPDATE_STAT_##x, \
                                      "MFL_STAT_" #x " differs from the protocol")
S_SAME_STAT(N_SAMPLES);
S_SAME_STAT(LOSS_BEFORE);
S_SAME_STAT(LOSS_AFTER);
S_SAME_STAT(N_TASKS);
S_SAME_STAT(PRE_CLIP_NORM);

int mfl_update_header_from_msg(const Metafl__UpdateHeader *m, mfl_update_header_t *h,
                               char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (s_bytes("nonce", &m->nonce, h->nonce, sizeof h->nonce, &h->nonce_len, err, errlen) ||
        s_text("site", m->site, h->site, sizeof h->site, err, errlen))
        return -1;
    h->round = m->round;
    h->n_samples = m->n_samples;
    h->n_tensor_hashes = m->n_tensor_hashes;
    s_digest(m, h);
    if (m->metrics) {
        h->has_metrics = true;
        h->metrics.loss_before = m->metrics->loss_before;
        h->metrics.loss_after = m->metrics->loss_after;
        h->metrics.n_tasks = m->metrics->n_tasks;
    }
    if (m->privacy) {
        h->has_privacy = true;
        h->privacy.applied = m->privacy->applied;
        h->privacy.clip_norm = m->privacy->clip_norm;
        h->privacy.noise_multiplier = m->privacy->noise_multiplier;
        h->privacy.pre_clip_norm = m->privacy->pre_clip_norm;
        h->privacy.epsilon_spent = m->privacy->epsilon_spent;
        if (s_text("privacy.mechanism", m->privacy->mechanism, h->privacy.mechanism,
                   sizeof h->privacy.mechanism, err, errlen))
            return -1;
        h->privacy.sample_rate = m->privacy->sample_rate;
        h->privacy.steps = m->privacy->steps;
        h->privacy.delta = m->privacy->delta;
        h->privacy.stats_withheld = m->privacy->stats_withheld;
        h->privacy.noise_shares = m->privacy->noise_shares;
        h->privacy.sum_noise_multiplier = m->privacy->sum_noise_multiplier;
        if (h->privacy.noise_shares > MFL_TASK_SECAGG_MAX_SITES ||
            (h->privacy.noise_shares > 0 && !(isfinite(h->privacy.sum_noise_multiplier) &&
                                              h->privacy.sum_noise_multiplier > 0))) {
            mfl_errf(err, errlen, "privacy.noise_shares %u needs 1..%d shares and a finite "
                     "sum_noise_multiplier > 0 (got %g)", (unsigned)h->privacy.noise_shares,
                     MFL_TASK_SECAGG_MAX_SITES, h->privacy.sum_noise_multiplier);
            return -1;
        }
    }
    h->delta_norm = m->delta_norm;
    for (size_t i = 0; i < m->n_not_sent; i++) {
        uint32_t v = (uint32_t)m->not_sent[i];
        if (v < 1 || v > 5)
            return mfl_errf(err, errlen, "not_sent[%zu]: unknown statistic %u", i, v), -1;
        h->not_sent |= 1u << v;
    }
    const char *both = s_not_sent_clash(h);
    if (both)
        return mfl_errf(err, errlen, "%s: listed in not_sent but carries a value", both), -1;
    if (m->audit_head.len == MFL_TASK_HASH_BYTES) {
        h->has_audit_head = true;
        h->audit_seq = m->audit_seq;
        memcpy(h->audit_head, m->audit_head.data, MFL_TASK_HASH_BYTES);
    }
    h->chunk_values = m->chunk_values;
    return 0;
}

int mfl_update_header_decode(const uint8_t *bytes, size_t len, mfl_update_header_t *out,
                             char *err, size_t errlen)
{
    Metafl__UpdateHeader *m = metafl__update_header__unpack(NULL, len, bytes);
    if (!m) {
        memset(out, 0, sizeof *out);
        return mfl_errf(err, errlen, "signed update header does not decode"), -1;
    }
    int rc = mfl_update_header_from_msg(m, out, err, errlen);
    metafl__update_header__free_unpacked(m, NULL);
    return rc;
}

int mfl_update_header_encode(const mfl_update_header_t *h, const uint8_t *hashes, size_t k,
                             uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    const char *both = s_not_sent_clash(h);
    if (both || (h->not_sent & ~MFL_STAT_ALL))
        return mfl_errf(err, errlen, "update header: %s",
                        both ? "a field listed in not_sent carries a value"
                             : "unknown bit in not_sent"), -1;
    ProtobufCBinaryData *bins = calloc(k ? k : 1, sizeof *bins);
    if (!bins)
        return mfl_errf(err, errlen, "out of memory"), -1;
    for (size_t t = 0; t < k; t++)
        bins[t] = s_bin(hashes + t * MFL_TASK_HASH_BYTES, MFL_TASK_HASH_BYTES);
    Metafl__UpdateMetrics metrics = METAFL__UPDATE_METRICS__INIT;
    metrics.loss_before = h->metrics.loss_before;
    metrics.loss_after = h->metrics.loss_after;
    metrics.n_tasks = h->metrics.n_tasks;
    Metafl__PrivacyRecord priv = METAFL__PRIVACY_RECORD__INIT;
    priv.applied = h->privacy.applied;
    priv.clip_norm = h->privacy.clip_norm;
    priv.noise_multiplier = h->privacy.noise_multiplier;
    priv.pre_clip_norm = h->privacy.pre_clip_norm;
    priv.epsilon_spent = h->privacy.epsilon_spent;
    priv.mechanism = (char *)h->privacy.mechanism; /* protobuf-c strings are not const */
    priv.sample_rate = h->privacy.sample_rate;
    priv.steps = h->privacy.steps;
    priv.delta = h->privacy.delta;
    priv.stats_withheld = h->privacy.stats_withheld;
    priv.noise_shares = h->privacy.noise_shares;
    priv.sum_noise_multiplier = h->privacy.sum_noise_multiplier;
    Metafl__UpdateHeader m = METAFL__UPDATE_HEADER__INIT;
    m.round = h->round;
    m.nonce = s_bin(h->nonce, h->nonce_len);
    m.site = (char *)h->site;
    m.n_samples = h->n_samples;
    m.n_tensor_hashes = k;
    m.tensor_hashes = bins;
    m.metrics = h->has_metrics ? &metrics : NULL;
    m.privacy = h->has_privacy ? &priv : NULL;
    m.delta_norm = h->delta_norm;
    Metafl__UpdateStat not_sent[5];
    for (uint32_t v = 1; v <= 5; v++)
        if (h->not_sent & (1u << v))
            not_sent[m.n_not_sent++] = (Metafl__UpdateStat)v;
    m.not_sent = m.n_not_sent ? not_sent : NULL;
    if (h->has_audit_head) {
        m.audit_seq = h->audit_seq;
        m.audit_head = s_bin(h->audit_head, sizeof h->audit_head);
    }
    m.chunk_values = h->chunk_values;
    size_t n = metafl__update_header__get_packed_size(&m);
    uint8_t *b = realloc(*buf, n ? n : 1);
    if (!b) {
        free(bins);
        return mfl_errf(err, errlen, "out of memory packing the update header"), -1;
    }
    *buf = b;
    *len = metafl__update_header__pack(&m, b);
    free(bins);
    return 0;
}
