/* The wire floor of a federated round (issue 6, goal 2a): raw ZeroMQ over
 * CURVE on loopback moving exactly the bytes a round moves (θ, 4·P bytes,
 * to each of N sites, and a Δ of 4·P bytes back from each), with no
 * protobuf, no hashing, no signatures, no aggregation. A round of the real
 * coordinator and agents is compared against this number measured in the
 * same run (bench/run.sh), so machine noise cancels in the ratio.
 *
 * Shape of the floor: one ROUTER (CURVE server, its own context with
 * `io_threads` I/O threads, as the coordinator's server.h uses) and N
 * DEALER threads (CURVE clients, one context each, like N agent
 * processes). θ is sent zero-copy from one buffer to every site; each site
 * answers with its own Δ buffer, zero-copy. A round is timed from the
 * first send to the last reply; median over `rounds` after one warm-up.
 * Both framings are measured (one frame per message, and 1 MiB frames as
 * the daemons send) and the floor is the faster one.
 *
 *   bench_rounds_floor [--params P,P,...] [--sites N,N,...] [--rounds R]
 *                      [--io-threads T] [--plain] [--out FILE.json]
 * Defaults: P = 10000,1000000,10000000; N = 2,4,8; R = 5; T = 2.
 *
 * CPU: the process's user + system time (getrusage, every thread: the
 * server, its I/O threads, the N site threads and theirs) over the timed
 * rounds, divided by their number ("cpu_ms" per round, of the framing that
 * gave the floor): the CPU the wire alone needs, to hold against the
 * daemons' CPU per round (bench/rounds_engine.sh). */
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#include "bench_common.h"

#define S_MAX_LIST 8
#define S_MAX_SITES 64
#define S_MAX_ROUNDS 101

typedef struct {
    char endpoint[128];
    char server_pub[41];
    int plain;
    size_t bytes;
    size_t chunk; /* frame size; 0 = one frame per message */
    int id;
    int rc;
} s_client_t;

/* Closes sock without waiting for unsent frames (linger 0), then its
 * context: the bench is done with both, on every path. */
static void s_zmq_close_now(void *sock, void *ctx)
{
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

static void s_nofree(void *data, void *hint)
{
    (void)data;
    (void)hint;
}

/* Sends `bytes` of `buf` zero-copy as one frame, or as frames of `chunk`
 * bytes (a multipart message) when chunk > 0, after an optional routing
 * frame. Returns 0 or -1. */
static int s_send_buf(void *sock, const void *id, size_t idl, char *buf, size_t bytes,
                      size_t chunk)
{
    if (id && zmq_send(sock, id, idl, ZMQ_SNDMORE) < 0)
        return -1;
    size_t step = chunk ? chunk : bytes;
    for (size_t off = 0; off < bytes || (bytes == 0 && off == 0); off += step) {
        size_t len = bytes - off < step ? bytes - off : step;
        zmq_msg_t m;
        zmq_msg_init_data(&m, buf + off, len, s_nofree, NULL);
        int more = off + len < bytes ? ZMQ_SNDMORE : 0;
        if (zmq_msg_send(&m, sock, more) < 0) {
            zmq_msg_close(&m);
            return -1;
        }
        if (bytes == 0)
            break;
    }
    return 0;
}

/* Receives the rest of a multipart message; returns its total size or -1. */
static long s_recv_all(void *sock)
{
    long total = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            return -1;
        }
        total += (long)zmq_msg_size(&m);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return total;
}

/* One site: echo a Δ of the same size for every θ; an empty frame ends. */
static void *s_client_main(void *arg)
{
    s_client_t *c = arg;
    c->rc = -1;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    char pub[41], sec[41];
    char *delta = malloc(c->bytes ? c->bytes : 1);
    if (!delta)
        goto out;
    memset(delta, 0x3c, c->bytes);
    int hwm = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char ident[16];
    int il = snprintf(ident, sizeof ident, "site%02d", c->id);
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, ident, (size_t)il);
    if (!c->plain) {
        zmq_curve_keypair(pub, sec);
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->server_pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    if (zmq_connect(sock, c->endpoint) != 0)
        goto out;
    /* Announce: the server learns the routing id. */
    zmq_send(sock, "hi", 2, 0);
    for (;;) {
        long got = s_recv_all(sock);
        if (got < 0)
            goto out;
        if (got == 0)
            break;
        if (s_send_buf(sock, NULL, 0, delta, c->bytes, c->chunk) != 0)
            goto out;
    }
    c->rc = 0;
out:
    s_zmq_close_now(sock, ctx);
    free(delta);
    return NULL;
}

/* Runs `rounds` rounds with n sites and P params; *median in seconds. */
/* User + system CPU seconds of the whole process so far. */
static double s_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int s_floor(size_t params, int n, int rounds, int io_threads, int plain, size_t chunk,
                   double *median, double *min, double *cpu)
{
    size_t bytes = params * sizeof(float);
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, io_threads);
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    char pub[41], sec[41];
    int hwm = 0, one = 1, rc = -1;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (!plain) {
        zmq_curve_keypair(pub, sec);
        zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    char *theta = malloc(bytes);
    s_client_t *cl = calloc((size_t)n, sizeof *cl);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    char (*ids)[16] = calloc((size_t)n, 16);
    size_t *idl = calloc((size_t)n, sizeof *idl);
    double t[S_MAX_ROUNDS];
    int started = 0;
    if (!theta || !cl || !th || !ids || !idl)
        goto out;
    memset(theta, 0x5a, bytes);
    if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0)
        goto out;
    char ep[128];
    size_t epl = sizeof ep;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &epl);
    for (int i = 0; i < n; i++) {
        snprintf(cl[i].endpoint, sizeof cl[i].endpoint, "%s", ep);
        memcpy(cl[i].server_pub, pub, 41);
        cl[i].plain = plain;
        cl[i].bytes = bytes;
        cl[i].chunk = chunk;
        cl[i].id = i;
        if (pthread_create(&th[i], NULL, s_client_main, &cl[i]) != 0)
            goto out_join;
        started++;
    }
    for (int i = 0; i < n; i++) {
        char buf[8];
        int l = zmq_recv(sock, ids[i], sizeof ids[i], 0);
        if (l < 0)
            goto out_join;
        idl[i] = (size_t)l;
        zmq_recv(sock, buf, sizeof buf, 0);
    }
    double c0 = 0;
    for (int r = 0; r <= rounds; r++) {
        if (r == 1)
            c0 = s_cpu_s(); /* after the warm-up round */
        double t0 = s_bench_now();
        for (int i = 0; i < n; i++)
            if (s_send_buf(sock, ids[i], idl[i], theta, bytes, chunk) != 0)
                goto out_join;
        for (int i = 0; i < n; i++) {
            /* routing id frame + the Δ frames */
            if (s_recv_all(sock) != (long)(idl[0] + bytes))
                goto out_join;
        }
        if (r > 0)
            t[r - 1] = s_bench_now() - t0;
    }
    *cpu = (s_cpu_s() - c0) / rounds;
    qsort(t, (size_t)rounds, sizeof t[0], s_bench_cmp_double);
    *median = t[rounds / 2];
    *min = t[0];
    rc = 0;
out_join:
    for (int i = 0; i < started; i++) {
        zmq_send(sock, ids[i], idl[i], ZMQ_SNDMORE);
        zmq_send(sock, "", 0, 0);
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
out:
    s_zmq_close_now(sock, ctx);
    free(theta);
    free(cl);
    free(th);
    free(ids);
    free(idl);
    return rc;
}

static int s_parse_list(const char *text, long *out, int max)
{
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0)
            return -1;
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    long ps[S_MAX_LIST] = {10000, 1000000, 10000000}, ns[S_MAX_LIST] = {2, 4, 8};
    int np = 3, nn = 3, rounds = 5, io = 2, plain = 0;
    const char *out = "bench/results/rounds_floor.json";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--params") == 0 && i + 1 < argc)
            np = s_parse_list(argv[++i], ps, S_MAX_LIST);
        else if (strcmp(argv[i], "--sites") == 0 && i + 1 < argc)
            nn = s_parse_list(argv[++i], ns, S_MAX_LIST);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--io-threads") == 0 && i + 1 < argc)
            io = atoi(argv[++i]);
        else if (strcmp(argv[i], "--plain") == 0)
            plain = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else {
            fprintf(stderr, "usage: bench_rounds_floor [--params P,..] [--sites N,..] "
                            "[--rounds R] [--io-threads T] [--plain] [--out FILE]\n");
            return 2;
        }
    }
    if (np < 1 || nn < 1 || rounds < 1 || rounds >= S_MAX_ROUNDS || io < 1) {
        fprintf(stderr, "bench_rounds_floor: bad arguments\n");
        return 2;
    }
    for (int j = 0; j < nn; j++)
        if (ns[j] > S_MAX_SITES) {
            fprintf(stderr, "bench_rounds_floor: at most %d sites\n", S_MAX_SITES);
            return 2;
        }
    FILE *f = s_bench_open_results("bench_rounds_floor", out, "rounds_floor");
    if (!f)
        return 1;
    fprintf(f, "  \"transport\": \"%s\",\n  \"io_threads\": %d,\n  \"rounds\": %d,\n",
            plain ? "plain ZeroMQ" : "ZeroMQ CURVE", io, rounds);
    fprintf(f, "  \"rows\": [\n");
    printf("%-10s %-4s %12s %12s %10s %12s\n", "params", "N", "median ms", "min ms", "MB/s",
           "CPU ms/round");
    int first = 1;
    for (int i = 0; i < np; i++)
        for (int j = 0; j < nn; j++) {
            /* The floor is the faster framing of the same bytes: one frame per
             * message, or 1 MiB frames (CURVE then pipelines encryption). */
            double med = 0, mn = 0, med1 = 0, mn1 = 0, medc = 0, mnc = 0, cpu1 = 0, cpuc = 0;
            size_t chunk = (size_t)1 << 20;
            if (s_floor((size_t)ps[i], (int)ns[j], rounds, io, plain, 0, &med1, &mn1,
                        &cpu1) != 0 ||
                s_floor((size_t)ps[i], (int)ns[j], rounds, io, plain, chunk, &medc, &mnc,
                        &cpuc) != 0) {
                fprintf(stderr, "bench_rounds_floor: P=%ld N=%ld failed: %s\n", ps[i], ns[j],
                        zmq_strerror(zmq_errno()));
                fclose(f);
                return 1;
            }
            med = med1 < medc ? med1 : medc;
            mn = mn1 < mnc ? mn1 : mnc;
            double cpu = med1 < medc ? cpu1 : cpuc;
            double mb = 2.0 * (double)ns[j] * 4.0 * (double)ps[i] / 1e6;
            printf("%-10ld %-4ld %12.3f %12.3f %10.1f %12.2f\n", ps[i], ns[j], med * 1e3,
                   mn * 1e3, mb / med, cpu * 1e3);
            fflush(stdout);
            fprintf(f, "%s    {\"params\": %ld, \"sites\": %ld, \"median_ms\": %.4f, "
                       "\"min_ms\": %.4f, \"one_frame_ms\": %.4f, \"mib_frames_ms\": %.4f, "
                       "\"mbytes\": %.3f, \"mb_per_s\": %.1f, \"cpu_ms\": %.3f}",
                    first ? "" : ",\n", ps[i], ns[j], med * 1e3, mn * 1e3, med1 * 1e3,
                    medc * 1e3, mb, mb / med, cpu * 1e3);
            first = 0;
        }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", out);
    return 0;
}
