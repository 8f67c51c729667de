/* The server step: plain SGD is θ + β·mean bit for bit, written in place
 * only once the whole step is known to be finite (no candidate copy of θ);
 * a step that would make θ non-finite is refused and leaves θ as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "fed/server_step.h"

#define N 3001 /* not a multiple of the check's block or of a vector width */

static void test_sgd_step_is_theta_plus_beta_mean(void **state)
{
    (void)state;
    static float theta[N], mean[N], want[N];
    mfl_rng_t r;
    mfl_rng_seed(&r, 11, 0);
    const float beta = 0.7f;
    for (size_t i = 0; i < N; i++) {
        theta[i] = mfl_rng_normal(&r);
        mean[i] = 0.01f * mfl_rng_normal(&r);
        want[i] = theta[i] + beta * mean[i];
    }
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_SGD, beta);
    mfl_server_step_t *s = mfl_server_step_new(&c, N);
    assert_non_null(s);
    char err[256];
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), 0);
    assert_memory_equal(theta, want, sizeof want);
    assert_int_equal(mfl_server_step_count(s), 1);
    mfl_server_step_destroy(&s);
    assert_null(s);
}

static void test_sgd_step_that_overflows_keeps_theta(void **state)
{
    (void)state;
    static float theta[N], mean[N], before[N];
    for (size_t i = 0; i < N; i++) {
        theta[i] = (float)i;
        mean[i] = 1.0f;
    }
    /* finite mean, but θ + β·mean overflows to +Inf at one late index */
    theta[N - 2] = FLT_MAX;
    mean[N - 2] = FLT_MAX;
    memcpy(before, theta, sizeof before);
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_SGD, 1.0f);
    mfl_server_step_t *s = mfl_server_step_new(&c, N);
    assert_non_null(s);
    char err[256];
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), -1);
    assert_non_null(strstr(err, "theta[2999]"));
    assert_memory_equal(theta, before, sizeof before);
    assert_int_equal(mfl_server_step_count(s), 0);
    /* a non-finite mean is refused before anything is computed */
    mean[N - 2] = NAN;
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), -1);
    assert_non_null(strstr(err, "mean[2999]"));
    assert_memory_equal(theta, before, sizeof before);
    mfl_server_step_destroy(&s);
}

static void test_adam_step_rolls_back_on_overflow(void **state)
{
    (void)state;
    static float theta[N], mean[N], before[N];
    for (size_t i = 0; i < N; i++) {
        theta[i] = 1.0f;
        mean[i] = 0.5f;
    }
    /* Adam's step is about lr per element: a huge lr makes the overflow */
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_ADAM, 1e38f);
    mfl_server_step_t *s = mfl_server_step_new(&c, N);
    assert_non_null(s);
    char err[256];
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), 0);
    for (size_t i = 0; i < N; i++)
        assert_true(theta[i] > 1.0f); /* moved along +mean */
    memcpy(before, theta, sizeof before);
    theta[5] = FLT_MAX; /* + ~1e38 is past FLT_MAX */
    before[5] = FLT_MAX;
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), -1);
    assert_memory_equal(theta, before, sizeof before);
    assert_int_equal(mfl_server_step_count(s), 1);
    mfl_server_step_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_step_is_theta_plus_beta_mean),
        cmocka_unit_test(test_sgd_step_that_overflows_keeps_theta),
        cmocka_unit_test(test_adam_step_rolls_back_on_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
