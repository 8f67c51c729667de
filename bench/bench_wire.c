/* Round-trip throughput of tensor frames through metafl's wire API over
 * CurveZMQ, against raw ZeroMQ CURVE moving the same bytes in the same run.
 *
 *   bench_wire [OUT.json]     (default bench/results/wire.json)
 *
 * A round trip: the site sends one tensor, the coordinator receives it
 * (validated: limits, shape, BLAKE2b, NaN/Inf; for the API the peer is
 * authenticated by ZAP) and echoes it back zero-copy, the site receives and
 * validates it. Raw: DEALER/ROUTER with CURVE keys, a small header frame plus
 * the data zero-copy, no checks: as one frame (the API's framing for tensors
 * up to its 64 MiB chunk: the reference) and cut into frames of the API's
 * chunk size (shown, and "api/best" against the faster of the two). Both use 2 I/O threads per
 * context on the same machine; the two are interleaved rep by rep so drift in
 * machine load hits both alike. Reported: median seconds per round trip,
 * MB/s (2 × bytes / median) and the ratio API / raw (goal ≥ 0.9). Two API
 * variants: the sender passes the hash it already has (as a signed update or
 * a per-round θ does), or the sender hashes on every send.
 *
 * The receiver must BLAKE2b every tensor (the signed header and the audit
 * logs commit to those hashes), about 1 GB/s on one core and not
 * parallelisable within one hash. So the bench also times mfl_tensor_hash
 * alone and reports the floor raw + 2 × hash: "api_over_floor" near 1 means
 * the API adds nothing beyond the hashing the design requires. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/client.h"
#include "wire/keys.h"
#include "wire/message.h"
#include "wire/server.h"
#include "bench_common.h"

static void s_die(const char *what, const char *err)
{
    fprintf(stderr, "bench_wire: %s: %s\n", what, err);
    exit(1);
}

/* ---- API echo server ------------------------------------------------------ */

static atomic_int s_stop;

static void s_release_msg(void *hint)
{
    mfl_msg_t *m = hint;
    mfl_msg_destroy(&m);
}

static void *s_api_echo(void *arg)
{
    mfl_server_t *srv = arg;
    char err[512];
    while (!atomic_load(&s_stop)) {
        mfl_msg_t *m = NULL;
        mfl_recv_result_t r = mfl_server_recv(srv, 100, &m, NULL, err, sizeof err);
        if (r == MFL_RECV_REJECTED)
            fprintf(stderr, "bench_wire: server rejected: %s\n", err);
        if (r != MFL_RECV_OK)
            continue;
        size_t n = mfl_msg_tensor_count(m);
        if (n == 0) {
            mfl_msg_destroy(&m);
            continue;
        }
        /* The received (verified) tensor goes back as is; its hash is known. */
        if (mfl_server_reply(srv, m, mfl_msg_envelope(m), mfl_msg_tensor(m, 0), 1, s_release_msg,
                             m, err, sizeof err) != 0)
            fprintf(stderr, "bench_wire: echo failed: %s\n", err);
    }
    return NULL;
}

/* ---- raw ZeroMQ CURVE echo ------------------------------------------------ */

typedef struct {
    void *router;
} raw_srv_t;

static void *s_raw_echo(void *arg)
{
    raw_srv_t *rs = arg;
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t it = {rs->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        int more = 1;
        while (more) { /* forward every part as it is (zero copy) */
            zmq_msg_t part;
            zmq_msg_init(&part);
            zmq_msg_recv(&part, rs->router, 0);
            more = zmq_msg_more(&part);
            zmq_msg_send(&part, rs->router, more ? ZMQ_SNDMORE : 0);
        }
    }
    return NULL;
}

static void s_noop_free(void *data, void *hint)
{
    (void)data;
    (void)hint;
}

static void s_noop_release(void *hint) { (void)hint; }

/* Raw: a small header frame, then the data as frames of at most `chunk`. */
static double s_raw_round_trip(void *dealer, const float *data, size_t bytes, size_t chunk)
{
    static const char header[96] = {0};
    double t0 = s_bench_now();
    zmq_send(dealer, header, sizeof header, ZMQ_SNDMORE);
    const char *p = (const char *)data;
    size_t left = bytes;
    zmq_msg_t m;
    do {
        size_t n = left < chunk ? left : chunk;
        zmq_msg_init_data(&m, (void *)p, n, s_noop_free, NULL);
        zmq_msg_send(&m, dealer, left > n ? ZMQ_SNDMORE : 0);
        p += n;
        left -= n;
    } while (left > 0);
    size_t got = 0;
    int more = 1;
    while (more) {
        zmq_msg_init(&m);
        zmq_msg_recv(&m, dealer, 0);
        got += zmq_msg_size(&m);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    double dt = s_bench_now() - t0;
    if (got != bytes + sizeof header)
        s_die("raw", "short echo");
    return dt;
}

static double s_api_round_trip(mfl_client_t *c, const mfl_tensor_t *t)
{
    Metafl__Bye bye = METAFL__BYE__INIT; /* a small body; the tensor is the payload */
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    char err[512];
    double t0 = s_bench_now();
    if (mfl_client_send(c, &env, t, 1, s_noop_release, NULL, err, sizeof err) != 0)
        s_die("api send", err);
    mfl_msg_t *m = NULL;
    mfl_recv_result_t r;
    do
        r = mfl_client_recv(c, 30000, &m, NULL, err, sizeof err);
    while (r == MFL_RECV_OK && mfl_msg_tensor_count(m) == 0 && (mfl_msg_destroy(&m), 1));
    if (r != MFL_RECV_OK)
        s_die("api recv", err);
    double dt = s_bench_now() - t0;
    if (mfl_msg_tensor(m, 0)->count != t->count)
        s_die("api", "short echo");
    mfl_msg_destroy(&m);
    return dt;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "bench/results/wire.json";
    char dir[] = "/tmp/mfl-bench-wire-XXXXXX", allow[300], path[400], err[512];
    if (!mkdtemp(dir))
        s_die("mkdtemp", strerror(errno));
    snprintf(allow, sizeof allow, "%s/allow", dir);
    mkdir(allow, 0755);
    if (mfl_keys_generate(dir, "coordinator", err, sizeof err) != 0 ||
        mfl_keys_generate(allow, "site", err, sizeof err) != 0)
        s_die("keygen", err);
    snprintf(path, sizeof path, "%s/coordinator.key", dir);
    mfl_identity_t *cid = mfl_identity_load(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/site.key", allow);
    mfl_identity_t *sid = cid ? mfl_identity_load(path, err, sizeof err) : NULL;
    if (!sid)
        s_die("load", err);
    unlink(path); /* keep only .pub files in the allow-list directory */

    mfl_server_opts_t so;
    mfl_server_opts_default(&so);
    /* MFL_BENCH_CHUNK overrides the API's frame size (bytes) for experiments. */
    if (getenv("MFL_BENCH_CHUNK"))
        so.limits.chunk_bytes = (size_t)strtoull(getenv("MFL_BENCH_CHUNK"), NULL, 10);
    const size_t chunk = so.limits.chunk_bytes;
    mfl_client_opts_t co;
    mfl_client_opts_default(&co);
    co.limits.chunk_bytes = chunk;
    mfl_server_t *srv = mfl_server_new("tcp://127.0.0.1:*", cid, allow, &so, err, sizeof err);
    if (!srv)
        s_die("server", err);
    mfl_client_t *cli = mfl_client_new(mfl_server_endpoint(srv), sid, mfl_identity_public(cid),
                                       &co, err, sizeof err);
    if (!cli || mfl_client_wait_connected(cli, 10000, err, sizeof err) != 0)
        s_die("client", err);

    /* Raw CURVE pair with its own keys and contexts, same I/O threads. */
    char spub[41], ssec[41], cpub[41], csec[41];
    zmq_curve_keypair(spub, ssec);
    zmq_curve_keypair(cpub, csec);
    void *rctx_s = zmq_ctx_new(), *rctx_c = zmq_ctx_new();
    zmq_ctx_set(rctx_s, ZMQ_IO_THREADS, 2);
    zmq_ctx_set(rctx_c, ZMQ_IO_THREADS, 2);
    void *router = zmq_socket(rctx_s, ZMQ_ROUTER), *dealer = zmq_socket(rctx_c, ZMQ_DEALER);
    int one = 1, zero = 0;
    zmq_setsockopt(router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, ssec, 41);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_CURVE_SERVERKEY, spub, 41);
    zmq_setsockopt(dealer, ZMQ_CURVE_PUBLICKEY, cpub, 41);
    zmq_setsockopt(dealer, ZMQ_CURVE_SECRETKEY, csec, 41);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    char rep[256];
    size_t replen = sizeof rep;
    zmq_bind(router, "tcp://127.0.0.1:*");
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, rep, &replen);
    zmq_connect(dealer, rep);
    raw_srv_t rs = {router};

    pthread_t t_api, t_raw;
    pthread_create(&t_api, NULL, s_api_echo, srv);
    pthread_create(&t_raw, NULL, s_raw_echo, &rs);

    const uint64_t sizes[3] = {10000, 1000000, 10000000};
    const int reps[3] = {200, 40, 9};
    FILE *js = fopen(out, "w");
    if (!js)
        s_die(out, strerror(errno));
    fprintf(js, "{\n  \"benchmark\": \"wire round trip, CurveZMQ on 127.0.0.1\",\n"
                "  \"command\": \"make bench-bins && build/bench/bench_wire\",\n"
                "  \"api_chunk_bytes\": %zu,\n  \"results\": [\n", chunk);
    printf("API frames of %zu bytes; raw: one frame, and frames of the same size\n", chunk);
    printf("%-9s %9s %9s %9s %9s %8s %8s %8s %9s\n", "floats", "raw1 MB/s", "rawC MB/s",
           "api MB/s", "api+hash", "api/raw", "api+h/r", "api/best", "api/floor");
    for (int s = 0; s < 3; s++) {
        uint64_t n = sizes[s];
        size_t bytes = n * 4;
        int k = reps[s];
        float *data = malloc(bytes);
        for (uint64_t i = 0; i < n; i++)
            data[i] = (float)(i % 1000) * 1e-3f;
        uint8_t hash[MFL_HASH_BYTES];
        mfl_tensor_hash(data, n, hash);
        mfl_tensor_t pre = mfl_tensor_vec("x", data, n), nohash = pre;
        pre.blake2b = hash;
        double *t1 = malloc(sizeof(double) * (size_t)k), *tc = malloc(sizeof(double) * (size_t)k);
        double *ta = malloc(sizeof(double) * (size_t)k), *tah = malloc(sizeof(double) * (size_t)k);
        double *th = malloc(sizeof(double) * (size_t)k);
        s_raw_round_trip(dealer, data, bytes, bytes); /* warm-up */
        s_api_round_trip(cli, &pre);
        for (int r = 0; r < k; r++) {
            t1[r] = s_raw_round_trip(dealer, data, bytes, bytes);
            tc[r] = s_raw_round_trip(dealer, data, bytes, chunk);
            ta[r] = s_api_round_trip(cli, &pre);
            tah[r] = s_api_round_trip(cli, &nohash);
            double t0 = s_bench_now();
            mfl_tensor_hash(data, n, hash);
            th[r] = s_bench_now() - t0;
        }
        double m1 = s_bench_median(t1, k), mc = s_bench_median(tc, k), ma = s_bench_median(ta, k),
               mah = s_bench_median(tah, k), mh = s_bench_median(th, k);
        /* Reference: raw with the API's framing (one frame per tensor up to
         * the chunk size); the chunked raw is shown too, and the best of both. */
        double raw = m1, best = m1 < mc ? m1 : mc;
        double floor_s = raw + 2.0 * mh;
        double mb = 2.0 * (double)bytes / 1e6;
        printf("%-9llu %9.1f %9.1f %9.1f %9.1f %8.3f %8.3f %8.3f %9.3f\n",
               (unsigned long long)n, mb / m1, mb / mc, mb / ma, mb / mah, raw / ma, raw / mah,
               best / ma, floor_s / ma);
        fprintf(js,
                "    {\"floats\": %llu, \"bytes\": %zu, \"reps\": %d,\n"
                "     \"raw_one_frame_median_s\": %.6f, \"raw_chunked_median_s\": %.6f,\n"
                "     \"api_median_s\": %.6f, \"api_hashing_median_s\": %.6f,\n"
                "     \"blake2b_median_s\": %.6f, \"floor_raw_plus_2_hashes_s\": %.6f,\n"
                "     \"raw_one_frame_MBps\": %.1f, \"raw_chunked_MBps\": %.1f,\n"
                "     \"api_MBps\": %.1f, \"api_hashing_MBps\": %.1f,\n"
                "     \"ratio_api_over_raw\": %.3f, \"ratio_api_hashing_over_raw\": %.3f,\n"
                "     \"ratio_api_over_best_raw\": %.3f, \"ratio_api_over_floor\": %.3f}%s\n",
                (unsigned long long)n, bytes, k, m1, mc, ma, mah, mh, floor_s, mb / m1, mb / mc,
                mb / ma, mb / mah, raw / ma, raw / mah, best / ma, floor_s / ma,
                s < 2 ? "," : "");
        free(t1);
        free(tc);
        free(ta);
        free(tah);
        free(th);
        free(data);
    }
    fprintf(js, "  ]\n}\n");
    fclose(js);
    printf("wrote %s\n", out);

    atomic_store(&s_stop, 1);
    pthread_join(t_api, NULL);
    pthread_join(t_raw, NULL);
    mfl_client_destroy(&cli);
    mfl_server_destroy(&srv);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(rctx_c);
    zmq_ctx_term(rctx_s);
    mfl_identity_destroy(&cid);
    mfl_identity_destroy(&sid);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_wire: could not remove %s\n", dir);
    return 0;
}
