/* The learner's contracts: state layout and tensor names, config errors,
 * bit-reproducibility, FedAvg's local update, binary evaluation metrics,
 * and that evaluate-from-scratch is the train-from-scratch baseline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"

/* A binary table: label = 1 when a noisy linear score is positive. */
static mfl_dataset_t *s_table(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 5);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (size_t f = 0; f < 5; f++) {
            float v = mfl_rng_normal(&r);
            d->x[i * 5 + f] = v;
            s += (f == 0 ? 1.5f : f == 1 ? -1.0f : 0.2f) * v;
        }
        d->y[i] = s + 0.3f * mfl_rng_normal(&r) > 0 ? 1.0f : 0.0f;
    }
    return d;
}

static mfl_learner_t *s_new(mfl_algo_kind_t algo, const char *spec, mfl_loss_kind_t loss)
{
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    strcpy(c.model_spec, spec);
    c.loss = loss;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof(err));
    if (!l)
        fail_msg("learner: %s", err);
    return l;
}

static void test_state_layout_names_extra_tensors(void **state)
{
    (void)state;
    mfl_learner_t *l = s_new(MFL_ALGO_META_SGD, "mlp:5-8-1", MFL_LOSS_BCE);
    size_t np = mfl_learner_n_params(l);
    assert_int_equal(np, 5 * 8 + 8 + 8 + 1);
    assert_int_equal(mfl_learner_n_state(l), 2 * np);
    size_t nt = mfl_learner_n_tensors(l), total = 0;
    assert_int_equal(nt, 8);
    for (size_t i = 0; i < nt; i++)
        total += mfl_learner_tensor(l, i)->count;
    assert_int_equal(total, 2 * np);
    const mfl_tensor_info_t *t = mfl_learner_tensor(l, 4);
    assert_int_equal(strncmp(t->name, "meta_sgd.lr.", 12), 0);
    assert_int_equal(t->offset, np);
    assert_null(mfl_learner_tensor(l, nt));
    float *theta = malloc(2 * np * sizeof(float));
    mfl_learner_init_state(l, theta, 3);
    for (size_t i = 0; i < np; i++)
        assert_float_equal(theta[np + i], mfl_learner_config(l)->inner_lr, 0);
    free(theta);
    mfl_learner_destroy(&l);
    assert_null(l);

    l = s_new(MFL_ALGO_RELATION, "mlp:5-8-4", MFL_LOSS_SOFTMAX_CE);
    np = mfl_learner_n_params(l);
    size_t rel = (8 * 16 + 16) + (16 + 1); /* default relation mlp:8-16-1 */
    assert_int_equal(mfl_learner_n_state(l), np + rel);
    t = mfl_learner_tensor(l, mfl_learner_n_tensors(l) - 1);
    assert_int_equal(strncmp(t->name, "relation.", 9), 0);
    assert_int_equal(t->offset + t->count, np + rel);
    mfl_learner_destroy(&l);
}

static void test_bad_configs_name_the_field(void **state)
{
    (void)state;
    mfl_learner_config_t c;
    char err[256] = "";
    mfl_learner_config_defaults(&c, MFL_ALGO_MAML);
    assert_null(mfl_learner_new(&c, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "model"));
    strcpy(c.model_spec, "mlp:5-8-3");
    c.loss = MFL_LOSS_BCE;
    assert_null(mfl_learner_new(&c, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "bce"));
    c.loss = MFL_LOSS_SOFTMAX_CE;
    c.meta_batch = 0;
    assert_null(mfl_learner_new(&c, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "meta_batch"));
    c.meta_batch = 2;
    strcpy(c.model_spec, "nonsense");
    assert_null(mfl_learner_new(&c, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "model"));
    mfl_learner_config_defaults(&c, MFL_ALGO_RELATION);
    strcpy(c.model_spec, "mlp:5-8-4");
    strcpy(c.relation_spec, "mlp:7-4-1");
    assert_null(mfl_learner_new(&c, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "relation"));
    mfl_algo_kind_t a;
    assert_int_equal(mfl_algo_parse("meta_sgd", &a), 0);
    assert_int_equal(a, MFL_ALGO_META_SGD);
    assert_string_equal(mfl_algo_name(MFL_ALGO_PROTONET), "protonet");
    assert_int_equal(mfl_algo_parse("MAML", &a), -1);
}

static void test_meta_train_is_bit_reproducible(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_table(120, 1);
    mfl_algo_kind_t algos[] = {MFL_ALGO_FEDAVG, MFL_ALGO_REPTILE, MFL_ALGO_MAML,
                               MFL_ALGO_META_SGD};
    for (size_t k = 0; k < 4; k++) {
        mfl_learner_t *l = s_new(algos[k], "mlp:5-8-1", MFL_LOSS_BCE);
        size_t ns = mfl_learner_n_state(l);
        float *theta = malloc(ns * sizeof(float));
        float *d1 = malloc(ns * sizeof(float)), *d2 = malloc(ns * sizeof(float));
        mfl_learner_init_state(l, theta, 9);
        mfl_sampler_t *s = mfl_sampler_new_site(d, 20, 20, NULL, 0);
        char err[256];
        for (int rep = 0; rep < 2; rep++) {
            mfl_rng_t rng;
            mfl_rng_seed(&rng, 42, 7);
            mfl_train_metrics_t m;
            assert_int_equal(mfl_learner_meta_train(l, theta, s, &rng, rep ? d2 : d1, &m, err,
                                                    sizeof(err)), 0);
            assert_int_equal(m.n_samples, 120);
        }
        assert_memory_equal(d1, d2, ns * sizeof(float));
        double norm = 0;
        for (size_t i = 0; i < ns; i++)
            norm += d1[i] * d1[i];
        assert_true(norm > 0);
        mfl_sampler_destroy(&s);
        free(theta);
        free(d1);
        free(d2);
        mfl_learner_destroy(&l);
    }
    mfl_dataset_destroy(&d);
}

/* With the outer state kept, two calls of N outer steps follow one call of
 * 2N steps (up to θ + Δ rounding); without it, Adam restarts and they
 * part ways. */
static void test_kept_outer_state_joins_blocks_into_one_run(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_table(120, 1);
    mfl_sampler_t *s = mfl_sampler_new_site(d, 20, 20, NULL, 0);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_FOMAML);
    strcpy(c.model_spec, "linear:5-1");
    c.loss = MFL_LOSS_BCE;
    c.outer_lr = 0.05f;
    char err[256];
    float theta[6], one[6], two[6], off[6], delta[6];
    double gap_kept = 0, gap_off = 0;
    for (int mode = 0; mode < 3; mode++) {
        c.outer_steps = mode == 0 ? 20 : 10;
        mfl_learner_t *l = mfl_learner_new(&c, 32, err, sizeof(err));
        mfl_learner_init_state(l, theta, 1);
        mfl_learner_keep_outer_state(l, mode == 1);
        mfl_rng_t rng;
        mfl_rng_seed(&rng, 3, 0);
        float *dst = mode == 0 ? one : mode == 1 ? two : off;
        memcpy(dst, theta, sizeof(theta));
        for (int call = 0; call < (mode == 0 ? 1 : 2); call++) {
            assert_int_equal(mfl_learner_meta_train(l, dst, s, &rng, delta, NULL, err,
                                                    sizeof(err)), 0);
            for (int i = 0; i < 6; i++)
                dst[i] += delta[i];
        }
        mfl_learner_destroy(&l);
    }
    for (int i = 0; i < 6; i++) {
        gap_kept = fmax(gap_kept, fabs(one[i] - two[i]));
        gap_off = fmax(gap_off, fabs(one[i] - off[i]));
    }
    print_message("max |θ(20) − θ(10+10)|: kept %.3g, restarted %.3g\n", gap_kept, gap_off);
    assert_true(gap_kept < 1e-5);
    assert_true(gap_off > 100 * gap_kept && gap_off > 1e-4);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

static void test_fedavg_lowers_site_loss(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_table(200, 2);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_FEDAVG);
    strcpy(c.model_spec, "linear:5-1");
    c.loss = MFL_LOSS_BCE;
    c.local_epochs = 5;
    c.batch_size = 16;
    c.inner_lr = 0.1f;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 32, err, sizeof(err));
    assert_non_null(l);
    float theta[6], delta[6];
    mfl_learner_init_state(l, theta, 1);
    mfl_sampler_t *s = mfl_sampler_new_site(d, 0, 0, NULL, 0);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    mfl_train_metrics_t m;
    assert_int_equal(mfl_learner_meta_train(l, theta, s, &rng, delta, &m, err, sizeof(err)), 0);
    assert_true(m.loss_after < m.loss_before * 0.7);
    assert_int_equal(m.n_samples, 200);
    /* Δ is θ_local − θ: applying it gives the trained model. */
    float local[6];
    for (int i = 0; i < 6; i++)
        local[i] = theta[i] + delta[i];
    mfl_eval_metrics_t e0, e1;
    assert_int_equal(mfl_learner_evaluate(l, theta, d, d, 0, 0, NULL, &e0, err, sizeof(err)), 0);
    assert_int_equal(mfl_learner_evaluate(l, local, d, d, 0, 0, NULL, &e1, err, sizeof(err)), 0);
    /* loss_before / loss_after are the first / last epoch's running means
     * of pre-step batch losses (docs/ENGINE-META.md), so on this descending
     * run they sit between the losses at θ and at θ_local. */
    assert_true(e0.loss >= m.loss_before && m.loss_before > m.loss_after);
    assert_true(m.loss_after > e1.loss && m.loss_after < e1.loss * 1.2);
    assert_true(e1.accuracy > 0.85);
    assert_true(e1.auroc > 0.9 && e1.auroc <= 1.0);
    assert_true(e1.sensitivity > 0.7 && e1.specificity > 0.7);
    assert_true(e1.accuracy > e0.accuracy);
    mfl_sampler_destroy(&s);
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&d);
}

static void test_evaluate_from_scratch_is_the_baseline(void **state)
{
    (void)state;
    mfl_dataset_t *train = s_table(60, 3), *test = s_table(100, 4);
    mfl_learner_t *l = s_new(MFL_ALGO_MAML, "mlp:5-8-1", MFL_LOSS_BCE);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *adapted = malloc(ns * sizeof(float));
    mfl_learner_init_state(l, theta, 5);
    mfl_eval_metrics_t m0, m1;
    char err[256];
    assert_int_equal(mfl_learner_evaluate(l, theta, train, test, 0, 0.1f, NULL, &m0, err,
                                          sizeof(err)), 0);
    assert_int_equal(mfl_learner_evaluate(l, theta, train, test, 200, 0.1f, adapted, &m1, err,
                                          sizeof(err)), 0);
    assert_true(m1.loss < m0.loss);
    assert_true(m1.accuracy > 0.8);
    assert_int_equal(m1.n, 100);
    assert_true(memcmp(adapted, theta, ns * sizeof(float)) != 0);
    /* Refused inputs: wrong feature count, labels outside the model. */
    mfl_dataset_t *wide = mfl_dataset_new(4, 6);
    wide->n_classes = 2;
    assert_int_equal(mfl_learner_evaluate(l, theta, wide, test, 1, 0.1f, NULL, &m1, err,
                                          sizeof(err)), -1);
    assert_non_null(strstr(err, "features"));
    test->y[3] = 2.0f;
    assert_int_equal(mfl_learner_evaluate(l, theta, train, test, 1, 0.1f, NULL, &m1, err,
                                          sizeof(err)), -1);
    assert_non_null(strstr(err, "row 3"));
    mfl_dataset_destroy(&wide);
    free(theta);
    free(adapted);
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&train);
    mfl_dataset_destroy(&test);
}

/* The site's evaluation adapts θ in a buffer of its own instead of the
 * learner's copy (issue 17, site memory): the same metrics bit for bit,
 * the buffer ends as the adapted state, for plain SGD (one chunk and more
 * rows than a batch), Meta-SGD's per-parameter rates and 0 steps. */
static void test_evaluate_in_place_matches_evaluate(void **state)
{
    (void)state;
    mfl_dataset_t *train = s_table(60, 3), *big = s_table(150, 5), *test = s_table(100, 4);
    const mfl_algo_kind_t algos[] = {MFL_ALGO_FEDAVG, MFL_ALGO_MAML, MFL_ALGO_META_SGD};
    const mfl_dataset_t *supports[] = {train, big};
    char err[256];
    for (size_t a = 0; a < 3; a++) {
        mfl_learner_t *l = s_new(algos[a], "mlp:5-8-1", MFL_LOSS_BCE);
        size_t ns = mfl_learner_n_state(l);
        float *theta = malloc(ns * sizeof(float)), *adapted = malloc(ns * sizeof(float));
        float *buf = malloc(ns * sizeof(float));
        mfl_learner_init_state(l, theta, 11 + a);
        if (algos[a] == MFL_ALGO_META_SGD) /* rates that differ per parameter */
            for (size_t i = mfl_learner_n_params(l); i < ns; i++)
                theta[i] = 0.02f + 0.001f * (float)(i % 7);
        for (size_t s = 0; s < 2; s++)
            for (int steps = 0; steps <= 7; steps += 7) {
                mfl_eval_metrics_t m0, m1;
                assert_int_equal(mfl_learner_evaluate(l, theta, supports[s], test, steps, 0.1f,
                                                      adapted, &m0, err, sizeof err), 0);
                memcpy(buf, theta, ns * sizeof(float));
                assert_int_equal(mfl_learner_evaluate_in_place(l, buf, supports[s], test, steps,
                                                               0.1f, &m1, err, sizeof err), 0);
                assert_memory_equal(buf, adapted, ns * sizeof(float));
                assert_memory_equal(&m0.loss, &m1.loss, sizeof m0.loss);
                assert_memory_equal(&m0.accuracy, &m1.accuracy, sizeof m0.accuracy);
                assert_memory_equal(&m0.auroc, &m1.auroc, sizeof m0.auroc);
                assert_int_equal(m0.n, m1.n);
                if (steps)
                    assert_true(memcmp(buf, theta, ns * sizeof(float)) != 0);
                /* θ as is, scored without a copy: the same numbers too */
                mfl_eval_metrics_t m2;
                assert_int_equal(mfl_learner_evaluate(l, theta, supports[s], test, 0, 0.1f,
                                                      NULL, &m2, err, sizeof err), 0);
                if (!steps)
                    assert_memory_equal(&m0.loss, &m2.loss, sizeof m0.loss);
            }
        /* refused like evaluate, the buffer untouched */
        memcpy(buf, theta, ns * sizeof(float));
        assert_int_equal(mfl_learner_evaluate_in_place(l, buf, train, test, -1, 0.1f, NULL, err,
                                                       sizeof err), -1);
        assert_non_null(strstr(err, "steps"));
        assert_memory_equal(buf, theta, ns * sizeof(float));
        free(theta);
        free(adapted);
        free(buf);
        mfl_learner_destroy(&l);
    }
    mfl_dataset_destroy(&train);
    mfl_dataset_destroy(&big);
    mfl_dataset_destroy(&test);
}

static void test_metric_method_scores_binary_tables(void **state)
{
    (void)state;
    mfl_dataset_t *train = s_table(40, 5), *test = s_table(100, 6);
    mfl_learner_t *l = s_new(MFL_ALGO_PROTONET, "mlp:5-16-8", MFL_LOSS_SOFTMAX_CE);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float));
    mfl_learner_init_state(l, theta, 5);
    mfl_eval_metrics_t m;
    char err[256];
    assert_int_equal(mfl_learner_evaluate(l, theta, train, test, 0, 0, NULL, &m, err,
                                          sizeof(err)), 0);
    assert_true(m.accuracy > 0.6);
    assert_true(m.auroc > 0.6);
    assert_false(isnan(m.sensitivity));
    /* A support set without positives: the class cannot be predicted, the
     * loss stays finite (~30 nats per positive query row), no NaN. */
    mfl_dataset_t *neg = mfl_dataset_new(10, 5);
    neg->n_classes = 2;
    size_t k = 0;
    for (size_t i = 0; i < train->n && k < 10; i++)
        if (train->y[i] == 0) {
            memcpy(neg->x + k * 5, train->x + i * 5, 5 * sizeof(float));
            neg->y[k++] = 0;
        }
    assert_int_equal(k, 10);
    mfl_algo_kind_t metric[] = {MFL_ALGO_PROTONET, MFL_ALGO_MATCHING, MFL_ALGO_RELATION};
    for (size_t a = 0; a < 3; a++) {
        mfl_learner_t *ml = s_new(metric[a], "mlp:5-16-8", MFL_LOSS_SOFTMAX_CE);
        float *th = malloc(mfl_learner_n_state(ml) * sizeof(float));
        mfl_learner_init_state(ml, th, 5);
        assert_int_equal(mfl_learner_evaluate(ml, th, neg, test, 0, 0, NULL, &m, err,
                                              sizeof(err)), 0);
        assert_true(isfinite(m.loss) && m.loss < 40);
        assert_float_equal(m.sensitivity, 0.0, 1e-12);
        assert_float_equal(m.specificity, 1.0, 1e-12);
        free(th);
        mfl_learner_destroy(&ml);
    }
    mfl_dataset_destroy(&neg);
    free(theta);
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&train);
    mfl_dataset_destroy(&test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_layout_names_extra_tensors),
        cmocka_unit_test(test_bad_configs_name_the_field),
        cmocka_unit_test(test_meta_train_is_bit_reproducible),
        cmocka_unit_test(test_kept_outer_state_joins_blocks_into_one_run),
        cmocka_unit_test(test_fedavg_lowers_site_loss),
        cmocka_unit_test(test_evaluate_from_scratch_is_the_baseline),
        cmocka_unit_test(test_evaluate_in_place_matches_evaluate),
        cmocka_unit_test(test_metric_method_scores_binary_tables),
    };
    return cmocka_run_group_tests_name("meta_learner", tests, NULL, NULL);
}
