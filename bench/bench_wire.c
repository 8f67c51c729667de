/* Round-trip throughput of tensor frames through metafl's wire API over
 * CurveZMQ, against raw ZeroMQ CURVE moving the same bytes in the same run.
 *
 *   bench_wire [OUT.json]     (default bench/results/wire.json;
 *                              BENCH_QUICK=1: fewer repeats)
 *
 * A round trip: the site sends one tensor, the coordinator receives it
 * (validated: limits, shape, BLAKE2b, NaN/Inf; for the API the peer is
 * authenticated by ZAP) and echoes it back zero-copy, the site receives and
 * validates it. Raw: DEALER/ROUTER with CURVE keys, no checks, in three
 * framings of the same bytes:
 *   one frame   a small header frame plus the data as one frame (the API's
 *               framing for tensors up to its 64 MiB chunk);
 *   multipart   the header plus the data cut into frames of SPLIT bytes, all
 *               parts of ONE message (the daemons' framing);
 *   separate    the data as SEPARATE messages of SPLIT bytes each: the echo
 *               forwards each as it arrives, so encryption, transfer and
 *               decryption of consecutive pieces overlap.
 * The faster of the three is "best raw", the honest reference (goal: API ≥
 * 0.9 of it). SPLIT is MFL_WIRE_PIPELINE_CHUNK_BYTES (1 MiB) unless
 * MFL_BENCH_SPLIT=BYTES says otherwise; MFL_BENCH_CHUNK=BYTES sets the API's
 * frame size for the "api" variants.
 *
 * API variants: the sender passes the hash it already has (as a signed
 * update or a per-round θ does), the sender hashes on every send, and the
 * sender uses SPLIT-byte frames (chunk_bytes as the daemons set it).
 *
 * "pipelined": a prototype, on raw sockets, of streaming a tensor as separate
 * messages with the hash in a trailer: a preamble announcing the size, SPLIT-
 * byte chunk messages, then the 32-byte BLAKE2b-256; each receiver copies
 * every chunk into place and hashes it as it arrives (incremental BLAKE2b,
 * the same hash definition), verifies the trailer and only then echoes /
 * returns. No envelope, limits or reassembly state: an upper bound for what
 * an API redesign along these lines could reach on this machine.
 *
 * The receiver must BLAKE2b every tensor (the signed header and the audit
 * logs commit to those hashes), about 1 GB/s on one core and not
 * parallelisable within one hash, so the bench also times mfl_tensor_hash
 * alone, and it reports the process's CPU time and minor page faults per
 * round trip (getrusage: both ends run in this process) to show how many
 * cores each variant keeps busy and what big buffers cost. Both use 2 I/O threads per context; all variants are interleaved rep
 * by rep so drift in machine load hits them alike. Reported: median seconds
 * per round trip, MB/s (2 × bytes / median) and ratios. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* Process minor page faults so far (all threads). */
static long s_minflt_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/* Process CPU seconds (user + system, all threads). */
static double s_cpu_now(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
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

static void s_noop_free(void *data, void *hint)
{
    (void)data;
    (void)hint;
}

static void s_noop_release(void *hint) { (void)hint; }

/* Forwards every message part as it is (zero copy), message by message. */
static void *s_raw_echo(void *router)
{
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        int more = 1;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            zmq_msg_recv(&part, router, 0);
            more = zmq_msg_more(&part);
            zmq_msg_send(&part, router, more ? ZMQ_SNDMORE : 0);
        }
    }
    return NULL;
}

/* Raw, one message: a small header frame, then the data as frames of at
 * most `chunk`. */
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

/* Raw, separate messages of at most `chunk` bytes each (no header: the
 * receiver counts bytes). */
static double s_raw_separate_round_trip(void *dealer, const float *data, size_t bytes,
                                        size_t chunk)
{
    double t0 = s_bench_now();
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        zmq_msg_t m;
        zmq_msg_init_data(&m, (char *)data + off, n, s_noop_free, NULL);
        zmq_msg_send(&m, dealer, 0);
    }
    size_t got = 0;
    while (got < bytes) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, dealer, 0);
        got += zmq_msg_size(&m);
        zmq_msg_close(&m);
    }
    double dt = s_bench_now() - t0;
    if (got != bytes)
        s_die("raw separate", "short echo");
    return dt;
}

/* ---- pipelined prototype (raw sockets) ------------------------------------ */

#define S_PIPE_PIECE 65536 /* copy + hash in cache-sized pieces */

/* Receives `total` bytes of chunk messages into buf, hashing as they come,
 * then the 32-byte trailer (into want); returns 0 if the hash matches. On a ROUTER each
 * message is [routing id, payload]. */
static int s_pipe_recv_body(void *sock, int router, uint8_t *buf, uint64_t total,
                            uint8_t want[MFL_HASH_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    uint64_t got = 0;
    uint8_t have[MFL_HASH_BYTES];
    for (;;) {
        zmq_msg_t m;
        if (router) {
            zmq_msg_init(&m);
            zmq_msg_recv(&m, sock, 0);
            zmq_msg_close(&m);
        }
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
        size_t n = zmq_msg_size(&m);
        if (got == total) { /* the trailer */
            int ok = n == MFL_HASH_BYTES;
            if (ok)
                memcpy(want, zmq_msg_data(&m), MFL_HASH_BYTES);
            zmq_msg_close(&m);
            if (!ok)
                return -1;
            break;
        }
        if (n > total - got) {
            zmq_msg_close(&m);
            return -1;
        }
        const uint8_t *src = zmq_msg_data(&m);
        for (size_t o = 0; o < n; o += S_PIPE_PIECE) {
            size_t k = n - o < S_PIPE_PIECE ? n - o : S_PIPE_PIECE;
            memcpy(buf + got + o, src + o, k);
            crypto_generichash_update(&st, buf + got + o, k);
        }
        got += n;
        zmq_msg_close(&m);
    }
    crypto_generichash_final(&st, have, MFL_HASH_BYTES);
    return memcmp(have, want, MFL_HASH_BYTES) == 0 ? 0 : -1;
}

static void s_pipe_part(void *sock, const zmq_msg_t *rid, zmq_msg_t *m)
{
    if (rid)
        zmq_send(sock, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size((zmq_msg_t *)rid),
                 ZMQ_SNDMORE);
    zmq_msg_send(m, sock, 0);
}

/* Sends the preamble (total bytes), chunk messages of `chunk` bytes
 * zero-copy from data, then the hash (computed on the way if hash == NULL:
 * the sender hashes chunk k+1 while the I/O thread encrypts chunk k). */
static void s_pipe_send(void *sock, const zmq_msg_t *rid, const uint8_t *data, uint64_t total,
                        size_t chunk, const uint8_t *hash)
{
    crypto_generichash_state st;
    uint8_t h[MFL_HASH_BYTES];
    zmq_msg_t m;
    zmq_msg_init_size(&m, sizeof total);
    memcpy(zmq_msg_data(&m), &total, sizeof total);
    s_pipe_part(sock, rid, &m);
    if (!hash)
        crypto_generichash_init(&st, NULL, 0, MFL_HASH_BYTES);
    for (uint64_t off = 0; off < total; off += chunk) {
        size_t n = total - off < chunk ? (size_t)(total - off) : chunk;
        if (!hash)
            crypto_generichash_update(&st, data + off, n);
        zmq_msg_init_data(&m, (void *)(data + off), n, s_noop_free, NULL);
        s_pipe_part(sock, rid, &m);
    }
    if (!hash) {
        crypto_generichash_final(&st, h, MFL_HASH_BYTES);
        hash = h;
    }
    zmq_msg_init_size(&m, MFL_HASH_BYTES);
    memcpy(zmq_msg_data(&m), hash, MFL_HASH_BYTES);
    s_pipe_part(sock, rid, &m);
}

typedef struct {
    void *router;
    size_t chunk;
} pipe_srv_t;

/* Receives a whole pipelined tensor, verifies it, and only then echoes it
 * from its reassembly buffer with the verified hash (as the API echo does). */
static void *s_pipe_echo(void *arg)
{
    pipe_srv_t *ps = arg;
    uint8_t *buf = NULL;
    uint64_t cap = 0;
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t it = {ps->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        zmq_msg_t rid, m;
        zmq_msg_init(&rid);
        zmq_msg_recv(&rid, ps->router, 0);
        zmq_msg_init(&m);
        zmq_msg_recv(&m, ps->router, 0);
        uint64_t total = 0;
        if (zmq_msg_size(&m) == sizeof total)
            memcpy(&total, zmq_msg_data(&m), sizeof total);
        zmq_msg_close(&m);
        if (total > cap) {
            free(buf);
            buf = malloc(total);
            cap = buf ? total : 0;
            if (!buf)
                s_die("pipelined echo", "out of memory");
        }
        uint8_t hash[MFL_HASH_BYTES];
        if (s_pipe_recv_body(ps->router, 1, buf, total, hash) != 0)
            s_die("pipelined echo", "hash mismatch");
        s_pipe_send(ps->router, &rid, buf, total, ps->chunk, hash);
        zmq_msg_close(&rid);
    }
    free(buf);
    return NULL;
}

static double s_pipe_round_trip(void *dealer, const float *data, size_t bytes, size_t chunk,
                                const uint8_t *hash, uint8_t *rbuf)
{
    double t0 = s_bench_now();
    s_pipe_send(dealer, NULL, (const uint8_t *)data, bytes, chunk, hash);
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, dealer, 0); /* preamble */
    zmq_msg_close(&m);
    uint8_t got[MFL_HASH_BYTES];
    if (s_pipe_recv_body(dealer, 0, rbuf, bytes, got) != 0)
        s_die("pipelined", "hash mismatch");
    return s_bench_now() - t0;
}

/* ---- API ------------------------------------------------------------------ */

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

/* One API server + client pair with the given frame size. */
typedef struct {
    mfl_server_t *srv;
    mfl_client_t *cli;
    pthread_t thread;
} api_pair_t;

static void s_api_pair(api_pair_t *p, const mfl_identity_t *cid, const mfl_identity_t *sid,
                       const char *allow, size_t chunk)
{
    char err[512];
    mfl_server_opts_t so;
    mfl_server_opts_default(&so);
    so.limits.chunk_bytes = chunk;
    mfl_client_opts_t co;
    mfl_client_opts_default(&co);
    co.limits.chunk_bytes = chunk;
    p->srv = mfl_server_new("tcp://127.0.0.1:*", cid, allow, &so, err, sizeof err);
    if (!p->srv)
        s_die("server", err);
    p->cli = mfl_client_new(mfl_server_endpoint(p->srv), sid, mfl_identity_public(cid), &co, err,
                            sizeof err);
    if (!p->cli || mfl_client_wait_connected(p->cli, 10000, err, sizeof err) != 0)
        s_die("client", err);
    pthread_create(&p->thread, NULL, s_api_echo, p->srv);
}

/* A raw CURVE DEALER/ROUTER pair with its own keys, in the given contexts. */
static void s_raw_pair(void *ctx_s, void *ctx_c, void **router, void **dealer)
{
    char spub[41], ssec[41], cpub[41], csec[41];
    zmq_curve_keypair(spub, ssec);
    zmq_curve_keypair(cpub, csec);
    *router = zmq_socket(ctx_s, ZMQ_ROUTER);
    *dealer = zmq_socket(ctx_c, ZMQ_DEALER);
    int one = 1, zero = 0;
    zmq_setsockopt(*router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(*router, ZMQ_CURVE_SECRETKEY, ssec, 41);
    zmq_setsockopt(*router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(*dealer, ZMQ_CURVE_SERVERKEY, spub, 41);
    zmq_setsockopt(*dealer, ZMQ_CURVE_PUBLICKEY, cpub, 41);
    zmq_setsockopt(*dealer, ZMQ_CURVE_SECRETKEY, csec, 41);
    zmq_setsockopt(*dealer, ZMQ_LINGER, &zero, sizeof zero);
    char rep[256];
    size_t replen = sizeof rep;
    zmq_bind(*router, "tcp://127.0.0.1:*");
    zmq_getsockopt(*router, ZMQ_LAST_ENDPOINT, rep, &replen);
    zmq_connect(*dealer, rep);
}

enum { V_RAW1, V_RAWM, V_RAWS, V_PIPE, V_API, V_APIH, V_APIS, V_HASH, V_N };

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "bench/results/wire.json";
    char dir[] = "/tmp/mfl-bench-wire-XXXXXX", allow[300], path[400], err[512];
    if (sodium_init() < 0)
        s_die("libsodium", "init failed");
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

    mfl_wire_limits_t lim;
    mfl_wire_limits_default(&lim);
    size_t chunk = lim.chunk_bytes;
    if (getenv("MFL_BENCH_CHUNK"))
        chunk = (size_t)strtoull(getenv("MFL_BENCH_CHUNK"), NULL, 10);
    size_t split = MFL_WIRE_PIPELINE_CHUNK_BYTES;
    if (getenv("MFL_BENCH_SPLIT"))
        split = (size_t)strtoull(getenv("MFL_BENCH_SPLIT"), NULL, 10) & ~(size_t)3;
    if (chunk < 4 || split < 4)
        s_die("MFL_BENCH_CHUNK / MFL_BENCH_SPLIT", "must be at least 4 bytes");
    api_pair_t api, api_split;
    s_api_pair(&api, cid, sid, allow, chunk);
    s_api_pair(&api_split, cid, sid, allow, split);

    /* Raw CURVE pairs with their own keys and contexts, same I/O threads. */
    void *rctx_s = zmq_ctx_new(), *rctx_c = zmq_ctx_new();
    zmq_ctx_set(rctx_s, ZMQ_IO_THREADS, 2);
    zmq_ctx_set(rctx_c, ZMQ_IO_THREADS, 2);
    void *router, *dealer, *prouter, *pdealer;
    s_raw_pair(rctx_s, rctx_c, &router, &dealer);
    s_raw_pair(rctx_s, rctx_c, &prouter, &pdealer);
    pipe_srv_t ps = {prouter, split};
    pthread_t t_raw, t_pipe;
    pthread_create(&t_raw, NULL, s_raw_echo, router);
    pthread_create(&t_pipe, NULL, s_pipe_echo, &ps);

    static const char *const names[V_N] = {"raw_one_frame", "raw_multipart", "raw_separate",
                                           "pipelined",     "api",           "api_hashing",
                                           "api_split",     "blake2b"};
    const uint64_t sizes[3] = {10000, 1000000, 10000000};
    int reps[3] = {200, 40, 9};
    if (s_bench_quick_env()) { /* BENCH_QUICK=1: a smoke run */
        reps[0] = 40;
        reps[1] = 8;
        reps[2] = 3;
    }
    FILE *js = fopen(out, "w");
    if (!js)
        s_die(out, strerror(errno));
    fprintf(js,
            "{\n  \"benchmark\": \"wire round trip, CurveZMQ on 127.0.0.1\",\n"
            "  \"command\": \"make bench-bins && build/bench/bench_wire\",\n"
            "  \"api_chunk_bytes\": %zu,\n  \"split_bytes\": %zu,\n  \"results\": [\n",
            chunk, split);
    printf("API frames of %zu bytes; raw multipart/separate, pipelined and api_split: pieces of "
           "%zu bytes\n",
           chunk, split);
    printf("%-9s %8s %8s %8s %8s %8s %8s %8s | %8s %8s %8s %8s %8s\n", "floats", "raw1", "rawMP",
           "rawSep", "pipe", "api", "api+h", "apiSplit", "api/raw1", "api/best", "pipe/bst",
           "apiS/bst", "api/flr");
    for (int s = 0; s < 3; s++) {
        uint64_t n = sizes[s];
        size_t bytes = n * 4;
        int k = reps[s];
        float *data = malloc(bytes);
        uint8_t *rbuf = malloc(bytes);
        if (!data || !rbuf)
            s_die("bench", "out of memory");
        for (uint64_t i = 0; i < n; i++)
            data[i] = (float)(i % 1000) * 1e-3f;
        uint8_t hash[MFL_HASH_BYTES];
        mfl_tensor_hash(data, n, hash);
        mfl_tensor_t pre = mfl_tensor_vec("x", data, n), nohash = pre;
        pre.blake2b = hash;
        double *t[V_N], cpu[V_N] = {0}, wall[V_N] = {0}, med[V_N];
        long flt[V_N] = {0};
        for (int v = 0; v < V_N; v++)
            t[v] = malloc(sizeof(double) * (size_t)k);
        /* warm-up */
        s_raw_round_trip(dealer, data, bytes, bytes);
        s_raw_separate_round_trip(dealer, data, bytes, split);
        s_pipe_round_trip(pdealer, data, bytes, split, hash, rbuf);
        s_api_round_trip(api.cli, &pre);
        s_api_round_trip(api_split.cli, &pre);
        for (int r = 0; r < k; r++) {
            for (int v = 0; v < V_N; v++) {
                double c0 = s_cpu_now(), w0 = s_bench_now();
                long f0 = s_minflt_now();
                switch (v) {
                case V_RAW1: t[v][r] = s_raw_round_trip(dealer, data, bytes, bytes); break;
                case V_RAWM: t[v][r] = s_raw_round_trip(dealer, data, bytes, split); break;
                case V_RAWS: t[v][r] = s_raw_separate_round_trip(dealer, data, bytes, split); break;
                case V_PIPE: t[v][r] = s_pipe_round_trip(pdealer, data, bytes, split, hash, rbuf); break;
                case V_API: t[v][r] = s_api_round_trip(api.cli, &pre); break;
                case V_APIH: t[v][r] = s_api_round_trip(api.cli, &nohash); break;
                case V_APIS: t[v][r] = s_api_round_trip(api_split.cli, &pre); break;
                default: {
                    double h0 = s_bench_now();
                    mfl_tensor_hash(data, n, hash);
                    t[v][r] = s_bench_now() - h0;
                }
                }
                cpu[v] += s_cpu_now() - c0;
                flt[v] += s_minflt_now() - f0;
                wall[v] += s_bench_now() - w0;
            }
        }
        for (int v = 0; v < V_N; v++)
            med[v] = s_bench_median(t[v], k);
        double raw = med[V_RAW1], best = raw;
        int best_v = V_RAW1;
        for (int v = V_RAWM; v <= V_RAWS; v++)
            if (med[v] < best) {
                best = med[v];
                best_v = v;
            }
        double floor_s = raw + 2.0 * med[V_HASH], floor_best = best + 2.0 * med[V_HASH];
        double mb = 2.0 * (double)bytes / 1e6;
        printf("%-9llu %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f | %8.3f %8.3f %8.3f %8.3f %8.3f\n",
               (unsigned long long)n, mb / med[V_RAW1], mb / med[V_RAWM], mb / med[V_RAWS],
               mb / med[V_PIPE], mb / med[V_API], mb / med[V_APIH], mb / med[V_APIS],
               raw / med[V_API], best / med[V_API], best / med[V_PIPE], best / med[V_APIS],
               floor_s / med[V_API]);
        printf("%-9s cores busy (process CPU / wall):", "");
        for (int v = 0; v < V_HASH; v++)
            printf(" %s %.2f", names[v], wall[v] > 0 ? cpu[v] / wall[v] : 0.0);
        printf("\n");
        fprintf(js, "    {\"floats\": %llu, \"bytes\": %zu, \"reps\": %d,\n",
                (unsigned long long)n, bytes, k);
        for (int v = 0; v < V_HASH; v++)
            fprintf(js,
                    "     \"%s_median_s\": %.6f, \"%s_MBps\": %.1f, \"%s_cpu_s_per_rt\": %.6f,"
                    " \"%s_minflt_per_rt\": %ld,\n",
                    names[v], med[v], names[v], mb / med[v], names[v], cpu[v] / k, names[v],
                    flt[v] / k);
        fprintf(js, "     \"blake2b_median_s\": %.6f,\n", med[V_HASH]);
        fprintf(js,
                "     \"best_raw\": \"%s\", \"floor_raw_plus_2_hashes_s\": %.6f,"
                " \"floor_best_raw_plus_2_hashes_s\": %.6f,\n"
                "     \"ratio_api_over_raw\": %.3f, \"ratio_api_hashing_over_raw\": %.3f,\n"
                "     \"ratio_api_over_best_raw\": %.3f, \"ratio_api_split_over_best_raw\": %.3f,\n"
                "     \"ratio_pipelined_over_best_raw\": %.3f, \"ratio_api_over_floor\": %.3f,\n"
                "     \"ratio_pipelined_over_best_floor\": %.3f}%s\n",
                names[best_v], floor_s, floor_best, raw / med[V_API], raw / med[V_APIH],
                best / med[V_API], best / med[V_APIS], best / med[V_PIPE], floor_s / med[V_API],
                floor_best / med[V_PIPE], s < 2 ? "," : "");
        for (int v = 0; v < V_N; v++)
            free(t[v]);
        free(rbuf);
        free(data);
    }
    fprintf(js, "  ]\n}\n");
    fclose(js);
    printf("wrote %s\n", out);

    atomic_store(&s_stop, 1);
    pthread_join(api.thread, NULL);
    pthread_join(api_split.thread, NULL);
    pthread_join(t_raw, NULL);
    pthread_join(t_pipe, NULL);
    mfl_client_destroy(&api.cli);
    mfl_server_destroy(&api.srv);
    mfl_client_destroy(&api_split.cli);
    mfl_server_destroy(&api_split.srv);
    zmq_close(dealer);
    zmq_close(router);
    zmq_close(pdealer);
    zmq_close(prouter);
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
