/* Secure aggregation's protocol, sites and coordinator in-process: the sum
 * is exact (bit-identical to the plain aggregate), every dropout pattern of
 * N = 5, t = 3 ends in the right sum or an abandoned attempt, an honest site
 * refuses to reveal both shares of one peer, and bad input is rejected with
 * a reason while nothing wrong is folded in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "fed/aggregate.h"
#include "secagg/secagg_server.h"
#include "secagg/secagg_site.h"
#include "secagg/secagg_update.h"

#define NMAX 16
#define PMAX 1000

/* One attempt's parties. drop[i]: the phase (1 advertise .. 5 unmask) in
 * which site i stops answering, 0 never. */
typedef struct {
    mfl_secagg_params_t p;
    size_t n_params;
    uint8_t roster[NMAX][32];
    uint8_t sk[NMAX][64];
    mfl_secagg_site_t *site[NMAX + 1];
    mfl_secagg_server_t *srv;
    float delta[NMAX + 1][PMAX];
    double weight[NMAX + 1];
    uint64_t x[NMAX + 1][PMAX + 1];
    int drop[NMAX + 1];
    int in_u3[NMAX + 1];         /* sites whose masked input was accepted */
    uint32_t corrupt_reveal_of;  /* a site whose revealed shares are flipped (0: none) */
    mfl_aggregate_t *agg;
    int split;                   /* masked inputs folded as uneven runs (on_masked_runs) */
    unsigned threads;            /* unmasking threads (0: the default) */
    void *reuse;                 /* the next attempt's sum buffer (taken by h_start) */
    size_t reuse_bytes;
} h_t;

static h_t s_h;

/* As h_init with words of `word_bits` (64, or 32 with `frac_bits`: the
 * updates are then kept within the narrower aggregate's bounds, and the
 * words are uint32_t in the same storage). */
static void h_init_w(h_t *h, uint32_t n, uint32_t t, uint32_t k, size_t n_params, uint64_t seed,
                     uint32_t word_bits, unsigned frac_bits)
{
    memset(h, 0, sizeof *h);
    h->p.word_bits = word_bits;
    assert_true(n <= NMAX && n_params <= PMAX);
    h->n_params = n_params;
    h->p.n_sites = n;
    h->p.threshold = t;
    h->p.neighbours = k;
    h->p.length = n_params + 1;
    h->p.scope.round = 3;
    memset(h->p.scope.nonce, 0x42, sizeof h->p.scope.nonce);
    h->agg = mfl_secagg_update_aggregate(n_params, word_bits, frac_bits);
    assert_non_null(h->agg);
    const int narrow = word_bits == 32;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 9);
    char err[256];
    for (uint32_t i = 1; i <= n; i++) {
        assert_int_equal(crypto_sign_keypair(h->roster[i - 1], h->sk[i - 1]), 0);
        float scale = i % 3 == 0 ? 1e-4f : i % 3 == 1 ? 0.5f : narrow ? 2.0f : 20.0f;
        for (size_t j = 0; j < n_params; j++)
            h->delta[i][j] = scale * mfl_rng_normal(&r);
        h->weight[i] = i == 2 ? 0.3 : (double)(1 + mfl_rng_below(&r, narrow ? 60 : 900));
        assert_int_equal(mfl_secagg_update_encode(h->agg, h->delta[i], h->weight[i], h->x[i], err,
                                                  sizeof err), 0);
    }
}

static void h_init(h_t *h, uint32_t n, uint32_t t, uint32_t k, size_t n_params, uint64_t seed)
{
    h_init_w(h, n, t, k, n_params, seed, 64, 0);
}

/* New parties for another attempt on the same updates. */
static void h_start(h_t *h)
{
    char err[256];
    for (uint32_t i = 1; i <= h->p.n_sites; i++) {
        mfl_secagg_site_destroy(&h->site[i]);
        h->site[i] = mfl_secagg_site_new(&h->p, i, h->sk[i - 1],
                                         (const uint8_t (*)[32])h->roster, err, sizeof err);
        assert_non_null(h->site[i]);
        h->in_u3[i] = 0;
    }
    mfl_secagg_server_destroy(&h->srv);
    h->srv = mfl_secagg_server_new_reusing(&h->p, (const uint8_t (*)[32])h->roster, h->reuse,
                                           h->reuse_bytes, err, sizeof err);
    h->reuse = NULL;
    h->reuse_bytes = 0;
    assert_non_null(h->srv);
    if (h->threads)
        mfl_secagg_server_set_threads(h->srv, h->threads);
}

static void h_free(h_t *h)
{
    free(h->reuse);
    h->reuse = NULL;
    for (uint32_t i = 1; i <= h->p.n_sites; i++)
        mfl_secagg_site_destroy(&h->site[i]);
    mfl_secagg_server_destroy(&h->srv);
    mfl_aggregate_destroy(&h->agg);
}

static int h_alive(const h_t *h, uint32_t i, int phase)
{
    return h->drop[i] == 0 || h->drop[i] > phase;
}

/* Phases 1-2 (through end_shares); -1 if abandoned. */
static int h_to_masked(h_t *h)
{
    char err[256];
    const uint32_t n = h->p.n_sites;
    for (uint32_t i = 1; i <= n; i++) {
        if (!h_alive(h, i, 1))
            continue;
        mfl_secagg_advert_t a;
        assert_int_equal(mfl_secagg_site_advertise(h->site[i], &a, err, sizeof err), MFL_SECAGG_OK);
        assert_int_equal(mfl_secagg_server_on_advert(h->srv, i, &a, err, sizeof err), MFL_SECAGG_OK);
    }
    if (mfl_secagg_server_end_adverts(h->srv, err, sizeof err) < 0)
        return -1;
    size_t nu1;
    const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(h->srv, &nu1);
    static mfl_secagg_share_ct_t cts[NMAX];
    for (uint32_t i = 1; i <= n; i++) {
        if (!h_alive(h, i, 1))
            continue;
        size_t nc;
        mfl_secagg_status_t st = mfl_secagg_site_share(h->site[i], u1, nu1, cts, &nc, err, sizeof err);
        if (st != MFL_SECAGG_OK) { /* too few neighbours: the site drops itself */
            h->drop[i] = 2;
            continue;
        }
        if (!h_alive(h, i, 2))
            continue;
        assert_int_equal(mfl_secagg_server_on_shares(h->srv, i, cts, nc, err, sizeof err),
                         MFL_SECAGG_OK);
    }
    return mfl_secagg_server_end_shares(h->srv, err, sizeof err);
}

/* Phase 3 for site i: its boxes, its masked input. */
static mfl_secagg_status_t h_mask(h_t *h, uint32_t i, void *y)
{
    char err[256];
    static mfl_secagg_share_ct_t in[NMAX];
    size_t nb = mfl_secagg_server_boxes_for(h->srv, i, in);
    return mfl_secagg_site_mask(h->site[i], in, nb, h->x[i], y, err, sizeof err);
}

/* The coordinator takes site i's masked vector y: in one piece, or with
 * h->split as frames would bring it, in uneven runs (1, L/3 - 1, 1, the
 * rest) whose hash must be the whole vector's. */
static void h_fold(h_t *h, uint32_t i, const void *y)
{
    char err[256];
    if (!h->split) {
        assert_int_equal(mfl_secagg_server_on_masked(h->srv, i, y, (size_t)h->p.length, NULL, err,
                                                     sizeof err), MFL_SECAGG_OK);
        return;
    }
    const size_t L = (size_t)h->p.length, wb = h->p.word_bits == 32 ? 4 : 8;
    const unsigned bits = h->p.word_bits == 32 ? 32 : 64;
    const uint8_t *b = (const uint8_t *)y;
    mfl_secagg_run_t runs[4] = {{b, 1},
                                {b + wb, L / 3 - 1},
                                {b + wb * (L / 3), 1},
                                {b + wb * (L / 3 + 1), L - L / 3 - 1}};
    uint8_t got[32], want[32];
    assert_int_equal(mfl_secagg_server_on_masked_runs(h->srv, i, runs, 4, NULL, got, err,
                                                      sizeof err), MFL_SECAGG_OK);
    mfl_secagg_words_hash(y, L, bits, want);
    assert_memory_equal(got, want, 32);
    mfl_secagg_runs_hash(runs, 4, bits, got);
    assert_memory_equal(got, want, 32);
}

/* Phase 4: every site whose masked input was accepted and that is still
 * there signs off the survivor list; end_signoffs's result. */
static int h_signoffs(h_t *h)
{
    char err[256];
    size_t ns;
    const uint32_t *surv = mfl_secagg_server_survivors(h->srv, &ns);
    for (uint32_t i = 1; i <= h->p.n_sites; i++) {
        if (!h->in_u3[i] || !h_alive(h, i, 4))
            continue;
        mfl_secagg_signoff_t s;
        assert_int_equal(mfl_secagg_site_signoff(h->site[i], surv, ns, &s, err, sizeof err),
                         MFL_SECAGG_OK);
        assert_int_equal(mfl_secagg_server_on_signoff(h->srv, i, &s, err, sizeof err), MFL_SECAGG_OK);
    }
    return mfl_secagg_server_end_signoffs(h->srv, err, sizeof err);
}

/* Phase 5: those still there reveal what the unmask request asks (site
 * h->corrupt_reveal_of's shares flipped); finish's result. */
static int h_reveals(h_t *h)
{
    char err[256];
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(h->srv, &req);
    static mfl_secagg_reveal_t rv[NMAX];
    for (uint32_t i = 1; i <= h->p.n_sites; i++) {
        if (!h->in_u3[i] || !h_alive(h, i, 5))
            continue;
        size_t nr;
        assert_int_equal(mfl_secagg_site_unmask(h->site[i], &req, rv, &nr, err, sizeof err),
                         MFL_SECAGG_OK);
        if (i == h->corrupt_reveal_of)
            for (size_t k = 0; k < nr; k++)
                rv[k].share[k % 32] ^= 0x5c;
        assert_int_equal(mfl_secagg_server_on_reveals(h->srv, i, rv, nr, err, sizeof err),
                         MFL_SECAGG_OK);
    }
    return mfl_secagg_server_finish(h->srv, err, sizeof err);
}

/* Phases 3-5; -1 if abandoned. */
static int h_from_masked(h_t *h)
{
    char err[256];
    const uint32_t n = h->p.n_sites;
    static uint64_t y[PMAX + 1];
    for (uint32_t i = 1; i <= n; i++) {
        if (!h_alive(h, i, 2))
            continue;
        if (h_mask(h, i, y) != MFL_SECAGG_OK) {
            h->drop[i] = 3;
            continue;
        }
        if (!h_alive(h, i, 3))
            continue;
        h_fold(h, i, y);
        h->in_u3[i] = 1;
    }
    if (mfl_secagg_server_end_masked(h->srv, err, sizeof err) < 0)
        return -1;
    if (h_signoffs(h) < 0)
        return -1;
    return h_reveals(h);
}

/* The sum must be Σ x over the sites whose masked input was accepted, word
 * for word, and its mean bit-identical to the plain aggregator's over the
 * same updates. */
static void h_check_sum(h_t *h)
{
    size_t count;
    const void *sum = mfl_secagg_server_sum(h->srv, &count);
    assert_non_null(sum);
    const int narrow = h->p.word_bits == 32;
    static uint64_t expect[PMAX + 1];
    uint32_t *expect32 = (uint32_t *)expect;
    memset(expect, 0, sizeof expect);
    size_t k = 0;
    /* the plain aggregate with the same quantisation (F, bounds) */
    const unsigned F = mfl_aggregate_frac_bits(h->agg);
    mfl_aggregate_t *plain = mfl_secagg_update_aggregate(h->n_params, h->p.word_bits, F);
    mfl_aggregate_t *viasum = mfl_secagg_update_aggregate(h->n_params, h->p.word_bits, F);
    char err[256];
    for (uint32_t i = 1; i <= h->p.n_sites; i++) {
        if (!h->in_u3[i])
            continue;
        k++;
        for (size_t j = 0; j < h->p.length; j++) {
            if (narrow)
                expect32[j] += ((const uint32_t *)h->x[i])[j];
            else
                expect[j] += h->x[i][j];
        }
        assert_int_equal(mfl_aggregate_add(plain, h->delta[i], h->weight[i], err, sizeof err), 0);
    }
    assert_int_equal(count, k);
    assert_memory_equal(sum, expect, h->p.length * (narrow ? 4 : 8));
    assert_int_equal(mfl_secagg_update_fold(viasum, sum, count, err, sizeof err), 0);
    static float m1[PMAX], m2[PMAX];
    assert_int_equal(mfl_aggregate_mean(plain, m1), 0);
    assert_int_equal(mfl_aggregate_mean(viasum, m2), 0);
    assert_memory_equal(m1, m2, h->n_params * sizeof *m1);
    mfl_aggregate_destroy(&plain);
    mfl_aggregate_destroy(&viasum);
}

static int h_run(h_t *h)
{
    h_start(h);
    if (h_to_masked(h) < 0)
        return -1;
    return h_from_masked(h);
}

/* 32-bit words (docs/SECAGG.md "Word width"): the same protocol mod 2^32
 * ends with the exact sum, word for word, and the plain mean of an
 * aggregate with the same quantisation, bit for bit; also when sites drop
 * after sharing (their pairwise masks come off mod 2^32) and in SecAgg+. */
static void test_exact_sum_with_32_bit_words(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init_w(h, 8, 5, 0, 1000, 11, 32, 12);
    assert_int_equal(h_run(h), 0);
    h_check_sum(h);
    /* the masked words are not the update's: a mask was added mod 2^32 */
    static uint32_t y[PMAX + 1];
    h_free(h);
    h_init_w(h, 8, 5, 0, 1000, 11, 32, 12);
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    assert_int_equal(h_mask(h, 1, y), MFL_SECAGG_OK);
    assert_memory_not_equal(y, h->x[1], 4 * 8);
    h_free(h);
    /* sites 3 and 6 leave after sharing their keys: recovered */
    h_init_w(h, 8, 5, 0, 1000, 12, 32, 12);
    h->drop[3] = h->drop[6] = 3;
    assert_int_equal(h_run(h), 0);
    assert_int_equal(h->in_u3[3] + h->in_u3[6], 0);
    h_check_sum(h);
    h_free(h);
    h_init_w(h, 14, 3, 4, 300, 13, 32, 12);
    h->drop[5] = 3;
    assert_int_equal(h_run(h), 0);
    h_check_sum(h);
    h_free(h);
    /* more than 64 sites cannot share a 32-bit sum: refused up front */
    mfl_secagg_params_t p = {.n_sites = 65, .threshold = 40, .length = 10, .word_bits = 32};
    char err[256];
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most 64 sites"));
    p.word_bits = 16;
    p.n_sites = 8;
    p.threshold = 5;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "64 or 32"));
}

/* The coordinator's fast paths give the same exact sum: masked inputs
 * folded from uneven runs (as they arrive in frames; their hash equals the
 * contiguous vector's), the unmasking on two threads, and the next
 * attempt's running sum in the last one's buffer, handed over dirty
 * (take_sum) and zeroed by new_reusing; a buffer too small is replaced.
 * Both widths, with a site dropping after sharing (its pairwise masks come
 * off in the same pass). */
static void test_sum_from_runs_in_a_reused_buffer(void **state)
{
    (void)state;
    h_t *h = &s_h;
    for (uint32_t bits = 32; bits <= 64; bits += 32) {
        h_init_w(h, 8, 5, 0, 1000, 21 + bits, bits, bits == 32 ? 12 : 0);
        h->split = 1;
        h->threads = 2;
        h->drop[4] = 3;
        assert_int_equal(h_run(h), 0);
        assert_int_equal(h->in_u3[4], 0);
        h_check_sum(h);
        size_t count, bytes;
        void *buf = mfl_secagg_server_take_sum(h->srv, &count, &bytes);
        assert_non_null(buf);
        assert_int_equal(count, 7);
        assert_int_equal(bytes, (size_t)h->p.length * (bits / 8));
        assert_null(mfl_secagg_server_sum(h->srv, &count));
        assert_null(mfl_secagg_server_take_sum(h->srv, &count, &bytes));
        memset(buf, 0xa5, bytes); /* whatever the last attempt left */
        h->reuse = buf;
        h->reuse_bytes = bytes;
        h->drop[4] = 0;
        assert_int_equal(h_run(h), 0);
        assert_int_equal(h->in_u3[4], 1);
        h_check_sum(h);
        h->reuse = malloc(16);
        assert_non_null(h->reuse);
        memset(h->reuse, 0xa5, 16);
        h->reuse_bytes = 16;
        assert_int_equal(h_run(h), 0);
        h_check_sum(h);
        h_free(h);
    }
}

static void test_exact_sum_without_dropouts(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 8, 5, 0, 1000, 1);
    assert_int_equal(h_run(h), 0);
    assert_int_equal(mfl_secagg_server_phase(h->srv), MFL_SECAGG_PHASE_DONE);
    h_check_sum(h);
    uint8_t t[32];
    for (int ph = MFL_SECAGG_PHASE_ADVERTISE; ph <= MFL_SECAGG_PHASE_UNMASK; ph++)
        assert_int_equal(mfl_secagg_server_transcript(h->srv, (mfl_secagg_phase_t)ph, t), 0);
    h_free(h);
}

static void test_masked_input_hides_the_update(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 5, 3, 0, 200, 2);
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    static uint64_t y[PMAX + 1];
    assert_int_equal(h_mask(h, 1, y), MFL_SECAGG_OK);
    size_t same = 0;
    for (size_t j = 0; j < h->p.length; j++)
        same += y[j] == h->x[1][j];
    assert_true(same <= 1); /* a word equal by chance: 2^-64 each */
    h_free(h);
}

/* One dropout pattern of N = 5, t = 3 (h->drop set). Oracle: the sum exists
 * iff ≥ t sites answer to the end (each dropped site's shares sit with
 * every site), and is then exactly Σ over the sites whose masked input
 * arrived; otherwise the attempt is abandoned and there is no sum. */
static void h_check_pattern(h_t *h, size_t *done, size_t *abandoned)
{
    int finishers = 0;
    for (uint32_t i = 1; i <= 5; i++)
        finishers += h->drop[i] == 0;
    int rc = h_run(h);
    if (finishers >= 3) {
        assert_int_equal(rc, 0);
        h_check_sum(h);
        (*done)++;
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(mfl_secagg_server_phase(h->srv), MFL_SECAGG_PHASE_ABANDONED);
        size_t count;
        assert_null(mfl_secagg_server_sum(h->srv, &count));
        (*abandoned)++;
    }
}

/* Every subset of the 5 sites dropping in each of the 5 phases (5 · 2^5
 * patterns). */
static void test_every_dropout_subset_in_every_phase(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 5, 3, 0, 16, 3);
    size_t done = 0, abandoned = 0;
    for (int phase = 1; phase <= 5; phase++)
        for (int set = 0; set < 32; set++) {
            for (uint32_t i = 1; i <= 5; i++)
                h->drop[i] = (set >> (i - 1)) & 1 ? phase : 0;
            h_check_pattern(h, &done, &abandoned);
        }
    print_message("160 patterns: %zu summed, %zu abandoned\n", done, abandoned);
    assert_int_equal(done, 5 * 16);     /* ≤ 2 of 5 dropped */
    assert_int_equal(abandoned, 5 * 16);
    h_free(h);
}

/* Sites dropping in different phases at once: every multiset of drop phases
 * (never, 1..5) over the 5 sites, assigned in ascending site order (252
 * patterns; the subsets above put every site in every phase).
 * MFL_SECAGG_ALL_PATTERNS=1 runs all 6^5 = 7776 assignments instead (about
 * 30 s on one core, minutes under the sanitizers: too long for make test;
 * run it before changing the protocol). */
static void test_every_mix_of_drop_phases(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 5, 3, 0, 16, 4);
    const char *all = getenv("MFL_SECAGG_ALL_PATTERNS");
    int full = all && strcmp(all, "1") == 0;
    size_t done = 0, abandoned = 0, runs = 0;
    for (int code = 0; code < 7776; code++) {
        int c = code, ph[5], sorted = 1;
        for (int i = 0; i < 5; i++) {
            ph[i] = c % 6;
            c /= 6;
            if (i > 0 && ph[i] < ph[i - 1])
                sorted = 0;
        }
        if (!full && !sorted)
            continue;
        for (uint32_t i = 1; i <= 5; i++)
            h->drop[i] = ph[i - 1];
        h_check_pattern(h, &done, &abandoned);
        runs++;
    }
    print_message("%zu patterns: %zu summed, %zu abandoned\n", runs, done, abandoned);
    assert_int_equal(runs, full ? 7776 : 252);
    assert_true(done > 0 && abandoned > 0);
    h_free(h);
}

/* SecAgg+ (k = 4 neighbours of 14, t = 3): exact without dropouts; under
 * random dropouts either the exact sum of the survivors or abandoned. */
static void test_sparse_graph_sum_and_dropouts(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 14, 3, 4, 64, 4);
    assert_int_equal(h_run(h), 0);
    h_check_sum(h);
    mfl_rng_t r;
    mfl_rng_seed(&r, 77, 0);
    size_t done = 0, abandoned = 0;
    for (int trial = 0; trial < 24; trial++) {
        for (uint32_t i = 1; i <= 14; i++)
            h->drop[i] = mfl_rng_below(&r, 10) < 8 ? 0 : 1 + (int)mfl_rng_below(&r, 5);
        if (h_run(h) == 0) {
            h_check_sum(h);
            done++;
        } else {
            size_t count;
            assert_null(mfl_secagg_server_sum(h->srv, &count));
            abandoned++;
        }
    }
    print_message("sparse: %zu summed, %zu abandoned\n", done, abandoned);
    assert_true(done > 0);
    h_free(h);
}

/* Runs N = 5 to the unmask request with site 5 dropped after masking
 * (dropped after sharing = {4}, survivors {1,2,3,5}... set by drop). */
static void h_to_unmask(h_t *h)
{
    char err[256];
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    static uint64_t y[PMAX + 1];
    for (uint32_t i = 1; i <= 5; i++) {
        assert_int_equal(h_mask(h, i, y), MFL_SECAGG_OK);
        if (!h_alive(h, i, 3))
            continue;
        h_fold(h, i, y);
        h->in_u3[i] = 1;
    }
    assert_int_equal(mfl_secagg_server_end_masked(h->srv, err, sizeof err), 0);
    assert_int_equal(h_signoffs(h), 0);
}

/* A coordinator that asks a site for both shares of one peer (the mask key
 * of a survivor, whose seed share the same request asks for) is refused,
 * and so is a second request; nothing is revealed by a refused request. */
static void test_site_refuses_both_shares_of_one_peer(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 5, 3, 0, 8, 5);
    h->drop[4] = 3; /* shared, never sent a masked input: survivors 1,2,3,5 */
    h_to_unmask(h);
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(h->srv, &req);
    assert_int_equal(req.n_dropped, 1);
    assert_int_equal(req.dropped[0], 4);
    char err[256];
    mfl_secagg_reveal_t rv[NMAX];
    size_t nr = 99;
    /* Ask site 1 for the mask-key share of survivor 2 as well. */
    uint32_t greedy[2] = {2, 4};
    mfl_secagg_unmask_req_t bad = req;
    bad.dropped = greedy;
    bad.n_dropped = 2;
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &bad, rv, &nr, err, sizeof err),
                     MFL_SECAGG_E_REFUSED);
    assert_int_equal(nr, 0);
    assert_non_null(strstr(err, "site 2"));
    /* Its own mask key: refused too. */
    uint32_t mine[2] = {1, 4};
    bad.dropped = mine;
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &bad, rv, &nr, err, sizeof err),
                     MFL_SECAGG_E_REFUSED);
    /* Claiming survivor 5 dropped (a survivor list site 1 did not sign). */
    uint32_t fewer[3] = {1, 2, 3};
    uint32_t d5[2] = {4, 5};
    bad = req;
    bad.survivors = fewer;
    bad.n_survivors = 3;
    bad.dropped = d5;
    bad.n_dropped = 2;
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &bad, rv, &nr, err, sizeof err),
                     MFL_SECAGG_E_REFUSED);
    /* Too few signoffs. */
    bad = req;
    bad.n_signoffs = 2;
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &bad, rv, &nr, err, sizeof err),
                     MFL_SECAGG_E_REFUSED);
    /* The honest request: seed shares of 1,2,3,5 and the key share of 4. */
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &req, rv, &nr, err, sizeof err),
                     MFL_SECAGG_OK);
    assert_int_equal(nr, 5);
    for (size_t k = 0; k < nr; k++)
        assert_int_equal(rv[k].kind, rv[k].peer == 4 ? MFL_SECAGG_SHARE_KEY : MFL_SECAGG_SHARE_SEED);
    /* A second request, even the same one, is not answered. */
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &req, rv, &nr, err, sizeof err),
                     MFL_SECAGG_E_PHASE);
    assert_int_equal(nr, 0);
    /* A site signs one survivor list per attempt. */
    mfl_secagg_signoff_t s;
    assert_int_equal(mfl_secagg_site_signoff(h->site[2], fewer, 3, &s, err, sizeof err),
                     MFL_SECAGG_E_PHASE);
    h_free(h);
}

/* Keys whose signature does not verify: the coordinator rejects them (the
 * attempt goes on without that site and sums the rest exactly), and a site
 * refuses a key list in which the coordinator substituted a key. */
static void test_bad_key_signature_rejected(void **state)
{
    (void)state;
    h_t *h = &s_h;
    char err[256];
    h_init(h, 5, 3, 0, 32, 6);
    h_start(h);
    mfl_secagg_advert_t a[6];
    for (uint32_t i = 1; i <= 5; i++)
        assert_int_equal(mfl_secagg_site_advertise(h->site[i], &a[i], err, sizeof err), MFL_SECAGG_OK);
    mfl_secagg_advert_t forged = a[3];
    forged.s_pk[0] ^= 1;
    assert_int_equal(mfl_secagg_server_on_advert(h->srv, 3, &forged, err, sizeof err),
                     MFL_SECAGG_E_SIGNATURE);
    assert_non_null(strstr(err, "site 3"));
    /* Site 2's keys sent by site 3: not its own index. */
    assert_int_equal(mfl_secagg_server_on_advert(h->srv, 3, &a[2], err, sizeof err),
                     MFL_SECAGG_E_MALFORMED);
    /* A site signing with another site's identity key. */
    mfl_secagg_advert_t wrong = a[3];
    uint8_t digest[32];
    mfl_secagg_advert_digest(digest, &h->p, &wrong);
    crypto_sign_detached(wrong.sig, NULL, digest, 32, h->sk[0]);
    assert_int_equal(mfl_secagg_server_on_advert(h->srv, 3, &wrong, err, sizeof err),
                     MFL_SECAGG_E_SIGNATURE);
    for (uint32_t i = 1; i <= 5; i++)
        if (i != 3)
            assert_int_equal(mfl_secagg_server_on_advert(h->srv, i, &a[i], err, sizeof err),
                             MFL_SECAGG_OK);
    assert_int_equal(mfl_secagg_server_on_advert(h->srv, 1, &a[1], err, sizeof err),
                     MFL_SECAGG_E_DUPLICATE);
    assert_int_equal(mfl_secagg_server_end_adverts(h->srv, err, sizeof err), 0);
    /* A lying coordinator hands site 1 a list with site 4's key replaced. */
    mfl_secagg_advert_t list[4] = {a[1], a[2], a[4], a[5]};
    list[2].c_pk[5] ^= 0x80;
    mfl_secagg_share_ct_t cts[NMAX];
    size_t nc;
    assert_int_equal(mfl_secagg_site_share(h->site[1], list, 4, cts, &nc, err, sizeof err),
                     MFL_SECAGG_E_SIGNATURE);
    assert_int_equal(nc, 0);
    assert_int_equal(mfl_secagg_site_phase(h->site[1]), 1); /* unchanged: can take the real list */
    /* The attempt goes on with sites 1, 2, 4, 5 and sums them exactly. */
    h->drop[3] = 1;
    size_t nu1;
    const mfl_secagg_advert_t *u1 = mfl_secagg_server_adverts(h->srv, &nu1);
    assert_int_equal(nu1, 4);
    for (uint32_t i = 1; i <= 5; i++) {
        if (i == 3)
            continue;
        assert_int_equal(mfl_secagg_site_share(h->site[i], u1, nu1, cts, &nc, err, sizeof err),
                         MFL_SECAGG_OK);
        assert_int_equal(mfl_secagg_server_on_shares(h->srv, i, cts, nc, err, sizeof err),
                         MFL_SECAGG_OK);
    }
    assert_int_equal(mfl_secagg_server_end_shares(h->srv, err, sizeof err), 0);
    assert_int_equal(h_from_masked(h), 0);
    assert_false(h->in_u3[3]);
    h_check_sum(h);
    h_free(h);
}

/* Masked inputs of the wrong length, a second masked input from one site,
 * and one from a site that never shared: each rejected with its reason, and
 * the sum is still exactly that of the first inputs. */
static void test_bad_masked_inputs_rejected(void **state)
{
    (void)state;
    h_t *h = &s_h;
    char err[256];
    h_init(h, 5, 3, 0, 40, 7);
    h->drop[5] = 2; /* advertised, never shared */
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    h->drop[5] = 0;
    static uint64_t y[PMAX + 1], y2[PMAX + 1];
    for (uint32_t i = 1; i <= 4; i++) {
        assert_int_equal(h_mask(h, i, y), MFL_SECAGG_OK);
        assert_int_equal(mfl_secagg_server_on_masked(h->srv, i, y, (size_t)h->p.length - 1, NULL,
                                                     err, sizeof err), MFL_SECAGG_E_LENGTH);
        assert_non_null(strstr(err, "40 words, expected 41"));
        assert_int_equal(mfl_secagg_server_on_masked(h->srv, i, y, (size_t)h->p.length + 1, NULL,
                                                     err, sizeof err), MFL_SECAGG_E_LENGTH);
        uint8_t hash[32];
        assert_int_equal(mfl_secagg_server_on_masked(h->srv, i, y, (size_t)h->p.length, hash, err,
                                                     sizeof err), MFL_SECAGG_OK);
        h->in_u3[i] = 1;
        memcpy(y2, y, sizeof y2);
        y2[0] += 1;
        assert_int_equal(mfl_secagg_server_on_masked(h->srv, i, y2, (size_t)h->p.length, NULL,
                                                     err, sizeof err), MFL_SECAGG_E_DUPLICATE);
    }
    assert_int_equal(mfl_secagg_server_on_masked(h->srv, 5, h->x[5], (size_t)h->p.length, NULL,
                                                 err, sizeof err), MFL_SECAGG_E_MALFORMED);
    assert_int_equal(mfl_secagg_server_on_masked(h->srv, 9, y, (size_t)h->p.length, NULL, err,
                                                 sizeof err), MFL_SECAGG_E_MALFORMED);
    assert_int_equal(mfl_secagg_server_end_masked(h->srv, err, sizeof err), 0);
    /* Late: the phase is over. */
    assert_int_equal(mfl_secagg_server_on_masked(h->srv, 1, y, (size_t)h->p.length, NULL, err,
                                                 sizeof err), MFL_SECAGG_E_PHASE);
    /* Finish the attempt by hand (the harness would re-mask): sites 1-4,
     * whose masked inputs were taken (in_u3), sign off and reveal. */
    size_t ns;
    mfl_secagg_server_survivors(h->srv, &ns);
    assert_int_equal(ns, 4);
    assert_int_equal(h_signoffs(h), 0);
    assert_int_equal(h_reveals(h), 0);
    h_check_sum(h);
    h_free(h);
}

/* Revealed shares that do not reconstruct: with spare shares the
 * coordinator finds a subset that checks against the commitments and sums
 * exactly; with exactly t shares, one of them bad, it abandons (no sum,
 * reason "shares") instead of unmasking wrongly. Reveals of the wrong kind
 * or of a site the sender holds nothing of are rejected. */
static void test_shares_that_do_not_reconstruct(void **state)
{
    (void)state;
    h_t *h = &s_h;
    h_init(h, 5, 3, 0, 24, 8);
    h->drop[5] = 3;             /* a dropped site: its mask key is needed too */
    h->corrupt_reveal_of = 2;   /* four revealers, one lying */
    assert_int_equal(h_run(h), 0);
    h_check_sum(h);

    h->drop[4] = 5;             /* now only 1, 2, 3 reveal, and 2 lies */
    char err[256];
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    int rc = h_from_masked(h);
    assert_int_equal(rc, -1);
    assert_int_equal(mfl_secagg_server_phase(h->srv), MFL_SECAGG_PHASE_ABANDONED);
    assert_int_equal(mfl_secagg_server_abandon_reason(h->srv), MFL_SECAGG_E_SHARES);
    size_t count;
    assert_null(mfl_secagg_server_sum(h->srv, &count));

    /* Malformed reveals. */
    h->drop[4] = 0;
    h->drop[5] = 3;
    h->corrupt_reveal_of = 0;
    h_to_unmask(h);
    mfl_secagg_unmask_req_t req;
    mfl_secagg_server_unmask_request(h->srv, &req);
    mfl_secagg_reveal_t rv[NMAX];
    size_t nr;
    assert_int_equal(mfl_secagg_site_unmask(h->site[1], &req, rv, &nr, err, sizeof err), MFL_SECAGG_OK);
    mfl_secagg_reveal_t wrong[NMAX];
    memcpy(wrong, rv, sizeof wrong);
    wrong[0].kind = MFL_SECAGG_SHARE_KEY; /* survivor 1's mask key: never */
    assert_int_equal(mfl_secagg_server_on_reveals(h->srv, 1, wrong, nr, err, sizeof err),
                     MFL_SECAGG_E_MALFORMED);
    memcpy(wrong, rv, sizeof wrong);
    wrong[1].peer = wrong[0].peer;
    assert_int_equal(mfl_secagg_server_on_reveals(h->srv, 1, wrong, nr, err, sizeof err),
                     MFL_SECAGG_E_MALFORMED);
    assert_int_equal(mfl_secagg_server_on_reveals(h->srv, 1, rv, nr, err, sizeof err), MFL_SECAGG_OK);
    assert_int_equal(mfl_secagg_server_on_reveals(h->srv, 1, rv, nr, err, sizeof err),
                     MFL_SECAGG_E_DUPLICATE);
    h_free(h);
}

/* A share box altered in transit (or by the coordinator) does not open: the
 * site refuses to mask rather than mask with a peer it holds no share of. */
static void test_tampered_share_box_refused(void **state)
{
    (void)state;
    h_t *h = &s_h;
    char err[256];
    h_init(h, 5, 3, 0, 8, 9);
    h_start(h);
    assert_int_equal(h_to_masked(h), 0);
    mfl_secagg_share_ct_t in[NMAX];
    size_t nb = mfl_secagg_server_boxes_for(h->srv, 2, in);
    assert_int_equal(nb, 4);
    static uint64_t y[PMAX + 1];
    in[1].box[20] ^= 1;
    assert_int_equal(mfl_secagg_site_mask(h->site[2], in, nb, h->x[2], y, err, sizeof err),
                     MFL_SECAGG_E_MALFORMED);
    assert_non_null(strstr(err, "does not open"));
    in[1].box[20] ^= 1;
    mfl_secagg_share_ct_t twice[NMAX];
    memcpy(twice, in, sizeof twice);
    twice[1] = twice[0];
    assert_int_equal(mfl_secagg_site_mask(h->site[2], twice, nb, h->x[2], y, err, sizeof err),
                     MFL_SECAGG_E_MALFORMED);
    assert_int_equal(mfl_secagg_site_mask(h->site[2], in, nb, h->x[2], y, err, sizeof err),
                     MFL_SECAGG_OK);
    h_free(h);
}

static void test_parameters_checked(void **state)
{
    (void)state;
    char err[256];
    mfl_secagg_params_t p = {.n_sites = 5, .threshold = 3, .length = 10};
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), 0);
    p.threshold = 2; /* half of 5 or less: two survivor lists could both pass */
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    assert_non_null(strstr(err, "threshold 2"));
    p.threshold = 6;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    p.threshold = 3;
    p.n_sites = 2;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    p.n_sites = 300;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    p.n_sites = 20;
    p.neighbours = 5;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
    p.neighbours = 4;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), 0);
    p.length = 0;
    assert_int_equal(mfl_secagg_params_check(&p, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_sum_without_dropouts),
        cmocka_unit_test(test_exact_sum_with_32_bit_words),
        cmocka_unit_test(test_sum_from_runs_in_a_reused_buffer),
        cmocka_unit_test(test_masked_input_hides_the_update),
        cmocka_unit_test(test_every_dropout_subset_in_every_phase),
        cmocka_unit_test(test_every_mix_of_drop_phases),
        cmocka_unit_test(test_sparse_graph_sum_and_dropouts),
        cmocka_unit_test(test_site_refuses_both_shares_of_one_peer),
        cmocka_unit_test(test_bad_key_signature_rejected),
        cmocka_unit_test(test_bad_masked_inputs_rejected),
        cmocka_unit_test(test_shares_that_do_not_reconstruct),
        cmocka_unit_test(test_tampered_share_box_refused),
        cmocka_unit_test(test_parameters_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
