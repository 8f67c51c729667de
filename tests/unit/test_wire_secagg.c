/* Secure aggregation on the wire without a network: every message kind
 * through mfl_msg_send / mfl_msg_decode and the codec comes back equal;
 * masked words travel as uint64 (NaN bit patterns included) and only in a
 * masked input; every size the codec checks is refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "wire/message.h"
#include "wire/secagg_codec.h"
#include "wire/task_codec.h"

typedef struct {
    void *ctx, *a, *b;
} pair_t;

static void s_pair(pair_t *p)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://secagg-wire-%d", n++);
    p->ctx = zmq_ctx_new();
    p->a = zmq_socket(p->ctx, ZMQ_PAIR);
    p->b = zmq_socket(p->ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(p->a, ep), 0);
    assert_int_equal(zmq_connect(p->b, ep), 0);
}

static void s_unpair(pair_t *p)
{
    zmq_close(p->a);
    zmq_close(p->b);
    zmq_ctx_term(p->ctx);
}

/* Receives one message from p->b and decodes it; NULL + *reason if refused. */
static mfl_msg_t *s_recv(pair_t *p, int *reason, char *err, size_t errlen)
{
    zmq_msg_t f[64];
    size_t n = 0;
    int more = 1;
    while (more) {
        assert_true(n < 64);
        zmq_msg_init(&f[n]);
        assert_true(zmq_msg_recv(&f[n], p->b, 0) >= 0);
        more = zmq_msg_more(&f[n]);
        n++;
    }
    mfl_msg_t *m = mfl_msg_decode(f, n, NULL, reason, err, errlen);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return m;
}

/* Sends `in` (with `words` as the one tensor when given) and decodes it
 * back into *out through the codec; returns the codec's result. */
static int s_roundtrip(const mfl_secagg_wire_t *in, const uint64_t *words, uint64_t n_words,
                       mfl_secagg_wire_t *out, mfl_reject_t *why)
{
    pair_t p;
    s_pair(&p);
    mfl_secagg_env_t *e = calloc(1, sizeof *e);
    char err[256] = "";
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    mfl_tensor_t t = mfl_tensor_vec("masked", (const float *)(const void *)words, n_words);
    t.encoding = MFL_WIRE_ENCODING_U64;
    assert_int_equal(mfl_msg_send(p.a, NULL, 0, &e->env, words ? &t : NULL, words ? 1 : 0, NULL,
                                  NULL, NULL, err, sizeof err),
                     0);
    int reason = 0;
    mfl_msg_t *m = s_recv(&p, &reason, err, sizeof err);
    if (!m)
        fail_msg("decode: %s", err);
    int rc = mfl_secagg_wire_from_envelope(mfl_msg_envelope(m), out, why, err, sizeof err);
    if (words && rc == 0) {
        uint64_t count = 0;
        const uint64_t *got = mfl_msg_words(m, 0, &count);
        assert_non_null(got);
        assert_int_equal(count, n_words);
        assert_memory_equal(got, words, n_words * 8);
        assert_null(mfl_msg_words(m, 1, &count));
    }
    mfl_msg_destroy(&m);
    free(e);
    s_unpair(&p);
    return rc;
}

static void s_fill(mfl_secagg_wire_t *m, mfl_msg_kind_t kind)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->round = 7;
    for (int i = 0; i < MFL_SECAGG_NONCE_BYTES; i++)
        m->nonce[i] = (uint8_t)(0xa0 + i);
}

static void test_every_kind_roundtrips(void **state)
{
    (void)state;
    mfl_secagg_wire_t *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
    mfl_reject_t why = MFL_REJECT_UNSPECIFIED;

    s_fill(in, MFL_MSG_SECAGG_KEYS);
    in->n_adverts = MFL_SECAGG_MAX_SITES; /* the cap itself passes */
    for (size_t i = 0; i < in->n_adverts; i++) {
        in->adverts[i].index = (uint32_t)i + 1;
        randombytes_buf(in->adverts[i].c_pk, 32);
        randombytes_buf(in->adverts[i].s_pk, 32);
        randombytes_buf(in->adverts[i].seed_commit, 32);
        randombytes_buf(in->adverts[i].sig, 64);
    }
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_SHARES);
    in->n_boxes = 4;
    for (size_t i = 0; i < 4; i++) {
        in->boxes[i].from = 2;
        in->boxes[i].to = (uint32_t)i + 3;
        randombytes_buf(in->boxes[i].box, MFL_SECAGG_BOX_BYTES);
    }
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_SURVIVORS);
    in->n_survivors = 3;
    in->survivors[0] = 1, in->survivors[1] = 4, in->survivors[2] = 5;
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_SIGNOFF);
    in->n_signoffs = 1;
    in->signoffs[0].index = 4;
    randombytes_buf(in->signoffs[0].sig, 64);
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_UNMASK);
    in->n_survivors = 3;
    in->survivors[0] = 1, in->survivors[1] = 4, in->survivors[2] = 5;
    in->n_signoffs = 3;
    for (size_t i = 0; i < 3; i++) {
        in->signoffs[i].index = in->survivors[i];
        randombytes_buf(in->signoffs[i].sig, 64);
    }
    in->n_dropped = 2;
    in->dropped[0] = 2, in->dropped[1] = 3;
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_REVEALS);
    in->n_reveals = 3;
    for (size_t i = 0; i < 3; i++) {
        in->reveals[i].peer = (uint32_t)i + 1;
        in->reveals[i].kind = i == 1 ? MFL_SECAGG_SHARE_KEY : MFL_SECAGG_SHARE_SEED;
        randombytes_buf(in->reveals[i].share, MFL_SECAGG_SHARE_BYTES);
    }
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);

    s_fill(in, MFL_MSG_SECAGG_END);
    in->abandoned = true;
    snprintf(in->reason, sizeof in->reason, "2 of 5 sites sent masked input (threshold 3)");
    assert_int_equal(s_roundtrip(in, NULL, 0, out, &why), 0);
    assert_memory_equal(in, out, sizeof *in);
    free(in);
    free(out);
}

/* Masked words are bits: a NaN pattern (as float32 halves) travels
 * unchanged, split across frames, and comes back 8-byte aligned. */
static void test_masked_words_travel_as_uint64(void **state)
{
    (void)state;
    mfl_secagg_wire_t *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
    s_fill(in, MFL_MSG_SECAGG_MASKED);
    enum { N = 100001 };
    uint64_t *w = malloc(N * 8);
    randombytes_buf(w, N * 8);
    w[0] = 0x7fc000007f800000ULL; /* NaN and +Inf as float32 */
    w[N - 1] = UINT64_MAX;
    mfl_reject_t why = MFL_REJECT_UNSPECIFIED;
    assert_int_equal(s_roundtrip(in, w, N, out, &why), 0);
    assert_int_equal(out->kind, MFL_MSG_SECAGG_MASKED);
    assert_int_equal(out->round, 7);
    assert_memory_equal(out->nonce, in->nonce, MFL_SECAGG_NONCE_BYTES);

    /* multi-frame: 1 KiB frames */
    pair_t p;
    s_pair(&p);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 1020; /* not a multiple of 8: words split across frames */
    mfl_secagg_env_t *e = calloc(1, sizeof *e);
    char err[256] = "";
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    mfl_tensor_t t = mfl_tensor_vec("masked", (const float *)(const void *)w, 1000);
    t.encoding = MFL_WIRE_ENCODING_U64;
    assert_int_equal(mfl_msg_send(p.a, NULL, 0, &e->env, &t, 1, &lim, NULL, NULL, err,
                                  sizeof err),
                     0);
    int reason = 0;
    mfl_msg_t *m = s_recv(&p, &reason, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    uint64_t count = 0;
    const uint64_t *got = mfl_msg_words(m, 0, &count);
    assert_int_equal(count, 1000);
    assert_int_equal((uintptr_t)got % 8, 0);
    assert_memory_equal(got, w, 8000);
    uint8_t h[32];
    crypto_generichash(h, 32, (const unsigned char *)w, 8000, NULL, 0);
    assert_memory_equal(mfl_msg_tensor(m, 0)->blake2b, h, 32);
    mfl_msg_destroy(&m);
    s_unpair(&p);
    free(e);
    free(w);
    free(in);
    free(out);
}

/* Sends env with one tensor (encoding `enc`, `count` elements of `data`)
 * and returns the wire's reject reason (0 if it decoded). */
static int s_wire_reason(Metafl__Envelope *env, uint32_t enc, const void *data, uint64_t count)
{
    pair_t p;
    s_pair(&p);
    mfl_tensor_t t = mfl_tensor_vec("x", data, count);
    t.encoding = enc;
    char err[256] = "";
    assert_int_equal(mfl_msg_send(p.a, NULL, 0, env, data ? &t : NULL, data ? 1 : 0, NULL, NULL,
                                  NULL, err, sizeof err),
                     0);
    int reason = 0;
    mfl_msg_t *m = s_recv(&p, &reason, err, sizeof err);
    s_unpair(&p);
    if (m) {
        mfl_msg_destroy(&m);
        return 0;
    }
    assert_true(strlen(err) > 0);
    return reason;
}

/* 32-bit masked words (docs/SECAGG.md "Word width"): 4 bytes a word on
 * the wire, split across frames at any byte, read back aligned with their
 * verified hash, and only as a masked input's one tensor. */
static void test_u32_words_travel_as_4_bytes(void **state)
{
    (void)state;
    enum { W = 1001 };
    uint32_t *w = malloc(W * sizeof *w);
    for (uint32_t j = 0; j < W; j++)
        w[j] = j * 2654435761u;
    pair_t p;
    s_pair(&p);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 1022; /* not a multiple of 4: words split across frames */
    Metafl__SecAggMasked mk = METAFL__SEC_AGG_MASKED__INIT;
    uint8_t nonce[16] = {0};
    mk.nonce.data = nonce;
    mk.nonce.len = 16;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__SECAGG_MASKED;
    env.body_case = METAFL__ENVELOPE__BODY_SECAGG_MASKED;
    env.secagg_masked = &mk;
    mfl_tensor_t t = mfl_tensor_vec("masked", (const float *)(const void *)w, W);
    t.encoding = MFL_WIRE_ENCODING_U32;
    char err[256] = "";
    assert_int_equal(mfl_msg_send(p.a, NULL, 0, &env, &t, 1, &lim, NULL, NULL, err, sizeof err),
                     0);
    int reason = 0;
    mfl_msg_t *m = s_recv(&p, &reason, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    uint64_t count = 0;
    assert_null(mfl_msg_words(m, 0, &count)); /* not 64-bit words */
    const uint32_t *got = mfl_msg_words32(m, 0, &count);
    assert_non_null(got);
    assert_int_equal(count, W);
    assert_int_equal((uintptr_t)got % 4, 0);
    assert_memory_equal(got, w, W * 4);
    uint8_t h[32];
    crypto_generichash(h, 32, (const unsigned char *)w, W * 4, NULL, 0);
    assert_memory_equal(mfl_msg_tensor(m, 0)->blake2b, h, 32);
    mfl_secagg_wire_t *out = calloc(1, sizeof *out);
    mfl_reject_t why = MFL_REJECT_UNSPECIFIED;
    assert_int_equal(mfl_secagg_wire_from_envelope(mfl_msg_envelope(m), out, &why, err,
                                                   sizeof err), 0);
    mfl_msg_destroy(&m);
    s_unpair(&p);
    /* uint32 words in a Heartbeat: refused */
    Metafl__Heartbeat hb = METAFL__HEARTBEAT__INIT;
    Metafl__Envelope henv = METAFL__ENVELOPE__INIT;
    henv.kind = METAFL__MESSAGE_KIND__HEARTBEAT;
    henv.body_case = METAFL__ENVELOPE__BODY_HEARTBEAT;
    henv.heartbeat = &hb;
    assert_int_equal(s_wire_reason(&henv, MFL_WIRE_ENCODING_U32, w, 4),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    free(out);
    free(w);
}

/* A receiver that asked for pieces (the coordinator) gets masked words
 * left in the frames they came in when each frame holds whole aligned
 * words: runs in order, counted in words, their concatenation the words
 * sent, the hash verified; no one buffer (mfl_msg_words NULL). Frames that
 * split a word (1020-byte frames of 64-bit words; senders cut frames at
 * multiples of 4 bytes) are gathered into one run. Both widths. */
static void test_masked_words_stay_in_their_frames(void **state)
{
    (void)state;
    enum { W = 3001 };
    uint64_t *w = malloc(W * sizeof *w);
    for (uint32_t j = 0; j < W; j++)
        w[j] = j * 0x9e3779b97f4a7c15ull;
    for (unsigned bits = 32; bits <= 64; bits += 32) {
        const size_t wb = bits / 8;
        const size_t chunks[] = {4096, 1020};
        for (size_t c = 0; c < 2; c++) {
            pair_t p;
            s_pair(&p);
            mfl_wire_limits_t lim;
            mfl_wire_limits_default(&lim);
            lim.chunk_bytes = chunks[c];
            Metafl__SecAggMasked mk = METAFL__SEC_AGG_MASKED__INIT;
            uint8_t nonce[16] = {0};
            mk.nonce.data = nonce;
            mk.nonce.len = 16;
            Metafl__Envelope env = METAFL__ENVELOPE__INIT;
            env.kind = METAFL__MESSAGE_KIND__SECAGG_MASKED;
            env.body_case = METAFL__ENVELOPE__BODY_SECAGG_MASKED;
            env.secagg_masked = &mk;
            mfl_tensor_t t = mfl_tensor_vec("masked", (const float *)(const void *)w, W);
            t.encoding = bits == 32 ? MFL_WIRE_ENCODING_U32 : MFL_WIRE_ENCODING_U64;
            char err[256] = "";
            assert_int_equal(
                mfl_msg_send(p.a, NULL, 0, &env, &t, 1, &lim, NULL, NULL, err, sizeof err), 0);
            zmq_msg_t f[64];
            size_t n = 0;
            for (int more = 1; more; n++) {
                assert_true(n < 64);
                zmq_msg_init(&f[n]);
                assert_true(zmq_msg_recv(&f[n], p.b, 0) >= 0);
                more = zmq_msg_more(&f[n]);
            }
            mfl_wire_limits_t rl;
            mfl_wire_limits_default(&rl);
            rl.pieces = true;
            int reason = 0;
            mfl_msg_t *m = mfl_msg_decode(f, n, &rl, &reason, err, sizeof err);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (!m)
                fail_msg("%s", err);
            mfl_tensor_piece_t one;
            size_t n_runs = 0;
            unsigned got_bits = 0;
            uint64_t count = 0;
            const mfl_tensor_piece_t *runs =
                mfl_msg_word_runs(m, 0, &one, &n_runs, &got_bits, &count);
            assert_non_null(runs);
            assert_int_equal(got_bits, bits);
            assert_int_equal(count, W);
            if (chunks[c] % wb == 0) { /* whole words a frame: left in them */
                assert_int_equal(n_runs, (W * wb + chunks[c] - 1) / chunks[c]);
                assert_null(bits == 32 ? (const void *)mfl_msg_words32(m, 0, &count)
                                       : (const void *)mfl_msg_words(m, 0, &count));
            } else { /* a word split between frames: gathered */
                assert_int_equal(n_runs, 1);
                assert_ptr_equal(runs, &one);
            }
            size_t at = 0;
            for (size_t r = 0; r < n_runs; r++) {
                assert_int_equal((uintptr_t)runs[r].data % wb, 0);
                assert_memory_equal(runs[r].data, (const uint8_t *)w + at, runs[r].count * wb);
                at += runs[r].count * wb;
            }
            assert_int_equal(at, W * wb);
            uint8_t h[32];
            crypto_generichash(h, 32, (const unsigned char *)w, W * wb, NULL, 0);
            assert_memory_equal(mfl_msg_tensor(m, 0)->blake2b, h, 32);
            mfl_tensor_piece_t none;
            assert_null(mfl_msg_word_runs(m, 1, &none, &n_runs, &got_bits, &count));
            mfl_msg_destroy(&m);
            s_unpair(&p);
        }
    }
    free(w);
}

static void test_words_only_in_a_masked_input(void **state)
{
    (void)state;
    uint64_t w[4] = {1, 2, 3, 0x7ff0000000000000ULL};
    float f[8] = {0};
    /* uint64 words in a Heartbeat: refused */
    Metafl__Heartbeat hb = METAFL__HEARTBEAT__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__HEARTBEAT;
    env.body_case = METAFL__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    assert_int_equal(s_wire_reason(&env, MFL_WIRE_ENCODING_U64, w, 4),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    assert_int_equal(s_wire_reason(&env, 0, f, 8), 0); /* floats there: fine */
    /* a masked input of floats: refused; of words: decodes */
    Metafl__SecAggMasked mk = METAFL__SEC_AGG_MASKED__INIT;
    uint8_t nonce[16] = {0};
    mk.nonce.data = nonce;
    mk.nonce.len = 16;
    env.kind = METAFL__MESSAGE_KIND__SECAGG_MASKED;
    env.body_case = METAFL__ENVELOPE__BODY_SECAGG_MASKED;
    env.secagg_masked = &mk;
    assert_int_equal(s_wire_reason(&env, 0, f, 8), METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    assert_int_equal(s_wire_reason(&env, MFL_WIRE_ENCODING_U64, w, 4), 0);
    /* kind and body must agree (body = kind + 8 here) */
    env.kind = METAFL__MESSAGE_KIND__SECAGG_KEYS;
    assert_int_equal(s_wire_reason(&env, MFL_WIRE_ENCODING_U64, w, 4),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    /* a masked input without its tensor decodes on the wire but not in the codec */
    env.kind = METAFL__MESSAGE_KIND__SECAGG_MASKED;
    mfl_secagg_wire_t *out = calloc(1, sizeof *out);
    mfl_reject_t why = MFL_REJECT_UNSPECIFIED;
    char err[200] = "";
    assert_int_equal(mfl_secagg_wire_from_envelope(&env, out, &why, err, sizeof err), -1);
    assert_int_equal(why, MFL_REJECT_BAD_MESSAGE);
    assert_non_null(strstr(err, "uint64"));
    free(out);
}

/* Each size the codec checks, on a decoded envelope. */
static void test_codec_refuses_bad_sizes(void **state)
{
    (void)state;
    mfl_secagg_wire_t *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
    mfl_secagg_env_t *e = calloc(1, sizeof *e);
    char err[200];
    mfl_reject_t why;
#define S_REFUSED(needle)                                                                   \
    do {                                                                                    \
        why = MFL_REJECT_UNSPECIFIED;                                                       \
        err[0] = 0;                                                                         \
        assert_int_equal(mfl_secagg_wire_from_envelope(&e->env, out, &why, err, sizeof err), \
                         -1);                                                               \
        assert_int_equal(why, MFL_REJECT_BAD_MESSAGE);                                      \
        if (!strstr(err, needle))                                                           \
            fail_msg("expected '%s' in '%s'", needle, err);                                 \
    } while (0)

    s_fill(in, MFL_MSG_SECAGG_KEYS);
    in->n_adverts = 1;
    in->adverts[0].index = 1;
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    assert_int_equal(mfl_secagg_wire_from_envelope(&e->env, out, &why, err, sizeof err), 0);
    e->advert[0].c_pk.len = 31;
    S_REFUSED("c_pk");
    e->advert[0].c_pk.len = 32;
    e->advert[0].signature.len = 65;
    S_REFUSED("signature");
    e->advert[0].signature.len = 64;
    e->advert[0].index = 0;
    S_REFUSED("index 0");
    e->advert[0].index = 256;
    S_REFUSED("index 256");
    e->advert[0].index = 1;
    e->keys.nonce.len = 15;
    S_REFUSED("nonce");
    e->keys.nonce.len = 16;
    e->keys.n_adverts = MFL_SECAGG_MAX_SITES + 1; /* only the count is read */
    S_REFUSED("256 entries");
    e->keys.n_adverts = 1;
    e->keys.adverts[0] = NULL;
    S_REFUSED("missing");

    s_fill(in, MFL_MSG_SECAGG_SHARES);
    in->n_boxes = 1;
    in->boxes[0].from = 1, in->boxes[0].to = 2;
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    e->box[0].box.len = MFL_SECAGG_BOX_BYTES - 1;
    S_REFUSED("box");

    s_fill(in, MFL_MSG_SECAGG_REVEALS);
    in->n_reveals = 1;
    in->reveals[0].peer = 1, in->reveals[0].kind = MFL_SECAGG_SHARE_SEED;
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    e->reveal[0].kind = 3;
    S_REFUSED("kind 3");
    e->reveal[0].kind = 2;
    e->reveal[0].share.len = 33;
    S_REFUSED("share");

    s_fill(in, MFL_MSG_SECAGG_UNMASK);
    in->n_survivors = 1;
    in->survivors[0] = 1;
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), 0);
    e->unmask.survivors[0] = 0;
    S_REFUSED("survivors");

    /* the encoder refuses what the decoder would */
    s_fill(in, MFL_MSG_SECAGG_SIGNOFF);
    in->n_signoffs = 2;
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), -1);
    s_fill(in, MFL_MSG_HEARTBEAT);
    assert_int_equal(mfl_secagg_wire_to_envelope(in, e, err, sizeof err), -1);
#undef S_REFUSED
    free(e);
    free(in);
    free(out);
}

static void test_round_task_carries_the_setup(void **state)
{
    (void)state;
    mfl_round_task_t *t = calloc(1, sizeof *t), *back = calloc(1, sizeof *back);
    t->round = 3;
    snprintf(t->model_spec, sizeof t->model_spec, "mlp:4-2");
    snprintf(t->algorithm.name, sizeof t->algorithm.name, "fedavg");
    t->has_secagg = true;
    t->secagg.threshold = 3;
    t->secagg.neighbours = 0;
    t->secagg.length = 11;
    t->secagg.n_sites = 4;
    const char *ids[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        snprintf(t->secagg.sites[i], sizeof t->secagg.sites[i], "%s", ids[i]);
    mfl_round_task_msg_t *m = calloc(1, sizeof *m);
    mfl_round_task_to_msg(t, m);
    char err[200] = "";
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), 0);
    assert_true(back->has_secagg);
    assert_memory_equal(&t->secagg, &back->secagg, sizeof t->secagg);
    /* out of order: the indices would differ between parties */
    m->secagg_sites[2] = (char *)"a";
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), -1);
    assert_non_null(strstr(err, "secagg.sites[2]"));
    /* none: refused, not taken as "no secure aggregation" */
    m->secagg.n_sites = 0;
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), -1);
    /* 32-bit words travel with their F; another width, or F with 64-bit
     * words, is refused */
    t->secagg.word_bits = 32;
    t->secagg.frac_bits = 17;
    mfl_round_task_to_msg(t, m);
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), 0);
    assert_memory_equal(&t->secagg, &back->secagg, sizeof t->secagg);
    m->secagg.word_bits = 16;
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), -1);
    assert_non_null(strstr(err, "secagg.word_bits"));
    m->secagg.word_bits = 64;
    assert_int_equal(mfl_round_task_from_msg(&m->msg, back, err, sizeof err), -1);
    assert_non_null(strstr(err, "secagg.frac_bits"));
    free(m);
    free(t);
    free(back);
}

static void test_reject_reasons_have_names(void **state)
{
    (void)state;
    assert_string_equal(mfl_reject_reason_name(MFL_REJECT_SECAGG_LENGTH), "REJECT_SECAGG_LENGTH");
    assert_int_equal(mfl_secagg_wire_reject(MFL_SECAGG_E_LENGTH), MFL_REJECT_SECAGG_LENGTH);
    assert_int_equal(mfl_secagg_wire_reject(MFL_SECAGG_E_DUPLICATE), MFL_REJECT_DUPLICATE);
    assert_int_equal(mfl_secagg_wire_reject(MFL_SECAGG_E_SIGNATURE), MFL_REJECT_SIGNATURE);
    assert_int_equal(mfl_secagg_wire_reject(MFL_SECAGG_E_REFUSED), MFL_REJECT_SECAGG_REFUSED);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind_roundtrips),
        cmocka_unit_test(test_masked_words_travel_as_uint64),
        cmocka_unit_test(test_words_only_in_a_masked_input),
        cmocka_unit_test(test_u32_words_travel_as_4_bytes),
        cmocka_unit_test(test_masked_words_stay_in_their_frames),
        cmocka_unit_test(test_codec_refuses_bad_sizes),
        cmocka_unit_test(test_round_task_carries_the_setup),
        cmocka_unit_test(test_reject_reasons_have_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
