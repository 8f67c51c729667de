/* hostile_site: an allow-listed but misbehaving site, for integration tests
 * and bench/soak_hostile.sh. It speaks real CurveZMQ with a real key (the
 * coordinator admits it through ZAP like any hospital) and then does what
 * a broken or hostile peer would. Not installed; built by `make unit-tests`
 * into build/tests/hostile_site.
 *
 *   hostile_site --endpoint E --key K.key --server-pub C.pub --mode MODE [options]
 *
 * Modes (each prints one result line "hostile: ..." on stdout):
 *   noread     sends undecodable envelopes as fast as it can for --seconds
 *              without ever reading (Rejects pile up on its connection),
 *              then hangs up (closes with linger 0).
 *   probe      every 250 ms sends one undecodable envelope and waits for
 *              the coordinator's Reject; prints "max_reply_ms N" (the
 *              slowest reply) and "replies N" over --seconds.
 *   bigframes  sends --big-count multipart messages of --frames frames of
 *              --frame-bytes each (garbage after a valid-looking envelope),
 *              --interval-ms apart, then waits --seconds for a reply.
 *   wrongsite  sends Hello claiming another site's id (--claim NAME).
 *   badupdate  sends Updates that are not granted, not signed, or hashed
 *              wrong (the coordinator must reject each one).
 *   flood      sends --count small undecodable envelopes and reads what
 *              comes back (a misbehaving but reading peer).
 *   cycle      all of the above in turn, --seconds each, until --total.
 *
 * --zmtp-heartbeat-ms N sets ZMTP heartbeats on its own socket (off by
 * default), as a site agent with heartbeats would. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/keys.h"
#include "wire/message.h"

typedef struct {
    const char *endpoint, *key, *server_pub, *mode, *claim;
    double seconds, total;
    long count, big_count, frames, frame_bytes, interval_ms, hb_ms;
} s_args_t;

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *s_connect(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                       const mfl_public_key_t *srv, int noread)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, one = 1, big = 1000000;
    const mfl_public_key_t *pub = mfl_identity_public(id);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv->curve_pk_z85, 41);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub->curve_pk_z85, 41);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, mfl_identity_curve_sk_z85(id), 41);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_SNDHWM, &big, sizeof big);
    if (noread) { /* read as little as the kernel and libzmq allow */
        int tiny = 4096;
        zmq_setsockopt(s, ZMQ_RCVHWM, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_RCVBUF, &tiny, sizeof tiny);
    }
    if (a->hb_ms > 0) {
        int ivl = (int)a->hb_ms, to = 3 * (int)a->hb_ms;
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &to, sizeof to);
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &to, sizeof to);
    }
    if (zmq_connect(s, a->endpoint) != 0) {
        fprintf(stderr, "hostile: cannot connect %s: %s\n", a->endpoint, zmq_strerror(errno));
        exit(2);
    }
    return s;
}

/* An envelope that does not decode (REJECT_BAD_MESSAGE). */
static int s_send_garbage(void *s, int flags)
{
    static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x42, 0x42};
    return zmq_send(s, junk, sizeof junk, flags);
}

/* Waits up to ms for one message; 1 got one, 0 none. */
static int s_recv_one(void *s, int ms)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return 0;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return 1;
}

static void s_drain(void *s)
{
    while (s_recv_one(s, 0)) {
    }
}

static int s_send_env(void *s, Metafl__Envelope *env)
{
    char err[256];
    env->protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    return mfl_msg_send(s, NULL, 0, env, NULL, 0, NULL, NULL, NULL, err, sizeof err);
}

static void s_mode_noread(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                          const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 1);
    uint64_t until = s_now_ms() + (uint64_t)(a->seconds * 1000);
    long sent = 0;
    while (s_now_ms() < until) {
        if (s_send_garbage(s, ZMQ_DONTWAIT) >= 0)
            sent++;
        else
            s_sleep_ms(1);
    }
    printf("hostile: noread sent %ld bad messages, hanging up\n", sent);
    zmq_close(s);
}

static void s_mode_probe(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                         const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 0);
    uint64_t until = s_now_ms() + (uint64_t)(a->seconds * 1000);
    uint64_t worst = 0;
    long replies = 0, lost = 0;
    while (s_now_ms() < until) {
        uint64_t t0 = s_now_ms();
        if (s_send_garbage(s, 0) < 0) {
            s_sleep_ms(100);
            continue;
        }
        if (s_recv_one(s, 3000)) {
            uint64_t dt = s_now_ms() - t0;
            worst = dt > worst ? dt : worst;
            replies++;
        } else {
            lost++;
        }
        s_drain(s);
        s_sleep_ms(250); /* 4 a second: under the coordinator's Reject rate limit */
    }
    printf("hostile: probe replies %ld lost %ld max_reply_ms %llu\n", replies, lost,
           (unsigned long long)worst);
    zmq_close(s);
}

static void s_mode_bigframes(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                             const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 0);
    s_sleep_ms(300); /* handshake */
    /* One garbage buffer copied into every frame. */
    size_t fb = (size_t)a->frame_bytes;
    unsigned char *buf = malloc(fb ? fb : 1);
    if (!buf)
        exit(2);
    memset(buf, 0x3f, fb);
    long sent = 0;
    for (long c = 0; c < a->big_count; c++) {
        static const unsigned char env[] = {0x08, 0x04};
        if (zmq_send(s, env, sizeof env, ZMQ_SNDMORE) < 0)
            break;
        for (long f = 0; f < a->frames; f++) {
            zmq_msg_t m;
            zmq_msg_init_size(&m, fb);
            memcpy(zmq_msg_data(&m), buf, fb);
            if (zmq_msg_send(&m, s, f + 1 < a->frames ? ZMQ_SNDMORE : 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
        }
        sent++;
        s_sleep_ms(a->interval_ms);
    }
    free(buf);
    int got = s_recv_one(s, (int)(a->seconds * 1000));
    printf("hostile: bigframes sent %ld messages of %ld x %ld bytes; reply %s\n", sent,
           a->frames, a->frame_bytes, got ? "yes" : "no");
    zmq_close(s);
}

static void s_mode_wrongsite(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                             const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 0);
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    Metafl__Hello h = METAFL__HELLO__INIT;
    h.site = (char *)(a->claim ? a->claim : "site-a");
    h.software_version = MFL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    uint64_t until = s_now_ms() + (uint64_t)(a->seconds * 1000);
    long replies = 0;
    while (s_now_ms() < until) {
        s_send_env(s, &env);
        replies += s_recv_one(s, 500);
    }
    printf("hostile: wrongsite got %ld replies\n", replies);
    zmq_close(s);
}

static void s_mode_badupdate(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                             const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 0);
    float w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (float)i;
    mfl_tensor_t t = mfl_tensor_vec("w", w, 16);
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    Metafl__Update u = METAFL__UPDATE__INIT;
    static uint8_t junk_header[40], junk_sig[64];
    u.header.data = junk_header;
    u.header.len = sizeof junk_header;
    u.signature.data = junk_sig;
    u.signature.len = sizeof junk_sig;
    env.kind = METAFL__MESSAGE_KIND__UPDATE;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    uint64_t until = s_now_ms() + (uint64_t)(a->seconds * 1000);
    long replies = 0, n = 0;
    char err[256];
    while (s_now_ms() < until) {
        env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
        mfl_msg_send(s, NULL, 0, &env, &t, 1, NULL, NULL, NULL, err, sizeof err);
        n++;
        replies += s_recv_one(s, 200);
    }
    printf("hostile: badupdate sent %ld, got %ld replies\n", n, replies);
    zmq_close(s);
}

static void s_mode_flood(void *ctx, const s_args_t *a, const mfl_identity_t *id,
                         const mfl_public_key_t *srv)
{
    void *s = s_connect(ctx, a, id, srv, 0);
    s_sleep_ms(200);
    long replies = 0;
    for (long i = 0; i < a->count; i++) {
        s_send_garbage(s, 0);
        while (s_recv_one(s, 0))
            replies++;
    }
    uint64_t until = s_now_ms() + (uint64_t)(a->seconds * 1000);
    while (s_now_ms() < until)
        replies += s_recv_one(s, 100);
    printf("hostile: flood sent %ld, got %ld replies\n", a->count, replies);
    zmq_close(s);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: hostile_site --endpoint E --key K.key --server-pub C.pub --mode MODE\n"
               "  [--seconds S] [--total S] [--count N] [--big-count N] [--frames N]\n"
               "  [--frame-bytes B]\n"
               "  [--interval-ms MS] [--claim SITE] [--zmtp-heartbeat-ms MS]\n"
               "modes: noread probe bigframes wrongsite badupdate flood cycle\n");
}

int main(int argc, char **argv)
{
    s_args_t a = {.seconds = 3, .total = 20, .count = 100, .big_count = 2, .frames = 8,
                  .frame_bytes = 1 << 20, .interval_ms = 0, .mode = "probe"};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--help") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (!v) {
            s_usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(k, "--endpoint") == 0) a.endpoint = v;
        else if (strcmp(k, "--key") == 0) a.key = v;
        else if (strcmp(k, "--server-pub") == 0) a.server_pub = v;
        else if (strcmp(k, "--mode") == 0) a.mode = v;
        else if (strcmp(k, "--claim") == 0) a.claim = v;
        else if (strcmp(k, "--seconds") == 0) a.seconds = atof(v);
        else if (strcmp(k, "--total") == 0) a.total = atof(v);
        else if (strcmp(k, "--count") == 0) a.count = atol(v);
        else if (strcmp(k, "--big-count") == 0) a.big_count = atol(v);
        else if (strcmp(k, "--frames") == 0) a.frames = atol(v);
        else if (strcmp(k, "--frame-bytes") == 0) a.frame_bytes = atol(v);
        else if (strcmp(k, "--interval-ms") == 0) a.interval_ms = atol(v);
        else if (strcmp(k, "--zmtp-heartbeat-ms") == 0) a.hb_ms = atol(v);
        else {
            fprintf(stderr, "hostile: unknown option %s\n", k);
            return 2;
        }
    }
    if (!a.endpoint || !a.key || !a.server_pub) {
        s_usage(stderr);
        return 2;
    }
    char err[512];
    mfl_identity_t *id = mfl_identity_load(a.key, err, sizeof err);
    mfl_public_key_t srv;
    if (!id || mfl_public_key_load(a.server_pub, &srv, err, sizeof err) != 0) {
        fprintf(stderr, "hostile: %s\n", err);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    void *ctx = zmq_ctx_new();
    typedef void (*mode_fn)(void *, const s_args_t *, const mfl_identity_t *,
                            const mfl_public_key_t *);
    static const struct {
        const char *name;
        mode_fn fn;
    } modes[] = {{"noread", s_mode_noread},     {"probe", s_mode_probe},
                 {"bigframes", s_mode_bigframes}, {"wrongsite", s_mode_wrongsite},
                 {"badupdate", s_mode_badupdate}, {"flood", s_mode_flood}};
    size_t nm = sizeof modes / sizeof modes[0];
    int rc = 2;
    if (strcmp(a.mode, "cycle") == 0) {
        uint64_t until = s_now_ms() + (uint64_t)(a.total * 1000);
        for (size_t i = 0; s_now_ms() < until; i = (i + 1) % nm)
            if (modes[i].fn != s_mode_probe)
                modes[i].fn(ctx, &a, id, &srv);
        rc = 0;
    } else {
        for (size_t i = 0; i < nm; i++)
            if (strcmp(a.mode, modes[i].name) == 0) {
                modes[i].fn(ctx, &a, id, &srv);
                rc = 0;
            }
        if (rc)
            fprintf(stderr, "hostile: unknown mode %s\n", a.mode);
    }
    zmq_ctx_term(ctx);
    mfl_identity_destroy(&id);
    return rc;
}
