/* The offline experiment runner takes a plain spec: one built in code and
 * one read from YAML by the config layer train to the same θ, bit for
 * bit; the reader refuses an unknown key naming FILE:LINE and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/experiment_config.h"

#include "tmpdir.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "experiment");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static const char *const S_YAML = "seed: 5\n"
                                  "data:\n  source: sinusoid\n"
                                  "task:\n  k_shot: 5\n  q_query: 5\n"
                                  "learner:\n  algo: reptile\n  model: \"mlp:1-16-1\"\n"
                                  "  loss: mse\n  inner_steps: 2\n  meta_batch: 2\n"
                                  "train:\n  steps: 6\n  log_every: 3\n"
                                  "eval:\n  tasks: 4\n";

/* The same experiment as S_YAML, by hand. */
static void s_spec(mfl_experiment_spec_t *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "in-code");
    s->seed = 5;
    s->kind = MFL_EXP_SINUSOID;
    mfl_learner_config_defaults(&s->learner, MFL_ALGO_REPTILE);
    snprintf(s->learner.model_spec, sizeof s->learner.model_spec, "mlp:1-16-1");
    s->learner.loss = MFL_LOSS_MSE;
    s->learner.inner_steps = 2;
    s->learner.meta_batch = 2;
    s->max_batch = 256;
    s->n_way = 5;
    s->k_shot = 5;
    s->q_query = 5;
    s->support_size = 32;
    s->query_size = 32;
    s->train_steps = 6;
    s->log_every = 3;
    s->eval_tasks = 4;
    s->eval_steps = s->learner.inner_steps;
    s->eval_lr = s->learner.inner_lr;
    s->max_train_rows = 0;
}

static float *s_train(mfl_experiment_t *exp, size_t *n)
{
    char err[256] = "";
    mfl_learner_t *l = mfl_experiment_learner(exp, err, sizeof err);
    if (!l)
        fail_msg("%s", err);
    *n = mfl_learner_n_state(l);
    float *theta = malloc(*n * sizeof *theta);
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, exp->seed);
    if (mfl_experiment_train(exp, l, theta, NULL, NULL, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    mfl_learner_destroy(&l);
    return theta;
}

static void test_spec_in_code_and_from_yaml_train_alike(void **state)
{
    (void)state;
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/sin.yaml", s_dir);
    s_write(path, S_YAML);
    mfl_experiment_spec_t read, code;
    if (mfl_experiment_config_load(path, &read, err, sizeof err) != 0)
        fail_msg("%s", err);
    s_spec(&code);
    mfl_experiment_t *a = mfl_experiment_new(&read, err, sizeof err);
    mfl_experiment_t *b = mfl_experiment_new(&code, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    size_t na, nb;
    float *ta = s_train(a, &na), *tb = s_train(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ta, tb, na * sizeof *ta);
    free(ta);
    free(tb);
    mfl_experiment_destroy(&a);
    mfl_experiment_destroy(&b);
}

static void test_reader_refuses_unknown_key_with_file_line(void **state)
{
    (void)state;
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/bad.yaml", s_dir);
    s_write(path, "seed: 1\ndata:\n  source: sinusoid\n  colour: red\n"
                  "learner:\n  algo: reptile\n  model: \"mlp:1-4-1\"\n");
    mfl_experiment_spec_t s;
    assert_int_equal(mfl_experiment_config_load(path, &s, err, sizeof err), -1);
    if (!strstr(err, "bad.yaml:4") || !strstr(err, "colour"))
        fail_msg("error does not name FILE:LINE and key: %s", err);
    assert_null(mfl_experiment_load(path, err, sizeof err));
}

/* `metafl eval --scratch` for a metric method: the baseline must be an
 * embedding trained on each support set alone (as a site's local-only
 * model), not the untrained init. Four classes apart along feature 0 only,
 * nine features of loud noise: an untrained embedding mixes the noise in,
 * a trained one learns to look at feature 0. */
static void test_scratch_trains_a_metric_method_on_each_support(void **state)
{
    (void)state;
    mfl_experiment_t exp;
    memset(&exp, 0, sizeof exp);
    snprintf(exp.path, sizeof exp.path, "in-code");
    exp.seed = 3;
    exp.kind = MFL_EXP_EPISODES;
    mfl_learner_config_defaults(&exp.learner, MFL_ALGO_PROTONET);
    snprintf(exp.learner.model_spec, sizeof exp.learner.model_spec, "mlp:10-32-8");
    exp.log_every = 1;
    exp.max_batch = 256;
    exp.n_way = 4;
    exp.k_shot = 6;
    exp.q_query = 10;
    exp.eval_tasks = 10;
    exp.n_test_classes = 4;
    for (size_t c = 0; c < 4; c++)
        exp.test_classes[c] = c;
    exp.test_data = mfl_dataset_new(4 * 40, 10);
    assert_non_null(exp.test_data);
    exp.test_data->n_classes = 4;
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 11, 0);
    for (size_t r = 0; r < exp.test_data->n; r++) {
        float *x = exp.test_data->x + r * 10;
        exp.test_data->y[r] = (float)(r % 4);
        x[0] = 1.5f * (float)(r % 4) + 0.15f * mfl_rng_normal(&rng);
        for (size_t j = 1; j < 10; j++)
            x[j] = 1.5f * mfl_rng_normal(&rng);
    }
    char err[256] = "";
    mfl_learner_t *l = mfl_experiment_learner(&exp, err, sizeof err);
    if (!l)
        fail_msg("%s", err);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof *theta), *copy = malloc(n * sizeof *copy);
    assert_non_null(theta);
    assert_non_null(copy);
    mfl_learner_init_state(l, theta, exp.seed);
    memcpy(copy, theta, n * sizeof *theta);
    mfl_exp_eval_t untrained, scratch, again;
    assert_int_equal(mfl_experiment_evaluate(&exp, l, theta, 0, 0.01f, &untrained, err,
                                             sizeof err), 0);
    if (mfl_experiment_evaluate_scratch(&exp, l, theta, 0, 0.01f, &scratch, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(mfl_experiment_evaluate_scratch(&exp, l, theta, 0, 0.01f, &again, err,
                                                     sizeof err), 0);
    assert_memory_equal(theta, copy, n * sizeof *theta); /* θ itself untouched */
    assert_int_equal(scratch.n_tasks, untrained.n_tasks);
    assert_int_equal(scratch.n_failed, 0);
    /* trained on the supports: clearly better than the untrained embedding */
    if (!(scratch.mean.accuracy > untrained.mean.accuracy + 0.1))
        fail_msg("scratch %.3f vs untrained %.3f", scratch.mean.accuracy,
                 untrained.mean.accuracy);
    assert_true(scratch.mean.loss < untrained.mean.loss);
    assert_true(again.mean.accuracy == scratch.mean.accuracy); /* deterministic */
    free(theta);
    free(copy);
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&exp.test_data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scratch_trains_a_metric_method_on_each_support),
        cmocka_unit_test(test_spec_in_code_and_from_yaml_train_alike),
        cmocka_unit_test(test_reader_refuses_unknown_key_with_file_line),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
