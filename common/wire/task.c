/* The plain task types' helpers: the update digest and the translation
 * between a learner config and the AlgorithmSpec that carries it. No
 * protobuf here (task_codec.c does the messages). */
#include "wire/task.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

void mfl_update_digest(const uint8_t *hashes, size_t k, uint8_t out[MFL_TASK_HASH_BYTES])
{
    if (k == 1)
        memcpy(out, hashes, MFL_TASK_HASH_BYTES);
    else
        crypto_generichash(out, MFL_TASK_HASH_BYTES, hashes, MFL_TASK_HASH_BYTES * k, NULL, 0);
}

void mfl_task_algorithm_from_learner(const mfl_learner_config_t *l, uint32_t n_way,
                                     uint32_t k_shot, uint32_t n_query,
                                     mfl_task_algorithm_t *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", mfl_algo_name(l->algo));
    a->inner_steps = (uint32_t)l->inner_steps;
    a->inner_lr = l->inner_lr;
    a->meta_batch = (uint32_t)l->meta_batch;
    a->outer_steps = (uint32_t)l->outer_steps;
    a->outer_lr = l->outer_lr;
    a->batch_size = (uint32_t)l->batch_size;
    a->local_epochs = (uint32_t)l->local_epochs;
    a->n_way = n_way;
    a->k_shot = k_shot;
    a->n_query = n_query;
    snprintf(a->loss, sizeof a->loss, "%s", mfl_loss_name(l->loss));
    a->pos_weight = l->pos_weight;
    snprintf(a->relation_spec, sizeof a->relation_spec, "%s", l->relation_spec);
    snprintf(a->outer_optim, sizeof a->outer_optim, "%s", mfl_optim_name(l->outer_optim));
}

/* A count from the task: 0 keeps the learner's default (proto3 cannot tell
 * unset from 0); over max is refused naming algorithm.<field>. */
static int s_count_field(const char *field, uint32_t v, uint32_t max, int *dst, char *err,
                         size_t errlen)
{
    if (!v)
        return 0;
    if (v > max)
        return mfl_errf(err, errlen, "algorithm.%s: %u is over %u", field, v, max), -1;
    *dst = (int)v;
    return 0;
}

/* A rate or weight from the task: 0 keeps the default; it must be finite
 * and >= 0. */
static int s_rate_field(const char *field, float v, float *dst, char *err, size_t errlen)
{
    if (v == 0.0f)
        return 0;
    if (!isfinite(v) || v < 0)
        return mfl_errf(err, errlen, "algorithm.%s: must be finite and >= 0", field), -1;
    *dst = v;
    return 0;
}

int mfl_task_algorithm_to_learner(const mfl_task_algorithm_t *spec, const char *model_spec,
                                  mfl_learner_config_t *config, char *err, size_t errlen)
{
    mfl_algo_kind_t algo;
    if (mfl_algo_parse(spec->name, &algo))
        return mfl_errf(err, errlen, "algorithm.name: unknown algorithm '%s'", spec->name), -1;
    mfl_learner_config_defaults(config, algo);
    if (!model_spec || !*model_spec || strlen(model_spec) >= sizeof(config->model_spec))
        return mfl_errf(err, errlen, "model_spec: missing or longer than %zu characters",
                        sizeof(config->model_spec) - 1), -1;
    snprintf(config->model_spec, sizeof(config->model_spec), "%s", model_spec);
    /* 0 / empty means "the learner's default": proto3 cannot tell unset from 0. */
    if (s_count_field("inner_steps", spec->inner_steps, 10000, &config->inner_steps, err,
                      errlen))
        return -1;
    if (s_rate_field("inner_lr", spec->inner_lr, &config->inner_lr, err, errlen))
        return -1;
    if (s_count_field("meta_batch", spec->meta_batch, 100000, &config->meta_batch, err,
                      errlen))
        return -1;
    if (s_count_field("outer_steps", spec->outer_steps, 1000000, &config->outer_steps, err,
                      errlen))
        return -1;
    if (s_rate_field("outer_lr", spec->outer_lr, &config->outer_lr, err, errlen))
        return -1;
    if (spec->batch_size)
        config->batch_size = spec->batch_size;
    if (s_count_field("local_epochs", spec->local_epochs, 10000, &config->local_epochs, err,
                      errlen))
        return -1;
    if (*spec->loss && mfl_loss_parse(spec->loss, &config->loss))
        return mfl_errf(err, errlen, "algorithm.loss: unknown loss '%s'", spec->loss), -1;
    if (s_rate_field("pos_weight", spec->pos_weight, &config->pos_weight, err, errlen))
        return -1;
    if (*spec->relation_spec) {
        if (strlen(spec->relation_spec) >= sizeof(config->relation_spec))
            return mfl_errf(err, errlen, "algorithm.relation_spec: too long"), -1;
        snprintf(config->relation_spec, sizeof(config->relation_spec), "%s",
                 spec->relation_spec);
    }
    if (*spec->outer_optim &&
        mfl_optim_parse(spec->outer_optim, &config->outer_optim))
        return mfl_errf(err, errlen, "algorithm.outer_optim: unknown optimiser '%s'",
                        spec->outer_optim), -1;
    return 0;
}


uint64_t mfl_chunk_count(uint64_t count, uint64_t chunk_values)
{
    return chunk_values ? count / chunk_values + (count % chunk_values != 0) : 0;
}

void mfl_chunk_tensor_hash(const uint8_t *hashes, size_t k, uint8_t out[MFL_TASK_HASH_BYTES])
{
    crypto_generichash(out, MFL_TASK_HASH_BYTES, hashes, k * MFL_TASK_HASH_BYTES, NULL, 0);
}

void mfl_chunked_bytes_hash(const uint8_t *bytes, size_t len, size_t chunk_bytes,
                            uint8_t out[MFL_TASK_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_TASK_HASH_BYTES);
    for (size_t off = 0; chunk_bytes && off < len; off += chunk_bytes) {
        uint8_t h[MFL_TASK_HASH_BYTES];
        size_t n = len - off < chunk_bytes ? len - off : chunk_bytes;
        crypto_generichash(h, sizeof h, bytes + off, n, NULL, 0);
        crypto_generichash_update(&st, h, sizeof h);
    }
    crypto_generichash_final(&st, out, MFL_TASK_HASH_BYTES);
}

void mfl_task_moments_digest(const mfl_eval_report_t *r, uint8_t out[MFL_TASK_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_TASK_HASH_BYTES);
    size_t n = r->n_moments <= MFL_TASK_SCALING_MAX ? r->n_moments : MFL_TASK_SCALING_MAX;
    for (int part = 0; part < 2; part++) {
        const double *v = part ? r->moments_sum_sq : r->moments_sum;
        for (size_t j = 0; j < n; j++) { /* little-endian bytes, whatever the host */
            uint64_t bits;
            memcpy(&bits, &v[j], sizeof bits);
            uint8_t le[8];
            for (int b = 0; b < 8; b++)
                le[b] = (uint8_t)(bits >> (8 * b));
            crypto_generichash_update(&st, le, sizeof le);
        }
    }
    crypto_generichash_final(&st, out, MFL_TASK_HASH_BYTES);
}
