/* A site with eval.treatment_arms (opts.treatment_arms): the evaluation
 * recommends, per held-out patient, the arm whose matched training
 * patients did best and reports its policy value beside giving everyone
 * the best training arm and the arms given; a label that is not arm ×
 * outcome is refused when the worker is built. */
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

/* n patients, 2 features (x0 = ±1 plus noise, a noise feature), arms dealt
 * in turn. Arm 0 works when x0 > 0, arm 1 when x0 < 0, arm 2 never: the
 * best single arm helps half the patients, matching helps all of them. */
static mfl_dataset_t *s_trial(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 2);
    assert_non_null(d);
    d->n_classes = 6;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        float sign = (i / 3) % 2 ? 1.0f : -1.0f;
        size_t arm = i % 3;
        d->x[2 * i] = sign + 0.1f * mfl_rng_normal(&r);
        d->x[2 * i + 1] = 0.1f * mfl_rng_normal(&r);
        int good = (arm == 0 && sign > 0) || (arm == 1 && sign < 0);
        d->y[i] = (float)(arm * 2 + (size_t)good);
    }
    return d;
}

static mfl_eval_task_t s_eval_task(void)
{
    mfl_eval_task_t ev;
    memset(&ev, 0, sizeof ev);
    ev.round = 1;
    ev.nonce_len = 16;
    memset(ev.nonce, 7, 16);
    snprintf(ev.model_spec, sizeof ev.model_spec, "mlp:2-16-8");
    snprintf(ev.algorithm.name, sizeof ev.algorithm.name, "matching");
    snprintf(ev.algorithm.loss, sizeof ev.algorithm.loss, "softmax_ce");
    ev.algorithm.n_way = 6;
    return ev;
}

static void test_matching_recommends_the_arm_that_worked(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_site_worker_opts_t opts = {.eval_support = 1000, .treatment_arms = 3};
    mfl_site_worker_t *w = mfl_site_worker_new_internal("hospital-t", s_trial(120, 1),
                                                        s_trial(60, 2), NULL, NULL, &opts,
                                                        err, sizeof err);
    if (!w)
        fail_msg("worker: %s", err);
    mfl_eval_task_t ev = s_eval_task();
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_MATCHING);
    snprintf(c.model_spec, sizeof c.model_spec, "%s", ev.model_spec);
    c.loss = MFL_LOSS_SOFTMAX_CE;
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    if (!l)
        fail_msg("learner: %s", err);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 11);
    mfl_site_eval_result_t r;
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &r, err, sizeof err), 0);
    /* Held-out: 20 per arm, half with x0 > 0. Given arms: 10 of 60 good
     * in arm 0, 10 in arm 1, 0 in arm 2, equal propensities: 20/60. */
    assert_float_equal(r.value_given, 1.0 / 3.0, 1e-9);
    /* The best training arm (0; tied with 1, first wins) for everyone:
     * half of its patients did well. */
    assert_float_equal(r.value_best_arm, 0.5, 1e-9);
    /* Matching on x0: every agreeing patient did well. */
    assert_true(r.value_adapted > 0.95);
    assert_true(r.value_before == r.value_adapted); /* nothing adapts */
    assert_true(isfinite(r.value_local));
    mfl_eval_report_t rep;
    mfl_site_worker_fill_report(w, &ev, &r, &rep);
    assert_true(rep.value == r.value_adapted && rep.value_best_arm == r.value_best_arm &&
                rep.value_given == r.value_given && rep.value_local == r.value_local);
    free(theta);
    mfl_learner_destroy(&l);
    mfl_site_worker_destroy(&w);
}

static void test_a_site_without_arms_reports_no_value(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_site_worker_t *w = mfl_site_worker_new_internal("hospital-u", s_trial(120, 1),
                                                        s_trial(60, 2), NULL, NULL, NULL,
                                                        err, sizeof err);
    if (!w)
        fail_msg("worker: %s", err);
    mfl_eval_task_t ev = s_eval_task();
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_MATCHING);
    snprintf(c.model_spec, sizeof c.model_spec, "%s", ev.model_spec);
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    if (!l)
        fail_msg("learner: %s", err);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 11);
    mfl_site_eval_result_t r;
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &r, err, sizeof err), 0);
    assert_true(isnan(r.value_adapted) && isnan(r.value_local) && isnan(r.value_best_arm) &&
                isnan(r.value_given));
    free(theta);
    mfl_learner_destroy(&l);
    mfl_site_worker_destroy(&w);
}

static void test_label_must_be_arm_times_outcome(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_site_worker_opts_t opts = {.treatment_arms = 2};
    assert_null(mfl_site_worker_new_internal("hospital-v", s_trial(60, 1), NULL, NULL, NULL,
                                             &opts, err, sizeof err));
    assert_non_null(strstr(err, "treatment_arms 2 needs a label of 4 classes"));
    assert_non_null(strstr(err, "the data has 6"));
    /* Three arms declared, but arm 2 has no patient: no propensity. */
    mfl_dataset_t *d = s_trial(60, 1);
    for (size_t i = 0; i < d->n; i++)
        if (d->y[i] >= 4)
            d->y[i] = 0;
    opts.treatment_arms = 3;
    assert_null(mfl_site_worker_new_internal("hospital-v", d, NULL, NULL, NULL, &opts, err,
                                             sizeof err));
    assert_non_null(strstr(err, "some arm has no patient"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching_recommends_the_arm_that_worked),
        cmocka_unit_test(test_a_site_without_arms_reports_no_value),
        cmocka_unit_test(test_label_must_be_arm_times_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
