/* The checkpoint's model binding (see run_model.h). */
#include "round/run_model.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "fed/checkpoint.h"
#include "meta/learner_io.h"

void mfl_run_model_hash(const mfl_learner_config_t *l, size_t n_state, uint8_t out[32])
{
    char text[512];
    int n = snprintf(text, sizeof text, "metafl-model-v1|%s|%s|%s|%zu", l->model_spec,
                     mfl_algo_name(l->algo), l->relation_spec, n_state);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof text)
        n = (int)sizeof text - 1;
    crypto_generichash(out, 32, (const unsigned char *)text, (size_t)n, NULL, 0);
}

int mfl_run_model_match(const mfl_learner_config_t *l, size_t n_state, const uint8_t hash[32],
                        mfl_algo_kind_t *algo)
{
    mfl_learner_config_t c = *l;
    for (int a = MFL_ALGO_FEDAVG; a <= MFL_ALGO_RELATION; a++) {
        uint8_t h[32];
        c.algo = (mfl_algo_kind_t)a;
        mfl_run_model_hash(&c, n_state, h);
        if (sodium_memcmp(h, hash, 32) == 0) {
            *algo = c.algo;
            return 0;
        }
    }
    return -1;
}

int mfl_run_is_checkpoint(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char magic[8];
    size_t n = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return n == sizeof magic && memcmp(magic, "MFLCKPT1", sizeof magic) == 0;
}

int mfl_run_params_load(const mfl_learner_t *l, float *state, const char *path,
                        uint64_t *round_out, char *err, size_t errlen)
{
    if (round_out)
        *round_out = 0;
    if (!mfl_run_is_checkpoint(path))
        return mfl_learner_load(l, state, path, err, errlen);
    const mfl_learner_config_t *c = mfl_learner_config(l);
    size_t n_state = mfl_learner_n_state(l);
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    if (mfl_checkpoint_load(path, &ck, err, errlen) < 0)
        return -1;
    int rc = -1;
    mfl_algo_kind_t algo;
    if (ck.n_params != n_state) {
        mfl_errf(err, errlen, "%s: checkpoint holds %zu parameters; the config's model %s (%s) "
                 "has %zu: it was written for another model", path, ck.n_params, c->model_spec,
                 mfl_algo_name(c->algo), n_state);
        goto out_clear;
    }
    if (mfl_run_model_match(c, n_state, ck.model_hash, &algo) < 0) {
        mfl_errf(err, errlen, "%s: checkpoint was written for another model than %s%s%s "
                 "(same size, different spec or relation module)", path, c->model_spec,
                 c->relation_spec[0] ? " with relation " : "", c->relation_spec);
        goto out_clear;
    }
    memcpy(state, ck.theta, n_state * sizeof(float));
    if (round_out)
        *round_out = ck.round;
    rc = 0;
out_clear:
    mfl_checkpoint_clear(&ck);
    return rc;
}

void mfl_run_theta_digest(const mfl_learner_t *l, const float *state, uint8_t out[32])
{
    size_t nt = mfl_learner_n_tensors(l);
    uint8_t *hashes = malloc((nt ? nt : 1) * 32);
    if (!hashes) { /* OOM: an all-zero digest matches no θ */
        memset(out, 0, 32);
        return;
    }
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(l, i);
        crypto_generichash(hashes + 32 * i, 32, (const unsigned char *)(state + ti->offset),
                           (unsigned long long)ti->count * sizeof(float), NULL, 0);
    }
    mfl_audit_update_digest(hashes, nt, out);
    free(hashes);
}
