/* Fuzzes the frame validator. The first byte picks a mode:
 *   bit 1 set: raw — the rest is frames, each a 2-byte little-endian length
 *     and its bytes; frame 0 is taken as the envelope as-is;
 *   otherwise: structured — the harness builds a valid envelope whose tensor
 *     headers (count, dims, frames per tensor) come from the input, then data
 *     frames from the input, with the hash computed correctly when bit 0 is
 *     set (so the shape, NaN/Inf and reassembly paths are reachable) or taken
 *     from the input otherwise; bits 2-3 are every tensor's encoding (0
 *     float32, 1 fp16, 2 int8 with a scale byte per tensor, /16 or NaN at
 *     255; 3 unknown), so the encoded-update decoder is reachable too.
 * Bit 4 (either mode) decodes with limits.pieces, as the coordinator does:
 * tensors over several frames then stay in them as runs. Bit 5
 * (structured): a masked input instead (SECAGG_MASKED, one tensor of
 * uint64 words, uint32 with bit 6), so the word reader is reachable, in
 * place (whole aligned words a frame, with pieces) or gathered. Bit 7
 * (structured, not masked): the message is an Update decoded with
 * limits.pieces and limits.encoded_runs, as the coordinator does: fp16 /
 * int8 tensors stay encoded in their frames, and every value
 * mfl_quant_decode_view gives of them must be finite. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fed/quant.h"
#include "wire/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define F_MAX_FRAMES 24

typedef struct {
    const uint8_t *p;
    size_t left;
} rd_t;

static unsigned s_u8(rd_t *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

static size_t s_take(rd_t *r, size_t want, const uint8_t **out)
{
    size_t n = want < r->left ? want : r->left;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return n;
}

static void s_decode(zmq_msg_t *f, size_t n, int pieces, int runs)
{
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.pieces = pieces != 0 || runs != 0;
    lim.encoded_runs = runs != 0;
    lim.max_frames = 20;
    lim.max_total_bytes = 1 << 16;
    lim.max_frame_bytes = 1 << 14;
    lim.max_tensors = 6;
    int reason = 0;
    char err[256];
    mfl_msg_t *m = mfl_msg_decode(f, n, &lim, &reason, err, sizeof err);
    if (m) {
        /* Touch every byte the validator vouched for. */
        volatile float sink = 0;
        for (size_t i = 0; i < mfl_msg_tensor_count(m); i++) {
            const mfl_tensor_t *t = mfl_msg_tensor(m, i);
            mfl_tensor_piece_t one;
            size_t nr;
            unsigned bits;
            uint64_t words;
            const mfl_tensor_piece_t *w = mfl_msg_word_runs(m, i, &one, &nr, &bits, &words);
            if (w) { /* every byte of every run of words */
                volatile uint8_t wsink = 0;
                uint64_t total = 0;
                for (size_t j = 0; j < nr; total += w[j].count, j++) {
                    const uint8_t *b = (const uint8_t *)(const void *)w[j].data;
                    if ((uintptr_t)b % (bits / 8))
                        __builtin_trap(); /* runs are aligned words */
                    for (uint64_t k = 0; k < w[j].count * (bits / 8); k++)
                        wsink ^= b[k];
                }
                (void)wsink;
                if (total != words || words != t->count)
                    __builtin_trap();
                continue;
            }
            if (!t->data && t->pieces && t->encoding != 0) { /* codes left in place */
                float v[64];
                for (uint64_t at = 0; at < t->count; at += 64) {
                    size_t k = t->count - at < 64 ? (size_t)(t->count - at) : 64;
                    if (mfl_quant_decode_view(t, at, k, v) < 0)
                        __builtin_trap(); /* the runs must cover the tensor */
                    for (size_t j = 0; j < k; j++)
                        if (!isfinite(v[j]))
                            __builtin_trap(); /* vouched finite */
                }
                continue;
            }
            const mfl_tensor_piece_t *r = mfl_tensor_pieces(t, &one, &nr);
            uint64_t total = 0;
            for (size_t j = 0; j < nr; total += r[j].count, j++)
                for (uint64_t k = 0; k < r[j].count; k++)
                    sink += r[j].data[k];
            if (total != t->count)
                __builtin_trap(); /* the runs must cover the tensor exactly */
        }
        (void)sink;
        mfl_msg_destroy(&m);
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd_t r = {data, size};
    unsigned mode = s_u8(&r);
    zmq_msg_t f[F_MAX_FRAMES];
    size_t n = 0;
    const uint8_t *p;
    if (mode & 2) {
        while (r.left && n < F_MAX_FRAMES) {
            size_t len = s_u8(&r);
            len |= (size_t)s_u8(&r) << 8;
            len = s_take(&r, len, &p);
            zmq_msg_init_size(&f[n], len);
            if (len)
                memcpy(zmq_msg_data(&f[n]), p, len);
            n++;
        }
        s_decode(f, n, mode & 16, 0);
        return 0;
    }
    const int masked = (mode & 32) != 0;
    size_t nt = masked ? 1 : s_u8(&r) % 5;
    Metafl__TensorHeader th[4], *thp[4];
    uint64_t shapes[4][10];
    uint8_t hashes[4][32];
    size_t frames_of[4];
    size_t total_frames = 0;
    for (size_t i = 0; i < nt; i++) {
        metafl__tensor_header__init(&th[i]);
        th[i].name = (char *)"t";
        th[i].n_shape = s_u8(&r) % 10;
        for (size_t d = 0; d < th[i].n_shape; d++) {
            unsigned b = s_u8(&r);
            shapes[i][d] = (b & 0x80) ? ((uint64_t)1 << (b & 63)) : b; /* huge dims too */
        }
        th[i].shape = shapes[i];
        frames_of[i] = s_u8(&r) % 5;
        th[i].n_frames = (uint32_t)frames_of[i];
        th[i].encoding = masked ? ((mode & 64) ? MFL_WIRE_ENCODING_U32 : MFL_WIRE_ENCODING_U64)
                                : (mode >> 2) & 3;
        if (th[i].encoding == 2) {
            unsigned b = s_u8(&r);
            th[i].scale = b == 255 ? NAN : (float)b / 16.0f;
        }
        th[i].blake2b.data = hashes[i];
        th[i].blake2b.len = 32;
        if (!(mode & 1)) {
            memset(hashes[i], 0, 32);
            s_take(&r, 32, &p);
        }
        thp[i] = &th[i];
        total_frames += frames_of[i];
    }
    if (total_frames + 1 > F_MAX_FRAMES)
        return 0;
    /* Data frames first (their bytes fix the hashes), envelope last. */
    n = 1;
    for (size_t i = 0; i < nt; i++) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, 32);
        for (size_t k = 0; k < frames_of[i]; k++) {
            size_t len = s_u8(&r);
            len |= (size_t)(s_u8(&r) & 0x0f) << 8;
            len = s_take(&r, len, &p);
            zmq_msg_init_size(&f[n], len);
            if (len)
                memcpy(zmq_msg_data(&f[n]), p, len);
            crypto_generichash_update(&st, p, len);
            n++;
        }
        if (mode & 1)
            crypto_generichash_final(&st, hashes[i], 32);
    }
    Metafl__Heartbeat hb = METAFL__HEARTBEAT__INIT;
    Metafl__Update upd = METAFL__UPDATE__INIT;
    Metafl__SecAggMasked mk = METAFL__SEC_AGG_MASKED__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    if (masked) {
        env.kind = METAFL__MESSAGE_KIND__SECAGG_MASKED;
        env.body_case = METAFL__ENVELOPE__BODY_SECAGG_MASKED;
        env.secagg_masked = &mk;
    } else if (mode & 128) {
        env.kind = METAFL__MESSAGE_KIND__UPDATE;
        env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
        env.update = &upd;
    } else {
        env.kind = METAFL__MESSAGE_KIND__HEARTBEAT;
        env.body_case = METAFL__ENVELOPE__BODY_HEARTBEAT;
        env.heartbeat = &hb;
    }
    env.n_tensors = nt;
    env.tensors = thp;
    size_t plen = metafl__envelope__get_packed_size(&env);
    zmq_msg_init_size(&f[0], plen);
    metafl__envelope__pack(&env, zmq_msg_data(&f[0]));
    s_decode(f, n, mode & 16, !masked && (mode & 128));
    return 0;
}
