/* The hospital's privacy policy end to end inside one process: the policy's
 * rules each refuse with their name; a bad policy stops the config at
 * FILE:LINE; a site-level DP round is clipped, noised and accounted, its
 * signed record carries what an auditor needs and withholds unnoised
 * statistics; the budget refuses the round that would pass it; the ledger
 * read back from the site's signed audit log gives the same ε; and the
 * auditor's recomputation names a record whose ε was tampered with and
 * re-signed by the site's own key. With privacy.distributed_noise and a
 * SecAgg task of threshold t the site adds σS/√t and accounts σ (the sum's
 * noise); without either it adds σS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/audit.h"
#include "privacy/ledger.h"
#include "privacy/policy.h"
#include "site/site_config.h"
#include "metafl.pb-c.h" /* the signed header, decoded and tampered with */
#include "site/site_worker.h"

#include "tmpdir.h"

#define NF 4

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "site-privacy");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

/* ---- the policy's rules -------------------------------------------- */

static void s_site_policy(mfl_privacy_policy_t *p)
{
    mfl_privacy_policy_defaults(p);
    p->mode = MFL_PRIVACY_MODE_SITE;
    p->epsilon_budget = 3.0;
    p->delta = 1e-5;
    p->noise_multiplier = 2.0;
    p->clip_min = 0.01;
    p->clip_max = 1.0;
    p->min_records = 50;
    p->min_batch = 16;
    p->allow_unnoised_stats = false;
    char err[200];
    assert_int_equal(mfl_privacy_policy_check(p, err, sizeof err), 0);
}

/* The UpdateHeader's not_sent list as MFL_STAT_* bits (each listed once). */
static uint32_t s_not_sent(const Metafl__UpdateHeader *h)
{
    uint32_t bits = 0;
    for (size_t i = 0; i < h->n_not_sent; i++) {
        uint32_t b = 1u << (unsigned)h->not_sent[i];
        assert_false(bits & b);
        bits |= b;
    }
    return bits;
}

static void s_refused(const mfl_privacy_policy_t *p, const mfl_privacy_accountant_t *spent,
                      const mfl_privacy_request_t *req, uint64_t n, const char *rule)
{
    mfl_privacy_plan_t plan;
    char err[400] = "";
    assert_int_equal(mfl_privacy_decide(p, spent, req, n, &plan, err, sizeof err), -1);
    if (strncmp(err, rule, strlen(rule)) != 0)
        fail_msg("want a refusal naming %s, got: %s", rule, err);
}

static void test_each_rule_refuses_with_its_name(void **state)
{
    (void)state;
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    mfl_privacy_accountant_t spent;
    assert_int_equal(mfl_privacy_accountant_init(&spent, NULL, 0, NULL, 0), 0);
    mfl_privacy_request_t req = {.enabled = true, .clip_norm = 0.5, .noise_multiplier = 2.0,
                                 .batch_size = 32};
    mfl_privacy_plan_t plan;
    char err[400];
    assert_int_equal(mfl_privacy_decide(&p, &spent, &req, 200, &plan, err, sizeof err), 0);
    assert_true(plan.dp && !plan.send_stats && plan.q == 1.0 && plan.steps == 1);

    s_refused(&p, &spent, &req, 49, "privacy.min_records");
    req.batch_size = 8;
    s_refused(&p, &spent, &req, 200, "privacy.min_batch");
    req.batch_size = 32;
    req.clip_norm = 5.0;
    s_refused(&p, &spent, &req, 200, "privacy.clip_max");
    req.clip_norm = 0.001;
    s_refused(&p, &spent, &req, 200, "privacy.clip_min");
    req.clip_norm = 0.5;
    s_refused(&p, NULL, &req, 200, "privacy.ledger");
    /* The budget: spend until the next round would pass ε = 3. */
    int rounds = 0;
    while (mfl_privacy_decide(&p, &spent, &req, 200, &plan, err, sizeof err) == 0) {
        assert_true(plan.epsilon_after <= p.epsilon_budget);
        assert_int_equal(mfl_privacy_accountant_add(&spent, plan.q, plan.noise_multiplier,
                                                    (double)plan.steps, err, sizeof err), 0);
        assert_true(++rounds < 1000);
    }
    assert_non_null(strstr(err, "privacy.epsilon_budget"));
    assert_true(rounds >= 1);
}

static void test_task_can_only_tighten(void **state)
{
    (void)state;
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    mfl_privacy_accountant_t spent;
    mfl_privacy_accountant_init(&spent, NULL, 0, NULL, 0);
    mfl_privacy_plan_t plan;
    char err[400];
    /* Less noise than the policy: the policy's σ is used. */
    mfl_privacy_request_t req = {.enabled = true, .clip_norm = 0.5, .noise_multiplier = 0.3,
                                 .batch_size = 32};
    assert_int_equal(mfl_privacy_decide(&p, &spent, &req, 200, &plan, err, sizeof err), 0);
    assert_true(plan.noise_multiplier == 2.0 && plan.clip_norm == 0.5);
    /* More noise: the task's. */
    req.noise_multiplier = 5.0;
    assert_int_equal(mfl_privacy_decide(&p, &spent, &req, 200, &plan, err, sizeof err), 0);
    assert_true(plan.noise_multiplier == 5.0);
    /* No privacy asked: the policy applies anyway, at its clip bound. */
    mfl_privacy_request_t none = {.enabled = false};
    assert_int_equal(mfl_privacy_decide(&p, &spent, &none, 200, &plan, err, sizeof err), 0);
    assert_true(plan.dp && plan.noise_multiplier == 2.0 && plan.clip_norm == 1.0);
    /* Mode none, nothing asked: no DP, statistics may leave. */
    mfl_privacy_policy_defaults(&p);
    assert_int_equal(mfl_privacy_decide(&p, &spent, &none, 200, &plan, err, sizeof err), 0);
    assert_true(!plan.dp && !plan.clip_only && plan.send_stats);
}

/* ---- the policy in the site config --------------------------------- */

static const char *s_write(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define S_SITE                                                                       \
    "site:\n  id: hospital-a\n  key_file: k/hospital-a.key\n"                        \
    "coordinator:\n  endpoint: tcp://127.0.0.1:7000\n  public_key: k/c.pub\n"        \
    "data:\n  source: wdbc\n  path: wdbc.data\n"                                     \
    "audit:\n  log: audit/a.audit\n"                                                 \
    "privacy:\n"                                                                     \
    "  mode: site\n"                                                                 \
    "  epsilon_budget: 4\n"                                                          \
    "  delta: 1.0e-5\n"                                                              \
    "  noise_multiplier: 1.5\n"                                                      \
    "  clip_max: 1.0\n"                                                              \
    "  min_records: 30\n"

static void test_config_policy_loads_and_bad_values_name_file_line(void **state)
{
    (void)state;
    mfl_site_config_t c;
    char err[600];
    const char *path = s_write("ok.yaml", S_SITE "  min_batch: 8\n");
    if (mfl_site_config_load(path, &c, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(c.privacy.mode, MFL_PRIVACY_MODE_SITE);
    assert_true(c.privacy.epsilon_budget == 4 && c.privacy.noise_multiplier == 1.5 &&
                c.privacy.clip_max == 1.0 && c.privacy.min_records == 30 &&
                c.privacy.min_batch == 8 && !c.privacy.allow_unnoised_stats &&
                !c.privacy.distributed_noise);
    mfl_site_config_clear(&c);
    path = s_write("dist.yaml", S_SITE "  distributed_noise: true\n");
    if (mfl_site_config_load(path, &c, err, sizeof err))
        fail_msg("%s", err);
    assert_true(c.privacy.distributed_noise);
    mfl_site_config_clear(&c);
    /* Mode record keeps its DP-SGD noise whole: the opt-in is refused there,
     * naming the file, the key and its line (the last of the file). */
    {
        char text[2048];
        snprintf(text, sizeof text, "%s", S_SITE);
        char *m = strstr(text, "  mode: site\n");
        assert_non_null(m);
        memmove(m, m + strlen("  mode: site\n"), strlen(m + strlen("  mode: site\n")) + 1);
        strncat(text, "  mode: record\n  sample_rate: 0.1\n  distributed_noise: true\n",
                sizeof text - strlen(text) - 1);
        int line = 0;
        for (const char *q = text; *q; q++)
            line += *q == '\n';
        char where[40];
        snprintf(where, sizeof where, "distrec.yaml:%d:", line);
        path = s_write("distrec.yaml", text);
        err[0] = '\0';
        assert_int_equal(mfl_site_config_load(path, &c, err, sizeof err), -1);
        if (!strstr(err, where) || !strstr(err, "privacy.distributed_noise") ||
            !strstr(err, "mode record"))
            fail_msg("distributed_noise with mode record: %s", err);
    }
    /* Each bad value: refused, naming the file, the line and the key. */
    const struct {
        const char *line, *key;
    } bad[] = {
        {"  noise_multiplier: 0\n", "privacy.noise_multiplier"},
        {"  noise_multiplier: -1\n", "privacy.noise_multiplier"},
        {"  delta: 1\n", "privacy.delta"},
        {"  delta: 2.5\n", "privacy.delta"},
        {"  epsilon_budget: 0\n", "privacy.epsilon_budget"},
        {"  epsilon_budget: -3\n", "privacy.epsilon_budget"},
        {"  clip_max: 0\n", "privacy.clip_max"},
        {"  clip_min: -0.5\n", "privacy.clip_min"},
        {"  min_records: 0\n", "privacy.min_records"},
        {"  min_batch: 0\n", "privacy.min_batch"},
        {"  mode: paranoid\n", "privacy.mode"},
        {"  sample_rate: 0\n", "privacy.sample_rate"},
        {"  sample_rate: 1.5\n", "privacy.sample_rate"},
        {"  mode: record\n", "privacy.sample_rate"}, /* record needs a rate */
        {"  distributed_noise: maybe\n", "privacy.distributed_noise"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[2048];
        /* the bad line replaces the key's line (if any) and goes last */
        snprintf(text, sizeof text, "%s", S_SITE);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(bad[i].line, ":"), bad[i].line);
        char *at = strstr(text, key);
        if (at) { /* drop the existing line for that key */
            char *eol = strchr(at, '\n');
            memmove(at, eol + 1, strlen(eol + 1) + 1);
        }
        int line = 1;
        for (const char *q = text; *q; q++)
            line += *q == '\n';
        strncat(text, bad[i].line, sizeof text - strlen(text) - 1);
        path = s_write("bad.yaml", text);
        char where[32];
        snprintf(where, sizeof where, "bad.yaml:%d:", line);
        err[0] = '\0';
        assert_int_equal(mfl_site_config_load(path, &c, err, sizeof err), -1);
        if (!strstr(err, where) || !strstr(err, bad[i].key))
            fail_msg("case '%s': %s", bad[i].line, err);
    }
    /* A DP mode without an audit log has no ledger: refused at load. */
    char text[2048];
    snprintf(text, sizeof text, "%s", S_SITE);
    char *a = strstr(text, "audit:\n");
    memmove(a, a + strlen("audit:\n  log: audit/a.audit\n"),
            strlen(a + strlen("audit:\n  log: audit/a.audit\n")) + 1);
    path = s_write("nolog.yaml", text);
    assert_int_equal(mfl_site_config_load(path, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "audit.log"));
}

/* ---- the worker: a site-level DP round ------------------------------ */

static mfl_dataset_t *s_make_data(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, NF);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) {
        float s = 0.2f;
        for (size_t j = 0; j < NF; j++) {
            float v = mfl_rng_normal(&r);
            d->x[i * NF + j] = v;
            s += (j % 2 ? -1.0f : 1.0f) * v;
        }
        d->y[i] = s > 0 ? 1.0f : 0.0f;
    }
    return d;
}

typedef struct {
    mfl_round_task_t task;
} s_task_t;

/* A task whose privacy is off: the site's policy decides. */
static void s_task_init(s_task_t *t, uint32_t round)
{
    memset(&t->task, 0, sizeof t->task);
    snprintf(t->task.algorithm.name, sizeof t->task.algorithm.name, "reptile");
    snprintf(t->task.algorithm.loss, sizeof t->task.algorithm.loss, "bce");
    t->task.algorithm.batch_size = 32;
    for (size_t i = 0; i < 16; i++)
        t->task.nonce[i] = (uint8_t)(i * 7 + round);
    t->task.nonce_len = 16;
    t->task.round = round;
    snprintf(t->task.model_spec, sizeof t->task.model_spec, "mlp:4-8-1");
    t->task.seed = 42;
}

static void s_set(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v);
}

static float *s_theta_of(const char *spec, size_t *n)
{
    mfl_learner_config_t c;
    memset(&c, 0, sizeof c);
    mfl_learner_config_defaults(&c, MFL_ALGO_REPTILE);
    snprintf(c.model_spec, sizeof c.model_spec, "%s", spec);
    c.loss = MFL_LOSS_BCE;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof err);
    assert_non_null(l);
    *n = mfl_learner_n_state(l);
    float *theta = malloc(*n * sizeof(float));
    assert_non_null(theta);
    mfl_learner_init_state(l, theta, 99);
    mfl_learner_destroy(&l);
    return theta;
}

static float *s_theta(size_t *n)
{
    return s_theta_of("mlp:4-8-1", n);
}

static void test_site_dp_round_is_clipped_noised_accounted_and_withholds_stats(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char err[600];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-a", s_make_data(200, 7),
                                                         NULL, sk, err, sizeof err);
    assert_non_null(w);
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    mfl_privacy_accountant_t mine;
    mfl_privacy_accountant_init(&mine, NULL, 0, NULL, 0);
    uint32_t round = 1;
    for (;; round++) {
        s_task_init(&t, round);
        mfl_site_round_result_t r;
        int rc = mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err);
        if (rc == MFL_SITE_ROUND_DECLINED) {
            assert_non_null(strstr(err, "privacy.epsilon_budget"));
            break;
        }
        assert_int_equal(rc, 0);
        /* Clipped to 1 then noised with σS = 2 per coordinate: the norm is
         * about 2·sqrt(n), far above the clip bound. */
        assert_true(r.delta_norm > 1.0 * sqrt((double)n));
        Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
        assert_non_null(h);
        assert_true(crypto_sign_verify_detached(r.signature, r.header, r.header_len, pk) == 0);
        const Metafl__PrivacyRecord *pr = h->privacy;
        assert_non_null(pr);
        assert_true(pr->applied && pr->stats_withheld);
        assert_string_equal(pr->mechanism, "gaussian-site");
        assert_true(pr->clip_norm == 1.0 && pr->noise_multiplier == 2.0 &&
                    pr->sample_rate == 1.0 && pr->steps == 1 && pr->delta == 1e-5);
        assert_int_equal(mfl_privacy_accountant_add(&mine, 1.0, 2.0, 1, err, sizeof err), 0);
        double eps;
        assert_int_equal(mfl_privacy_accountant_epsilon(&mine, 1e-5, 0, &eps, NULL, err,
                                                        sizeof err), 0);
        assert_true(fabs(pr->epsilon_spent - eps) <= 1e-12 * eps);
        assert_true(fabs(mfl_site_worker_epsilon_spent(w) - eps) <= 1e-12 * eps);
        /* nothing unnoised: losses, tasks, pre-clip norm and n_samples are
         * not sent, said so explicitly (not_sent), their fields empty */
        assert_true(h->metrics->loss_before == 0 && h->metrics->loss_after == 0 &&
                    h->metrics->n_tasks == 0 && pr->pre_clip_norm == 0 && h->n_samples == 0);
        assert_int_equal(s_not_sent(h), MFL_STAT_ALL);
        metafl__update_header__free_unpacked(h, NULL);
        assert_true(round < 100);
    }
    assert_true(round > 1); /* at least one round fit in ε = 3 */
    /* An unknown ledger declines every DP round, saying how to recover. */
    mfl_site_worker_set_ledger(w, NULL, "restore the log");
    s_task_init(&t, 99);
    mfl_site_round_result_t r;
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err),
                     MFL_SITE_ROUND_DECLINED);
    assert_non_null(strstr(err, "privacy.ledger"));
    assert_non_null(strstr(err, "restore the log"));
    /* And an evaluation report (unnoised held-out statistics) is not made. */
    mfl_eval_task_t ev;
    memset(&ev, 0, sizeof ev);
    ev.round = 99;
    s_set(ev.model_spec, sizeof ev.model_spec, t.task.model_spec);
    ev.algorithm = t.task.algorithm;
    mfl_site_eval_result_t er;
    assert_int_equal(mfl_site_worker_eval(w, &ev, theta, n, &er, err, sizeof err),
                     MFL_SITE_ROUND_DECLINED);
    assert_non_null(strstr(err, "privacy.allow_unnoised_stats"));
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* ---- the worker: record-level DP-SGD -------------------------------- */

static void test_record_mode_runs_dpsgd_and_accounts_every_step(void **state)
{
    (void)state;
    char err[600];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-a", s_make_data(200, 7),
                                                         NULL, NULL, err, sizeof err);
    assert_non_null(w);
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    p.mode = MFL_PRIVACY_MODE_RECORD;
    p.sample_rate = 0.1;
    p.noise_multiplier = 1.1;
    p.epsilon_budget = 100;
    p.min_batch = 10;
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    size_t n;
    float *theta = s_theta(&n);
    mfl_privacy_accountant_t mine;
    mfl_privacy_accountant_init(&mine, NULL, 0, NULL, 0);
    /* steps per round: fedavg local_epochs·⌈1/q⌉, reptile T·M·K, fomaml T·M·(K+1) */
    const struct {
        const char *algo;
        uint64_t steps;
    } cases[] = {{"fedavg", 2 * 10}, {"reptile", 2 * 3 * 4}, {"fomaml", 2 * 3 * 5}};
    float *first = malloc(n * sizeof(float));
    assert_non_null(first);
    for (size_t c = 0; c < 3; c++) {
        s_task_t t;
        s_task_init(&t, (uint32_t)(10 + c));
        s_set(t.task.algorithm.name, sizeof t.task.algorithm.name, cases[c].algo);
        t.task.algorithm.local_epochs = 2;
        t.task.algorithm.outer_steps = 2;
        t.task.algorithm.meta_batch = 3;
        t.task.algorithm.inner_steps = 4;
        t.task.algorithm.inner_lr = 0.05f;
        mfl_site_round_result_t r;
        if (mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err) != 0)
            fail_msg("%s: %s", cases[c].algo, err);
        Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
        assert_non_null(h);
        const Metafl__PrivacyRecord *pr = h->privacy;
        assert_string_equal(pr->mechanism, "dpsgd");
        assert_true(pr->sample_rate == 0.1 && pr->noise_multiplier == 1.1 && pr->clip_norm == 1.0);
        assert_int_equal(pr->steps, cases[c].steps);
        assert_int_equal(mfl_privacy_accountant_add(&mine, 0.1, 1.1, (double)cases[c].steps, err,
                                                    sizeof err), 0);
        double eps;
        assert_int_equal(mfl_privacy_accountant_epsilon(&mine, 1e-5, 0, &eps, NULL, err,
                                                        sizeof err), 0);
        assert_true(fabs(pr->epsilon_spent - eps) <= 1e-12 * eps);
        assert_true(r.delta_norm > 0 && isfinite(r.delta_norm));
        /* the policy withholds statistics: none leaves, all listed */
        assert_int_equal(s_not_sent(h), MFL_STAT_ALL);
        assert_true(h->n_samples == 0 && h->metrics->loss_before == 0 &&
                    h->metrics->n_tasks == 0 && pr->pre_clip_norm == 0);
        metafl__update_header__free_unpacked(h, NULL);
        /* the same task again gives another Δ: noise and samples are fresh */
        memcpy(first, r.delta, n * sizeof(float));
        assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), 0);
        assert_true(memcmp(first, r.delta, n * sizeof(float)) != 0);
        assert_int_equal(mfl_privacy_accountant_add(&mine, 0.1, 1.1, (double)cases[c].steps, err,
                                                    sizeof err), 0);
    }
    /* A policy that lets unnoised counts leave: n_samples and n_tasks are
     * sent, but DP-SGD's losses (never computed) and pre-clip norm (no Δ
     * clip) are still not sent rather than sent as 0. */
    p.allow_unnoised_stats = true;
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    {
        s_task_t t;
        s_task_init(&t, 30);
        s_set(t.task.algorithm.name, sizeof t.task.algorithm.name, "fedavg");
        t.task.algorithm.local_epochs = 1;
        t.task.algorithm.inner_lr = 0.05f;
        mfl_site_round_result_t r;
        if (mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err) != 0)
            fail_msg("fedavg, stats allowed: %s", err);
        Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
        assert_non_null(h);
        assert_int_equal(s_not_sent(h), MFL_STAT_LOSSES | MFL_STAT_PRE_CLIP_NORM);
        assert_int_equal(h->n_samples, 200);
        assert_false(h->privacy->stats_withheld);
        metafl__update_header__free_unpacked(h, NULL);
    }
    /* What DP-SGD does not cover is declined, naming the rule and the reason. */
    const char *refused[] = {"maml", "meta_sgd", "protonet"};
    for (size_t c = 0; c < 3; c++) {
        s_task_t t;
        s_task_init(&t, 20);
        s_set(t.task.algorithm.name, sizeof t.task.algorithm.name, refused[c]);
        s_set(t.task.model_spec, sizeof t.task.model_spec, c == 2 ? "mlp:4-8-4" : "mlp:4-8-1");
        s_set(t.task.algorithm.loss, sizeof t.task.algorithm.loss, c == 2 ? "softmax_ce" : "bce");
        float *th = NULL;
        size_t nt = n;
        if (c == 2) { /* the embedding's own size */
            mfl_learner_config_t lc;
            memset(&lc, 0, sizeof lc);
            mfl_learner_config_defaults(&lc, MFL_ALGO_PROTONET);
            snprintf(lc.model_spec, sizeof lc.model_spec, "mlp:4-8-4");
            mfl_learner_t *l = mfl_learner_new(&lc, 64, err, sizeof err);
            assert_non_null(l);
            nt = mfl_learner_n_state(l);
            mfl_learner_destroy(&l);
        } else if (c == 1) {
            mfl_learner_config_t lc;
            memset(&lc, 0, sizeof lc);
            mfl_learner_config_defaults(&lc, MFL_ALGO_META_SGD);
            snprintf(lc.model_spec, sizeof lc.model_spec, "mlp:4-8-1");
            lc.loss = MFL_LOSS_BCE;
            mfl_learner_t *l = mfl_learner_new(&lc, 64, err, sizeof err);
            assert_non_null(l);
            nt = mfl_learner_n_state(l);
            mfl_learner_destroy(&l);
        }
        th = calloc(nt, sizeof(float));
        assert_non_null(th);
        mfl_site_round_result_t r;
        int rc = mfl_site_worker_round(w, &t.task, th, nt, &r, err, sizeof err);
        if (rc != MFL_SITE_ROUND_DECLINED || !strstr(err, "privacy.mode") ||
            !strstr(err, refused[c]))
            fail_msg("%s: rc %d: %s", refused[c], rc, err);
        free(th);
    }
    /* The expected batch q·N = 20 must reach min_batch. */
    p.min_batch = 25;
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    s_task_t t;
    s_task_init(&t, 30);
    mfl_site_round_result_t r;
    assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err),
                     MFL_SITE_ROUND_DECLINED);
    assert_non_null(strstr(err, "privacy.min_batch"));
    free(first);
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* ---- the ledger and the auditor's recomputation --------------------- */

typedef struct {
    size_t n, n_bad;
    uint64_t bad_seq;
    double last_recomputed;
} s_seen_t;

static void s_collect(void *arg, const mfl_privacy_release_t *r)
{
    s_seen_t *s = arg;
    s->n++;
    if (r->disagrees) {
        s->n_bad++;
        s->bad_seq = r->seq;
    }
    s->last_recomputed = r->recomputed;
}

/* Appends an update_sent record for a header (signed here with sk). */
static void s_append(mfl_audit_t *log, const uint8_t *header, size_t len, const uint8_t sk[64])
{
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, header, len, sk);
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    char err[300];
    assert_non_null(rec);
    assert_int_equal(mfl_audit_record_from_update(rec, MFL_AUDIT_UPDATE_SENT, header, len, sig,
                                                  err, sizeof err), 0);
    assert_int_equal(mfl_audit_append(log, rec, NULL, err, sizeof err), 0);
    free(rec);
}

static void test_ledger_from_the_log_and_a_tampered_epsilon_is_named(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char err[800], path[400], keys[400];
    snprintf(path, sizeof path, "%s/hospital-a.audit", s_dir);
    snprintf(keys, sizeof keys, "%s/keys", s_dir);
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-a", s_make_data(200, 7),
                                                         NULL, sk, err, sizeof err);
    assert_non_null(w);
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    p.epsilon_budget = 50;
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    mfl_audit_t *log = mfl_audit_open(path, "hospital-a", sk, err, sizeof err);
    assert_non_null(log);
    mfl_audit_record_t start;
    mfl_audit_record_init(&start, MFL_AUDIT_LEDGER_STARTED, 0, "hospital-a");
    assert_int_equal(mfl_audit_append(log, &start, NULL, err, sizeof err), 0);
    size_t n;
    float *theta = s_theta(&n);
    s_task_t t;
    uint64_t tampered_seq = 0;
    for (uint32_t round = 1; round <= 4; round++) {
        s_task_init(&t, round);
        mfl_site_round_result_t r;
        assert_int_equal(mfl_site_worker_round(w, &t.task, theta, n, &r, err, sizeof err), 0);
        if (round != 3) {
            s_append(log, r.header, r.header_len, sk);
            continue;
        }
        /* Round 3: the site claims less than it spent, and signs the lie
         * with its own key, so every signature in the log verifies. */
        Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, r.header_len, r.header);
        assert_non_null(h);
        h->privacy->epsilon_spent *= 0.5;
        size_t len = metafl__update_header__get_packed_size(h);
        uint8_t *buf = malloc(len);
        assert_non_null(buf);
        metafl__update_header__pack(h, buf);
        s_append(log, buf, len, sk);
        tampered_seq = mfl_audit_count(log);
        free(buf);
        metafl__update_header__free_unpacked(h, NULL);
    }
    mfl_audit_destroy(&log);
    double eps_worker = mfl_site_worker_epsilon_spent(w);

    /* The ledger read back (verified with the site's key) gives the same ε. */
    mfl_privacy_accountant_t spent;
    mfl_privacy_accountant_init(&spent, NULL, 0, NULL, 0);
    mfl_privacy_ledger_info_t info;
    if (mfl_privacy_ledger_read(path, "hospital-a", pk, NULL, NULL, &spent, &info, err,
                                sizeof err))
        fail_msg("%s", err);
    assert_true(info.started);
    assert_int_equal(info.n_releases, 4);
    double eps;
    assert_int_equal(mfl_privacy_accountant_epsilon(&spent, 1e-5, 0, &eps, NULL, err,
                                                    sizeof err), 0);
    assert_true(fabs(eps - eps_worker) <= 1e-12 * eps);
    /* Another key: the log does not verify, so no ledger. */
    uint8_t pk2[32], sk2[64];
    crypto_sign_keypair(pk2, sk2);
    assert_int_equal(mfl_privacy_ledger_read(path, "hospital-a", pk2, NULL, NULL, &spent, &info,
                                             err, sizeof err), -1);

    /* The auditor recomputes ε from (q, σ, steps, δ) alone and names the one
     * record whose claim disagrees. */
    s_seen_t seen = {0, 0, 0, 0};
    long bad = mfl_privacy_audit_log(path, s_collect, &seen, err, sizeof err);
    assert_int_equal(bad, 1);
    assert_int_equal(seen.n, 4);
    assert_int_equal(seen.n_bad, 1);
    assert_int_equal(seen.bad_seq, tampered_seq);
    assert_true(fabs(seen.last_recomputed - eps_worker) <= 1e-9 * eps_worker);
    (void)keys;
    free(theta);
    mfl_site_worker_destroy(&w);
}

/* ---- distributed noise under secure aggregation --------------------- */

/* One site-level DP round (σ = 2, S = 1) on a model of ~2.3k parameters;
 * returns the empirical per-coordinate std of the sent Δ (the clipped Δ,
 * norm ≤ 1, adds at most 1/n to the variance) and the decoded header. */
static double s_noise_round(bool opt_in, bool stats, bool secagg, uint32_t t,
                            Metafl__UpdateHeader **hdr,
                            double *eps_worker, uint8_t **header, size_t *header_len,
                            uint8_t sk[64])
{
    char err[600];
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("hospital-a", s_make_data(200, 7),
                                                         NULL, sk, err, sizeof err);
    assert_non_null(w);
    mfl_privacy_policy_t p;
    s_site_policy(&p);
    p.distributed_noise = opt_in;
    p.allow_unnoised_stats = stats;
    assert_int_equal(mfl_site_worker_set_privacy(w, &p, err, sizeof err), 0);
    size_t n;
    float *theta = s_theta_of("mlp:4-384-1", &n);
    s_task_t task;
    s_task_init(&task, 1);
    snprintf(task.task.model_spec, sizeof task.task.model_spec, "mlp:4-384-1");
    task.task.has_secagg = secagg;
    task.task.secagg.threshold = t;
    mfl_site_round_result_t r;
    if (mfl_site_worker_round(w, &task.task, theta, n, &r, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(r.n_delta, n);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)r.delta[i] * r.delta[i];
    *hdr = metafl__update_header__unpack(NULL, r.header_len, r.header);
    assert_non_null(*hdr);
    *eps_worker = mfl_site_worker_epsilon_spent(w);
    if (header) {
        *header = malloc(r.header_len);
        assert_non_null(*header);
        memcpy(*header, r.header, r.header_len);
        *header_len = r.header_len;
    }
    free(theta);
    mfl_site_worker_destroy(&w);
    return sqrt(ss / (double)n);
}

static void test_distributed_noise_adds_a_share_and_accounts_the_sums_sigma(void **state)
{
    (void)state;
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char err[600];
    /* ε of one release at σ = 2 (q = 1, δ = 1e-5): what every case spends. */
    mfl_privacy_accountant_t mine;
    mfl_privacy_accountant_init(&mine, NULL, 0, NULL, 0);
    assert_int_equal(mfl_privacy_accountant_add(&mine, 1.0, 2.0, 1, err, sizeof err), 0);
    double eps;
    assert_int_equal(mfl_privacy_accountant_epsilon(&mine, 1e-5, 0, &eps, NULL, err,
                                                    sizeof err), 0);
    const struct {
        bool opt_in, stats, secagg;
        uint32_t t;
        double sd;          /* σS/√t with the share, σS without */
        uint32_t shares;
    } c[] = {
        {true, false, true, 4, 1.0, 4},  /* opted in, SecAgg t = 4: σS/2 */
        {true, false, false, 0, 2.0, 0}, /* opted in, no SecAgg: full noise */
        {false, false, true, 4, 2.0, 0}, /* SecAgg, not opted in: full noise */
        /* opted in, SecAgg, but weighted by its sample count (stats sent):
         * it could outweigh the others' shares, so full noise */
        {true, true, true, 4, 2.0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        Metafl__UpdateHeader *h;
        double eps_w;
        uint8_t *header = NULL;
        size_t header_len = 0;
        double sd = s_noise_round(c[i].opt_in, c[i].stats, c[i].secagg, c[i].t, &h, &eps_w,
                                  i == 0 ? &header : NULL, &header_len, sk);
        /* ~2.3k coordinates: the std estimate is within ~2% (1σ) */
        if (fabs(sd - c[i].sd) > 0.08 * c[i].sd)
            fail_msg("case %zu: empirical noise std %g, want %g", i, sd, c[i].sd);
        const Metafl__PrivacyRecord *pr = h->privacy;
        assert_true(pr->applied);
        assert_string_equal(pr->mechanism, "gaussian-site");
        /* what was added (σ/√t or σ), the t, and the σ it is accounted at */
        assert_true(pr->noise_multiplier == (c[i].shares ? 2.0 / sqrt(c[i].shares) : 2.0));
        assert_int_equal(pr->noise_shares, c[i].shares);
        assert_true(pr->sum_noise_multiplier == (c[i].shares ? 2.0 : 0.0));
        /* the spend is the one for σ = 2 in every case */
        assert_true(fabs(pr->epsilon_spent - eps) <= 1e-12 * eps);
        assert_true(fabs(eps_w - eps) <= 1e-12 * eps);
        metafl__update_header__free_unpacked(h, NULL);
        if (!header)
            continue;
        /* The audit record and the auditor's recomputation use σ = 2, the
         * sum's noise, not the σ/√t share: the ledger agrees with the worker. */
        mfl_audit_record_t *rec = calloc(1, sizeof *rec);
        assert_non_null(rec);
        uint8_t sig[64];
        crypto_sign_detached(sig, NULL, header, header_len, sk);
        assert_int_equal(mfl_audit_record_from_update(rec, MFL_AUDIT_UPDATE_SENT, header,
                                                      header_len, sig, err, sizeof err), 0);
        assert_true(rec->has_privacy && rec->privacy.sigma == 2.0);
        free(rec);
        char path[400];
        snprintf(path, sizeof path, "%s/distributed.audit", s_dir);
        mfl_audit_t *log = mfl_audit_open(path, "hospital-a", sk, err, sizeof err);
        assert_non_null(log);
        mfl_audit_record_t start;
        mfl_audit_record_init(&start, MFL_AUDIT_LEDGER_STARTED, 0, "hospital-a");
        assert_int_equal(mfl_audit_append(log, &start, NULL, err, sizeof err), 0);
        s_append(log, header, header_len, sk);
        mfl_audit_destroy(&log);
        mfl_privacy_accountant_t spent;
        mfl_privacy_accountant_init(&spent, NULL, 0, NULL, 0);
        mfl_privacy_ledger_info_t info;
        if (mfl_privacy_ledger_read(path, "hospital-a", pk, NULL, NULL, &spent, &info, err,
                                    sizeof err))
            fail_msg("%s", err);
        assert_int_equal(info.n_releases, 1);
        double eps_l;
        assert_int_equal(mfl_privacy_accountant_epsilon(&spent, 1e-5, 0, &eps_l, NULL, err,
                                                        sizeof err), 0);
        assert_true(fabs(eps_l - eps) <= 1e-12 * eps);
        free(header);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_rule_refuses_with_its_name),
        cmocka_unit_test(test_task_can_only_tighten),
        cmocka_unit_test(test_config_policy_loads_and_bad_values_name_file_line),
        cmocka_unit_test(test_site_dp_round_is_clipped_noised_accounted_and_withholds_stats),
        cmocka_unit_test(test_record_mode_runs_dpsgd_and_accounts_every_step),
        cmocka_unit_test(test_ledger_from_the_log_and_a_tampered_epsilon_is_named),
        cmocka_unit_test(test_distributed_noise_adds_a_share_and_accounts_the_sums_sigma),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
