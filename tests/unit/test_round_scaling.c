/* Federated standardisation (data.standardize: federated, issue 16): a
 * site's moments are those of its fit rows only (training rows minus
 * selection's validation part; never a test row); a site scales with the
 * pooled statistics a task carries and goes back to its own, bit for bit,
 * when a task carries none; a site that did not agree refuses both; the
 * codec carries scalings and moments and refuses malformed ones; and the
 * engine pools the sites' moments into exactly the pooled rows' mean and
 * sample deviation, records it, sends it with every task and reads it back
 * on restart instead of asking again. */
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
#include "site/site_worker.h"
#include "wire/task_codec.h"

/* n rows of 3 features in raw units (centre `shift`, spread 10), a label
 * from a linear rule. */
static mfl_dataset_t *s_raw(uint64_t seed, size_t n, float shift)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 3);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            d->x[3 * i + k] = shift + (float)(mfl_rng_uniform(&r) * 20.0 - 10.0);
        d->y[i] = d->x[3 * i] - shift + 0.5f * (d->x[3 * i + 1] - shift) > 0 ? 1.0f : 0.0f;
    }
    return d;
}

static mfl_dataset_t *s_copy(const mfl_dataset_t *d)
{
    const mfl_dataset_t *one[1] = {d};
    mfl_dataset_t *c = mfl_dataset_concat(one, 1);
    assert_non_null(c);
    return c;
}

/* A worker holding `raw` scaled with its own statistics, federated when
 * asked. */
static mfl_site_worker_t *s_worker(const char *id, const mfl_dataset_t *raw_tr,
                                   const mfl_dataset_t *raw_te, bool federated)
{
    char err[256];
    mfl_dataset_t *tr = s_copy(raw_tr), *te = s_copy(raw_te);
    float mean[3], sd[3];
    mfl_dataset_feature_stats(tr, mean, sd);
    mfl_dataset_standardize(tr, mean, sd);
    mfl_dataset_standardize(te, mean, sd);
    mfl_site_worker_t *w = mfl_site_worker_new_from_data(id, tr, te, NULL, err, sizeof err);
    assert_non_null(w);
    if (federated)
        assert_int_equal(mfl_site_worker_enable_federated_scaling(w, raw_tr, raw_te, err,
                                                                  sizeof err), 0);
    return w;
}

static mfl_eval_task_t s_eval_task(void)
{
    mfl_eval_task_t t;
    memset(&t, 0, sizeof t);
    mfl_learner_config_t l;
    mfl_learner_config_defaults(&l, MFL_ALGO_REPTILE);
    snprintf(l.model_spec, sizeof l.model_spec, "linear:3-1");
    l.loss = MFL_LOSS_BCE;
    mfl_task_algorithm_from_learner(&l, 0, 0, 0, &t.algorithm);
    snprintf(t.model_spec, sizeof t.model_spec, "linear:3-1");
    t.nonce_len = 16;
    t.adapt_steps = 0;
    return t;
}

/* ---- the site --------------------------------------------------------- */

static void test_site_moments_are_of_fit_rows_only(void **state)
{
    (void)state;
    char err[256];
    mfl_dataset_t *tr = s_raw(1, 100, 50.0f), *te = s_raw(2, 30, 500.0f);
    mfl_site_worker_t *w = s_worker("hosp-a", tr, te, true);
    float theta[4] = {0};
    mfl_eval_task_t t = s_eval_task();
    t.moments = true;
    t.selection.validation_fraction = 0.2;
    t.selection.validation_seed = 9;
    mfl_site_eval_result_t r;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r, err, sizeof err), 0);
    mfl_eval_report_t rep;
    mfl_site_worker_fill_report(w, &t, &r, &rep);
    /* The fit rows are those selection trains on: the validation split's. */
    const mfl_dataset_t *fit = NULL, *val = NULL;
    assert_int_equal(mfl_site_worker_validation(w, 0.2, 9, &fit, &val, err, sizeof err), 0);
    assert_int_equal(rep.n_moments, 3);
    assert_int_equal(rep.moments_n, fit->n);
    assert_int_equal(fit->n + val->n, 100);
    /* Raw units: the fit rows' sums, recomputed from the raw rows. The
     * scaled fit rows map back to raw ones (x·sd + mean) one to one. */
    float mean[3], sd[3];
    mfl_dataset_feature_stats(tr, mean, sd);
    for (int k = 0; k < 3; k++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < fit->n; i++) {
            double v = (double)fit->x[3 * i + k] * sd[k] + mean[k];
            s += v;
            ss += v * v;
        }
        assert_true(fabs(rep.moments_sum[k] - s) < 1e-3 * fabs(s) + 1e-3);
        assert_true(fabs(rep.moments_sum_sq[k] - ss) < 1e-4 * ss);
        /* no test row (centred at 500) is in them */
        assert_true(rep.moments_sum[k] / (double)rep.moments_n < 60.0);
    }
    /* Without selection (fraction 0): all 100 training rows. */
    t.selection.validation_fraction = 0;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r, err, sizeof err), 0);
    mfl_site_worker_fill_report(w, &t, &r, &rep);
    assert_int_equal(rep.moments_n, 100);
    double s0 = 0;
    for (size_t i = 0; i < 100; i++)
        s0 += tr->x[3 * i];
    assert_true(fabs(rep.moments_sum[0] - s0) < 1e-6 * fabs(s0));

    /* A site that did not agree (data.standardize not federated) sends
     * nothing and refuses a pooled scaling, naming why. */
    mfl_site_worker_t *own = s_worker("hosp-b", tr, te, false);
    assert_int_equal(mfl_site_worker_eval(own, &t, theta, 4, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "not federated"));
    mfl_eval_task_t t2 = s_eval_task();
    t2.scaling.n = 3;
    for (int k = 0; k < 3; k++)
        t2.scaling.mean[k] = 0, t2.scaling.scale[k] = 1;
    assert_int_equal(mfl_site_worker_eval(own, &t2, theta, 4, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "not federated"));
    mfl_site_worker_destroy(&own);
    mfl_site_worker_destroy(&w);
    mfl_dataset_destroy(&tr);
    mfl_dataset_destroy(&te);
}

static void test_site_scales_as_the_task_says(void **state)
{
    (void)state;
    char err[256];
    mfl_dataset_t *tr = s_raw(3, 80, 5.0f), *te = s_raw(4, 20, 5.0f);
    mfl_site_worker_t *w = s_worker("hosp-a", tr, te, true);
    mfl_site_worker_t *plain = s_worker("hosp-a", tr, te, false);
    float theta[4] = {0.3f, -0.2f, 0.1f, 0.05f};
    mfl_eval_task_t t = s_eval_task();
    mfl_site_eval_result_t r_own, r_plain, r_pool, r_back;
    /* No scaling in the task: the site's own, exactly as standardize: site. */
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r_own, err, sizeof err), 0);
    assert_int_equal(mfl_site_worker_eval(plain, &t, theta, 4, &r_plain, err, sizeof err), 0);
    assert_true(r_own.before.loss == r_plain.before.loss);
    /* A pooled scaling: the test rows scored are (raw − mean) / scale. */
    t.scaling.n = 3;
    for (int k = 0; k < 3; k++) {
        t.scaling.mean[k] = 2.0f;
        t.scaling.scale[k] = 4.0f;
    }
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r_pool, err, sizeof err), 0);
    assert_true(r_pool.before.loss != r_own.before.loss);
    mfl_dataset_t *x = s_copy(te);
    float m[3] = {2, 2, 2}, sc[3] = {4, 4, 4};
    mfl_dataset_standardize(x, m, sc);
    double loss = 0;
    for (size_t i = 0; i < x->n; i++) {
        double z = theta[3];
        for (int k = 0; k < 3; k++)
            z += (double)theta[k] * x->x[3 * i + k];
        double p = 1.0 / (1.0 + exp(-z));
        loss -= x->y[i] > 0.5f ? log(p) : log(1 - p);
    }
    loss /= (double)x->n;
    assert_true(fabs(r_pool.before.loss - loss) < 1e-4);
    mfl_dataset_destroy(&x);
    /* Back to its own when a task carries none: bit for bit as before. */
    t.scaling.n = 0;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r_back, err, sizeof err), 0);
    assert_true(r_back.before.loss == r_own.before.loss);
    /* A scaling of another width is refused, naming the site. */
    t.scaling.n = 2;
    assert_int_equal(mfl_site_worker_eval(w, &t, theta, 4, &r_back, err, sizeof err), -1);
    assert_non_null(strstr(err, "hosp-a"));
    mfl_site_worker_destroy(&plain);
    mfl_site_worker_destroy(&w);
    mfl_dataset_destroy(&tr);
    mfl_dataset_destroy(&te);
}

/* ---- the codec ------------------------------------------------------- */

static void test_codec_carries_scaling_and_moments_and_refuses_bad_ones(void **state)
{
    (void)state;
    char err[256];
    mfl_eval_task_t t = s_eval_task(), back;
    t.scaling.n = 3;
    for (int k = 0; k < 3; k++) {
        t.scaling.mean[k] = 1.5f * (float)k;
        t.scaling.scale[k] = 0.25f + (float)k;
    }
    mfl_eval_task_msg_t m;
    mfl_eval_task_to_msg(&t, &m);
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_memory_equal(&back.scaling, &t.scaling, sizeof t.scaling);
    /* A moments task with its fit rows' split. */
    mfl_eval_task_t mt = s_eval_task();
    mt.moments = true;
    mt.selection.validation_fraction = 0.2;
    mt.selection.validation_seed = 5;
    mfl_eval_task_to_msg(&mt, &m);
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), 0);
    assert_true(back.moments);
    assert_true(back.selection.validation_fraction == 0.2);
    assert_int_equal(back.selection.validation_seed, 5);
    /* Malformed scalings: lists of different lengths, a scale ≤ 0, over the cap. */
    mfl_eval_task_to_msg(&t, &m);
    m.msg.n_scaling_scale = 2;
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "scaling"));
    mfl_eval_task_t bad = t;
    bad.scaling.scale[1] = 0;
    mfl_eval_task_to_msg(&bad, &m);
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    static float big[MFL_TASK_SCALING_MAX + 1];
    for (size_t j = 0; j <= MFL_TASK_SCALING_MAX; j++)
        big[j] = 1.0f;
    mfl_eval_task_to_msg(&t, &m);
    m.msg.n_scaling_mean = m.msg.n_scaling_scale = MFL_TASK_SCALING_MAX + 1;
    m.msg.scaling_mean = m.msg.scaling_scale = big;
    assert_int_equal(mfl_eval_task_from_msg(&m.msg, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "at most"));
    /* A round task carries it too. */
    mfl_round_task_t rt, rback;
    memset(&rt, 0, sizeof rt);
    rt.algorithm = t.algorithm;
    snprintf(rt.model_spec, sizeof rt.model_spec, "linear:3-1");
    rt.scaling = t.scaling;
    mfl_round_task_msg_t rm;
    mfl_round_task_to_msg(&rt, &rm);
    assert_int_equal(mfl_round_task_from_msg(&rm.msg, &rback, err, sizeof err), 0);
    assert_memory_equal(&rback.scaling, &rt.scaling, sizeof rt.scaling);

    /* Moments in a report: through the bytes, and malformed ones refused. */
    static mfl_eval_report_t rep, rback2;
    memset(&rep, 0, sizeof rep);
    snprintf(rep.site, sizeof rep.site, "hosp-a");
    rep.nonce_len = 16;
    rep.n_moments = 3;
    rep.moments_n = 77;
    for (int k = 0; k < 3; k++) {
        rep.moments_sum[k] = 100.5 * (k + 1);
        rep.moments_sum_sq[k] = 9000.25 * (k + 1);
    }
    Metafl__EvalReport em;
    mfl_eval_report_to_msg(&rep, &em);
    size_t n = metafl__eval_report__get_packed_size(&em);
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    metafl__eval_report__pack(&em, buf);
    Metafl__EvalReport *u = metafl__eval_report__unpack(NULL, n, buf);
    assert_non_null(u);
    assert_int_equal(mfl_eval_report_from_msg(u, &rback2, err, sizeof err), 0);
    assert_int_equal(rback2.n_moments, 3);
    assert_int_equal(rback2.moments_n, 77);
    assert_memory_equal(rback2.moments_sum, rep.moments_sum, 3 * sizeof(double));
    assert_memory_equal(rback2.moments_sum_sq, rep.moments_sum_sq, 3 * sizeof(double));
    u->moments_sum_sq[1] = -1;
    assert_int_equal(mfl_eval_report_from_msg(u, &rback2, err, sizeof err), -1);
    u->moments_sum_sq[1] = NAN;
    assert_int_equal(mfl_eval_report_from_msg(u, &rback2, err, sizeof err), -1);
    u->moments_sum_sq[1] = 1;
    u->n_moments_sum_sq = 2;
    assert_int_equal(mfl_eval_report_from_msg(u, &rback2, err, sizeof err), -1);
    u->n_moments_sum_sq = 3;
    metafl__eval_report__free_unpacked(u, NULL);
    free(buf);
}

/* ---- the engine ------------------------------------------------------ */

#define E_SITES 3
typedef struct {
    int site;
    bool eval;
    mfl_round_task_t t;
    mfl_eval_task_t et;
    float *theta;
    size_t n;
} e_job_t;

typedef struct {
    mfl_round_engine_t *engine;
    mfl_site_worker_t *w[E_SITES];
    const char *ids[E_SITES];
    e_job_t jobs[16];
    size_t n_jobs;
    size_t n_moment_tasks, n_scaled_tasks, n_tasks;
    mfl_task_scaling_t seen; /* the last scaling a task carried */
} e_sim_t;

static int e_queue(e_sim_t *e, const char *site, const mfl_round_task_t *t,
                   const mfl_eval_task_t *et)
{
    int i = 0;
    while (i < E_SITES && strcmp(e->ids[i], site) != 0)
        i++;
    assert_true(i < E_SITES && e->n_jobs < 16);
    e_job_t *j = &e->jobs[e->n_jobs++];
    memset(j, 0, sizeof *j);
    j->site = i;
    j->eval = et != NULL;
    if (t)
        j->t = *t;
    if (et)
        j->et = *et;
    const mfl_task_scaling_t *sc = t ? &t->scaling : &et->scaling;
    e->n_tasks++;
    e->n_moment_tasks += et && et->moments;
    if (sc->n) {
        e->n_scaled_tasks++;
        e->seen = *sc;
    }
    j->n = mfl_round_engine_n_state(e->engine);
    j->theta = malloc(j->n * sizeof(float));
    assert_non_null(j->theta);
    memcpy(j->theta, mfl_round_engine_theta(e->engine), j->n * sizeof(float));
    return 0;
}

static int e_task(void *ctx, const char *site, const mfl_round_task_t *t, const mfl_tensor_t *x,
                  size_t n)
{
    (void)x;
    (void)n;
    return e_queue(ctx, site, t, NULL);
}

static int e_eval(void *ctx, const char *site, const mfl_eval_task_t *t, const mfl_tensor_t *x,
                  size_t n)
{
    (void)x;
    (void)n;
    return e_queue(ctx, site, NULL, t);
}

static mfl_dataset_t *e_train[E_SITES], *e_test[E_SITES];
/* A hostile site: when set, changes site `e_bad_site`'s moments report
 * before the engine takes it. */
static void (*e_tamper)(mfl_eval_report_t *rep);
static int e_bad_site = -1;
static bool e_may_fail; /* the run is expected to fail: stop there */

static void e_run(mfl_coord_config_t *c, const char *dir, e_sim_t *e)
{
    char err[512];
    memset(e, 0, sizeof *e);
    static const char *ids[E_SITES] = {"site-a", "site-b", "site-c"};
    snprintf(c->run_dir, sizeof c->run_dir, "%s", dir);
    snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s/ck", dir);
    snprintf(c->metrics_file, sizeof c->metrics_file, "%s/metrics.jsonl", dir);
    c->audit_log[0] = '\0';
    for (int i = 0; i < E_SITES; i++) {
        e->ids[i] = ids[i];
        e->w[i] = s_worker(ids[i], e_train[i], e_test[i], true);
    }
    mfl_engine_sink_t sink = {e, e_task, e_eval, NULL, NULL, NULL, NULL};
    e->engine = mfl_round_engine_new(c, &sink, NULL, NULL, err, sizeof err);
    if (!e->engine)
        fail_msg("%s", err);
    uint64_t now = 1000;
    for (int i = 0; i < E_SITES; i++)
        mfl_round_engine_site_hello(e->engine, ids[i], 60, now);
    for (int guard = 0; guard < 100000; guard++) {
        now += 1;
        for (int i = 0; i < E_SITES; i++)
            mfl_round_engine_site_seen(e->engine, ids[i], now);
        mfl_round_engine_tick(e->engine, now);
        mfl_engine_phase_t ph = mfl_round_engine_phase(e->engine);
        if (ph == MFL_ENGINE_FAILED && e_may_fail)
            return;
        assert_true(ph != MFL_ENGINE_FAILED);
        if (ph == MFL_ENGINE_DONE)
            break;
        if (!e->n_jobs)
            continue;
        e_job_t j = e->jobs[0];
        memmove(e->jobs, e->jobs + 1, (--e->n_jobs) * sizeof *e->jobs);
        mfl_site_worker_t *w = e->w[j.site];
        if (j.eval) {
            mfl_site_eval_result_t r;
            assert_int_equal(mfl_site_worker_eval(w, &j.et, j.theta, j.n, &r, err, sizeof err), 0);
            mfl_eval_report_t rep;
            mfl_site_worker_fill_report(w, &j.et, &r, &rep);
            if (e_tamper && j.site == e_bad_site && j.et.moments)
                e_tamper(&rep);
            assert_int_equal(mfl_round_engine_eval_report(e->engine, ids[j.site], &rep, now), 0);
        } else {
            mfl_site_round_result_t r;
            assert_int_equal(mfl_site_worker_round(w, &j.t, j.theta, j.n, &r, err, sizeof err), 0);
            mfl_update_header_t h;
            assert_int_equal(mfl_update_header_decode(r.header, r.header_len, &h, err, sizeof err),
                             0);
            size_t nt = mfl_site_worker_n_tensors(w);
            mfl_tensor_t v[8];
            assert_true(nt <= 8);
            for (size_t i = 0; i < nt; i++)
                v[i] = mfl_tensor_info_view(mfl_site_worker_tensor(w, i), r.delta);
            assert_int_equal(mfl_round_engine_update(e->engine, ids[j.site], &h, v, nt, NULL, 0,
                                                     NULL, 0, now), 0);
        }
        free(j.theta);
    }
    assert_int_equal(mfl_round_engine_phase(e->engine), MFL_ENGINE_DONE);
}

static void e_free(e_sim_t *e)
{
    for (size_t i = 0; i < e->n_jobs; i++)
        free(e->jobs[i].theta);
    mfl_round_engine_destroy(&e->engine);
    for (int i = 0; i < E_SITES; i++)
        mfl_site_worker_destroy(&e->w[i]);
}

static void test_engine_pools_records_sends_and_resumes_the_scaling(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_round_scaling.XXXXXX";
    assert_non_null(mkdtemp(dir));
    static mfl_coord_config_t c;
    char err[512];
    static const char yaml[] =
        "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
        "model: {spec: 'linear:3-1', loss: bce, init_seed: 5}\n"
        "algorithm: {name: reptile, inner_lr: 0.05, inner_steps: 3, meta_batch: 2}\n"
        "rounds: {count: 2, min_sites: 3, wait_for_sites: 3, seed: 7}\n"
        "data: {standardize: federated}\n"
        "eval: {adapt_steps: 2, adapt_lr: 0.05}\n";
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", &c, err, sizeof err),
                     0);
    assert_true(c.federated_scaling);
    /* Hospitals in different units: centres 0, 40 and 200. */
    static const float shifts[E_SITES] = {0.0f, 40.0f, 200.0f};
    for (int i = 0; i < E_SITES; i++) {
        e_train[i] = s_raw(30 + (uint64_t)i, 60, shifts[i]);
        e_test[i] = s_raw(40 + (uint64_t)i, 20, shifts[i]);
    }
    static e_sim_t e;
    e_run(&c, dir, &e);
    /* One moments task per site, then every task carried the scaling. */
    assert_int_equal(e.n_moment_tasks, E_SITES);
    assert_int_equal(e.n_scaled_tasks, e.n_tasks - E_SITES);
    /* It is the pooled training rows' mean and sample deviation. */
    const mfl_dataset_t *all[E_SITES] = {e_train[0], e_train[1], e_train[2]};
    mfl_dataset_t *pool = mfl_dataset_concat(all, E_SITES);
    assert_non_null(pool);
    float mean[3], sd[3];
    mfl_dataset_feature_stats(pool, mean, sd);
    mfl_task_scaling_t got;
    assert_true(mfl_round_engine_scaling(e.engine, &got));
    assert_int_equal(got.n, 3);
    for (int k = 0; k < 3; k++) {
        assert_true(fabsf(got.mean[k] - mean[k]) < 1e-3f * (1 + fabsf(mean[k])));
        assert_true(fabsf(got.scale[k] - sd[k]) < 1e-3f * sd[k]);
        assert_true(got.mean[k] == e.seen.mean[k] && got.scale[k] == e.seen.scale[k]);
    }
    mfl_dataset_destroy(&pool);
    uint8_t first[32];
    memcpy(first, mfl_round_engine_theta_hash(e.engine), 32);
    e_free(&e);
    /* On record: a restart reads it and does not ask again. */
    char path[160];
    snprintf(path, sizeof path, "%s/ck/scaling.state", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fclose(f);
    e_run(&c, dir, &e); /* the finished run restarts: nothing to train */
    assert_int_equal(e.n_moment_tasks, 0);
    mfl_task_scaling_t again;
    assert_true(mfl_round_engine_scaling(e.engine, &again));
    assert_memory_equal(&again, &got, sizeof got);
    assert_memory_equal(mfl_round_engine_theta_hash(e.engine), first, 32);
    e_free(&e);
    /* A checkpoint without the record (a run of the sites' own scaling)
     * is refused, naming the file. */
    assert_int_equal(unlink(path), 0);
    mfl_engine_sink_t sink = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    mfl_round_engine_t *r = mfl_round_engine_new(&c, &sink, NULL, NULL, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "scaling.state"));
    for (int i = 0; i < E_SITES; i++) {
        mfl_dataset_destroy(&e_train[i]);
        mfl_dataset_destroy(&e_test[i]);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void s_claim_more_rows(mfl_eval_report_t *rep)
{
    rep->moments_n = 1000; /* it declared 60 training rows at Hello */
}

static void s_negative_variance(mfl_eval_report_t *rep)
{
    rep->moments_sum[1] = 1e6; /* with its sums of squares: n·Σx² < (Σx)² */
}

/* A hostile site's moments (more rows than it declared, or sums no sample
 * has) are not pooled: the scaling is the honest sites' alone. */
static void test_engine_refuses_moments_no_sample_has(void **state)
{
    (void)state;
    void (*tamper[2])(mfl_eval_report_t *) = {s_claim_more_rows, s_negative_variance};
    static const float shifts[E_SITES] = {0.0f, 40.0f, 200.0f};
    for (int i = 0; i < E_SITES; i++) {
        e_train[i] = s_raw(30 + (uint64_t)i, 60, shifts[i]);
        e_test[i] = s_raw(40 + (uint64_t)i, 20, shifts[i]);
    }
    const mfl_dataset_t *honest[2] = {e_train[0], e_train[1]};
    mfl_dataset_t *pool = mfl_dataset_concat(honest, 2);
    assert_non_null(pool);
    float mean[3], sd[3];
    mfl_dataset_feature_stats(pool, mean, sd);
    mfl_dataset_destroy(&pool);
    for (int t = 0; t < 2; t++) {
        char dir[] = "/tmp/test_round_scaling_bad.XXXXXX";
        assert_non_null(mkdtemp(dir));
        static mfl_coord_config_t c;
        char err[512];
        static const char yaml[] =
            "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
            "model: {spec: 'linear:3-1', loss: bce, init_seed: 5}\n"
            "algorithm: {name: reptile, inner_lr: 0.05, inner_steps: 3, meta_batch: 2}\n"
            "rounds: {count: 1, min_sites: 2, wait_for_sites: 3, seed: 7}\n"
            "data: {standardize: federated}\n"
            "eval: {adapt_steps: 2, adapt_lr: 0.05}\n";
        assert_int_equal(
            mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", &c, err, sizeof err), 0);
        e_tamper = tamper[t];
        e_bad_site = 2;
        static e_sim_t e;
        e_run(&c, dir, &e);
        e_tamper = NULL;
        e_bad_site = -1;
        mfl_task_scaling_t got;
        assert_true(mfl_round_engine_scaling(e.engine, &got));
        for (int k = 0; k < 3; k++) {
            assert_true(fabsf(got.mean[k] - mean[k]) < 1e-3f * (1 + fabsf(mean[k])));
            assert_true(fabsf(got.scale[k] - sd[k]) < 1e-3f * sd[k]);
        }
        e_free(&e);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    for (int i = 0; i < E_SITES; i++) {
        mfl_dataset_destroy(&e_train[i]);
        mfl_dataset_destroy(&e_test[i]);
    }
}

/* In bounds but extreme: the 60 rows it declared at Hello, each feature's
 * mean 10000 and a small positive variance. */
static void s_extreme_but_valid(mfl_eval_report_t *rep)
{
    rep->moments_n = 60;
    for (uint32_t j = 0; j < rep->n_moments; j++) {
        rep->moments_sum[j] = 60 * 1e4;
        rep->moments_sum_sq[j] = 60 * (1e8 + 100);
    }
}

static double s_med3(double a, double b, double c)
{
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static void s_pool_config(mfl_coord_config_t *c, const char *pool)
{
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml,
             "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
             "model: {spec: 'linear:3-1', loss: bce, init_seed: 5}\n"
             "algorithm: {name: reptile, inner_lr: 0.05, inner_steps: 3, meta_batch: 2}\n"
             "rounds: {count: 1, min_sites: 2, wait_for_sites: 3, seed: 7}\n"
             "data: {standardize: federated%s%s}\n"
             "eval: {adapt_steps: 2, adapt_lr: 0.05}\n",
             pool ? ", scaling_pool: " : "", pool ? pool : "");
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", c, err, sizeof err), 0);
}

/* data.scaling_pool: median (opt-in) bounds what one hostile site among
 * three can do with moments the exact pool must accept (its declared row
 * count, a variance a sample can have): the centre stays among the honest
 * sites' means and the scale near theirs, where the exact pool follows the
 * hostile site far away. It is exactly the median formula of
 * scaling_robust.h; fewer than 3 sites' moments fail the run; the config
 * refuses it without federated scaling and names a bad value. */
static void test_engine_median_pool_bounds_a_hostile_site(void **state)
{
    (void)state;
    static const float shifts[E_SITES] = {0.0f, 40.0f, 20.0f};
    for (int i = 0; i < E_SITES; i++) {
        e_train[i] = s_raw(50 + (uint64_t)i, 60, shifts[i]);
        e_test[i] = s_raw(60 + (uint64_t)i, 20, shifts[i]);
    }
    mfl_task_scaling_t got[2];
    for (int t = 0; t < 2; t++) { /* 0: the exact pool, 1: median */
        char dir[] = "/tmp/test_round_scaling_med.XXXXXX";
        assert_non_null(mkdtemp(dir));
        static mfl_coord_config_t c;
        s_pool_config(&c, t ? "median" : NULL);
        assert_true(c.scaling_pool_median == (t == 1));
        e_tamper = s_extreme_but_valid;
        e_bad_site = 2;
        static e_sim_t e;
        e_run(&c, dir, &e);
        e_tamper = NULL;
        e_bad_site = -1;
        assert_true(mfl_round_engine_scaling(e.engine, &got[t]));
        e_free(&e);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
    for (int k = 0; k < 3; k++) {
        /* The site's moments, as it computes them (doubles of its floats). */
        double m[3], v[3], d[3];
        for (int i = 0; i < 3; i++) {
            double s = 0, ss = 0, n = (double)e_train[i]->n;
            for (size_t r = 0; r < e_train[i]->n; r++) {
                double x = e_train[i]->x[3 * r + (size_t)k];
                s += x;
                ss += x * x;
            }
            if (i == 2) { /* what the hostile site sent instead */
                s = 60 * 1e4;
                ss = 60 * (1e8 + 100);
            }
            m[i] = s / n;
            v[i] = (ss - s * m[i]) / (n - 1);
        }
        double centre = s_med3(m[0], m[1], m[2]);
        for (int i = 0; i < 3; i++)
            d[i] = (m[i] - centre) * (m[i] - centre);
        double scale = sqrt(s_med3(v[0], v[1], v[2]) + s_med3(d[0], d[1], d[2])) + 1e-9;
        /* The exact pool follows the hostile site ... */
        assert_true(got[0].mean[k] > 3000.0f);
        assert_true(got[0].scale[k] > 4000.0f);
        /* ... the median pool stays among the honest sites. */
        assert_true(fabs(got[1].mean[k] - centre) < 1e-4 * (1 + fabs(centre)));
        assert_true(fabs(got[1].scale[k] - scale) < 1e-4 * scale);
        assert_true(got[1].mean[k] >= fmin(m[0], m[1]) - 1e-3 &&
                    got[1].mean[k] <= fmax(m[0], m[1]) + 1e-3);
        assert_true(got[1].scale[k] < 60.0f);
    }
    /* Two sites' moments (the third's refused: more rows than declared). */
    char dir[] = "/tmp/test_round_scaling_med2.XXXXXX";
    assert_non_null(mkdtemp(dir));
    static mfl_coord_config_t c;
    s_pool_config(&c, "median");
    e_tamper = s_claim_more_rows;
    e_bad_site = 2;
    e_may_fail = true;
    static e_sim_t e;
    e_run(&c, dir, &e);
    e_may_fail = false;
    e_tamper = NULL;
    e_bad_site = -1;
    assert_int_equal(mfl_round_engine_phase(e.engine), MFL_ENGINE_FAILED);
    e_free(&e);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < E_SITES; i++) {
        mfl_dataset_destroy(&e_train[i]);
        mfl_dataset_destroy(&e_test[i]);
    }
    /* The config's word on it. */
    static const char *const bad[] = {
        "data: {standardize: site, scaling_pool: median}\n",
        "data: {standardize: federated, scaling_pool: trimmed}\n",
    };
    for (int b = 0; b < 2; b++) {
        char yaml[512], err[512] = "";
        snprintf(yaml, sizeof yaml,
                 "coordinator: {listen: 'tcp://127.0.0.1:7000', key: k, allow_dir: a}\n"
                 "model: {spec: 'linear:3-1', loss: bce}\n%s", bad[b]);
        assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "c.yaml", &c, err, sizeof err),
                         -1);
        assert_non_null(strstr(err, "c.yaml:"));
        assert_non_null(strstr(err, "data.scaling_pool"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_moments_are_of_fit_rows_only),
        cmocka_unit_test(test_site_scales_as_the_task_says),
        cmocka_unit_test(test_codec_carries_scaling_and_moments_and_refuses_bad_ones),
        cmocka_unit_test(test_engine_pools_records_sends_and_resumes_the_scaling),
        cmocka_unit_test(test_engine_refuses_moments_no_sample_has),
        cmocka_unit_test(test_engine_median_pool_bounds_a_hostile_site),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
