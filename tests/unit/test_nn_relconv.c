/* The Relation-network module "relconv:CxHxW:F:H" (common/nn/model.c):
 * spec parsing and canonical form, the parameter layout, refusal of bad
 * specs, and its parameter and input gradients (the relation head back-
 * propagates into both feature maps through dx) against central finite
 * differences. The norm shifts and the first dense bias are lifted away
 * from 0 so no ReLU switches inside ±h (see test_meta_metric_grad.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/model.h"

#include "gradcheck.h"

static void test_relconv_layout(void **state)
{
    (void)state;
    char err[256];
    mfl_model_t *m = mfl_model_new("relconv:32x3x3:16:8", 4, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    assert_string_equal(mfl_model_spec(m), "relconv:32x3x3:16:8");
    assert_int_equal(mfl_model_n_inputs(m), 32 * 9);
    assert_int_equal(mfl_model_n_outputs(m), 1);
    /* conv 16x32x3x3 + 16, norm 2x16, conv 16x16x3x3 + 16, norm 2x16,
     * dense 8x144 + 8, dense 1x8 + 1 */
    size_t want = 16 * 32 * 9 + 16 + 32 + 16 * 16 * 9 + 16 + 32 + 8 * 144 + 8 + 8 + 1;
    assert_int_equal(mfl_model_n_params(m), want);
    assert_int_equal(mfl_model_n_tensors(m), 12);
    assert_string_equal(mfl_model_tensor(m, 0)->name, "block1.conv.weight");
    assert_string_equal(mfl_model_tensor(m, 8)->name, "fc1.weight");
    assert_string_equal(mfl_model_tensor(m, 11)->name, "fc2.bias");
    mfl_model_destroy(&m);
    assert_null(m);
}

static void test_relconv_bad_specs(void **state)
{
    (void)state;
    const char *bad[] = {"relconv:", "relconv:32x3x3:16", "relconv:32x3:16:8",
                         "relconv:32x3x3:0:8", "relconv:32x3x3:16:8:9", "relconv:32x3x3:16:8x",
                         "relconv:99999999x3x3:16:8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        mfl_model_t *m = mfl_model_new(bad[i], 4, err, sizeof err);
        if (m)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err, "relconv") ? err : NULL);
    }
}

/* L = Σ_b w_b · out_b for fixed weights w: dL/dout = w. */
static double s_loss(mfl_model_t *m, const float *theta, const float *x, size_t batch,
                     const float *w)
{
    float out[8];
    assert_int_equal(mfl_model_forward(m, theta, x, batch, out), 0);
    double l = 0;
    for (size_t b = 0; b < batch; b++)
        l += (double)w[b] * out[b];
    return l;
}

/* Central differences of s_loss with respect to each of v[0..n), which is
 * θ or x itself (perturbed in place and restored). */
static void s_central_diff(mfl_model_t *m, float *theta, float *x, size_t batch,
                           const float *w, float *v, size_t n, double *fd)
{
    const float h = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + h;
        double up = s_loss(m, theta, x, batch, w);
        v[i] = keep - h;
        double dn = s_loss(m, theta, x, batch, w);
        v[i] = keep;
        fd[i] = (up - dn) / (2.0 * h);
    }
}

static void test_relconv_gradients(void **state)
{
    (void)state;
    enum { B = 3 };
    char err[256];
    mfl_model_t *m = mfl_model_new("relconv:4x3x3:3:5", B, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    size_t np = mfl_model_n_params(m), nx = B * mfl_model_n_inputs(m);
    float *theta = malloc(np * sizeof(float)), *grad = calloc(np, sizeof(float));
    float *x = malloc(nx * sizeof(float)), *dx = malloc(nx * sizeof(float));
    double *fd = malloc((np > nx ? np : nx) * sizeof(double));
    assert_non_null(theta && grad && x && dx && fd);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 11, 0);
    mfl_model_init_params(m, theta, &rng);
    for (size_t i = 0; i < mfl_model_n_tensors(m); i++) {
        const mfl_tensor_info_t *t = mfl_model_tensor(m, i);
        float v = strstr(t->name, "norm.shift") ? 3.0f : strcmp(t->name, "fc1.bias") == 0 ? 5.0f
                                                                                        : 0.0f;
        for (size_t j = 0; v != 0.0f && j < t->count; j++)
            theta[t->offset + j] = v;
    }
    for (size_t i = 0; i < nx; i++)
        x[i] = mfl_rng_normal(&rng);
    const float w[B] = {0.7f, -1.3f, 0.4f};
    float out[B];
    assert_int_equal(mfl_model_forward(m, theta, x, B, out), 0);
    mfl_model_backward(m, theta, w, grad, dx);
    s_central_diff(m, theta, x, B, w, theta, np, fd);
    double e_theta = s_norm_err(fd, grad, np);
    s_central_diff(m, theta, x, B, w, x, nx, fd);
    double e_x = s_norm_err(fd, dx, nx);
    print_message("relconv: gradient error θ %.3g, x %.3g\n", e_theta, e_x);
    assert_true(e_theta < 1e-2);
    assert_true(e_x < 1e-2);
    free(theta);
    free(grad);
    free(x);
    free(dx);
    free(fd);
    mfl_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relconv_layout),
        cmocka_unit_test(test_relconv_bad_specs),
        cmocka_unit_test(test_relconv_gradients),
    };
    return cmocka_run_group_tests_name("nn_relconv", tests, NULL, NULL);
}
