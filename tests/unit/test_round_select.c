/* Federated model selection's plain parts (issue 16): the rule that picks
 * a candidate (direction, ties, missing scores), the default grid, the
 * selection: section of the coordinator config, the state file that binds
 * a restart to its selection, and the site's validation split (stratified,
 * seeded, inside the training rows, disjoint from the test rows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "round/round_engine.h"
#include "round/run_config.h"
#include "round/selection.h"
#include "site/site_worker.h"
#include "wire/task_codec.h"

#include "engine_sim.h"
#include "linear_rows.h"

/* ---- the rule ------------------------------------------------------- */

static void test_rule_picks_best_mean_in_its_direction(void **state)
{
    (void)state;
    mfl_select_score_t a[2] = {{0.70, 0.60, 0.80, 10}, {0.50, 0.70, 0.60, 10}};
    mfl_select_score_t b[2] = {{0.40, 0.80, 0.75, 10}, {0.45, 0.75, 0.70, 10}};
    double auroc[2] = {mfl_select_mean(MFL_SELECT_RULE_AUROC, a, 2, NULL),
                       mfl_select_mean(MFL_SELECT_RULE_AUROC, b, 2, NULL)};
    assert_true(fabs(auroc[0] - 0.70) < 1e-12 && fabs(auroc[1] - 0.725) < 1e-12);
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, auroc, NULL, 2), 1);
    /* Loss: lower wins (a: 0.60, b: 0.425). */
    double loss[2] = {mfl_select_mean(MFL_SELECT_RULE_LOSS, a, 2, NULL),
                      mfl_select_mean(MFL_SELECT_RULE_LOSS, b, 2, NULL)};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_LOSS, loss, NULL, 2), 1);
    double loss_rev[2] = {loss[1], loss[0]};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_LOSS, loss_rev, NULL, 2), 0);
    /* Accuracy: a 0.65, b 0.775. */
    double acc[3] = {mfl_select_mean(MFL_SELECT_RULE_ACCURACY, a, 2, NULL),
                     mfl_select_mean(MFL_SELECT_RULE_ACCURACY, b, 2, NULL), 0.5};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_ACCURACY, acc, NULL, 3), 1);
}

static void test_rule_ties_and_missing_scores_are_deterministic(void **state)
{
    (void)state;
    /* Equal means: the earlier candidate, whichever direction. */
    double tie[4] = {0.6, 0.8, 0.8, 0.7};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, tie, NULL, 4), 1);
    double ltie[3] = {0.3, 0.2, 0.2};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_LOSS, ltie, NULL, 3), 1);
    /* No score never wins while another candidate has one... */
    double nan_first[3] = {NAN, 0.1, 0.2};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, nan_first, NULL, 3), 2);
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_LOSS, nan_first, NULL, 3), 1);
    /* ... and with none scored the base setting (0) is kept. */
    /* Equal AUROC: the lower validation loss; equal loss too: the earlier. */
    double sat[3] = {1.0, 1.0, 0.9};
    double sat_loss[3] = {0.30, 0.20, 0.10};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, sat, sat_loss, 3), 1);
    double sat_loss2[3] = {0.20, 0.20, 0.10};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, sat, sat_loss2, 3), 0);
    double sat_loss3[3] = {NAN, 0.50, 0.10};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, sat, sat_loss3, 3), 1);
    double none[2] = {NAN, NAN};
    assert_int_equal(mfl_select_pick(MFL_SELECT_RULE_AUROC, none, NULL, 2), 0);
    /* A site without a finite score does not count in the mean. */
    mfl_select_score_t s[3] = {{1, 0.5, NAN, 5}, {1, 0.5, 0.9, 5}, {1, 0.5, 0.7, 5}};
    size_t used = 0;
    assert_true(fabs(mfl_select_mean(MFL_SELECT_RULE_AUROC, s, 3, &used) - 0.8) < 1e-12);
    assert_int_equal(used, 2);
    assert_true(isnan(mfl_select_mean(MFL_SELECT_RULE_AUROC, s, 1, &used)) && used == 0);
    /* AUTO follows the loss. */
    assert_int_equal(mfl_select_rule_resolve(MFL_SELECT_RULE_AUTO, MFL_LOSS_BCE),
                     MFL_SELECT_RULE_AUROC);
    assert_int_equal(mfl_select_rule_resolve(MFL_SELECT_RULE_AUTO, MFL_LOSS_MSE),
                     MFL_SELECT_RULE_LOSS);
    assert_int_equal(mfl_select_rule_resolve(MFL_SELECT_RULE_AUTO, MFL_LOSS_SOFTMAX_CE),
                     MFL_SELECT_RULE_ACCURACY);
    assert_int_equal(mfl_select_rule_resolve(MFL_SELECT_RULE_LOSS, MFL_LOSS_BCE),
                     MFL_SELECT_RULE_LOSS);
}

/* ---- defaults and config ------------------------------------------------ */

static void test_default_grid_varies_one_factor_at_a_time(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    mfl_coord_config_defaults(&c);
    snprintf(c.learner.model_spec, sizeof c.learner.model_spec, "mlp:13-32-1");
    mfl_select_candidate_t base;
    mfl_select_base(&c.learner, &c.server, 10, 0.01f, &base);
    mfl_select_config_t sel;
    memset(&sel, 0, sizeof sel);
    mfl_select_default_grid(&base, &sel);
    assert_int_equal(sel.n_candidates, 10);
    char d0[MFL_SELECT_DESC_MAX], d[MFL_SELECT_DESC_MAX];
    mfl_select_describe(&sel.candidates[0], d0, sizeof d0);
    mfl_select_describe(&base, d, sizeof d);
    assert_string_equal(d0, d); /* the configured setting is candidate 1 */
    assert_string_equal(sel.candidates[1].learner.model_spec, "linear:13-1");
    assert_string_equal(sel.candidates[2].learner.model_spec, "mlp:13-16-1");
    assert_string_equal(sel.candidates[3].learner.model_spec, "mlp:13-64-1");
    assert_int_equal(sel.candidates[9].adapt_steps, 30);
    assert_int_equal(sel.candidates[7].server.kind, MFL_OPTIM_ADAM);
    /* A width equal to the base's is not tried twice. */
    snprintf(base.learner.model_spec, sizeof base.learner.model_spec, "mlp:13-16-1");
    mfl_select_default_grid(&base, &sel);
    assert_int_equal(sel.n_candidates, 9);
    /* Specs it cannot read vary nothing about the model. */
    unsigned long in = 0, out = 0;
    assert_int_equal(mfl_select_spec_io("cnn4:1x28x28:64:5", &in, &out), -1);
    assert_int_equal(mfl_select_spec_io("mlp:30-64-32-2", &in, &out), 0);
    assert_true(in == 30 && out == 2);
}

static const char s_base_yaml[] =
    "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
    "model: {spec: 'mlp:13-32-1', loss: bce}\n"
    "algorithm: {name: reptile, inner_lr: 0.02, inner_steps: 4}\n"
    "eval: {adapt_steps: 7, adapt_lr: 0.03}\n";

static int s_parse(const char *extra, mfl_coord_config_t *c, char *err, size_t errlen)
{
    char text[2048];
    snprintf(text, sizeof text, "%s%s", s_base_yaml, extra);
    return mfl_coord_config_parse(text, strlen(text), "c.yaml", c, err, errlen);
}

static void test_config_selection_section(void **state)
{
    (void)state;
    static mfl_coord_config_t c;
    char err[512] = "";
    assert_int_equal(s_parse("", &c, err, sizeof err), 0);
    assert_false(c.selection.enabled); /* off unless asked for */
    assert_int_equal(s_parse("selection: {enabled: true}\n", &c, err, sizeof err), 0);
    assert_true(c.selection.enabled);
    assert_int_equal(c.selection.rounds, 5);
    assert_true(c.selection.validation_fraction == 0.2);
    assert_int_equal(c.selection.validation_seed, c.seed);
    assert_int_equal(c.selection.n_candidates, 10);
    assert_int_equal(c.selection.candidates[0].adapt_steps, 7);

    assert_int_equal(s_parse("selection:\n  enabled: true\n  rule: loss\n  rounds: 3\n"
                             "  candidates:\n    - {}\n"
                             "    - {model: 'linear:13-1', server_optimizer: yogi, "
                             "server_lr: 0.05, adapt_steps: 0}\n",
                             &c, err, sizeof err), 0);
    assert_int_equal(c.selection.n_candidates, 2);
    assert_int_equal(c.selection.rule, MFL_SELECT_RULE_LOSS);
    const mfl_select_candidate_t *k = &c.selection.candidates[1];
    assert_string_equal(k->learner.model_spec, "linear:13-1");
    assert_int_equal(k->server.kind, MFL_OPTIM_YOGI);
    assert_true(fabsf(k->server.lr - 0.05f) < 1e-7f);
    assert_int_equal(k->adapt_steps, 0);
    assert_true(fabsf(k->learner.inner_lr - 0.02f) < 1e-7f); /* unchanged keys: the base's */

    /* Refusals name the file, line and key. */
    assert_int_equal(s_parse("selection:\n  candidates:\n    - {model: 'mlp:12-8-1'}\n", &c, err,
                             sizeof err), -1);
    assert_non_null(strstr(err, "selection.candidates[0].model"));
    assert_int_equal(s_parse("selection:\n  candidates:\n    - {learning_rate: 1}\n", &c, err,
                             sizeof err), -1);
    assert_non_null(strstr(err, "learning_rate"));
    assert_int_equal(s_parse("selection: {rule: best}\n", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "selection.rule"));
    assert_int_equal(s_parse("selection: {validation_fraction: 0.95}\n", &c, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "c.yaml:5"));
    assert_int_equal(s_parse("selection: {candidates: []}\n", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "selection.candidates"));
}

/* ---- the state file ---------------------------------------------------- */

static void test_state_file_binds_the_selection(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_round_select.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/selection.state", dir);
    static mfl_coord_config_t c;
    char err[512];
    assert_int_equal(s_parse("selection: {enabled: true}\n", &c, err, sizeof err), 0);
    uint8_t d1[32], d2[32];
    mfl_select_digest(&c.selection, c.seed, c.init_seed, d1);
    size_t w = 99;
    assert_int_equal(mfl_select_state_read(path, d1, c.selection.n_candidates, &w, err,
                                           sizeof err), 0); /* none yet */
    assert_int_equal(mfl_select_state_write(path, d1, 3, err, sizeof err), 0);
    assert_int_equal(mfl_select_state_read(path, d1, c.selection.n_candidates, &w, err,
                                           sizeof err), 1);
    assert_int_equal(w, 3);
    /* An edited candidate (or seed) is another selection: refused. */
    c.selection.candidates[4].learner.inner_lr *= 2;
    mfl_select_digest(&c.selection, c.seed, c.init_seed, d2);
    assert_memory_not_equal(d1, d2, 32);
    assert_int_equal(mfl_select_state_read(path, d2, c.selection.n_candidates, &w, err,
                                           sizeof err), -1);
    assert_non_null(strstr(err, "other candidates"));
    mfl_select_digest(&c.selection, c.seed + 1, c.init_seed, d2);
    assert_memory_not_equal(d1, d2, 32);
    /* A winner beyond the list is refused too. */
    assert_int_equal(mfl_select_state_read(path, d1, 3, &w, err, sizeof err), -1);
    unlink(path);
    rmdir(dir);
}

/* ---- the site's validation split ------------------------------------- */

/* A data set whose rows say who they are: x[0] = id, y by a pattern with
 * 1/3 positives. */
static mfl_dataset_t *s_rows(size_t first, size_t n)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 2);
    assert_non_null(d);
    d->n_classes = 2;
    for (size_t i = 0; i < n; i++) {
        d->x[2 * i] = (float)(first + i);
        d->x[2 * i + 1] = 0.5f;
        d->y[i] = (first + i) % 3 == 0 ? 1.0f : 0.0f;
    }
    return d;
}

static size_t s_count(const mfl_dataset_t *d, float cls)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->y[i] == cls;
    return n;
}

static void test_validation_split_is_stratified_seeded_and_apart_from_test(void **state)
{
    (void)state;
    char err[256];
    /* Training rows 0..119 (40 positive), test rows 1000..1039. */
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hosp-a", s_rows(0, 120),
                                                         s_rows(1000, 40), NULL, err, sizeof err);
    assert_non_null(w);
    const mfl_dataset_t *fit = NULL, *val = NULL;
    assert_int_equal(mfl_site_worker_validation(w, 0.25, 7, &fit, &val, err, sizeof err), 0);
    /* Stratified: a quarter of each class. */
    assert_int_equal(val->n, 30);
    assert_int_equal(s_count(val, 1.0f), 10);
    assert_int_equal(s_count(val, 0.0f), 20);
    assert_int_equal(fit->n, 90);
    /* Fit ∪ validation = the training rows, disjoint; no test row in either. */
    int seen[120] = {0};
    for (size_t i = 0; i < val->n; i++) {
        float id = val->x[2 * i];
        assert_true(id >= 0 && id < 120);
        seen[(int)id] += 1;
        assert_true(val->y[i] == (((int)id % 3 == 0) ? 1.0f : 0.0f)); /* labels kept with rows */
    }
    for (size_t i = 0; i < fit->n; i++) {
        float id = fit->x[2 * i];
        assert_true(id >= 0 && id < 120);
        seen[(int)id] += 2;
    }
    for (int i = 0; i < 120; i++)
        assert_true(seen[i] == 1 || seen[i] == 2);
    float first_val[30];
    for (size_t i = 0; i < 30; i++)
        first_val[i] = val->x[2 * i];

    /* Seeded: the same (fraction, seed, site) gives the same rows in
     * another worker (another process would too); another seed others. */
    mfl_site_worker_t *w2 = mfl_site_worker_new_from_data("hosp-a", s_rows(0, 120),
                                                          s_rows(1000, 40), NULL, err,
                                                          sizeof err);
    assert_non_null(w2);
    const mfl_dataset_t *val2 = NULL;
    assert_int_equal(mfl_site_worker_validation(w2, 0.25, 7, NULL, &val2, err, sizeof err), 0);
    for (size_t i = 0; i < 30; i++)
        assert_true(val2->x[2 * i] == first_val[i]);
    assert_int_equal(mfl_site_worker_validation(w2, 0.25, 8, NULL, &val2, err, sizeof err), 0);
    size_t same = 0;
    for (size_t i = 0; i < 30; i++)
        same += val2->x[2 * i] == first_val[i];
    assert_true(same < 30);
    /* The held-out (test) rows are untouched. */
    assert_int_equal(mfl_site_worker_n_heldout(w), 40);
    assert_int_equal(mfl_site_worker_n_train(w), 120);

    /* Too few rows for both parts, or a fraction out of range: refused. */
    assert_int_equal(mfl_site_worker_validation(w, 0.95, 7, NULL, NULL, err, sizeof err), -1);
    mfl_site_worker_t *tiny = mfl_site_worker_new_from_data("t", s_rows(0, 1), NULL, NULL, err,
                                                            sizeof err);
    assert_non_null(tiny);
    assert_int_equal(mfl_site_worker_validation(tiny, 0.5, 1, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot give both"));
    mfl_site_worker_destroy(&tiny);
    mfl_site_worker_destroy(&w2);
    mfl_site_worker_destroy(&w);
}

/* ---- the engine's selection phase, sites in-process -------------------- */

#define E_SITES ENGINE_SIM_SITES
typedef struct {
    engine_sim_t sim;
    size_t n_sel_tasks; /* round / eval tasks that asked for validation rows */
    size_t n_final_evals;
    size_t n_adapt_chosen; /* final reports whose site chose its adaptation */
    size_t n_sel_search;   /* selection evals scored with the site's own choice */
} e_sim_t;

static void e_count(void *user, const mfl_round_task_t *t, const mfl_eval_task_t *et)
{
    e_sim_t *e = user;
    if ((t && t->selection.candidate) || (et && et->selection.candidate))
        e->n_sel_tasks++;
    if (et && et->selection.candidate && et->selection.adapt_search)
        e->n_sel_search++;
}

static void e_report(void *user, const mfl_eval_summary_t *s)
{
    ((e_sim_t *)user)->n_final_evals++;
    ((e_sim_t *)user)->n_adapt_chosen += s->report->adapt_lr_used > 0;
}

static void e_check_report(void *user, const engine_sim_job_t *j, mfl_eval_report_t *rep)
{
    (void)user;
    if (j->et.selection.candidate)
        assert_int_equal(rep->n, 24); /* 20% of 120 training rows, not the 40 test rows */
    else
        assert_int_equal(rep->n, 40);
}

static void e_check_round(void *user, const engine_sim_job_t *j, const mfl_site_round_result_t *r)
{
    (void)user;
    /* a selection round trains on the 96 fit rows */
    assert_int_equal(r->metrics.n_samples, j->t.selection.candidate ? 96 : 120);
}

/* Runs `c` to the end with three in-process sites; θ's digest into hash. */
static void e_run(mfl_coord_config_t *c, const char *dir, e_sim_t *e, uint8_t hash[32])
{
    char err[512];
    memset(e, 0, sizeof *e);
    engine_sim_init(&e->sim);
    for (int i = 0; i < E_SITES; i++) {
        e->sim.w[i] = mfl_site_worker_new_from_data(
            e->sim.ids[i], s_linear_rows(10 + (uint64_t)i, 120),
            s_linear_rows(20 + (uint64_t)i, 40), NULL, err, sizeof err);
        assert_non_null(e->sim.w[i]);
    }
    e->sim.user = e;
    e->sim.on_task = e_count;
    e->sim.on_report = e_check_report;
    e->sim.on_round = e_check_round;
    e->sim.on_summary = e_report;
    engine_sim_run(&e->sim, c, dir, 120);
    memcpy(hash, mfl_round_engine_theta_hash(e->sim.engine), 32);
}

static void e_free(e_sim_t *e)
{
    engine_sim_free(&e->sim);
}

static void test_engine_selects_trains_the_winner_and_records_it(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_round_select_e.XXXXXX", dir2[] = "/tmp/test_round_select_p.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_non_null(mkdtemp(dir2));
    static mfl_coord_config_t c, plain;
    char err[512];
    static const char yaml[] =
        "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
        "model: {spec: 'mlp:3-8-1', loss: bce, init_seed: 5}\n"
        "algorithm: {name: reptile, inner_lr: 0.05, inner_steps: 5, meta_batch: 2}\n"
        "rounds: {count: 3, min_sites: 3, wait_for_sites: 3, seed: 7}\n"
        "eval: {adapt_steps: 5, adapt_lr: 0.05}\n"
        "selection:\n  enabled: true\n  rounds: 2\n  candidates:\n"
        "    - {inner_lr: 0.000001, server_lr: 0.000001}\n    - {}\n";
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", &c, err, sizeof err),
                     0);
    plain = c;
    plain.selection.enabled = false;
    plain.eval_adapt_search = true; /* each site picks its adaptation (θ is unaffected) */
    static e_sim_t e, p;
    uint8_t h_sel[32], h_plain[32];
    e_run(&c, dir, &e, h_sel);
    size_t cand = 9, n = 0, win = 0;
    const char *rule = NULL;
    assert_true(mfl_round_engine_selection(e.sim.engine, &cand, &n, &win, &rule));
    assert_int_equal(cand, 0);
    assert_int_equal(n, 2);
    assert_int_equal(win, 2); /* the deliberately bad candidate 1 lost */
    assert_string_equal(rule, "auroc");
    assert_true(mfl_round_engine_selection_score(e.sim.engine, 0) <
                mfl_round_engine_selection_score(e.sim.engine, 1));
    /* 2 candidates × (2 rounds + 1 evaluation) × 3 sites asked for validation rows */
    assert_int_equal(e.n_sel_tasks, 18);
    assert_int_equal(e.n_final_evals, 3);
    assert_int_equal(e.n_adapt_chosen, 0);
    assert_int_equal(e.n_sel_search, 0);
    assert_int_equal(mfl_round_engine_rounds_done(e.sim.engine), 3);
    /* The winner trained after selection = the same setting trained alone. */
    e_run(&plain, dir2, &p, h_plain);
    assert_false(mfl_round_engine_selection(p.sim.engine, NULL, NULL, NULL, NULL));
    assert_memory_equal(h_sel, h_plain, 32);
    assert_int_equal(p.n_adapt_chosen, 3); /* eval.adapt_search reached every site */
    /* The pick is on record for a restart. */
    char path[128];
    snprintf(path, sizeof path, "%s/ck/selection.state", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_true(strncmp(line, "metafl-selection-v1 winner=1 ", 29) == 0);
    e_free(&e);
    e_free(&p);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, dir2);
    assert_int_equal(system(cmd), 0);
}

/* selection.score_adaptation: search: every candidate's validation score
 * comes after the site chose its adaptation on its fit rows (as the run
 * deploys eval.adapt_search); the bad candidate still loses, and the
 * config key is read and bound into the selection's digest. */
static void test_selection_scores_with_the_deployed_adaptation(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_round_select_s.XXXXXX";
    assert_non_null(mkdtemp(dir));
    static mfl_coord_config_t c;
    char err[512];
    static const char yaml[] =
        "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
        "model: {spec: 'mlp:3-8-1', loss: bce, init_seed: 5}\n"
        "algorithm: {name: reptile, inner_lr: 0.05, inner_steps: 5, meta_batch: 2}\n"
        "rounds: {count: 1, min_sites: 3, wait_for_sites: 3, seed: 7}\n"
        "eval: {adapt_steps: 5, adapt_lr: 0.05, adapt_search: true}\n"
        "selection:\n  enabled: true\n  rounds: 2\n  score_adaptation: search\n"
        "  candidates:\n    - {inner_lr: 0.000001, server_lr: 0.000001}\n    - {}\n";
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", &c, err, sizeof err),
                     0);
    assert_true(c.selection.score_search);
    uint8_t d1[32], d2[32];
    mfl_select_digest(&c.selection, 7, 5, d1);
    c.selection.score_search = false;
    mfl_select_digest(&c.selection, 7, 5, d2);
    assert_memory_not_equal(d1, d2, 32);
    c.selection.score_search = true;
    static e_sim_t e;
    uint8_t h[32];
    e_run(&c, dir, &e, h);
    assert_int_equal(e.n_sel_search, 6); /* 2 candidates × 3 sites */
    size_t win = 0;
    assert_true(mfl_round_engine_selection(e.sim.engine, NULL, NULL, &win, NULL));
    assert_int_equal(win, 2);
    e_free(&e);
    char bad[sizeof yaml + 16];
    const char *at = strstr(yaml, "score_adaptation: search");
    assert_non_null(at);
    snprintf(bad, sizeof bad, "%.*sscore_adaptation: sometimes%s", (int)(at - yaml), yaml,
             at + strlen("score_adaptation: search"));
    assert_int_equal(mfl_coord_config_parse(bad, strlen(bad), "b.yaml", &c, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "score_adaptation"));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- per-site adaptation (eval.adapt_search) ------------------------------ */

static void test_adapt_search_picks_on_validation_rows_and_says_which(void **state)
{
    (void)state;
    char err[512];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("site-a", s_linear_rows(10, 120),
                                                         s_linear_rows(20, 40), NULL, err,
                                                         sizeof err);
    assert_non_null(w);
    mfl_learner_config_t lc;
    mfl_learner_config_defaults(&lc, MFL_ALGO_REPTILE);
    snprintf(lc.model_spec, sizeof lc.model_spec, "mlp:3-8-1");
    lc.loss = MFL_LOSS_BCE;
    mfl_learner_t *l = mfl_learner_new(&lc, 1, err, sizeof err);
    assert_non_null(l);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof *theta);
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 3);
    mfl_eval_task_t t;
    memset(&t, 0, sizeof t);
    mfl_task_algorithm_from_learner(&lc, 5, 0, 5, &t.algorithm);
    snprintf(t.model_spec, sizeof t.model_spec, "mlp:3-8-1");
    t.nonce_len = 16;
    t.adapt_steps = 1; /* the task's own setting: replaced by the site's choice */
    t.adapt_lr = 0.001f;
    t.selection.adapt_search = true;
    t.selection.validation_fraction = 0.2;
    t.selection.validation_seed = 4;
    mfl_site_eval_result_t a, b;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, n, &a, err, sizeof err), 0);
    static const uint32_t steps[] = MFL_SITE_ADAPT_STEPS;
    static const float rates[] = MFL_SITE_ADAPT_RATES;
    bool in_grid = false;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        for (size_t j = 0; j < sizeof rates / sizeof *rates; j++)
            in_grid |= a.adapt_steps_used == steps[i] && a.adapt_lr_used == rates[j];
    assert_true(in_grid);
    /* From a random θ on separable rows, some adaptation beats none. */
    assert_true(a.adapt_steps_used > 0);
    assert_int_equal(a.adapted.n, 40); /* scored on the test rows */
    /* The same choice and scores again (deterministic). */
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, n, &b, err, sizeof err), 0);
    assert_int_equal(a.adapt_steps_used, b.adapt_steps_used);
    assert_true(a.adapt_lr_used == b.adapt_lr_used && a.adapted.accuracy == b.adapted.accuracy);
    /* It equals evaluating with the chosen setting directly. */
    mfl_eval_task_t d = t;
    d.selection.adapt_search = false;
    d.selection.validation_fraction = 0;
    d.adapt_steps = a.adapt_steps_used;
    d.adapt_lr = a.adapt_lr_used;
    assert_int_equal(mfl_site_worker_eval(w, &d, theta, n, &b, err, sizeof err), 0);
    assert_true(a.adapted.accuracy == b.adapted.accuracy && a.adapted.loss == b.adapted.loss);
    assert_int_equal(b.adapt_steps_used, 0);
    mfl_eval_report_t rep;
    mfl_site_worker_fill_report(w, &t, &a, &rep);
    assert_int_equal(rep.adapt_steps_used, a.adapt_steps_used);

    /* On the wire: the flag and what was used travel; bad combinations are refused. */
    mfl_eval_task_msg_t m;
    mfl_eval_task_t back;
    mfl_eval_task_to_msg(&t, &m);
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_true(back.selection.adapt_search && back.selection.validation_fraction == 0.2);
    m.msg.validation_fraction = 0;
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "adapt_search needs a validation_fraction"));
    m.msg.validation_fraction = 0.2;
    /* A candidate scored as it is deployed (selection.score_adaptation:
     * search) carries both; it still needs its validation fraction. */
    m.msg.selection_candidate = 2;
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_true(back.selection.adapt_search && back.selection.candidate == 2);
    m.msg.validation_fraction = 0;
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    m.msg.validation_fraction = 0.2;
    Metafl__EvalReport rm;
    mfl_eval_report_t rback;
    mfl_eval_report_to_msg(&rep, &rm);
    assert_int_equal(mfl_eval_report_from_msg(&rm, &rback, err, sizeof err), 0);
    assert_true(rback.adapt_steps_used == rep.adapt_steps_used &&
                rback.adapt_lr_used == rep.adapt_lr_used);
    free(theta);
    mfl_learner_destroy(&l);
    mfl_site_worker_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_picks_best_mean_in_its_direction),
        cmocka_unit_test(test_rule_ties_and_missing_scores_are_deterministic),
        cmocka_unit_test(test_default_grid_varies_one_factor_at_a_time),
        cmocka_unit_test(test_config_selection_section),
        cmocka_unit_test(test_state_file_binds_the_selection),
        cmocka_unit_test(test_validation_split_is_stratified_seeded_and_apart_from_test),
        cmocka_unit_test(test_engine_selects_trains_the_winner_and_records_it),
        cmocka_unit_test(test_adapt_search_picks_on_validation_rows_and_says_which),
        cmocka_unit_test(test_selection_scores_with_the_deployed_adaptation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
