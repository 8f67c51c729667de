/* The frame codec without a network: chunking, and every receive-side check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fed/quant.h"
#include "wire/message.h"
#include "wire/snapshot.h"

/* Frames for `env` + raw data frames given as (bytes, size) pairs. */
typedef struct {
    zmq_msg_t f[16];
    size_t n;
} frames_t;

static void s_add(frames_t *fr, const void *data, size_t size)
{
    zmq_msg_init_size(&fr->f[fr->n], size);
    if (size)
        memcpy(zmq_msg_data(&fr->f[fr->n]), data, size);
    fr->n++;
}

static void s_add_env(frames_t *fr, const Metafl__Envelope *env)
{
    size_t n = metafl__envelope__get_packed_size(env);
    uint8_t *buf = malloc(n + 1);
    metafl__envelope__pack(env, buf);
    s_add(fr, buf, n);
    free(buf);
}

/* An envelope with one tensor header of the given shape over `data`. */
typedef struct {
    Metafl__Envelope env;
    Metafl__Heartbeat hb;
    Metafl__TensorHeader th;
    Metafl__TensorHeader *thp;
    uint64_t shape[MFL_TENSOR_MAX_DIMS + 2];
    uint8_t hash[MFL_HASH_BYTES];
} env1_t;

static void s_env1(env1_t *e, const float *data, uint64_t count, uint32_t n_frames)
{
    metafl__envelope__init(&e->env);
    metafl__heartbeat__init(&e->hb);
    metafl__tensor_header__init(&e->th);
    e->env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    e->env.kind = METAFL__MESSAGE_KIND__HEARTBEAT;
    e->env.body_case = METAFL__ENVELOPE__BODY_HEARTBEAT;
    e->env.heartbeat = &e->hb;
    e->shape[0] = count;
    e->th.name = (char *)"t";
    e->th.n_shape = 1;
    e->th.shape = e->shape;
    e->th.n_frames = n_frames;
    mfl_tensor_hash(data, count, e->hash);
    e->th.blake2b.data = e->hash;
    e->th.blake2b.len = MFL_HASH_BYTES;
    e->thp = &e->th;
    e->env.n_tensors = 1;
    e->env.tensors = &e->thp;
}

static int s_decode_reason(frames_t *fr, const mfl_wire_limits_t *lim)
{
    int reason = -1;
    char err[256] = "";
    mfl_msg_t *m = mfl_msg_decode(fr->f, fr->n, lim, &reason, err, sizeof err);
    for (size_t i = 0; i < fr->n; i++)
        zmq_msg_close(&fr->f[i]);
    if (m) {
        mfl_msg_destroy(&m);
        return 0;
    }
    assert_true(strlen(err) > 0);
    return reason;
}

/* Receives one whole message (all its frames) from sock into fr. */
static void s_recv_all(void *sock, frames_t *fr)
{
    fr->n = 0;
    int more = 1;
    while (more) {
        assert_true(fr->n < 16);
        zmq_msg_init(&fr->f[fr->n]);
        assert_true(zmq_msg_recv(&fr->f[fr->n], sock, 0) >= 0);
        more = zmq_msg_more(&fr->f[fr->n]);
        fr->n++;
    }
}

/* Decodes `e` followed by one data frame of `size` bytes; the reason. */
static int s_env_data_reason(const env1_t *e, const void *data, size_t size,
                             const mfl_wire_limits_t *lim)
{
    frames_t fr = {.n = 0};
    s_add_env(&fr, &e->env);
    s_add(&fr, data, size);
    return s_decode_reason(&fr, lim);
}

static void test_send_chunks_and_decode_reassembles(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://msg-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://msg-test"), 0);

    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 4096; /* 10,000 floats -> 10 frames */
    float *big = malloc(10000 * sizeof *big);
    for (int i = 0; i < 10000; i++)
        big[i] = (float)i * 0.5f;
    float cube[24], scalar = 3.25f;
    for (int i = 0; i < 24; i++)
        cube[i] = -(float)i;
    mfl_tensor_t t[3];
    t[0] = mfl_tensor_vec("big", big, 10000);
    t[1] = mfl_tensor_vec("cube", cube, 24);
    t[1].ndim = 3;
    t[1].shape[0] = 2;
    t[1].shape[1] = 3;
    t[1].shape[2] = 4;
    t[2] = mfl_tensor_vec("scalar", &scalar, 1);
    t[2].ndim = 0;
    Metafl__Bye bye = METAFL__BYE__INIT;
    bye.reason = (char *)"x";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    char err[256] = "";
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);

    frames_t fr;
    s_recv_all(b, &fr);
    assert_int_equal(fr.n, 1 + 10 + 1 + 1);
    int reason = 0;
    mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__BYE);
    assert_int_equal(mfl_msg_tensor_count(m), 3);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, big, 40000);
    assert_int_equal(mfl_msg_tensor(m, 1)->ndim, 3);
    assert_int_equal(mfl_msg_tensor(m, 1)->shape[2], 4);
    assert_memory_equal(mfl_msg_tensor(m, 1)->data, cube, sizeof cube);
    assert_int_equal(mfl_msg_tensor(m, 2)->count, 1);
    assert_true(mfl_msg_tensor(m, 2)->data[0] == 3.25f);
    assert_null(mfl_msg_tensor(m, 3));
    mfl_msg_destroy(&m);
    for (size_t i = 0; i < fr.n; i++)
        zmq_msg_close(&fr.f[i]);
    free(big);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_envelope_level_rejections(void **state)
{
    (void)state;
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    frames_t fr = {.n = 0};
    s_add(&fr, "\xff\xff\xff", 3);
    assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);

    float v[4] = {1, 2, 3, 4};
    env1_t e;
    s_env1(&e, v, 4, 1);
    e.env.protocol_version = MFL_WIRE_PROTOCOL_VERSION + 1;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim),
                     METAFL__REJECT_REASON__REJECT_VERSION);

    s_env1(&e, v, 4, 1);
    e.env.kind = METAFL__MESSAGE_KIND__HELLO; /* body is a heartbeat */
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);

    s_env1(&e, v, 4, 1);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, sizeof v);
    assert_int_equal(s_decode_reason(&fr, &lim), 0); /* the control: this one is fine */

    fr.n = 0; /* no frames at all */
    assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
}

static void test_shape_and_size_rejections(void **state)
{
    (void)state;
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    float v[4] = {1, 2, 3, 4};
    env1_t e;
    frames_t fr;

    /* 4 floats declared, 3 sent */
    s_env1(&e, v, 4, 1);
    assert_int_equal(s_env_data_reason(&e, v, 12, &lim), METAFL__REJECT_REASON__REJECT_SHAPE);

    /* a shape whose product overflows */
    s_env1(&e, v, 4, 1);
    e.th.n_shape = 3;
    e.shape[0] = e.shape[1] = e.shape[2] = (uint64_t)1 << 30;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim), METAFL__REJECT_REASON__REJECT_SHAPE);

    /* too many dimensions */
    s_env1(&e, v, 4, 1);
    e.th.n_shape = MFL_TENSOR_MAX_DIMS + 1;
    for (int d = 0; d <= MFL_TENSOR_MAX_DIMS; d++)
        e.shape[d] = 1;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim), METAFL__REJECT_REASON__REJECT_SHAPE);

    /* more frames than the headers describe */
    s_env1(&e, v, 4, 1);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, sizeof v);
    s_add(&fr, v, sizeof v);
    assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_SHAPE);

    /* header claims more frames than exist */
    s_env1(&e, v, 4, 3);
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim), METAFL__REJECT_REASON__REJECT_SHAPE);

    /* limits: frames, per-frame size, total, tensors */
    mfl_wire_limits_t small = lim;
    small.max_frames = 1;
    s_env1(&e, v, 4, 1);
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &small),
                     METAFL__REJECT_REASON__REJECT_TOO_LARGE);
    small = lim;
    small.max_frame_bytes = 8;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &small),
                     METAFL__REJECT_REASON__REJECT_TOO_LARGE);
    small = lim;
    small.max_total_bytes = 20;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &small),
                     METAFL__REJECT_REASON__REJECT_TOO_LARGE);
    small = lim;
    small.max_tensors = 0;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &small),
                     METAFL__REJECT_REASON__REJECT_TOO_LARGE);
}

static void test_hash_and_nonfinite_rejections_across_split_frames(void **state)
{
    (void)state;
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    float v[4] = {1, 2, 3, 4};
    env1_t e;
    frames_t fr;

    s_env1(&e, v, 4, 1);
    e.hash[0] ^= 1;
    assert_int_equal(s_env_data_reason(&e, v, sizeof v, &lim), METAFL__REJECT_REASON__REJECT_HASH);

    /* frames that split a float in two: data reassembled, Inf still found */
    const float specials[3] = {INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 3; k++) {
        v[2] = specials[k];
        s_env1(&e, v, 4, 2);
        fr.n = 0;
        s_add_env(&fr, &e.env);
        s_add(&fr, v, 6);
        s_add(&fr, (const char *)v + 6, 10);
        assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_NONFINITE);
    }
    v[2] = 3;
    s_env1(&e, v, 4, 2);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 6);
    s_add(&fr, (const char *)v + 6, 10);
    int reason = 0;
    char err[256];
    mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    assert_non_null(m);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, v, sizeof v);
    mfl_msg_destroy(&m);
    for (size_t i = 0; i < fr.n; i++)
        zmq_msg_close(&fr.f[i]);
}


/* limits.pieces (the coordinator's updates): a float32 tensor over several
 * frames of whole floats stays in them, as runs in order, with the same
 * checks (hash, NaN/Inf) as the copy; frames that split a float are still
 * copied; without the flag every view is contiguous. */
static void test_pieces_leave_multi_frame_tensors_in_their_frames(void **state)
{
    (void)state;
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.pieces = true;
    float v[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    env1_t e;
    frames_t fr;
    int reason = 0;
    char err[256];

    s_env1(&e, v, 10, 3); /* 4 + 4 + 2 floats */
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 16);
    s_add(&fr, v + 4, 16);
    s_add(&fr, v + 8, 8);
    mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    assert_non_null(m);
    const mfl_tensor_t *t = mfl_msg_tensor(m, 0);
    assert_null(t->data);
    assert_int_equal(t->n_pieces, 3);
    assert_int_equal(t->pieces[0].count, 4);
    assert_int_equal(t->pieces[1].count, 4);
    assert_int_equal(t->pieces[2].count, 2);
    for (size_t k = 0, at = 0; k < t->n_pieces; at += t->pieces[k].count, k++)
        assert_memory_equal(t->pieces[k].data, v + at, t->pieces[k].count * sizeof(float));
    assert_memory_equal(t->blake2b, e.hash, MFL_HASH_BYTES);
    /* the data can go before the message: envelope and kind stay */
    mfl_msg_release_tensors(m);
    assert_null(mfl_msg_tensor(m, 0)->pieces);
    assert_null(mfl_msg_tensor(m, 0)->data);
    assert_int_equal(mfl_msg_kind(m), METAFL__MESSAGE_KIND__HEARTBEAT);
    mfl_msg_destroy(&m);

    /* the same checks as the copy: a bad hash, an Inf in the middle run */
    e.hash[0] ^= 1;
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 16);
    s_add(&fr, v + 4, 16);
    s_add(&fr, v + 8, 8);
    assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_HASH);
    v[5] = INFINITY;
    s_env1(&e, v, 10, 3);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 16);
    s_add(&fr, v + 4, 16);
    s_add(&fr, v + 8, 8);
    assert_int_equal(s_decode_reason(&fr, &lim), METAFL__REJECT_REASON__REJECT_NONFINITE);
    v[5] = 6;

    /* a frame boundary inside a float: copied, contiguous */
    s_env1(&e, v, 10, 2);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 18);
    s_add(&fr, (const char *)v + 18, 22);
    m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(mfl_msg_tensor(m, 0)->n_pieces, 0);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, v, sizeof v);
    mfl_msg_destroy(&m);

    /* without the flag: contiguous */
    lim.pieces = false;
    s_env1(&e, v, 10, 3);
    fr.n = 0;
    s_add_env(&fr, &e.env);
    s_add(&fr, v, 16);
    s_add(&fr, v + 4, 16);
    s_add(&fr, v + 8, 8);
    m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(mfl_msg_tensor(m, 0)->n_pieces, 0);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, v, sizeof v);
    mfl_msg_destroy(&m);
    for (size_t i = 0; i < fr.n; i++)
        zmq_msg_close(&fr.f[i]);
}


/* Frames small enough to pipeline must not push a big message past the
 * frame count the peer accepts: the sender grows them to fit. */
static void test_send_grows_chunks_to_fit_max_frames(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://grow-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://grow-test"), 0);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 1024; /* 40,000 bytes would be 40 frames */
    lim.max_frames = 8;
    float *big = malloc(10000 * sizeof *big);
    for (int i = 0; i < 10000; i++)
        big[i] = (float)i - 5000.0f;
    mfl_tensor_t t = mfl_tensor_vec("big", big, 10000);
    Metafl__Bye bye = METAFL__BYE__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    char err[256] = "";
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, &t, 1, &lim, NULL, NULL, err, sizeof err), 0);
    frames_t fr;
    s_recv_all(b, &fr);
    assert_true(fr.n > 2);              /* still split */
    assert_true(fr.n <= lim.max_frames); /* but within the peer's limit */
    int reason = 0;
    mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    assert_memory_equal(mfl_msg_tensor(m, 0)->data, big, 40000);
    mfl_msg_destroy(&m);
    free(big);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static int s_released;
static void s_release(void *hint)
{
    (void)hint;
    s_released++;
}

static void test_zero_copy_release_runs_once(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://zc-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://zc-test"), 0);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 1024;
    float v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = (float)i;
    mfl_tensor_t t = mfl_tensor_vec("v", v, 1000);
    Metafl__Bye bye = METAFL__BYE__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    char err[256];
    s_released = 0;
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, &t, 1, &lim, s_release, NULL, err,
                                  sizeof err), 0);
    /* inproc passes the frames by reference: released only when the
     * receiver drops them */
    assert_int_equal(s_released, 0);
    frames_t fr;
    s_recv_all(b, &fr);
    assert_int_equal(fr.n, 1 + 4);
    for (size_t i = 0; i < fr.n; i++)
        zmq_msg_close(&fr.f[i]);
    assert_int_equal(s_released, 1);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_snapshot_broadcast_sends_one_copy_to_many(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://snap-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://snap-test"), 0);
    float theta[300];
    for (int i = 0; i < 300; i++)
        theta[i] = (float)i;
    mfl_tensor_t t[2] = {mfl_tensor_vec("w", theta, 200), mfl_tensor_vec("b", theta + 200, 100)};
    char err[256];
    mfl_wire_snapshot_t *snap = mfl_wire_snapshot_new(t, 2, err, sizeof err);
    assert_non_null(snap);
    theta[0] = -1.0f; /* θ moves on; the snapshot keeps what was taken */
    size_t n = 0;
    const mfl_tensor_t *st = mfl_wire_snapshot_tensors(snap, &n);
    assert_int_equal(n, 2);
    assert_non_null(st[0].blake2b);
    Metafl__Bye bye = METAFL__BYE__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    for (int k = 0; k < 3; k++)
        assert_int_equal(mfl_msg_send(a, NULL, 0, &env, st, n, NULL, mfl_wire_snapshot_release,
                                      mfl_wire_snapshot_ref(snap), err, sizeof err), 0);
    mfl_wire_snapshot_release(snap); /* our reference; the in-flight sends keep theirs */
    for (int k = 0; k < 3; k++) {
        frames_t fr;
        s_recv_all(b, &fr);
        int reason = 0;
        mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, NULL, &reason, err, sizeof err);
        if (!m)
            fail_msg("%s", err);
        assert_true(mfl_msg_tensor(m, 0)->data[0] == 0.0f);
        assert_memory_equal(mfl_msg_tensor(m, 1)->data, theta + 200, 100 * sizeof(float));
        mfl_msg_destroy(&m);
        for (size_t i = 0; i < fr.n; i++)
            zmq_msg_close(&fr.f[i]);
    }
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

/* Three tensors of n values x[i] = sin(i) / 100, the first fp16-encoded,
 * the second int8 (scale s8), the third float32 as is, from the quant
 * stream seeded 9; want16 / want8 are what a receiver must decode them to. */
typedef struct {
    float *x, *want16, *want8;
    uint16_t *h16;
    int8_t *c8;
    float s8;
    mfl_tensor_t t[3];
} enc_fixture_t;

static void s_enc_fixture(enc_fixture_t *f, size_t n)
{
    f->x = malloc(n * sizeof(float));
    f->want16 = malloc(n * sizeof(float));
    f->want8 = malloc(n * sizeof(float));
    f->h16 = malloc(n * 2);
    f->c8 = malloc(n);
    assert_true(f->x && f->want16 && f->want8 && f->h16 && f->c8);
    for (size_t i = 0; i < n; i++)
        f->x[i] = sinf((float)i) * 0.01f;
    mfl_rng_t r;
    mfl_rng_seed(&r, 9, MFL_QUANT_STREAM);
    float s16;
    assert_int_equal(mfl_quant_encode(MFL_QUANT_FP16, f->x, n, NULL, &r, f->h16, &s16), 0);
    assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, f->x, n, NULL, &r, f->c8, &f->s8), 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_FP16, f->h16, n, s16, f->want16), 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, f->c8, n, f->s8, f->want8), 0);
    f->t[0] = mfl_tensor_vec("half", (const float *)(const void *)f->h16, n);
    f->t[0].encoding = MFL_QUANT_FP16;
    f->t[1] = mfl_tensor_vec("int8", (const float *)(const void *)f->c8, n);
    f->t[1].encoding = MFL_QUANT_INT8;
    f->t[1].scale = f->s8;
    f->t[2] = mfl_tensor_vec("plain", f->x, n);
}

static void s_enc_fixture_free(enc_fixture_t *f)
{
    free(f->x);
    free(f->want16);
    free(f->want8);
    free(f->h16);
    free(f->c8);
}

/* Encoded updates (fp16, int8): the frames carry the encoded bytes, the
 * header's hash covers them, and the receiver gets float32 values equal
 * to mfl_quant_decode of what was sent, with encoding and scale kept. */
static void test_encoded_tensors_travel_as_their_bytes(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://enc-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://enc-test"), 0);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 4000; /* several frames per tensor */
    enum { N = 3001 };
    enc_fixture_t f;
    s_enc_fixture(&f, N);
    float *x = f.x, *want16 = f.want16, *want8 = f.want8, s8 = f.s8;
    uint16_t *h16 = f.h16;
    int8_t *c8 = f.c8;
    mfl_tensor_t *t = f.t;
    Metafl__Bye bye = METAFL__BYE__INIT;
    bye.reason = (char *)"x";
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    char err[256] = "";
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    frames_t fr;
    s_recv_all(b, &fr);
    /* 6002 B in 2 frames, 3001 B in 1, float32's 12004 B in 4 */
    assert_int_equal(fr.n, 1 + 2 + 1 + 4);
    assert_int_equal(zmq_msg_size(&fr.f[1]) + zmq_msg_size(&fr.f[2]), 2 * N);
    assert_int_equal(zmq_msg_size(&fr.f[3]), N);
    int reason = 0;
    mfl_msg_t *m = mfl_msg_decode(fr.f, fr.n, &lim, &reason, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    const mfl_tensor_t *g0 = mfl_msg_tensor(m, 0), *g1 = mfl_msg_tensor(m, 1);
    assert_memory_equal(g0->data, want16, N * sizeof(float));
    assert_memory_equal(g1->data, want8, N * sizeof(float));
    assert_memory_equal(mfl_msg_tensor(m, 2)->data, x, N * sizeof(float));
    assert_int_equal(g0->encoding, MFL_QUANT_FP16);
    assert_int_equal(g1->encoding, MFL_QUANT_INT8);
    assert_memory_equal(&g1->scale, &s8, 4);
    assert_int_equal(mfl_msg_tensor(m, 2)->encoding, MFL_QUANT_FP32);
    uint8_t h[32];
    crypto_generichash(h, 32, (const unsigned char *)h16, N * 2, NULL, 0);
    assert_memory_equal(g0->blake2b, h, 32);
    crypto_generichash(h, 32, (const unsigned char *)c8, N, NULL, 0);
    assert_memory_equal(g1->blake2b, h, 32);
    mfl_msg_destroy(&m);
    for (size_t i = 0; i < fr.n; i++)
        zmq_msg_close(&fr.f[i]);
    s_enc_fixture_free(&f);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

/* One encoded tensor `data` of `count` values with `encoding`/`scale`, its
 * hash over `bytes` bytes of data (or a flipped copy if `tamper`). */
static int s_encoded_reason(uint32_t encoding, float scale, const void *data, uint64_t count,
                            size_t bytes, int tamper)
{
    env1_t e;
    float dummy[8] = {0}; /* s_env1 hashes count floats; the hash is replaced below */
    assert_true(count <= 8);
    s_env1(&e, dummy, count, 1);
    e.th.encoding = encoding;
    e.th.scale = scale;
    crypto_generichash(e.hash, 32, data, bytes, NULL, 0);
    unsigned char *copy = malloc(bytes + 1);
    memcpy(copy, data, bytes);
    if (tamper)
        copy[0] ^= 1;
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    int r = s_env_data_reason(&e, copy, bytes, &lim);
    free(copy);
    return r;
}

static void test_encoded_tensor_rejections(void **state)
{
    (void)state;
    const uint16_t half[4] = {0x3c00, 0xc000, 0x0001, 0x7bff};
    const int8_t codes[4] = {1, -127, 0, 127};
    assert_int_equal(s_encoded_reason(MFL_QUANT_FP16, 0, half, 4, 8, 0), 0);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, 0.5f, codes, 4, 4, 0), 0);
    /* the hash covers the encoded bytes */
    assert_int_equal(s_encoded_reason(MFL_QUANT_FP16, 0, half, 4, 8, 1),
                     METAFL__REJECT_REASON__REJECT_HASH);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, 0.5f, codes, 4, 4, 1),
                     METAFL__REJECT_REASON__REJECT_HASH);
    /* bytes must match the encoding's size: fp16 sent as 4 bytes each */
    const float f4[4] = {1, 2, 3, 4};
    assert_int_equal(s_encoded_reason(MFL_QUANT_FP16, 0, f4, 4, 16, 0),
                     METAFL__REJECT_REASON__REJECT_SHAPE);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, 0.5f, codes, 4, 3, 0),
                     METAFL__REJECT_REASON__REJECT_SHAPE);
    /* unknown encodings and bad scales */
    assert_int_equal(s_encoded_reason(3, 0, codes, 4, 4, 0),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, NAN, codes, 4, 4, 0),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, -1.0f, codes, 4, 4, 0),
                     METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
    /* values that decode to NaN / Inf: a half infinity, or a scale whose
     * product overflows */
    const uint16_t inf[2] = {0x3c00, 0x7c00};
    assert_int_equal(s_encoded_reason(MFL_QUANT_FP16, 0, inf, 2, 4, 0),
                     METAFL__REJECT_REASON__REJECT_NONFINITE);
    assert_int_equal(s_encoded_reason(MFL_QUANT_INT8, 3e37f, codes, 4, 4, 0),
                     METAFL__REJECT_REASON__REJECT_NONFINITE);
}

/* Decodes fr (consumed) with `lim`; the message or NULL with *reason. */
static mfl_msg_t *s_decode(frames_t *fr, const mfl_wire_limits_t *lim, int *reason)
{
    char err[256] = "";
    mfl_msg_t *m = mfl_msg_decode(fr->f, fr->n, lim, reason, err, sizeof err);
    for (size_t i = 0; i < fr->n; i++)
        zmq_msg_close(&fr->f[i]);
    return m;
}

/* limits.encoded_runs (the coordinator): an fp16 / int8 tensor of an
 * Update stays encoded in its frames, hashed and checked finite there, and
 * mfl_quant_decode_view gives exactly mfl_quant_decode's values for any
 * range; a float32 tensor beside it, and encoded tensors of any other
 * message, are as before. */
static void test_encoded_runs_stay_in_update_frames(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://runs-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://runs-test"), 0);
    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    lim.chunk_bytes = 8000; /* several frames per tensor */
    enum { N = 9001 };
    enc_fixture_t f;
    s_enc_fixture(&f, N);
    float *want16 = f.want16, *want8 = f.want8, s8 = f.s8;
    float *got = malloc(N * sizeof(float));
    assert_non_null(got);
    uint16_t *h16 = f.h16;
    int8_t *c8 = f.c8;
    mfl_tensor_t *t = f.t;
    Metafl__Update upd = METAFL__UPDATE__INIT;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__UPDATE;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
    env.update = &upd;
    mfl_wire_limits_t rl = lim;
    rl.pieces = true;
    rl.encoded_runs = true;
    char err[256] = "";
    int reason = 0;
    frames_t fr;
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    mfl_msg_t *m = s_decode(&fr, &rl, &reason);
    assert_non_null(m);
    const mfl_tensor_t *g0 = mfl_msg_tensor(m, 0), *g1 = mfl_msg_tensor(m, 1);
    assert_null(g0->data);
    assert_null(g1->data);
    assert_int_equal(g0->n_pieces, 3); /* 18002 B in 8000 B frames */
    assert_int_equal(g1->n_pieces, 2);
    assert_int_equal(g0->encoding, MFL_QUANT_FP16);
    assert_int_equal(g1->encoding, MFL_QUANT_INT8);
    assert_memory_equal(&g1->scale, &s8, 4);
    uint8_t h[32];
    crypto_generichash(h, 32, (const unsigned char *)h16, N * 2, NULL, 0);
    assert_memory_equal(g0->blake2b, h, 32);
    crypto_generichash(h, 32, (const unsigned char *)c8, N, NULL, 0);
    assert_memory_equal(g1->blake2b, h, 32);
    assert_int_equal(mfl_quant_decode_view(g0, 0, N, got), 0);
    assert_memory_equal(got, want16, N * sizeof(float));
    assert_int_equal(mfl_quant_decode_view(g1, 0, N, got), 0);
    assert_memory_equal(got, want8, N * sizeof(float));
    /* a range across a frame boundary, and one past the end */
    assert_int_equal(mfl_quant_decode_view(g1, 7990, 1000, got), 0);
    assert_memory_equal(got, want8 + 7990, 1000 * sizeof(float));
    assert_int_equal(mfl_quant_decode_view(g0, 3990, 20, got), 0);
    assert_memory_equal(got, want16 + 3990, 20 * sizeof(float));
    assert_int_equal(mfl_quant_decode_view(g1, N - 1, 2, got), -1);
    /* float32 beside them: runs of floats, as limits.pieces says */
    assert_null(mfl_msg_tensor(m, 2)->data);
    assert_int_equal(mfl_msg_tensor(m, 2)->encoding, MFL_QUANT_FP32);
    assert_int_equal(mfl_quant_decode_view(mfl_msg_tensor(m, 2), 0, 1, got), -1);
    mfl_msg_destroy(&m);

    /* the same tensors in another message (a chunk, a Bye): decoded */
    Metafl__Bye bye = METAFL__BYE__INIT;
    bye.reason = (char *)"x";
    Metafl__Envelope benv = METAFL__ENVELOPE__INIT;
    benv.kind = METAFL__MESSAGE_KIND__BYE;
    benv.body_case = METAFL__ENVELOPE__BODY_BYE;
    benv.bye = &bye;
    assert_int_equal(mfl_msg_send(a, NULL, 0, &benv, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    m = s_decode(&fr, &rl, &reason);
    assert_non_null(m);
    assert_memory_equal(mfl_msg_tensor(m, 1)->data, want8, N * sizeof(float));
    mfl_msg_destroy(&m);

    /* the checks hold in place: a flipped code, codes decoding to Inf */
    c8[5000] ^= 1;
    t[1].blake2b = NULL;
    uint8_t keep[32];
    crypto_generichash(keep, 32, (const unsigned char *)c8, N, NULL, 0);
    c8[5000] ^= 1; /* header hashes the tampered bytes, frames carry these */
    t[1].blake2b = keep;
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    assert_null(s_decode(&fr, &rl, &reason));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_HASH);
    t[1].blake2b = NULL;
    t[1].scale = 3e37f; /* 127 · scale overflows */
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    assert_null(s_decode(&fr, &rl, &reason));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_NONFINITE);
    t[1].scale = s8;
    h16[7000] = 0x7c00; /* +Inf */
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    assert_null(s_decode(&fr, &rl, &reason));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_NONFINITE);
    /* a scale where only code −128 would overflow: no such code, accepted */
    h16[7000] = 0;
    t[1].scale = 3.4e38f / 127.5f;
    assert_int_equal(mfl_msg_send(a, NULL, 0, &env, t, 3, &lim, NULL, NULL, err, sizeof err), 0);
    s_recv_all(b, &fr);
    m = s_decode(&fr, &rl, &reason);
    assert_non_null(m);
    mfl_msg_destroy(&m);

    free(got);
    s_enc_fixture_free(&f);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_chunks_and_decode_reassembles),
        cmocka_unit_test(test_envelope_level_rejections),
        cmocka_unit_test(test_shape_and_size_rejections),
        cmocka_unit_test(test_hash_and_nonfinite_rejections_across_split_frames),
        cmocka_unit_test(test_pieces_leave_multi_frame_tensors_in_their_frames),
        cmocka_unit_test(test_send_grows_chunks_to_fit_max_frames),
        cmocka_unit_test(test_zero_copy_release_runs_once),
        cmocka_unit_test(test_snapshot_broadcast_sends_one_copy_to_many),
        cmocka_unit_test(test_encoded_tensors_travel_as_their_bytes),
        cmocka_unit_test(test_encoded_tensor_rejections),
        cmocka_unit_test(test_encoded_runs_stay_in_update_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
