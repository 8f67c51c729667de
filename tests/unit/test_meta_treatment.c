/* Treatment recommendation and its policy value (meta/treatment.h)
 * against hand-computed values, and the class probabilities a learner
 * keeps for it (mfl_learner_query_probs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "meta/learner.h"
#include "meta/treatment.h"

static void test_propensity_is_the_arm_share(void **state)
{
    (void)state;
    /* 3 arms; labels arm*2+good: arm 0 ×2, arm 1 ×2, arm 2 ×4. */
    float y[] = {0, 1, 2, 3, 4, 5, 5, 4};
    double p[3];
    assert_int_equal(mfl_treatment_propensity(y, 8, 3, p), 0);
    assert_float_equal(p[0], 0.25, 1e-12);
    assert_float_equal(p[1], 0.25, 1e-12);
    assert_float_equal(p[2], 0.5, 1e-12);
    /* An arm without a patient has no propensity; a label of a 4th arm is
     * not one of 3 arms. */
    float no_arm1[] = {0, 1, 4, 5};
    assert_int_equal(mfl_treatment_propensity(no_arm1, 4, 3, p), -1);
    float bad[] = {0, 6};
    assert_int_equal(mfl_treatment_propensity(bad, 2, 3, p), -1);
    float half[] = {0, 1.5f};
    assert_int_equal(mfl_treatment_propensity(half, 2, 3, p), -1);
}

static void test_best_arm_has_the_highest_good_rate(void **state)
{
    (void)state;
    /* good rates: arm 0 1/3, arm 1 2/2, arm 2 1/2 -> arm 1. */
    float y[] = {0, 0, 1, 3, 3, 4, 5};
    assert_int_equal(mfl_treatment_best_arm(y, 7, 3), 1);
    /* ties go to the first arm */
    float tie[] = {1, 0, 3, 2};
    assert_int_equal(mfl_treatment_best_arm(tie, 4, 2), 0);
    float bad[] = {7};
    assert_int_equal(mfl_treatment_best_arm(bad, 1, 3), -1);
}

static void test_recommend_takes_the_best_conditional_rate(void **state)
{
    (void)state;
    /* Row 0: arm 0 rate .1/.2 = .5, arm 1 .3/.4 = .75, arm 2 .3/.4 = .75
     * -> arm 1 (first of the tie). Row 1: arm 2 has P(good) 0.05 but
     * P(bad) 0 -> rate 1: the conditional rate, not the joint mass, wins.
     * Row 2: arm 1 has no mass at all and is skipped. */
    float probs[] = {0.1f, 0.1f, 0.1f, 0.3f, 0.1f, 0.3f,
                     0.3f, 0.3f, 0.2f, 0.15f, 0.0f, 0.05f,
                     0.6f, 0.2f, 0.0f, 0.0f, 0.1f, 0.1f};
    int rec[3];
    mfl_treatment_recommend(probs, 3, 3, rec);
    assert_int_equal(rec[0], 1);
    assert_int_equal(rec[1], 2);
    assert_int_equal(rec[2], 2);
}

static void test_value_is_self_normalised_ips(void **state)
{
    (void)state;
    /* p = (.25, .25, .5). Rows (given arm, good): (0,1) (1,0) (2,1) (1,1);
     * recommendations 0 1 2 2: rows 0-2 agree with weights 4, 4, 2:
     * V = (4·1 + 4·0 + 2·1) / 10 = 0.6, 3 of 4 agree. */
    double p[] = {0.25, 0.25, 0.5}, agree = 0;
    float y[] = {1, 2, 5, 3};
    int rec[] = {0, 1, 2, 2};
    assert_float_equal(mfl_treatment_value(rec, y, 4, 3, p, &agree), 0.6, 1e-12);
    assert_float_equal(agree, 0.75, 1e-12);
    /* No row agrees: no estimate. */
    int none[] = {2, 0, 0, 0};
    assert_true(isnan(mfl_treatment_value(none, y, 4, 3, p, &agree)));
    assert_float_equal(agree, 0.0, 1e-12);
    /* A label out of range is not scored. */
    float bad[] = {1, 9};
    assert_true(isnan(mfl_treatment_value(rec, bad, 2, 3, p, NULL)));
}

/* A learner keeps the query rows' class probabilities of its last
 * evaluation: [n][n_way], rows summing to 1, argmax accuracy equal to the
 * reported one; a regression model keeps none. */
static void test_learner_keeps_query_probs(void **state)
{
    (void)state;
    mfl_dataset_t *d = mfl_dataset_new(30, 3);
    assert_non_null(d);
    d->n_classes = 6;
    mfl_rng_t r;
    mfl_rng_seed(&r, 3, 0);
    for (size_t i = 0; i < d->n; i++) {
        d->y[i] = (float)(i % 6);
        for (size_t f = 0; f < 3; f++)
            d->x[i * 3 + f] = mfl_rng_normal(&r) + (float)(i % 6) * (f == 0);
    }
    mfl_algo_kind_t algos[] = {MFL_ALGO_MATCHING, MFL_ALGO_FEDAVG};
    const char *specs[] = {"mlp:3-8-4", "mlp:3-8-6"};
    for (size_t a = 0; a < 2; a++) {
        mfl_learner_config_t c;
        mfl_learner_config_defaults(&c, algos[a]);
        strcpy(c.model_spec, specs[a]);
        c.loss = MFL_LOSS_SOFTMAX_CE;
        char err[256] = "";
        mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
        if (!l)
            fail_msg("learner: %s", err);
        float theta[512];
        assert_true(mfl_learner_n_state(l) <= 512);
        mfl_learner_init_state(l, theta, 5);
        assert_null(mfl_learner_query_probs(l, NULL, NULL));
        mfl_eval_metrics_t m;
        assert_int_equal(mfl_learner_evaluate(l, theta, d, d, 0, 0.1f, NULL, &m, err, sizeof err), 0);
        size_t n = 0, nw = 0;
        const float *p = mfl_learner_query_probs(l, &n, &nw);
        assert_non_null(p);
        assert_int_equal(n, d->n);
        assert_int_equal(nw, 6);
        size_t right = 0;
        for (size_t i = 0; i < n; i++) {
            double z = 0;
            size_t best = 0;
            for (size_t k = 0; k < nw; k++) {
                z += p[i * nw + k];
                if (p[i * nw + k] > p[i * nw + best])
                    best = k;
            }
            assert_float_equal(z, 1.0, 1e-5);
            right += (float)best == d->y[i];
        }
        assert_float_equal(m.accuracy, (double)right / (double)n, 1e-12);
        mfl_learner_destroy(&l);
    }
    /* mse on one output: regression, no class probabilities. */
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_FEDAVG);
    strcpy(c.model_spec, "mlp:3-4-1");
    c.loss = MFL_LOSS_MSE;
    char err[256] = "";
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    if (!l)
        fail_msg("learner: %s", err);
    float theta[64];
    mfl_learner_init_state(l, theta, 5);
    mfl_eval_metrics_t m;
    assert_int_equal(mfl_learner_evaluate(l, theta, d, d, 0, 0.1f, NULL, &m, err, sizeof err), 0);
    assert_null(mfl_learner_query_probs(l, NULL, NULL));
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_propensity_is_the_arm_share),
        cmocka_unit_test(test_best_arm_has_the_highest_good_rate),
        cmocka_unit_test(test_recommend_takes_the_best_conditional_rate),
        cmocka_unit_test(test_value_is_self_normalised_ips),
        cmocka_unit_test(test_learner_keeps_query_probs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
