/* The round engine's side of chunked uploads (docs/WIRE.md "Chunked
 * uploads"): which sites are asked for chunks, the checks at the begin,
 * and taking a complete upload through a reader (the daemon's spool,
 * round/upload_spool.h) so the update is never held in memory. */
#include "round/round_engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fed/quant.h"

uint64_t mfl_engine_chunk_values(const mfl_round_engine_t *self, const mfl_engine_site_t *s)
{
    if (!self->config.chunked_upload_bytes || self->config.secagg_enabled)
        return 0;
    mfl_quant_kind_t k = (mfl_quant_kind_t)mfl_engine_site_encoding(self, s);
    if ((uint64_t)mfl_quant_bytes(k, self->n_state) <= self->config.chunked_upload_bytes)
        return 0;
    /* limits.upload_chunk_bytes of encoded bytes per chunk (1 MiB: 256 Ki
     * float32, 512 Ki fp16, 1 Mi int8 values) */
    return self->config.upload_chunk_bytes / (uint64_t)mfl_quant_bytes(k, 1);
}

int mfl_engine_read(void *engine, size_t offset, float *out, size_t n, char *err,
                    size_t errlen)
{
    mfl_round_engine_t *self = engine;
    return self->rd_fn(self->rd_ctx, offset, out, n, err, errlen);
}

int mfl_engine_read_scaled(void *engine, size_t offset, float *out, size_t n, char *err,
                           size_t errlen)
{
    mfl_round_engine_t *self = engine;
    if (self->rd_fn(self->rd_ctx, offset, out, n, err, errlen) < 0)
        return -1;
    /* as s_take scales a whole update: float(scale · double(x)) */
    for (size_t j = 0; j < n; j++)
        out[j] = (float)(self->rd_scale * (double)out[j]);
    return 0;
}

/* An update whose tensors arrived encoded and were left in their frames
 * (wire/message.h encoded_runs): read through this reader, block by block,
 * like a spooled one, so no float copy of Δ is ever made. */
typedef struct {
    const mfl_round_engine_t *engine;
    const mfl_tensor_t *tensors;
    size_t cursor; /* the tensor the last read ended in (reads go forward) */
} s_coded_t;

static int s_read_coded(void *ctx, size_t offset, float *out, size_t n, char *err,
                        size_t errlen)
{
    s_coded_t *c = ctx;
    const mfl_round_engine_t *self = c->engine;
    size_t i = c->cursor < self->n_tensors && offset >= self->tensor_offset[c->cursor]
                   ? c->cursor
                   : 0;
    while (n > 0) {
        while (i < self->n_tensors &&
               offset >= self->tensor_offset[i] + (size_t)self->views[i].count)
            i++;
        if (i == self->n_tensors) {
            mfl_errf(err, errlen, "values [%zu, +%zu) lie past the update's %zu", offset, n,
                     self->n_state);
            return -1;
        }
        const mfl_tensor_t *t = &c->tensors[i];
        size_t in = offset - self->tensor_offset[i];
        size_t m = (size_t)t->count - in < n ? (size_t)t->count - in : n;
        int rc = 0;
        if (t->data) /* decoded by the wire after all (frames that split a code) */
            memcpy(out, t->data + in, m * sizeof *out);
        else
            rc = mfl_quant_decode_view(t, in, m, out);
        if (rc < 0) {
            mfl_errf(err, errlen, "tensor '%s': cannot decode values [%zu, +%zu)", t->name, in,
                     m);
            return -1;
        }
        out += m;
        offset += m;
        n -= m;
        c->cursor = i;
    }
    return 0;
}

bool mfl_engine_coded(const mfl_tensor_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!t[i].data && t[i].pieces &&
            (t[i].encoding == MFL_QUANT_FP16 || t[i].encoding == MFL_QUANT_INT8))
            return true;
    return false;
}

int mfl_engine_update_coded(mfl_round_engine_t *self, const char *peer, bool granted,
                            const mfl_update_header_t *h, const mfl_tensor_t *tensors,
                            size_t n_tensors, const uint8_t *signed_header,
                            size_t signed_header_len, const uint8_t *signature,
                            size_t signature_len, uint64_t now_ms)
{
    float *buf = malloc(MFL_ENGINE_READ_BLOCK * sizeof(float));
    if (!buf) {
        mfl_engine_reject(self, peer, MFL_REJECT_TOO_LARGE, h ? h->round : 0,
                          "coordinator out of memory for an encoded update");
        return -1;
    }
    s_coded_t ctx = {self, tensors, 0};
    self->rd_fn = s_read_coded;
    self->rd_ctx = &ctx;
    self->rd_buf = buf;
    self->rd_scale = 1.0;
    int rc = mfl_engine_update(self, peer, granted, h, tensors, n_tensors, signed_header,
                               signed_header_len, signature, signature_len, now_ms);
    self->rd_fn = NULL;
    self->rd_ctx = NULL;
    self->rd_buf = NULL;
    free(buf);
    return rc;
}

const mfl_tensor_t *mfl_round_engine_layout(const mfl_round_engine_t *self, size_t *n_tensors)
{
    *n_tensors = self->n_tensors;
    return self->views;
}

/* As mfl_round_engine_update: a rejection writes its record, and the
 * site's slot frees whatever became of the upload. */
static void s_after(mfl_round_engine_t *self, const char *peer, int rc, uint64_t rejected_before,
                    const mfl_update_header_t *h, const uint8_t *signed_header,
                    size_t signed_len, const uint8_t *sig, size_t sig_len, bool release)
{
    if (rc < 0 && self->n_rejected_total != rejected_before)
        mfl_engine_audit_rejected(self, peer, h, signed_header, signed_len, sig, sig_len);
    if (release && self->gate && mfl_upload_gate_holds(self->gate, peer))
        mfl_engine_flow_release(self, peer);
}

static bool s_granted(const mfl_round_engine_t *self, const char *peer)
{
    bool small = (uint64_t)self->n_state * sizeof(float) <= self->small_upload_bytes;
    return !self->gate || small || mfl_upload_gate_holds(self->gate, peer);
}

int mfl_round_engine_update_begin(mfl_round_engine_t *self, const char *peer,
                                  const mfl_update_header_t *h, const uint8_t *signed_header,
                                  size_t signed_header_len, const uint8_t *signature,
                                  size_t signature_len, uint32_t *encoding,
                                  uint64_t *chunk_values, uint64_t now_ms)
{
    uint64_t before = self->n_rejected_total;
    mfl_engine_site_t *s = mfl_engine_update_admit(self, peer, s_granted(self, peer), h, now_ms);
    if (s && !h->chunk_values) {
        mfl_engine_reject(self, peer, MFL_REJECT_CHUNK, h->round,
                          "an UpdateBegin for an update not signed for chunks");
        s = NULL;
    }
    if (!s) {
        s_after(self, peer, -1, before, h, signed_header, signed_header_len, signature,
                signature_len, true);
        return -1;
    }
    *encoding = mfl_engine_site_encoding(self, s);
    *chunk_values = h->chunk_values;
    mfl_round_engine_upload_progress(self, peer, now_ms);
    return 0; /* the slot stays held until the last chunk or a failure */
}

int mfl_round_engine_update_read(mfl_round_engine_t *self, const char *peer,
                                 const mfl_update_header_t *h, mfl_engine_read_fn *read,
                                 void *ctx, const uint8_t *signed_header,
                                 size_t signed_header_len, const uint8_t *signature,
                                 size_t signature_len, uint64_t now_ms)
{
    uint64_t before = self->n_rejected_total;
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    mfl_tensor_t *views = calloc(self->n_tensors ? self->n_tensors : 1, sizeof *views);
    float *buf = malloc(MFL_ENGINE_READ_BLOCK * sizeof(float));
    int rc = -1;
    if (!views || !buf) {
        mfl_engine_reject(self, peer, MFL_REJECT_TOO_LARGE, h ? h->round : 0,
                          "coordinator out of memory for a chunked update");
    } else {
        /* the layout, in the encoding the chunks were checked to be in */
        uint32_t enc = s ? mfl_engine_site_encoding(self, s) : 0;
        for (size_t i = 0; i < self->n_tensors; i++) {
            views[i] = self->views[i];
            views[i].data = NULL;
            views[i].encoding = enc;
        }
        self->rd_fn = read;
        self->rd_ctx = ctx;
        self->rd_buf = buf;
        self->rd_scale = 1.0;
        rc = mfl_engine_update(self, peer, s_granted(self, peer), h, views, self->n_tensors,
                               signed_header, signed_header_len, signature, signature_len,
                               now_ms);
        self->rd_fn = NULL;
        self->rd_ctx = NULL;
        self->rd_buf = NULL;
    }
    free(buf);
    free(views);
    s_after(self, peer, rc, before, h, signed_header, signed_header_len, signature,
            signature_len, true);
    return rc;
}

void mfl_round_engine_update_refused(mfl_round_engine_t *self, const char *peer,
                                     const mfl_update_header_t *h, mfl_reject_t reason,
                                     const char *text, const uint8_t *signed_header,
                                     size_t signed_header_len, const uint8_t *signature,
                                     size_t signature_len)
{
    uint64_t before = self->n_rejected_total;
    mfl_engine_reject(self, peer, reason, h ? h->round : 0, "%s", text);
    s_after(self, peer, -1, before, h, signed_header, signed_header_len, signature,
            signature_len, true);
}
