/* safetensors for the learner's state: the writer builds the JSON header
 * from the learner's tensor table; the reader is nn's strict parser. */
#include "meta/learner_io.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "nn/safetensors.h"

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} s_str_t;

static void s_put(s_str_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_put(s_str_t *s, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            s->oom = 1;
            return;
        }
        if (s->p && s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = (s->cap + (size_t)n + 1) * 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
}

/* Our keys and values are spec strings and names: refuse anything that
 * would need JSON escaping rather than escape it. */
static int s_plain(const char *v)
{
    for (; *v; v++)
        if (*v == '"' || *v == '\\' || (unsigned char)*v < 0x20)
            return 0;
    return 1;
}

int mfl_learner_save(const mfl_learner_t *self, const float *state, const char *path,
                     const char *const *metadata, char *err, size_t errlen)
{
    const mfl_learner_config_t *c = mfl_learner_config(self);
    s_str_t h = {0};
    s_put(&h, "{");
    size_t off = 0, nt = mfl_learner_n_tensors(self);
    /* Tensors are written in state order, so data offsets follow the state. */
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *t = mfl_learner_tensor(self, i);
        s_put(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[", i ? "," : "", t->name);
        for (size_t d = 0; d < t->ndim; d++)
            s_put(&h, "%s%zu", d ? "," : "", t->shape[d]);
        s_put(&h, "],\"data_offsets\":[%zu,%zu]}", off * 4, (off + t->count) * 4);
        if (t->offset != off) {
            free(h.p);
            return mfl_errf(err, errlen, "%s: internal: tensor '%s' out of order", path,
                            t->name), -1;
        }
        off += t->count;
    }
    s_put(&h, ",\"__metadata__\":{\"spec\":\"%s\",\"algo\":\"%s\"", c->model_spec,
          mfl_algo_name(c->algo));
    if (c->algo == MFL_ALGO_RELATION && c->relation_spec[0])
        s_put(&h, ",\"relation\":\"%s\"", c->relation_spec);
    for (size_t i = 0; metadata && metadata[i] && metadata[i + 1]; i += 2) {
        if (!s_plain(metadata[i]) || !s_plain(metadata[i + 1])) {
            free(h.p);
            return mfl_errf(err, errlen, "%s: metadata '%s' needs JSON escaping", path,
                            metadata[i]), -1;
        }
        s_put(&h, ",\"%s\":\"%s\"", metadata[i], metadata[i + 1]);
    }
    s_put(&h, "}}");
    while (!h.oom && h.len % 8)
        s_put(&h, " ");
    if (h.oom) {
        free(h.p);
        return mfl_errf(err, errlen, "%s: out of memory", path), -1;
    }
    size_t n = mfl_learner_n_state(self), total = 8 + h.len + n * 4;
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(h.p);
        return mfl_errf(err, errlen, "%s: out of memory", path), -1;
    }
    uint64_t hl = h.len;
    for (int b = 0; b < 8; b++)
        buf[b] = (uint8_t)(hl >> (8 * b));
    memcpy(buf + 8, h.p, h.len);
    uint8_t *data = buf + 8 + h.len;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &state[i], 4);
        for (int b = 0; b < 4; b++)
            data[i * 4 + b] = (uint8_t)(u >> (8 * b));
    }
    free(h.p);
    int rc = mfl_file_write_atomic(path, buf, total, err, errlen);
    free(buf);
    return rc;
}

int mfl_learner_load(const mfl_learner_t *self, float *state, const char *path, char *err,
                     size_t errlen)
{
    const mfl_learner_config_t *c = mfl_learner_config(self);
    mfl_safetensors_t *st = mfl_safetensors_read(path, err, errlen);
    if (!st)
        return -1;
    int rc = -1;
    float *tmp = NULL;
    const char *spec = mfl_safetensors_metadata(st, "spec");
    if (spec && strcmp(spec, c->model_spec) != 0) {
        mfl_errf(err, errlen, "%s: saved for model '%s', the config says '%s'", path, spec,
                 c->model_spec);
        goto out;
    }
    if (mfl_safetensors_n_tensors(st) != mfl_learner_n_tensors(self)) {
        /* Parameters saved by another algorithm load as long as the tensors
         * match (e.g. a MAML init evaluated with Reptile's settings). */
        const char *algo = mfl_safetensors_metadata(st, "algo");
        mfl_errf(err, errlen, "%s: %zu tensors (saved by %s), %s needs %zu", path,
                 mfl_safetensors_n_tensors(st), algo ? algo : "unknown",
                 mfl_algo_name(c->algo), mfl_learner_n_tensors(self));
        goto out;
    }
    tmp = malloc(mfl_learner_n_state(self) * sizeof(float));
    if (!tmp) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < mfl_learner_n_tensors(self); i++) {
        const mfl_tensor_info_t *t = mfl_learner_tensor(self, i);
        const mfl_st_tensor_t *f = mfl_safetensors_find(st, t->name);
        if (!f) {
            mfl_errf(err, errlen, "%s: tensor '%s' missing", path, t->name);
            goto out;
        }
        int same = f->ndim == t->ndim;
        for (size_t d = 0; same && d < t->ndim; d++)
            same = f->shape[d] == t->shape[d];
        if (!same || f->count != t->count) {
            mfl_errf(err, errlen, "%s: tensor '%s' has the wrong shape", path, t->name);
            goto out;
        }
        mfl_safetensors_copy(st, f, tmp + t->offset);
    }
    memcpy(state, tmp, mfl_learner_n_state(self) * sizeof(float));
    rc = 0;
out:
    free(tmp);
    mfl_safetensors_destroy(&st);
    return rc;
}
