/* Multipart message codec: envelope + raw float32 frames, validated on receive. */
#include "wire/message.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "wire/conn_guard.h"
#include "fed/quant.h"
#include "wire/msg_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "metafl's wire format is little-endian float32; big-endian hosts need a byte swap here"
#endif
_Static_assert(sizeof(float) == 4, "float must be IEEE-754 binary32");

#define S_NAME_MAX 255     /* a tensor name's bytes */
#define S_SCAN_CHUNK 65536 /* hash + finite check per cache-sized piece */

void mfl_wire_limits_default(mfl_wire_limits_t *limits)
{
    limits->max_envelope_bytes = 1u << 20;
    limits->max_frame_bytes = MFL_WIRE_CHUNK_BYTES;
    limits->max_total_bytes = (uint64_t)1 << 30;
    limits->max_frames = 1024;
    limits->max_tensors = 256;
    limits->chunk_bytes = MFL_WIRE_CHUNK_BYTES;
    limits->pieces = false;
    limits->encoded_runs = false;
}

/* sodium_init picks libsodium's fastest BLAKE2b for this CPU (AVX2 here);
 * without it the portable code runs. Idempotent and cheap after the first. */
static void s_sodium(void)
{
    if (sodium_init() < 0)
        MFL_ASSERT(!"libsodium failed to initialise");
}

void mfl_tensor_hash(const float *data, uint64_t count, uint8_t out[MFL_HASH_BYTES])
{
    s_sodium();
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    const unsigned char *p = (const unsigned char *)data;
    uint64_t left = count * 4;
    while (left > 0) { /* crypto_generichash_update takes unsigned long long; chunk anyway */
        uint64_t n = left > ((uint64_t)1 << 30) ? ((uint64_t)1 << 30) : left;
        crypto_generichash_update(&st, p, n);
        p += n;
        left -= n;
    }
    crypto_generichash_final(&st, out, MFL_HASH_BYTES);
}

uint64_t mfl_wire_now_ms(void) { return mfl_clock_wall_ms(); }

const char *mfl_reject_reason_name(int reason)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&metafl__reject_reason__descriptor, reason);
    return v ? v->name : "REJECT_UNKNOWN";
}

int mfl_wire_set_maxmsgsize(void *sock, const mfl_wire_limits_t *limits)
{
    size_t m = limits->max_frame_bytes > limits->max_envelope_bytes ? limits->max_frame_bytes
                                                                    : limits->max_envelope_bytes;
    int64_t v = (int64_t)m;
    return zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &v, sizeof v);
}

/* ---- send ---------------------------------------------------------------- */

/* One reference per zero-copy frame plus the sender's own; the last one out
 * calls the caller's release. */
typedef struct {
    atomic_size_t refs;
    mfl_release_fn *release;
    void *hint;
} s_ref_t;

static void s_ref_drop(s_ref_t *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1) {
        r->release(r->hint);
        free(r);
    }
}

static void s_frame_free(void *data, void *hint)
{
    (void)data;
    s_ref_drop(hint);
}

static void s_buf_free(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int s_send_part(void *sock, zmq_msg_t *m, int more, char *err, size_t errlen)
{
    int rc = -1;
    do
        rc = zmq_msg_send(m, sock, more ? ZMQ_SNDMORE : 0);
    while (rc < 0 && errno == EINTR);
    if (rc >= 0)
        return 0;
    int e = errno;
    zmq_msg_close(m);
    if (e == EAGAIN)
        mfl_errf(err, errlen, "send timed out (peer not connected or not reading)");
    else if (e == EHOSTUNREACH)
        mfl_errf(err, errlen, "send failed: the peer's connection is gone");
    else
        mfl_errf(err, errlen, "send failed: %s", zmq_strerror(e));
    return -1;
}

static uint64_t s_frames_for(uint64_t bytes, size_t chunk)
{
    return bytes == 0 ? 1 : (bytes + chunk - 1) / chunk;
}

/* Bytes a tensor travels as: 4·count for float32, fewer when encoded; 0
 * for an unknown encoding (refused). */
static uint64_t s_wire_bytes(uint32_t encoding, uint64_t count)
{
    switch (encoding) {
    case MFL_QUANT_FP32: return 4 * count;
    case MFL_QUANT_FP16: return 2 * count;
    case MFL_QUANT_INT8: return count;
    case MFL_WIRE_ENCODING_U64: return 8 * count;
    case MFL_WIRE_ENCODING_U32: return 4 * count;
    }
    return 0;
}

/* The frame size to send with: limits->chunk_bytes (a multiple of 4),
 * doubled until the message fits the frame count a peer with the same
 * limits accepts (small frames must not make a big message too many). */
static size_t s_send_chunk(const mfl_wire_limits_t *limits, const mfl_tensor_t *tensors,
                           size_t n_tensors)
{
    size_t chunk = limits->chunk_bytes & ~(size_t)3;
    if (chunk == 0)
        chunk = MFL_WIRE_CHUNK_BYTES;
    for (;;) {
        uint64_t frames = 1;
        for (size_t i = 0; i < n_tensors; i++)
            frames += s_frames_for(s_wire_bytes(tensors[i].encoding, tensors[i].count), chunk);
        if (frames <= limits->max_frames || chunk >= limits->max_frame_bytes / 2)
            break;
        chunk *= 2;
    }
    return chunk;
}

/* TensorHeaders th[i] (pointers in thp) for the tensors: name, shape,
 * frames of `chunk` bytes, BLAKE2b (the caller's if it has one, else
 * computed into hashes). A tensor the wire cannot describe (more than
 * MFL_TENSOR_MAX_DIMS dimensions) is refused: 0 or -1 with err. */
static int s_tensor_headers(const mfl_tensor_t *tensors, size_t n_tensors, size_t chunk,
                            Metafl__TensorHeader *th, Metafl__TensorHeader **thp,
                            uint8_t *hashes, char *err, size_t errlen)
{
    for (size_t i = 0; i < n_tensors; i++) {
        const mfl_tensor_t *t = &tensors[i];
        if (t->ndim > MFL_TENSOR_MAX_DIMS) {
            mfl_errf(err, errlen, "tensor '%s': %zu dimensions (max %d)", t->name ? t->name : "",
                     t->ndim, MFL_TENSOR_MAX_DIMS);
            return -1;
        }
        if (t->encoding > MFL_WIRE_ENCODING_U32 ||
            (t->encoding == MFL_QUANT_INT8 && !isfinite(t->scale))) {
            mfl_errf(err, errlen, "tensor '%s': unknown encoding %u or bad scale",
                     t->name ? t->name : "", t->encoding);
            return -1;
        }
        metafl__tensor_header__init(&th[i]);
        th[i].name = (char *)(t->name ? t->name : "");
        th[i].n_shape = t->ndim;
        th[i].shape = (uint64_t *)t->shape;
        uint64_t wire_bytes = s_wire_bytes(t->encoding, t->count);
        th[i].n_frames = (uint32_t)s_frames_for(wire_bytes, chunk);
        th[i].encoding = t->encoding;
        th[i].scale = t->encoding == MFL_QUANT_INT8 ? t->scale : 0;
        uint8_t *h = hashes + i * MFL_HASH_BYTES;
        if (t->blake2b) {
            memcpy(h, t->blake2b, MFL_HASH_BYTES);
        } else if (t->encoding == MFL_QUANT_FP32) {
            mfl_tensor_hash(t->data, t->count, h);
        } else {
            s_sodium();
            crypto_generichash(h, MFL_HASH_BYTES, (const unsigned char *)t->data, wire_bytes,
                               NULL, 0);
        }
        th[i].blake2b.data = h;
        th[i].blake2b.len = MFL_HASH_BYTES;
        thp[i] = &th[i];
    }
    return 0;
}

/* The tensors' bytes in th[i].n_frames frames of at most `chunk` each,
 * the last one ending the multipart. With `ref` the frames point into the
 * caller's memory (each holds a reference, dropped by ZeroMQ when sent);
 * without, they are copies. 0 or -1 with err (a dead socket). */
static int s_send_tensor_frames(void *socket, const mfl_tensor_t *tensors, size_t n_tensors,
                                const Metafl__TensorHeader *th, size_t chunk, s_ref_t *ref,
                                char *err, size_t errlen)
{
    zmq_msg_t m;
    for (size_t i = 0; i < n_tensors; i++) {
        const char *p = (const char *)tensors[i].data;
        uint64_t left = s_wire_bytes(tensors[i].encoding, tensors[i].count);
        for (uint32_t f = 0; f < th[i].n_frames; f++) {
            size_t n = left > chunk ? chunk : (size_t)left;
            int more = !(i + 1 == n_tensors && f + 1 == th[i].n_frames);
            if (ref) {
                atomic_fetch_add(&ref->refs, 1);
                zmq_msg_init_data(&m, (void *)p, n, s_frame_free, ref);
            } else {
                zmq_msg_init_size(&m, n);
                if (n)
                    memcpy(zmq_msg_data(&m), p, n);
            }
            /* ZeroMQ admits the rest of a multipart once its first part
             * went, so a failure here is a dead socket, not back-pressure. */
            if (s_send_part(socket, &m, more, err, errlen) != 0)
                return -1;
            p += n;
            left -= n;
        }
    }
    return 0;
}

int mfl_msg_send(void *socket, const void *routing_id, size_t routing_id_len,
                 const Metafl__Envelope *env, const mfl_tensor_t *tensors, size_t n_tensors,
                 const mfl_wire_limits_t *limits, mfl_release_fn *release, void *hint,
                 char *err, size_t errlen)
{
    mfl_wire_limits_t def;
    if (!limits) {
        mfl_wire_limits_default(&def);
        limits = &def;
    }
    size_t chunk = s_send_chunk(limits, tensors, n_tensors);
    int rc = -1;
    s_ref_t *ref = NULL;
    Metafl__TensorHeader *th = calloc(n_tensors ? n_tensors : 1, sizeof *th);
    Metafl__TensorHeader **thp = calloc(n_tensors ? n_tensors : 1, sizeof *thp);
    uint8_t *hashes = malloc((n_tensors ? n_tensors : 1) * MFL_HASH_BYTES);
    uint8_t *packed = NULL;
    if (!th || !thp || !hashes) {
        mfl_errf(err, errlen, "out of memory");
        goto out_free;
    }
    if (s_tensor_headers(tensors, n_tensors, chunk, th, thp, hashes, err, errlen) != 0)
        goto out_free;
    Metafl__Envelope e = *env;
    /* 0 (an envelope fresh from METAFL__ENVELOPE__INIT) means this build's
     * version; another value is kept (a version refusal goes out as
     * version 1, see mfl_msg_send_reject). */
    if (e.protocol_version == 0)
        e.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    e.n_tensors = n_tensors;
    e.tensors = thp;
    size_t plen = metafl__envelope__get_packed_size(&e);
    packed = malloc(plen ? plen : 1);
    if (!packed) {
        mfl_errf(err, errlen, "out of memory");
        goto out_free;
    }
    metafl__envelope__pack(&e, packed);

    zmq_msg_t m;
    if (routing_id) {
        zmq_msg_init_size(&m, routing_id_len);
        memcpy(zmq_msg_data(&m), routing_id, routing_id_len);
        if (s_send_part(socket, &m, 1, err, errlen) != 0)
            goto out_free;
    }
    if (zmq_msg_init_data(&m, packed, plen, s_buf_free, NULL) != 0) {
        mfl_errf(err, errlen, "out of memory");
        goto out_free;
    }
    packed = NULL; /* owned by the message now */
    if (s_send_part(socket, &m, n_tensors > 0, err, errlen) != 0)
        goto out_free;
    if (release) {
        ref = malloc(sizeof *ref);
        if (!ref) {
            mfl_errf(err, errlen, "out of memory");
            goto out_free;
        }
        atomic_init(&ref->refs, 1);
        ref->release = release;
        ref->hint = hint;
    }
    if (s_send_tensor_frames(socket, tensors, n_tensors, th, chunk, ref, err, errlen) != 0)
        goto out_free;
    rc = 0;
out_free:
    if (ref)
        s_ref_drop(ref);
    else if (release && rc != 0)
        release(hint); /* never reached the zero-copy stage: release now */
    free(packed);
    free(hashes);
    free(thp);
    free(th);
    return rc;
}

int mfl_msg_send_reject(void *sock, const void *rid, size_t rid_len, int reason, uint32_t round,
                        const char *text, const mfl_wire_limits_t *limits, char *err,
                        size_t errlen)
{
    Metafl__Reject rj = METAFL__REJECT__INIT;
    rj.reason = (Metafl__RejectReason)reason;
    rj.round = round;
    rj.text = (char *)(text ? text : "");
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__REJECT;
    env.body_case = METAFL__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    /* A Reject's layout is the same in every version, and every version
     * reads a Reject of version 1: so a peer turned away for its version
     * can read why (an old site stops with the reason instead of retrying
     * forever on a message it cannot decode). */
    if (reason == METAFL__REJECT_REASON__REJECT_VERSION)
        env.protocol_version = MFL_WIRE_OLDEST_REJECT_VERSION;
    return mfl_msg_send(sock, rid, rid_len, &env, NULL, 0, limits, NULL, NULL, err, errlen);
}

/* ---- receive ------------------------------------------------------------- */

void mfl_msg_release_tensors(mfl_msg_t *self)
{
    if (!self)
        return;
    for (size_t i = 1; i < self->n_frames; i++) { /* frame 0 is the envelope */
        zmq_msg_close(&self->frames[i]);
        zmq_msg_init(&self->frames[i]);
    }
    for (size_t i = 0; i < self->n_tensors; i++) {
        if (self->copies) {
            free(self->copies[i]);
            self->copies[i] = NULL;
        }
        self->tensors[i].data = NULL;
        self->tensors[i].pieces = NULL;
        self->tensors[i].n_pieces = 0;
    }
}

void mfl_msg_destroy(mfl_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_msg_t *self = *self_p;
    if (self->env)
        metafl__envelope__free_unpacked(self->env, NULL);
    if (self->update_header)
        metafl__update_header__free_unpacked(self->update_header, NULL);
    for (size_t i = 0; i < self->n_frames; i++)
        zmq_msg_close(&self->frames[i]);
    if (self->copies)
        for (size_t i = 0; i < self->n_tensors; i++)
            free(self->copies[i]);
    free(self->copies);
    free(self->pieces);
    free(self->frames);
    free(self->tensors);
    free(self->hashes);
    free(self);
    *self_p = NULL;
}

static mfl_msg_t *s_reject(mfl_msg_t *self, int *reason, int why, char *err, size_t errlen,
                           const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static mfl_msg_t *s_reject(mfl_msg_t *self, int *reason, int why, char *err, size_t errlen,
                           const char *fmt, ...)
{
    if (reason)
        *reason = why;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    mfl_msg_destroy(&self);
    return NULL;
}

/* 1 if any of n floats (given as bits) is NaN or ±Inf. */
static int s_nonfinite(const uint32_t *u, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
    return bad != 0;
}

/* Sets *reason and err for a refused message; returns -1. */
static int s_refuse(int *reason, int why, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int s_refuse(int *reason, int why, char *err, size_t errlen, const char *fmt, ...)
{
    if (reason)
        *reason = why;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Frame count and sizes against the limits, before anything is parsed. */
static int s_check_frames(const mfl_msg_t *self, const mfl_wire_limits_t *limits, int *reason,
                          char *err, size_t errlen)
{
    const int R_LARGE = METAFL__REJECT_REASON__REJECT_TOO_LARGE;
    size_t n = self->n_frames;
    if (n == 0)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_BAD_MESSAGE, err, errlen,
                        "empty message");
    if (n > limits->max_frames)
        return s_refuse(reason, R_LARGE, err, errlen, "%zu frames (limit %zu)", n,
                        limits->max_frames);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sz = zmq_msg_size(&self->frames[i]);
        size_t cap = i == 0 ? limits->max_envelope_bytes : limits->max_frame_bytes;
        if (sz > cap)
            return s_refuse(reason, R_LARGE, err, errlen, "frame %zu is %zu bytes (limit %zu)",
                            i, sz, cap);
        total += sz;
    }
    if (total > limits->max_total_bytes)
        return s_refuse(reason, R_LARGE, err, errlen, "message is %llu bytes (limit %llu)",
                        (unsigned long long)total, (unsigned long long)limits->max_total_bytes);
    return 0;
}

/* Frame 0: decodes, then version, kind against body, tensor count. */
static int s_decode_envelope(mfl_msg_t *self, const mfl_wire_limits_t *limits, int *reason,
                             char *err, size_t errlen)
{
    const int R_BAD = METAFL__REJECT_REASON__REJECT_BAD_MESSAGE;
    zmq_msg_t *f0 = &self->frames[0];
    self->env = metafl__envelope__unpack(NULL, zmq_msg_size(f0), zmq_msg_data(f0));
    if (!self->env)
        return s_refuse(reason, R_BAD, err, errlen, "envelope does not decode");
    const Metafl__Envelope *env = self->env;
    bool old_reject = env->kind == METAFL__MESSAGE_KIND__REJECT &&
                      env->protocol_version >= MFL_WIRE_OLDEST_REJECT_VERSION &&
                      env->protocol_version < MFL_WIRE_PROTOCOL_VERSION;
    if (env->protocol_version != MFL_WIRE_PROTOCOL_VERSION && !old_reject)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_VERSION, err, errlen,
                        "protocol version %u (this build speaks %d)", env->protocol_version,
                        MFL_WIRE_PROTOCOL_VERSION);
    /* body field = kind + 9 for kinds 1-12, kind + 8 for secure
     * aggregation's 20-27 (proto/metafl.proto) */
    bool plain_kind = env->kind >= METAFL__MESSAGE_KIND__HELLO &&
                      env->kind <= METAFL__MESSAGE_KIND__SITE_FAILURE &&
                      (int)env->body_case == (int)env->kind + 9;
    bool secagg_kind = env->kind >= METAFL__MESSAGE_KIND__SECAGG_KEYS &&
                       env->kind <= METAFL__MESSAGE_KIND__SECAGG_END &&
                       (int)env->body_case == (int)env->kind + 8;
    /* kind + 10 for chunked uploads' 44-45 */
    bool chunk_kind = env->kind >= METAFL__MESSAGE_KIND__UPDATE_BEGIN &&
                      env->kind <= METAFL__MESSAGE_KIND__UPDATE_CHUNK &&
                      (int)env->body_case == (int)env->kind + 10;
    if (!plain_kind && !secagg_kind && !chunk_kind)
        return s_refuse(reason, R_BAD, err, errlen,
                        "message kind %d does not match its body (%d)", (int)env->kind,
                        (int)env->body_case);
    if (env->n_tensors > limits->max_tensors)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_TOO_LARGE, err, errlen,
                        "%zu tensors (limit %zu)", env->n_tensors, limits->max_tensors);
    return 0;
}

/* Tensor i's header against the frames from `next`: name, dimensions,
 * shape product, hash length, frame count and bytes; fills the view's
 * name, shape and count (data comes later). */
static int s_check_tensor_header(mfl_msg_t *self, size_t i, size_t next, int *reason, char *err,
                                 size_t errlen)
{
    const int R_SHAPE = METAFL__REJECT_REASON__REJECT_SHAPE;
    const int R_BAD = METAFL__REJECT_REASON__REJECT_BAD_MESSAGE;
    const Metafl__TensorHeader *h = self->env->tensors[i];
    size_t n = self->n_frames;
    const char *name = h->name ? h->name : "";
    if (strlen(name) > S_NAME_MAX)
        return s_refuse(reason, R_BAD, err, errlen, "tensor %zu: name too long", i);
    if (h->n_shape > MFL_TENSOR_MAX_DIMS)
        return s_refuse(reason, R_SHAPE, err, errlen, "tensor '%s': %zu dimensions (max %d)",
                        name, h->n_shape, MFL_TENSOR_MAX_DIMS);
    uint64_t count = 1;
    for (size_t d = 0; d < h->n_shape; d++) {
        if (h->shape[d] != 0 && count > UINT64_MAX / 4 / h->shape[d])
            return s_refuse(reason, R_SHAPE, err, errlen,
                            "tensor '%s': shape product overflows", name);
        count *= h->shape[d];
    }
    if (h->blake2b.len != MFL_HASH_BYTES)
        return s_refuse(reason, R_BAD, err, errlen, "tensor '%s': hash is %zu bytes, not %d",
                        name, h->blake2b.len, MFL_HASH_BYTES);
    if (h->n_frames == 0 || h->n_frames > n - next)
        return s_refuse(reason, R_SHAPE, err, errlen, "tensor '%s': %u frames but %zu remain",
                        name, h->n_frames, n - next);
    if (h->encoding > MFL_WIRE_ENCODING_U32)
        return s_refuse(reason, R_BAD, err, errlen, "tensor '%s': unknown encoding %u", name,
                        h->encoding);
    /* Words only in a masked input, and a masked input only as words: a
     * uint64 or uint32 tensor must never reach code that reads floats. */
    bool words = h->encoding == MFL_WIRE_ENCODING_U64 || h->encoding == MFL_WIRE_ENCODING_U32;
    bool masked = self->env->kind == METAFL__MESSAGE_KIND__SECAGG_MASKED;
    if (words && count > UINT64_MAX / 8)
        return s_refuse(reason, R_SHAPE, err, errlen, "tensor '%s': shape product overflows",
                        name);
    if (words != masked || (masked && self->env->n_tensors != 1))
        return s_refuse(reason, R_BAD, err, errlen,
                        "tensor '%s': %s in a message of kind %d (uint64 words travel only "
                        "as a masked input's one tensor)",
                        name, words ? "uint64 words" : "float values", (int)self->env->kind);
    if (h->encoding == MFL_QUANT_INT8 && !(isfinite(h->scale) && h->scale >= 0))
        return s_refuse(reason, R_BAD, err, errlen, "tensor '%s': int8 scale %g", name,
                        (double)h->scale);
    uint64_t bytes = 0;
    for (size_t f = next; f < next + h->n_frames; f++)
        bytes += zmq_msg_size(&self->frames[f]);
    if (bytes != s_wire_bytes(h->encoding, count))
        return s_refuse(reason, R_SHAPE, err, errlen, "tensor '%s': %llu bytes for %llu values (%s)",
                        name, (unsigned long long)bytes, (unsigned long long)count,
                        h->encoding == MFL_WIRE_ENCODING_U64   ? "uint64"
                        : h->encoding == MFL_WIRE_ENCODING_U32 ? "uint32"
                                                               : mfl_quant_name((mfl_quant_kind_t)h->encoding));
    mfl_tensor_t *t = &self->tensors[i];
    t->name = name;
    t->ndim = h->n_shape;
    for (size_t d = 0; d < h->n_shape; d++)
        t->shape[d] = h->shape[d];
    t->count = count;
    return 0;
}

/* Every tensor header, and that they account for every frame. */
static int s_check_tensor_headers(mfl_msg_t *self, int *reason, char *err, size_t errlen)
{
    size_t next = 1;
    for (size_t i = 0; i < self->n_tensors; i++) {
        if (s_check_tensor_header(self, i, next, reason, err, errlen) < 0)
            return -1;
        next += self->env->tensors[i]->n_frames;
    }
    if (next != self->n_frames)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_SHAPE, err, errlen,
                        "%zu frames after the envelope, tensors describe %zu",
                        self->n_frames - 1, next - 1);
    return 0;
}

/* 1 if the codes of an fp16 / int8 tensor in frames [0, n) decode to
 * finite floats: exactly when mfl_quant_decode's output would be finite. */
static int s_codes_finite(zmq_msg_t *frames, size_t n, uint32_t encoding, float scale)
{
    if (encoding == MFL_QUANT_INT8) {
        if (!isfinite(scale))
            return 0;
        if (isfinite(128.0f * scale)) /* every code in [−128, 127] then is */
            return 1;
        for (size_t f = 0; f < n; f++) {
            const int8_t *c = zmq_msg_data(&frames[f]);
            for (size_t j = 0; j < zmq_msg_size(&frames[f]); j++)
                if (!isfinite((float)c[j] * scale))
                    return 0;
        }
        return 1;
    }
    uint32_t special = 0; /* fp16: an all-ones exponent is ±Inf or NaN */
    for (size_t f = 0; f < n; f++) {
        const uint16_t *h = zmq_msg_data(&frames[f]);
        size_t m = zmq_msg_size(&frames[f]) / 2;
        for (size_t j = 0; j < m; j++)
            special |= (h[j] & 0x7c00u) == 0x7c00u;
    }
    return !special;
}

/* An encoded tensor of an Update or a RoundTask (a compressed broadcast's
 * difference) left in its frames (limits->encoded_runs):
 * hashed where it lies, checked finite on its codes, and described as runs
 * of codes. Returns 1 when so left, 0 when it cannot be (a frame splits a
 * code or is misaligned for one: the caller decodes as before), -1 after
 * s_refuse. */
static int s_keep_encoded(mfl_msg_t *self, size_t i, size_t next, const Metafl__TensorHeader *h,
                          const mfl_wire_limits_t *limits, int *reason, char *err,
                          size_t errlen)
{
    mfl_tensor_t *t = &self->tensors[i];
    zmq_msg_t *frames = self->frames + next;
    size_t cb = mfl_quant_bytes((mfl_quant_kind_t)h->encoding, 1);
    if (!limits->pieces || !limits->encoded_runs || !self->pieces || !cb ||
        (self->env->body_case != METAFL__ENVELOPE__BODY_UPDATE &&
         self->env->body_case != METAFL__ENVELOPE__BODY_ROUND_TASK))
        return 0;
    for (uint32_t f = 0; f < h->n_frames; f++)
        if (zmq_msg_size(&frames[f]) % cb != 0 || (uintptr_t)zmq_msg_data(&frames[f]) % cb != 0)
            return 0;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    for (uint32_t f = 0; f < h->n_frames; f++)
        crypto_generichash_update(&st, zmq_msg_data(&frames[f]), zmq_msg_size(&frames[f]));
    uint8_t *hash = self->hashes + i * MFL_HASH_BYTES;
    crypto_generichash_final(&st, hash, MFL_HASH_BYTES);
    if (sodium_memcmp(hash, h->blake2b.data, MFL_HASH_BYTES) != 0)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_HASH, err, errlen,
                        "tensor '%s': BLAKE2b of the data does not match its header", t->name);
    if (!s_codes_finite(frames, h->n_frames, h->encoding, h->scale))
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_NONFINITE, err, errlen,
                        "tensor '%s': contains NaN or Inf (%s)", t->name,
                        mfl_quant_name((mfl_quant_kind_t)h->encoding));
    mfl_tensor_piece_t *runs = self->pieces + (next - 1);
    for (uint32_t f = 0; f < h->n_frames; f++)
        runs[f] = (mfl_tensor_piece_t){(const float *)zmq_msg_data(&frames[f]),
                                       zmq_msg_size(&frames[f]) / cb};
    t->data = NULL;
    t->pieces = runs;
    t->n_pieces = h->n_frames;
    t->blake2b = hash;
    t->encoding = h->encoding;
    t->scale = h->encoding == MFL_QUANT_INT8 ? h->scale : 0;
    return 1;
}

/* An encoded tensor (fp16 / int8): gathers its bytes from the frames while
 * hashing them, checks the hash (the bytes as sent, what the site signed),
 * then decodes into a float32 copy owned by the message, which must be
 * finite. 0, or -1 after s_refuse. */
static int s_decode_encoded(mfl_msg_t *self, size_t i, const Metafl__TensorHeader *h,
                            zmq_msg_t *frames, int *reason, char *err, size_t errlen)
{
    mfl_tensor_t *t = &self->tensors[i];
    uint64_t bytes = s_wire_bytes(h->encoding, t->count);
    unsigned char *enc = malloc(bytes ? bytes : 1);
    float *dst = malloc(t->count ? t->count * 4 : 1);
    if (!enc || !dst) {
        free(enc);
        free(dst);
        s_refuse(reason, METAFL__REJECT_REASON__REJECT_TOO_LARGE, err, errlen,
                 "tensor '%s': out of memory", t->name);
        return -1;
    }
    self->copies[i] = dst;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    size_t at = 0;
    for (uint32_t f = 0; f < h->n_frames; f++) {
        size_t sz = zmq_msg_size(&frames[f]);
        memcpy(enc + at, zmq_msg_data(&frames[f]), sz);
        crypto_generichash_update(&st, enc + at, sz);
        at += sz;
    }
    uint8_t *hash = self->hashes + i * MFL_HASH_BYTES;
    crypto_generichash_final(&st, hash, MFL_HASH_BYTES);
    int rc = -1;
    if (sodium_memcmp(hash, h->blake2b.data, MFL_HASH_BYTES) != 0) {
        s_refuse(reason, METAFL__REJECT_REASON__REJECT_HASH, err, errlen,
                 "tensor '%s': BLAKE2b of the data does not match its header", t->name);
    } else if (mfl_quant_decode((mfl_quant_kind_t)h->encoding, enc, t->count, h->scale, dst) <
                   0 ||
               s_nonfinite((const uint32_t *)(const void *)dst, t->count)) {
        s_refuse(reason, METAFL__REJECT_REASON__REJECT_NONFINITE, err, errlen,
                 "tensor '%s': contains NaN or Inf (%s)", t->name,
                 mfl_quant_name((mfl_quant_kind_t)h->encoding));
    } else {
        t->data = dst;
        t->blake2b = hash;
        t->encoding = h->encoding;
        t->scale = h->encoding == MFL_QUANT_INT8 ? h->scale : 0;
        rc = 0;
    }
    free(enc);
    return rc;
}

/* 1 if frames [0, n) hold whole `wb`-byte words at `wb`-aligned
 * addresses, so no word straddles two frames. */
static int s_frames_are_word_runs(zmq_msg_t *frames, size_t n, size_t wb)
{
    for (size_t f = 0; f < n; f++)
        if (zmq_msg_size(&frames[f]) % wb != 0 || (uintptr_t)zmq_msg_data(&frames[f]) % wb != 0)
            return 0;
    return 1;
}

/* A uint64 or uint32 tensor: hashes its bytes and checks the hash. Left in
 * its frames when the receiver asked for runs (limits->pieces: the
 * coordinator folds masked words from them) and every frame holds whole
 * aligned words; else gathered into one aligned copy owned by the message
 * while hashing. No finiteness check (masked words are uniform bits).
 * Returns 1 (left in the frames: keep them), 0 (copied: the frames can
 * go), or -1 after s_refuse. */
static int s_read_words(mfl_msg_t *self, size_t i, size_t next, const Metafl__TensorHeader *h,
                        const mfl_wire_limits_t *limits, int *reason, char *err, size_t errlen)
{
    mfl_tensor_t *t = &self->tensors[i];
    zmq_msg_t *frames = self->frames + next;
    const size_t wb = h->encoding == MFL_WIRE_ENCODING_U32 ? 4 : 8;
    const int in_place = limits->pieces && h->n_frames > 1 && self->pieces &&
                         s_frames_are_word_runs(frames, h->n_frames, wb);
    uint64_t *dst = NULL;
    if (!in_place) {
        dst = malloc(t->count ? t->count * wb : 8);
        if (!dst)
            return s_refuse(reason, METAFL__REJECT_REASON__REJECT_TOO_LARGE, err, errlen,
                            "tensor '%s': out of memory", t->name);
        self->copies[i] = (float *)(void *)dst;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    size_t at = 0;
    for (uint32_t f = 0; f < h->n_frames; f++) {
        size_t sz = zmq_msg_size(&frames[f]);
        const unsigned char *src = zmq_msg_data(&frames[f]);
        if (dst) {
            memcpy((unsigned char *)dst + at, src, sz);
            src = (const unsigned char *)dst + at;
        }
        crypto_generichash_update(&st, src, sz);
        at += sz;
    }
    uint8_t *hash = self->hashes + i * MFL_HASH_BYTES;
    crypto_generichash_final(&st, hash, MFL_HASH_BYTES);
    if (sodium_memcmp(hash, h->blake2b.data, MFL_HASH_BYTES) != 0)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_HASH, err, errlen,
                        "tensor '%s': BLAKE2b of the data does not match its header", t->name);
    if (in_place) { /* runs of words, counted in words (mfl_msg_word_runs) */
        mfl_tensor_piece_t *runs = self->pieces + (next - 1);
        for (size_t f = 0; f < h->n_frames; f++)
            runs[f] = (mfl_tensor_piece_t){zmq_msg_data(&frames[f]), zmq_msg_size(&frames[f]) / wb};
        t->data = NULL;
        t->pieces = runs;
        t->n_pieces = h->n_frames;
    } else {
        t->data = (const float *)(const void *)dst;
    }
    t->blake2b = hash;
    t->encoding = h->encoding;
    return in_place;
}

/* Tensor i's data in frames [next, next + n_frames): one pass per
 * cache-sized piece computing the hash and finiteness (copied first into
 * one aligned buffer when it spans frames or is misaligned), then the hash
 * checked against the header. On success the view's data and blake2b are
 * set and a copy's frames are released. */
/* 1 if frames [next, next + n) can be read in place as float runs: each
 * a whole number of floats at an aligned address (what a sender chunking
 * at multiples of 4 bytes produces), so no float straddles two frames. */
static int s_frames_are_runs(zmq_msg_t *frames, size_t n)
{
    for (size_t f = 0; f < n; f++)
        if (zmq_msg_size(&frames[f]) % sizeof(float) != 0 ||
            (uintptr_t)zmq_msg_data(&frames[f]) % _Alignof(float) != 0)
            return 0;
    return 1;
}

static int s_read_tensor(mfl_msg_t *self, size_t i, size_t next, const mfl_wire_limits_t *limits,
                         int *reason, char *err, size_t errlen)
{
    const Metafl__TensorHeader *h = self->env->tensors[i];
    mfl_tensor_t *t = &self->tensors[i];
    zmq_msg_t *owned = self->frames;
    if (h->encoding != MFL_QUANT_FP32) {
        int rc = h->encoding == MFL_WIRE_ENCODING_U64 || h->encoding == MFL_WIRE_ENCODING_U32
                     ? s_read_words(self, i, next, h, limits, reason, err, errlen)
                     : s_keep_encoded(self, i, next, h, limits, reason, err, errlen);
        if (rc == 0 && h->encoding != MFL_WIRE_ENCODING_U64 &&
            h->encoding != MFL_WIRE_ENCODING_U32)
            rc = s_decode_encoded(self, i, h, owned + next, reason, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return 0; /* words left in their frames */
        for (size_t f = next; f < next + h->n_frames; f++) { /* decoded: frames not needed */
            zmq_msg_close(&owned[f]);
            zmq_msg_init(&owned[f]);
        }
        return 0;
    }
    void *first = zmq_msg_data(&owned[next]);
    float *dst = NULL;
    /* Left in its frames (the receiver folds from the runs): the pieces
     * array has a slot per data frame, this tensor's at its frames' index. */
    int in_place = limits->pieces && h->n_frames > 1 && self->pieces &&
                   s_frames_are_runs(owned + next, h->n_frames);
    if (!in_place && (h->n_frames > 1 || ((uintptr_t)first % _Alignof(float)) != 0)) {
        dst = malloc(t->count ? t->count * 4 : 1);
        if (!dst)
            return s_refuse(reason, METAFL__REJECT_REASON__REJECT_TOO_LARGE, err, errlen,
                            "tensor '%s': out of memory", t->name);
        self->copies[i] = dst;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    int bad = 0, skipped = 0;
    size_t at = 0;
    for (size_t f = next; f < next + h->n_frames; f++) {
        const unsigned char *p = zmq_msg_data(&owned[f]);
        size_t sz = zmq_msg_size(&owned[f]);
        for (size_t off = 0; off < sz; off += S_SCAN_CHUNK) {
            size_t len = sz - off < S_SCAN_CHUNK ? sz - off : S_SCAN_CHUNK;
            const unsigned char *src = p + off;
            if (dst) { /* copy first: the checks then read aligned memory */
                memcpy((unsigned char *)dst + at, src, len);
                src = (const unsigned char *)dst + at;
            }
            crypto_generichash_update(&st, src, len);
            if (at % 4 == 0 && len % 4 == 0)
                bad |= s_nonfinite((const uint32_t *)(const void *)src, len / 4);
            else
                skipped = 1; /* a frame boundary split a float: rescan below */
            at += len;
        }
    }
    uint8_t *hash = self->hashes + i * MFL_HASH_BYTES;
    crypto_generichash_final(&st, hash, MFL_HASH_BYTES);
    if (sodium_memcmp(hash, h->blake2b.data, MFL_HASH_BYTES) != 0)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_HASH, err, errlen,
                        "tensor '%s': BLAKE2b of the data does not match its header", t->name);
    if (in_place) {
        mfl_tensor_piece_t *runs = self->pieces + (next - 1);
        for (size_t f = 0; f < h->n_frames; f++)
            runs[f] = (mfl_tensor_piece_t){zmq_msg_data(&owned[next + f]),
                                           zmq_msg_size(&owned[next + f]) / sizeof(float)};
        t->data = NULL;
        t->pieces = runs;
        t->n_pieces = h->n_frames;
    } else {
        t->data = dst ? dst : (const float *)first;
    }
    if (!bad && skipped) /* only without runs: those never split a float */
        bad = s_nonfinite((const uint32_t *)(const void *)t->data, t->count);
    if (bad)
        return s_refuse(reason, METAFL__REJECT_REASON__REJECT_NONFINITE, err, errlen,
                        "tensor '%s': contains NaN or Inf", t->name);
    t->blake2b = hash;
    if (dst) /* the copy is the data now: give the frames' memory back */
        for (size_t f = next; f < next + h->n_frames; f++) {
            zmq_msg_close(&owned[f]);
            zmq_msg_init(&owned[f]);
        }
    return 0;
}

mfl_msg_t *mfl_msg_decode(zmq_msg_t *frames, size_t n, const mfl_wire_limits_t *limits,
                          int *reason, char *err, size_t errlen)
{
    const int R_LARGE = METAFL__REJECT_REASON__REJECT_TOO_LARGE;
    mfl_wire_limits_t def;
    if (!limits) {
        mfl_wire_limits_default(&def);
        limits = &def;
    }
    s_sodium();
    mfl_msg_t *self = calloc(1, sizeof *self);
    zmq_msg_t *owned = calloc(n ? n : 1, sizeof *owned);
    if (!self || !owned) {
        free(self);
        free(owned);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        return s_reject(NULL, reason, R_LARGE, err, errlen, "out of memory");
    }
    /* Take every frame first, so each exit path frees them exactly once. */
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&owned[i]);
        zmq_msg_move(&owned[i], &frames[i]);
    }
    self->frames = owned;
    self->n_frames = n;
    if (s_check_frames(self, limits, reason, err, errlen) < 0 ||
        s_decode_envelope(self, limits, reason, err, errlen) < 0)
        goto out_refused;
    size_t nt = self->env->n_tensors;
    self->tensors = calloc(nt ? nt : 1, sizeof *self->tensors);
    self->copies = calloc(nt ? nt : 1, sizeof *self->copies);
    self->hashes = malloc((nt ? nt : 1) * MFL_HASH_BYTES);
    if (limits->pieces && n > 2)
        self->pieces = malloc((n - 1) * sizeof *self->pieces);
    if (!self->tensors || !self->copies || !self->hashes ||
        (limits->pieces && n > 2 && !self->pieces))
        return s_reject(self, reason, R_LARGE, err, errlen, "out of memory");
    self->n_tensors = nt;
    /* Shapes and frame accounting before touching any data. */
    if (s_check_tensor_headers(self, reason, err, errlen) < 0)
        goto out_refused;
    size_t next = 1;
    for (size_t i = 0; i < nt; i++) {
        if (s_read_tensor(self, i, next, limits, reason, err, errlen) < 0)
            goto out_refused;
        next += self->env->tensors[i]->n_frames;
    }
    return self;
out_refused:
    mfl_msg_destroy(&self);
    return NULL;
}

static _Thread_local mfl_msg_source_t s_source = {-1, 0};

mfl_msg_source_t mfl_msg_last_source(void) { return s_source; }

int mfl_msg_recv_frames(void *sock, int router, const mfl_wire_limits_t *limits,
                        zmq_msg_t **out, size_t *n_out, uint8_t *rid, size_t *rid_len,
                        char *site, int *reason, char *err, size_t errlen)
{
    s_source = (mfl_msg_source_t){-1, 0};
    *out = NULL;
    *n_out = 0;
    *rid_len = 0;
    site[0] = '\0';
    size_t cap = 8, n = 0;
    zmq_msg_t *frames = malloc(cap * sizeof *frames);
    if (!frames) {
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    int first = 1, over = 0, more = 1;
    uint64_t total = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = -1;
        do /* a signal must not cut a multipart message in two */
            rc = zmq_msg_recv(&m, sock, first ? ZMQ_DONTWAIT : 0);
        while (rc < 0 && errno == EINTR && !first);
        if (rc < 0) {
            int e = errno;
            zmq_msg_close(&m);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&frames[i]);
            free(frames);
            if (first && (e == EAGAIN || e == EINTR))
                return 0;
            mfl_errf(err, errlen, "receive failed: %s", zmq_strerror(e));
            return -1;
        }
        more = zmq_msg_more(&m);
        if (!(first && router) && !site[0]) {
            /* Metadata rides on the peer's frames, not on the routing id
             * frame the ROUTER made up. */
            const char *uid = zmq_msg_gets(&m, "User-Id");
            if (uid && strlen(uid) <= MFL_KEY_NAME_MAX)
                snprintf(site, MFL_KEY_NAME_MAX + 1, "%s", uid);
        }
        if (first && router) {
            size_t sz = zmq_msg_size(&m);
            if (sz <= 256) {
                memcpy(rid, zmq_msg_data(&m), sz);
                *rid_len = sz;
            }
            zmq_msg_close(&m);
            first = 0;
            continue;
        }
        first = 0;
        if (s_source.fd < 0)
            s_source.fd = zmq_msg_get(&m, ZMQ_SRCFD);
        s_source.wire_bytes += mfl_conn_guard_wire_bytes(zmq_msg_size(&m));
        total += zmq_msg_size(&m);
        if (over || n >= limits->max_frames || total > limits->max_total_bytes) {
            /* Keep reading to stay in step with the multipart boundary, but
             * hold nothing more: the message is rejected anyway. */
            over = 1;
            zmq_msg_close(&m);
            continue;
        }
        if (n == cap) {
            zmq_msg_t *g = realloc(frames, 2 * cap * sizeof *frames);
            if (!g) {
                over = 1;
                zmq_msg_close(&m);
                continue;
            }
            frames = g;
            cap *= 2;
        }
        zmq_msg_init(&frames[n]);
        zmq_msg_move(&frames[n], &m);
        zmq_msg_close(&m);
        n++;
    }
    if (over) {
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        free(frames);
        if (reason)
            *reason = METAFL__REJECT_REASON__REJECT_TOO_LARGE;
        mfl_errf(err, errlen, "message over the limits (%llu bytes seen; limit %llu bytes, %zu frames)",
                 (unsigned long long)total, (unsigned long long)limits->max_total_bytes,
                 limits->max_frames);
        return 1;
    }
    *out = frames;
    *n_out = n;
    return 1;
}

mfl_msg_t *mfl_msg_decode_from(zmq_msg_t *frames, size_t n, const mfl_wire_limits_t *limits,
                               const uint8_t *rid, size_t rid_len, const char *site,
                               int *reason, char *err, size_t errlen)
{
    mfl_msg_t *m = mfl_msg_decode(frames, n, limits, reason, err, errlen);
    free(frames);
    if (m) {
        memcpy(m->routing_id, rid, rid_len);
        m->routing_id_len = rid_len;
        snprintf(m->site, sizeof m->site, "%s", site);
    }
    return m;
}

int mfl_msg_recv_raw(void *sock, int router, const mfl_wire_limits_t *limits, mfl_msg_t **out,
                     uint8_t *rid, size_t *rid_len, char *site, int *reason, char *err,
                     size_t errlen)
{
    zmq_msg_t *frames = NULL;
    size_t n = 0;
    *out = NULL;
    int rc = mfl_msg_recv_frames(sock, router, limits, &frames, &n, rid, rid_len, site, reason,
                                 err, errlen);
    if (rc == 1 && frames)
        *out = mfl_msg_decode_from(frames, n, limits, rid, *rid_len, site, reason, err, errlen);
    return rc;
}

const Metafl__Envelope *mfl_msg_envelope(const mfl_msg_t *self) { return self->env; }
Metafl__MessageKind mfl_msg_kind(const mfl_msg_t *self) { return self->env->kind; }
size_t mfl_msg_tensor_count(const mfl_msg_t *self) { return self->n_tensors; }
const mfl_tensor_t *mfl_msg_tensor(const mfl_msg_t *self, size_t i)
{
    return i < self->n_tensors ? &self->tensors[i] : NULL;
}
const uint64_t *mfl_msg_words(const mfl_msg_t *self, size_t i, uint64_t *count)
{
    if (i >= self->n_tensors || self->tensors[i].encoding != MFL_WIRE_ENCODING_U64)
        return NULL;
    *count = self->tensors[i].count;
    return (const uint64_t *)(const void *)self->tensors[i].data;
}
const uint32_t *mfl_msg_words32(const mfl_msg_t *self, size_t i, uint64_t *count)
{
    if (i >= self->n_tensors || self->tensors[i].encoding != MFL_WIRE_ENCODING_U32)
        return NULL;
    *count = self->tensors[i].count;
    return (const uint32_t *)(const void *)self->tensors[i].data;
}
const mfl_tensor_piece_t *mfl_msg_word_runs(const mfl_msg_t *self, size_t i,
                                            mfl_tensor_piece_t *one, size_t *n_runs,
                                            unsigned *word_bits, uint64_t *count)
{
    if (i >= self->n_tensors)
        return NULL;
    const mfl_tensor_t *t = &self->tensors[i];
    if (t->encoding != MFL_WIRE_ENCODING_U64 && t->encoding != MFL_WIRE_ENCODING_U32)
        return NULL;
    if (!t->data && !t->pieces)
        return NULL; /* released */
    *word_bits = t->encoding == MFL_WIRE_ENCODING_U32 ? 32 : 64;
    *count = t->count;
    if (t->pieces) {
        *n_runs = t->n_pieces;
        return t->pieces;
    }
    *one = (mfl_tensor_piece_t){t->data, t->count};
    *n_runs = 1;
    return one;
}
const char *mfl_msg_site(const mfl_msg_t *self) { return self->site; }
const uint8_t *mfl_msg_routing_id(const mfl_msg_t *self, size_t *len)
{
    *len = self->routing_id_len;
    return self->routing_id;
}
const Metafl__UpdateHeader *mfl_msg_update_header(const mfl_msg_t *self)
{
    return self->update_header;
}
