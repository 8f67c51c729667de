/* The round engine's secure-aggregation hook (mfl_round_engine_secure_sum):
 * a round fed one unmasked sum ends with the same θ, bit for bit, as the
 * same updates fed one by one; a sum for another attempt, of the wrong
 * length, naming a site that is not selected, twice, or already reported is
 * refused with nothing folded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fed/aggregate.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/run_config.h"
#include "secagg/secagg_update.h"

#include "engine_fake.h"

static char s_dir[128];
static const uint8_t s_tr[32] = {7}; /* a transcript digest */

static void s_config(mfl_coord_config_t *c, const char *sub)
{
    engine_fake_config(c, 2, 3, 3, 100000);
    snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s/%s/ckpt", s_dir, sub);
    snprintf(c->metrics_file, sizeof c->metrics_file, "%s/%s.jsonl", s_dir, sub);
}

static const char *const SITES[3] = {"site-a", "site-b", "site-c"};

static mfl_round_engine_t *s_open(const mfl_coord_config_t *c, fake_t *f)
{
    mfl_engine_sink_t sink = {f, s_task, s_eval, s_reject, s_closed, s_eval_report, s_finished};
    char err[512];
    mfl_round_engine_t *e = mfl_round_engine_new(c, &sink, NULL, NULL, err, sizeof err);
    if (!e)
        fprintf(stderr, "engine: %s\n", err);
    assert_non_null(e);
    /* 1000 declared training rows: no weight below is capped (a cap the
     * secure path could not apply: the coordinator never sees a weight). */
    for (int i = 0; i < 3; i++)
        mfl_round_engine_site_hello(e, SITES[i], 1000, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    return e;
}

/* Site k's Δ and weight. */
static void s_delta(float *d, size_t n, int k)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (float)((int)((i * (size_t)(k + 3)) % 11) - 5) / (8.0f + (float)k);
}

static void test_secure_sum_closes_round_with_same_theta(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_round_secagg.XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    static mfl_coord_config_t ca, cb;
    s_config(&ca, "plain");
    s_config(&cb, "secure");
    fake_t *fa = calloc(1, sizeof *fa), *fb = calloc(1, sizeof *fb);
    mfl_round_engine_t *ea = s_open(&ca, fa), *eb = s_open(&cb, fb);
    char err[256];
    mfl_learner_t *learner = mfl_learner_new(&ca.learner, 1, err, sizeof err);
    const size_t P = mfl_round_engine_n_state(ea), L = P + 1;
    float *d = malloc(P * sizeof *d);
    uint64_t *x = malloc(L * sizeof *x), *sum = calloc(L, sizeof *sum);
    mfl_aggregate_t *enc = mfl_aggregate_new(P);
    const double w[3] = {10, 37, 1};
    uint32_t round = mfl_round_engine_round(ea);
    for (int k = 0; k < 3; k++) {
        s_delta(d, P, k);
        /* plain: one update per site */
        mfl_update_header_t h;
        memset(&h, 0, sizeof h);
        h.round = round;
        memcpy(h.nonce, mfl_round_engine_nonce(ea), 16);
        h.nonce_len = 16;
        snprintf(h.site, sizeof h.site, "%s", SITES[k]);
        h.n_samples = (uint64_t)w[k];
        h.has_metrics = true;
        h.metrics.loss_before = 0.7;
        h.metrics.loss_after = 0.5;
        mfl_tensor_t t[8];
        size_t nt = mfl_learner_n_tensors(learner);
        for (size_t i = 0; i < nt; i++)
            t[i] = mfl_tensor_info_view(mfl_learner_tensor(learner, i), d);
        assert_int_equal(mfl_round_engine_update(ea, SITES[k], &h, t, nt, NULL, 0, NULL, 0, 1), 0);
        /* secure: the same update encoded, summed */
        assert_int_equal(mfl_secagg_update_encode(enc, d, (double)h.n_samples, x, err,
                                                  sizeof err), 0);
        for (size_t j = 0; j < L; j++)
            sum[j] += x[j];
    }
    assert_int_equal(mfl_round_engine_rounds_done(ea), 1);
    const uint8_t *nonce = mfl_round_engine_nonce(eb);
    uint8_t other[16];
    memcpy(other, nonce, 16);
    other[0] ^= 1;
    const char *two[2] = {"site-a", "site-a"}, *stranger[1] = {"site-z"};
    /* Refusals, nothing folded. */
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, other, SITES, 3, sum, L, 0, 0, s_tr, 1, err,
                                                 sizeof err), -1);
    assert_int_equal(mfl_round_engine_secure_sum(eb, round + 1, nonce, SITES, 3, sum, L, 0, 0, s_tr, 1,
                                                 err, sizeof err), -1);
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, nonce, SITES, 3, sum, P, 0, 0, s_tr, 1, err,
                                                 sizeof err), -1);
    assert_non_null(strstr(err, "expected"));
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, nonce, two, 2, sum, L, 0, 0, s_tr, 1, err,
                                                 sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, nonce, stranger, 1, sum, L, 0, 0, s_tr, 1,
                                                 err, sizeof err), -1);
    assert_int_equal(mfl_round_engine_rounds_done(eb), 0);
    /* The sum: the round closes with θ bit-identical to the plain engine's. */
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, nonce, SITES, 3, sum, L,
                                                 0.7 * 48, 0.5 * 48, s_tr, 1, err, sizeof err), 0);
    assert_int_equal(mfl_round_engine_rounds_done(eb), 1);
    assert_memory_equal(mfl_round_engine_theta(ea), mfl_round_engine_theta(eb),
                        P * sizeof(float));
    assert_true(fa->last.total_weight == fb->last.total_weight);
    assert_true(fb->last.n_accepted == 3);
    /* Late: the round is closed, a second sum is refused. */
    assert_int_equal(mfl_round_engine_secure_sum(eb, round, nonce, SITES, 3, sum, L, 0, 0, s_tr, 2, err,
                                                 sizeof err), -1);
    mfl_round_engine_destroy(&ea);
    mfl_round_engine_destroy(&eb);
    mfl_learner_destroy(&learner);
    mfl_aggregate_destroy(&enc);
    free(d);
    free(x);
    free(sum);
    free(fa);
    free(fb);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secure_sum_closes_round_with_same_theta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
