/* What secure aggregation costs (issue 12, item 6): the aggregation path
 * of a round with and without SecAgg, in the same run, sites in-process.
 *
 *   bench_secagg [--quick] [--out FILE]   (default bench/results/secagg.json)
 *
 * Without SecAgg the coordinator folds N float updates (4·P bytes each)
 * into the fixed-point aggregate. With it every site runs its side of the
 * protocol (keys, shares, encoding, N masks of P + 1 words, signoff,
 * reveals) and the coordinator runs its own (checks, folding masked
 * vectors, recovering secrets, removing masks), then folds the sum. Times
 * are CPU seconds of this thread spent in each side's calls (a site's
 * include hashing its masked words once, for its audit record and the
 * tensor header; the coordinator takes that hash as the wire verified it,
 * which a plain update's receipt costs too, so neither side counts it)
 * (CLOCK_THREAD_CPUTIME_ID: the machine is shared, and wall time would
 * measure the neighbours). Sites run one after another here; in a deployment they run in parallel, so the round's
 * critical path is the slowest site plus the coordinator). Bytes are
 * payloads (keys, boxes, words, signatures), without protobuf framing.
 * Coordinator memory: heap growth (mallinfo2) while it runs the attempt.
 * BENCH_QUICK=1 / --quick: one repeat and a smaller N = 100 row.
 * word_bits 32 rows: 32-bit masked words (docs/SECAGG.md "Word width"),
 * both sides with the quantisation of update_bound 8. BENCH_SECAGG_ROWS
 * ("0 8"): only those rows. */
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "fed/aggregate.h"
#include "secagg/secagg_server.h"
#include "secagg/secagg_site.h"
#include "secagg/secagg_update.h"
#include "bench_common.h"

#define S_NMAX 255

static double s_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    size_t P;
    uint32_t n, t, k;
    uint32_t n_dropped; /* sites that drop after sharing (never send a masked input) */
    int reps;
    unsigned word_bits; /* 64, or 32 (docs/SECAGG.md "Word width"; N ≤ 64) */
} s_case_t;

/* The bound the bench's updates keep with 32-bit words: |w·Δ| = 120 ·
 * 0.01 · |N(0, 1)| stays far below 8 (F = 21). */
#define S_BOUND32 8.0

typedef struct {
    double plain_coord_s, site_max_s, site_mean_s, secagg_coord_s, unmask_s;
    double plain_up_bytes, secagg_up_bytes, key_up_bytes, key_down_bytes;
    double plain_mem, secagg_mem;
    int ok;
} s_result_t;

static size_t s_heap(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void s_delta(float *d, size_t P, uint32_t site)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, 100 + site, 1);
    for (size_t j = 0; j < P; j++)
        d[j] = 0.01f * mfl_rng_normal(&r);
}

/* One attempt of each kind; 0 or -1. */
static int s_run(const s_case_t *c, uint8_t (*roster)[32], uint8_t (*sks)[64], float *delta,
                 uint64_t *x, s_result_t *res)
{
    char err[256];
    const size_t P = c->P, L = P + 1;
    double weight = 120.0;
    /* Plain: fold N float updates. */
    size_t h0 = s_heap();
    double t0 = s_cpu(), plain = 0;
    /* the plain aggregate with the quantisation the secure one uses */
    const unsigned F = c->word_bits == 32 ? mfl_secagg_update_frac_bits(S_BOUND32) : 0;
    mfl_aggregate_t *agg = mfl_secagg_update_aggregate(P, c->word_bits, F);
    res->plain_mem = (double)(s_heap() - h0);
    plain += s_cpu() - t0;
    for (uint32_t i = 1; i <= c->n; i++) {
        s_delta(delta, P, i);
        t0 = s_cpu();
        if (mfl_aggregate_add(agg, delta, weight, err, sizeof err) < 0)
            return -1;
        plain += s_cpu() - t0;
    }
    float *mean_plain = malloc(P * sizeof *mean_plain), *mean_sec = malloc(P * sizeof *mean_sec);
    t0 = s_cpu();
    mfl_aggregate_mean(agg, mean_plain);
    plain += s_cpu() - t0;
    res->plain_coord_s = plain;
    res->plain_up_bytes = (double)c->n * 4.0 * (double)P;

    /* SecAgg. */
    mfl_secagg_params_t p = {.n_sites = c->n, .threshold = c->t, .neighbours = c->k, .length = L,
                             .word_bits = c->word_bits};
    const double wb = c->word_bits / 8;
    p.scope.round = 1;
    randombytes_buf(p.scope.nonce, sizeof p.scope.nonce);
    mfl_secagg_site_t **site = calloc(c->n + 1, sizeof *site);
    double *site_s = calloc(c->n + 1, sizeof *site_s), coord = 0;
    mfl_secagg_share_ct_t *cts = malloc(S_NMAX * sizeof *cts);
    mfl_secagg_reveal_t *rv = malloc(S_NMAX * sizeof *rv);
    double key_up = 0, key_down = 0;
    for (uint32_t i = 1; i <= c->n; i++) {
        site[i] = mfl_secagg_site_new(&p, i, sks[i - 1], (const uint8_t (*)[32])roster, err,
                                      sizeof err);
        if (!site[i]) {
            fprintf(stderr, "bench_secagg: %s\n", err);
            return -1;
        }
    }
    h0 = s_heap();
    t0 = s_cpu();
    mfl_secagg_server_t *srv = mfl_secagg_server_new(&p, (const uint8_t (*)[32])roster, err,
                                                     sizeof err);
    coord += s_cpu() - t0;
    if (!srv)
        return -1;
    size_t peak = 0;
#define SITE(i, call)                                                                      \
    do {                                                                                   \
        double s0_ = s_cpu();                                                        \
        if ((call) != MFL_SECAGG_OK) {                                                     \
            fprintf(stderr, "bench_secagg: site %u: %s\n", (i), err);                      \
            return -1;                                                                     \
        }                                                                                  \
        site_s[i] += s_cpu() - s0_;                                                  \
    } while (0)
#define COORD(call)                                                                        \
    do {                                                                                   \
        double c0_ = s_cpu();                                                        \
        int rc_ = (int)(call);                                                             \
        coord += s_cpu() - c0_;                                                      \
        if (rc_ != 0) {                                                                    \
            fprintf(stderr, "bench_secagg: coordinator: %s\n", err);                       \
            return -1;                                                                     \
        }                                                                                  \
    } while (0)
    for (uint32_t i = 1; i <= c->n; i++) {
        mfl_secagg_advert_t a;
        SITE(i, mfl_secagg_site_advertise(site[i], &a, err, sizeof err));
        COORD(mfl_secagg_server_on_advert(srv, i, &a, err, sizeof err));
        key_up += 4 + 3 * 32 + 64;
    }
    COORD(mfl_secagg_server_end_adverts(srv, err, sizeof err));
    size_t nu1;
    const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(srv, &nu1);
    for (uint32_t i = 1; i <= c->n; i++) {
        size_t nc;
        key_down += (double)nu1 * (4 + 3 * 32 + 64);
        SITE(i, mfl_secagg_site_share(site[i], u1, nu1, cts, &nc, err, sizeof err));
        COORD(mfl_secagg_server_on_shares(srv, i, cts, nc, err, sizeof err));
        key_up += (double)nc * (8 + MFL_SECAGG_BOX_BYTES);
    }
    COORD(mfl_secagg_server_end_shares(srv, err, sizeof err));
    void *y = x; /* masked in place */
    for (uint32_t i = 1; i <= c->n; i++) {
        size_t nb;
        double c0 = s_cpu();
        nb = mfl_secagg_server_boxes_for(srv, i, cts);
        coord += s_cpu() - c0;
        key_down += (double)nb * (8 + MFL_SECAGG_BOX_BYTES);
        s_delta(delta, P, i);
        SITE(i, mfl_secagg_update_encode(agg, delta, weight, x, err, sizeof err) == 0
                    ? MFL_SECAGG_OK : MFL_SECAGG_E_MALFORMED);
        SITE(i, mfl_secagg_site_mask(site[i], cts, nb, x, y, err, sizeof err));
        /* the site hashes its masked words once (its audit record and the
         * tensor header); the wire verifies that hash on receipt, as for a
         * plain update, and the coordinator takes it (no second hash) */
        uint8_t hash[32];
        double h0_ = s_cpu();
        crypto_generichash(hash, 32, (const unsigned char *)y, L * (size_t)wb, NULL, 0);
        site_s[i] += s_cpu() - h0_;
        if (i > c->n - c->n_dropped)
            continue; /* dropped after sharing */
        COORD(mfl_secagg_server_on_masked_hashed(srv, i, y, L, hash, NULL, err, sizeof err));
    }
    COORD(mfl_secagg_server_end_masked(srv, err, sizeof err));
    size_t ns;
    const uint32_t *surv = mfl_secagg_server_survivors(srv, &ns);
    for (uint32_t i = 1; i <= c->n - c->n_dropped; i++) {
        mfl_secagg_signoff_t s;
        key_down += 4.0 * (double)ns;
        SITE(i, mfl_secagg_site_signoff(site[i], surv, ns, &s, err, sizeof err));
        COORD(mfl_secagg_server_on_signoff(srv, i, &s, err, sizeof err));
        key_up += 4 + 64;
    }
    COORD(mfl_secagg_server_end_signoffs(srv, err, sizeof err));
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(srv, &req);
    for (uint32_t i = 1; i <= c->n - c->n_dropped; i++) {
        size_t nr;
        key_down += 4.0 * (double)(req.n_survivors + req.n_dropped) + 68.0 * (double)req.n_signoffs;
        SITE(i, mfl_secagg_site_unmask(site[i], &req, rv, &nr, err, sizeof err));
        COORD(mfl_secagg_server_on_reveals(srv, i, rv, nr, err, sizeof err));
        key_up += (double)nr * (4 + 1 + 32);
    }
    double u0 = s_cpu();
    COORD(mfl_secagg_server_finish(srv, err, sizeof err));
    res->unmask_s = s_cpu() - u0;
    peak = s_heap() - h0;
    size_t count;
    const void *sum = mfl_secagg_server_sum(srv, &count);
    mfl_aggregate_t *agg2 = mfl_secagg_update_aggregate(P, c->word_bits, F);
    t0 = s_cpu();
    int rc = mfl_secagg_update_fold(agg2, sum, count, err, sizeof err);
    mfl_aggregate_mean(agg2, mean_sec);
    coord += s_cpu() - t0;
    /* Without dropouts the means must agree bit for bit. */
    res->ok = rc == 0 && (c->n_dropped > 0 || memcmp(mean_plain, mean_sec, P * sizeof *mean_sec) == 0);
    res->secagg_coord_s = coord;
    double mx = 0, tot = 0;
    for (uint32_t i = 1; i <= c->n; i++) {
        mx = site_s[i] > mx ? site_s[i] : mx;
        tot += site_s[i];
    }
    res->site_max_s = mx;
    res->site_mean_s = tot / c->n;
    res->secagg_up_bytes = (double)(c->n - c->n_dropped) * wb * (double)L + key_up;
    res->key_up_bytes = key_up;
    res->key_down_bytes = key_down;
    res->secagg_mem = (double)peak;
    mfl_secagg_server_destroy(&srv);
    for (uint32_t i = 1; i <= c->n; i++)
        mfl_secagg_site_destroy(&site[i]);
    mfl_aggregate_destroy(&agg);
    mfl_aggregate_destroy(&agg2);
    free(site);
    free(site_s);
    free(cts);
    free(rv);
    free(mean_plain);
    free(mean_sec);
    return 0;
}

int main(int argc, char **argv)
{
    int quick;
    const char *out_arg;
    if (s_bench_args(argc, argv, "bench_secagg", &quick, &out_arg) != 0)
        return 2;
    char out_buf[1024];
    const char *out = s_bench_out_path(out_arg, out_buf, sizeof out_buf, "secagg.json");
    if (sodium_init() < 0)
        return 1;
    const s_case_t cases[] = {
        {1000000, 8, 5, 0, 0, quick ? 1 : 3, 64},
        {100000, 8, 5, 0, 0, 1, 64},
        {100000, 32, 17, 0, 0, 1, 64},
        {100000, 32, 17, 0, 3, 1, 64},
        {100000, quick ? 50 : 100, quick ? 26 : 51, 0, 0, 1, 64},
        {100000, quick ? 50 : 100, quick ? 26 : 51, 0, quick ? 5 : 10, 1, 64},
        {100000, quick ? 50 : 100, 9, 16, 0, 1, 64},
        {100000, quick ? 50 : 100, 9, 16, quick ? 5 : 10, 1, 64},
        /* 32-bit words: at most 64 sites */
        {1000000, 8, 5, 0, 0, quick ? 1 : 3, 32},
        {100000, 32, 17, 0, 0, 1, 32},
        {100000, 32, 17, 0, 3, 1, 32},
        {100000, 64, 33, 0, 0, 1, 32},
        {100000, 64, 9, 16, 6, 1, 32},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    uint8_t (*roster)[32] = malloc(S_NMAX * 32);
    uint8_t (*sks)[64] = malloc(S_NMAX * 64);
    for (int i = 0; i < S_NMAX; i++)
        crypto_sign_keypair(roster[i], sks[i]);
    FILE *f = s_bench_open_results("bench_secagg", out, "secagg");
    if (!f)
        return 1;
    fprintf(f, "  \"command\": \"build/bench/bench_secagg%s\",\n", quick ? " --quick" : "");
    fprintf(f, "  \"how\": \"aggregation path of one round, sites in-process on one thread, thread CPU time; "
               "medians of repeats for the first row; bytes are payloads\",\n  \"rows\": [\n");
    int fail = 0;
    /* BENCH_SECAGG_ROWS="0 8": only those rows (by index) */
    const char *only = getenv("BENCH_SECAGG_ROWS");
    int first = 1;
    for (size_t ci = 0; ci < n_cases; ci++) {
        const s_case_t *c = &cases[ci];
        if (only) {
            char key[16];
            snprintf(key, sizeof key, " %zu ", ci);
            char padded[256];
            snprintf(padded, sizeof padded, " %s ", only);
            if (!strstr(padded, key))
                continue;
        }
        float *delta = malloc(c->P * sizeof *delta);
        uint64_t *x = malloc((c->P + 1) * sizeof *x); /* room for either width */
        s_result_t best = {0}, r[8];
        double sm[8], cm[8], pm[8];
        for (int k = 0; k < c->reps; k++) {
            if (s_run(c, roster, sks, delta, x, &r[k]) < 0 || !r[k].ok) {
                fprintf(stderr, "bench_secagg: case %zu failed\n", ci);
                fail = 1;
            }
            sm[k] = r[k].site_max_s;
            cm[k] = r[k].secagg_coord_s;
            pm[k] = r[k].plain_coord_s;
        }
        best = r[0];
        best.site_max_s = s_bench_median(sm, c->reps);
        best.secagg_coord_s = s_bench_median(cm, c->reps);
        best.plain_coord_s = s_bench_median(pm, c->reps);
        double clear_up = best.plain_up_bytes;
        printf("P=%zu N=%u t=%u k=%u dropped=%u words=%u bits: plain coord %.1f ms; secagg site max %.1f ms "
               "(mean %.1f), coord %.1f ms (unmask %.1f); upload %.3fx of float deltas, "
               "%.5fx of the same words in clear; key bytes up %.0f down %.0f; coord mem "
               "%.1f MB vs %.1f MB plain%s\n",
               c->P, c->n, c->t, c->k, c->n_dropped, c->word_bits, 1e3 * best.plain_coord_s,
               1e3 * best.site_max_s, 1e3 * best.site_mean_s, 1e3 * best.secagg_coord_s,
               1e3 * best.unmask_s, best.secagg_up_bytes / clear_up,
               best.secagg_up_bytes /
                   ((double)(c->n - c->n_dropped) * (c->word_bits / 8.0) * (double)(c->P + 1)),
               best.key_up_bytes, best.key_down_bytes, best.secagg_mem / 1e6,
               best.plain_mem / 1e6, best.ok ? "" : "  MISMATCH");
        fprintf(f,
                "%s    {\"P\": %zu, \"N\": %u, \"threshold\": %u, \"neighbours\": %u, "
                "\"word_bits\": %u, \"dropped\": %u, \"reps\": %d, \"plain_coord_ms\": %.3f, "
                "\"secagg_site_max_ms\": %.3f, \"secagg_site_mean_ms\": %.3f, "
                "\"secagg_coord_ms\": %.3f, \"secagg_unmask_ms\": %.3f, "
                "\"plain_upload_bytes\": %.0f, \"secagg_upload_bytes\": %.0f, "
                "\"key_upload_bytes\": %.0f, \"key_download_bytes\": %.0f, "
                "\"coord_mem_plain_bytes\": %.0f, \"coord_mem_secagg_bytes\": %.0f, "
                "\"sum_bit_identical\": %s}",
                first ? "" : ",\n", c->P, c->n, c->t, c->k, c->word_bits, c->n_dropped, c->reps,
                1e3 * best.plain_coord_s,
                1e3 * best.site_max_s, 1e3 * best.site_mean_s, 1e3 * best.secagg_coord_s,
                1e3 * best.unmask_s, best.plain_up_bytes, best.secagg_up_bytes,
                best.key_up_bytes, best.key_down_bytes, best.plain_mem, best.secagg_mem,
                c->n_dropped ? "null" : (best.ok ? "true" : "false"));
        first = 0;
        free(delta);
        free(x);
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    free(roster);
    free(sks);
    return fail;
}
