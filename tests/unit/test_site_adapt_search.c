/* Per-site adaptation by cross-validation (eval.adapt_search,
 * common/site/site_adapt_search.c): the fold count, the choice is the
 * setting with the lowest cross-validated loss as a fresh adaptation
 * computes it, and a hospital that has only its k labelled cases can
 * choose without reading its test rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"
#include "site/site_worker.h"
#include "site/site_worker_internal.h"
#include "wire/task.h"

#include "linear_rows.h"

static void s_task(mfl_eval_task_t *t, mfl_learner_config_t *lc)
{
    mfl_learner_config_defaults(lc, MFL_ALGO_REPTILE);
    snprintf(lc->model_spec, sizeof lc->model_spec, "mlp:3-8-1");
    lc->loss = MFL_LOSS_BCE;
    memset(t, 0, sizeof *t);
    mfl_task_algorithm_from_learner(lc, 5, 0, 5, &t->algorithm);
    t->algorithm.k_shot = 0; /* every training row is a support case */
    snprintf(t->model_spec, sizeof t->model_spec, "mlp:3-8-1");
    t->nonce_len = 16;
    t->adapt_steps = 1;
    t->adapt_lr = 0.001f;
    t->selection.adapt_search = true;
    t->selection.validation_fraction = 0.2;
    t->selection.validation_seed = 7;
}

static float *s_theta(const mfl_learner_config_t *lc, size_t *n)
{
    char err[256];
    mfl_learner_t *l = mfl_learner_new(lc, 1, err, sizeof err);
    assert_non_null(l);
    *n = mfl_learner_n_state(l);
    float *theta = malloc(*n * sizeof *theta);
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 3);
    mfl_learner_destroy(&l);
    return theta;
}

static void test_folds_follow_the_validation_fraction(void **state)
{
    (void)state;
    assert_int_equal(mfl_site_adapt_folds(0.2, 100), 5);
    assert_int_equal(mfl_site_adapt_folds(0.25, 100), 4);
    assert_int_equal(mfl_site_adapt_folds(0.5, 100), 2);
    assert_int_equal(mfl_site_adapt_folds(0.9, 100), 2);  /* at least 2 */
    assert_int_equal(mfl_site_adapt_folds(0.01, 100), MFL_SITE_ADAPT_MAX_FOLDS);
    assert_int_equal(mfl_site_adapt_folds(0.2, 3), 3);    /* no more folds than cases */
    assert_int_equal(mfl_site_adapt_folds(0.2, 1), 0);    /* nothing to cross-validate */
    assert_int_equal(mfl_site_adapt_folds(0, 100), 0);
}

static void test_choice_has_the_lowest_cross_validated_loss(void **state)
{
    (void)state;
    char err[512];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("site-a", s_linear_rows(10, 120),
                                                         s_linear_rows(20, 40), NULL, err,
                                                         sizeof err);
    assert_non_null(w);
    mfl_eval_task_t t;
    mfl_learner_config_t lc;
    s_task(&t, &lc);
    size_t n = 0;
    float *theta = s_theta(&lc, &n);
    assert_int_equal(mfl_site_worker_prepare(w, &t.algorithm, t.model_spec, n, err, sizeof err),
                     0);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 2);
    mfl_dataset_t *rows = s_linear_rows(10, 120);
    mfl_dataset_t *support = mfl_site_support(rows, 0, &rng);
    mfl_dataset_destroy(&rows);
    assert_non_null(support);
    mfl_site_adapt_choice_t a, b;
    assert_int_equal(mfl_site_adapt_search(w, theta, support, 7, 0.2, &a, err, sizeof err), 0);
    assert_int_equal(a.folds, 5);
    assert_true(a.tried >= 2);
    /* From a random θ on a learnable rule some adaptation beats none. */
    assert_true(a.steps > 0);
    /* The trajectories agree with adapting afresh for the chosen setting. */
    double fresh = NAN;
    assert_int_equal(mfl_site_adapt_cv_loss(w, theta, support, 7, 0.2, a.steps, a.lr, &fresh,
                                            err, sizeof err), 0);
    assert_true(fabs(fresh - a.loss) <= 1e-9 * (1 + fabs(fresh)));
    /* Nothing the search always scores is lower: no adaptation, and the
     * first checkpoint of every rate (early stopping cannot skip those). */
    static const uint32_t steps[] = MFL_SITE_ADAPT_STEPS;
    static const float rates[] = MFL_SITE_ADAPT_RATES;
    double none = NAN;
    assert_int_equal(mfl_site_adapt_cv_loss(w, theta, support, 7, 0.2, 0, rates[0], &none, err,
                                            sizeof err), 0);
    assert_true(a.loss < none);
    for (size_t r = 0; r < sizeof rates / sizeof *rates; r++) {
        double l = NAN;
        assert_int_equal(mfl_site_adapt_cv_loss(w, theta, support, 7, 0.2, steps[1], rates[r],
                                                &l, err, sizeof err), 0);
        assert_true(!isfinite(l) || a.loss <= l);
    }
    /* Deterministic; another fold seed is another split (the loss moves). */
    assert_int_equal(mfl_site_adapt_search(w, theta, support, 7, 0.2, &b, err, sizeof err), 0);
    assert_true(a.steps == b.steps && a.lr == b.lr && a.loss == b.loss);
    assert_int_equal(mfl_site_adapt_search(w, theta, support, 8, 0.2, &b, err, sizeof err), 0);
    assert_true(a.loss != b.loss);
    mfl_dataset_destroy(&support);
    free(theta);
    mfl_site_worker_destroy(&w);
}

static void test_a_new_hospital_chooses_on_its_k_cases_without_the_test_rows(void **state)
{
    (void)state;
    char err[512];
    /* A new hospital: its training rows are its 10 labelled cases. */
    mfl_site_worker_t *w1 = mfl_site_worker_new_from_data("site-new", s_linear_rows(30, 10),
                                                          s_linear_rows(31, 50), NULL, err,
                                                          sizeof err);
    mfl_site_worker_t *w2 = mfl_site_worker_new_from_data("site-new", s_linear_rows(30, 10),
                                                          s_linear_rows(99, 50), NULL, err,
                                                          sizeof err);
    assert_non_null(w1);
    assert_non_null(w2);
    mfl_eval_task_t t;
    mfl_learner_config_t lc;
    s_task(&t, &lc);
    size_t n = 0;
    float *theta = s_theta(&lc, &n);
    mfl_site_eval_result_t a, b;
    assert_int_equal(mfl_site_worker_eval(w1, &t, theta, n, &a, err, sizeof err), 0);
    assert_int_equal(a.n_support, 10);
    assert_int_equal(a.adapted.n, 50);
    /* Other test rows, the same choice: the test rows are not read to choose. */
    assert_int_equal(mfl_site_worker_eval(w2, &t, theta, n, &b, err, sizeof err), 0);
    assert_true(a.adapt_steps_used == b.adapt_steps_used && a.adapt_lr_used == b.adapt_lr_used);
    assert_true(a.adapt_lr_used > 0);
    /* The result is the evaluation with the chosen setting. */
    mfl_eval_task_t d = t;
    d.selection.adapt_search = false;
    d.adapt_steps = a.adapt_steps_used;
    d.adapt_lr = a.adapt_lr_used;
    assert_int_equal(mfl_site_worker_eval(w1, &d, theta, n, &b, err, sizeof err), 0);
    assert_true(a.adapted.loss == b.adapted.loss && a.adapted.accuracy == b.adapted.accuracy);
    free(theta);
    mfl_site_worker_destroy(&w1);
    mfl_site_worker_destroy(&w2);
}

static void test_one_case_cannot_be_cross_validated(void **state)
{
    (void)state;
    char err[512];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("site-one", s_linear_rows(40, 1),
                                                         s_linear_rows(41, 10), NULL, err,
                                                         sizeof err);
    assert_non_null(w);
    mfl_eval_task_t t;
    mfl_learner_config_t lc;
    s_task(&t, &lc);
    size_t n = 0;
    float *theta = s_theta(&lc, &n);
    mfl_site_eval_result_t r;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, n, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot be cross-validated"));
    assert_non_null(strstr(err, "site-one"));
    free(theta);
    mfl_site_worker_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folds_follow_the_validation_fraction),
        cmocka_unit_test(test_choice_has_the_lowest_cross_validated_loss),
        cmocka_unit_test(test_a_new_hospital_chooses_on_its_k_cases_without_the_test_rows),
        cmocka_unit_test(test_one_case_cannot_be_cross_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
