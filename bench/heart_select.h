/* Federated model selection on the four heart hospitals (issue 16 item 3):
 * the coordinator's round engine with `selection:` on and its DEFAULT grid
 * around the coordinator's DEFAULT settings (configs/coordinator.yaml: the
 * same for every data set, only the model's input and output sizes come
 * from the data), then the winner's rounds.count rounds and the final
 * evaluation, exactly as `metafl simulate` runs them (selection rounds,
 * validation EvalTasks, the pick, the training, the EvalTask on the test
 * rows). Personalised = the final evaluation's adapted accuracy: each site
 * adapts the winner's θ on all of its training rows (k_shot 0: the
 * personalisation protocol, not a tuned value) with the winner's
 * adaptation rate and steps, and scores its test rows. */
#ifndef MFL_BENCH_HEART_SELECT_H
#define MFL_BENCH_HEART_SELECT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "heart_engine.h"
#include "round/selection.h"

typedef struct {
    size_t site;
    bool eval;
    mfl_round_task_t task;
    mfl_eval_task_t etask;
    float *theta;
    size_t n;
} s_sel_job_t;

typedef struct {
    mfl_site_worker_t **workers;
    const char **ids;
    size_t n_workers;
    s_sel_job_t *jobs;
    size_t n_jobs, cap;
    mfl_round_engine_t *engine;
    int oom;
    mfl_eval_report_t final[64]; /* the run's final evaluation, per worker */
    bool have_final[64];
} s_sel_t;

static inline long s_sel_find(const s_sel_t *e, const char *site)
{
    for (size_t i = 0; i < e->n_workers; i++)
        if (strcmp(e->ids[i], site) == 0)
            return (long)i;
    return -1;
}

static inline int s_sel_queue(s_sel_t *e, const char *site, const mfl_round_task_t *t,
                              const mfl_eval_task_t *et)
{
    long i = s_sel_find(e, site);
    if (i < 0)
        return -1;
    if (e->n_jobs == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        s_sel_job_t *j = realloc(e->jobs, cap * sizeof *j);
        if (!j)
            return e->oom = 1, -1;
        e->jobs = j;
        e->cap = cap;
    }
    s_sel_job_t job;
    memset(&job, 0, sizeof job);
    job.site = (size_t)i;
    job.eval = et != NULL;
    if (t)
        job.task = *t;
    if (et)
        job.etask = *et;
    job.n = mfl_round_engine_n_state(e->engine);
    job.theta = malloc(job.n * sizeof(float));
    if (!job.theta)
        return e->oom = 1, -1;
    memcpy(job.theta, mfl_round_engine_theta(e->engine), job.n * sizeof(float));
    e->jobs[e->n_jobs++] = job;
    return 0;
}

static inline int s_sel_sink_task(void *ctx, const char *site, const mfl_round_task_t *task,
                                  const mfl_tensor_t *t, size_t nt)
{
    (void)t;
    (void)nt;
    return s_sel_queue(ctx, site, task, NULL);
}

static inline int s_sel_sink_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                                  const mfl_tensor_t *t, size_t nt)
{
    (void)t;
    (void)nt;
    return s_sel_queue(ctx, site, NULL, task);
}

/* Final (non-selection) evaluation reports: the engine logs them through
 * eval_report; selection reports never reach this callback. */
static inline void s_sel_sink_report(void *ctx, const mfl_eval_summary_t *s)
{
    s_sel_t *e = ctx;
    long i = s_sel_find(e, s->site);
    if (i >= 0 && i < 64) {
        e->final[i] = *s->report;
        e->have_final[i] = true;
    }
}

static inline int s_sel_run_job(s_sel_t *e, const s_sel_job_t *job, char *err, size_t errlen)
{
    mfl_site_worker_t *w = e->workers[job->site];
    if (job->eval) {
        mfl_site_eval_result_t res;
        if (mfl_site_worker_eval(w, &job->etask, job->theta, job->n, &res, err, errlen) != 0)
            return -1;
        mfl_eval_report_t rep;
        mfl_site_worker_fill_report(w, &job->etask, &res, &rep);
        return mfl_round_engine_eval_report(e->engine, e->ids[job->site], &rep,
                                            s_bench_wall_ms()) == 0
                   ? 0
                   : (mfl_errf(err, errlen, "eval report refused"), -1);
    }
    mfl_site_round_result_t res;
    if (mfl_site_worker_round(w, &job->task, job->theta, job->n, &res, err, errlen) != 0)
        return -1;
    mfl_update_header_t h;
    if (mfl_update_header_decode(res.header, res.header_len, &h, err, errlen) != 0)
        return -1;
    size_t nt = mfl_site_worker_n_tensors(w);
    mfl_tensor_t *views = calloc(nt ? nt : 1, sizeof *views);
    if (!views)
        return mfl_errf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < nt; i++)
        views[i] = mfl_tensor_info_view(mfl_site_worker_tensor(w, i), res.delta);
    int rc = mfl_round_engine_update(e->engine, e->ids[job->site], &h, views, nt, res.header,
                                     res.header_len, res.signature, res.signature_len,
                                     s_bench_wall_ms());
    free(views);
    if (rc != 0)
        mfl_errf(err, errlen, "the engine rejected %s's update", e->ids[job->site]);
    return rc;
}

/* The coordinator's defaults (configs/coordinator.yaml) for a binary table
 * of `n_features` columns: the base every data set gets. */
/* bench_heart select --score-search: selection.score_adaptation: search;
 * --rule R: selection.rule (default auto). */
static bool s_sel_score_search;
static mfl_select_rule_t s_sel_rule = MFL_SELECT_RULE_AUTO;
/* --extra-fedavg (exploration): two FedAvg candidates after the grid. */
static bool s_sel_extra_fedavg;

static inline void s_sel_config(mfl_coord_config_t *c, size_t n_features, uint64_t seed,
                                uint32_t sel_rounds, bool selection)
{
    mfl_coord_config_defaults(c);
    snprintf(c->learner.model_spec, sizeof c->learner.model_spec, "mlp:%zu-32-1", n_features);
    c->learner.loss = MFL_LOSS_BCE;
    c->k_shot = 0; /* personalisation: adapt on all of a site's training rows */
    c->init_seed = seed;
    c->seed = seed;
    c->deadline_ms = 3600u * 1000u;
    c->eval_deadline_ms = 3600u * 1000u;
    c->max_attempts = 1;
    mfl_select_config_t *s = &c->selection;
    s->enabled = selection;
    s->rounds = sel_rounds;
    s->validation_fraction = 0.2;
    s->validation_seed = seed;
    s->rule = s_sel_rule;
    c->federated_scaling = s_fed_federated;
    s->score_search = s_sel_score_search;
    mfl_select_candidate_t base;
    mfl_select_base_scaled(&c->learner, &c->server, c->eval_adapt_steps, c->eval_adapt_lr,
                           c->federated_scaling, &base);
    mfl_select_default_grid(&base, s);
    if (s_sel_extra_fedavg) { /* exploration: FedAvg candidates too (MLP and linear) */
        for (int lin = 0; lin < 2 && s->n_candidates < MFL_SELECT_MAX_CANDIDATES; lin++) {
            mfl_select_candidate_t f = base;
            mfl_learner_config_defaults(&f.learner, MFL_ALGO_FEDAVG);
            f.learner.loss = base.learner.loss;
            f.learner.batch_size = 16;
            snprintf(f.learner.model_spec, sizeof f.learner.model_spec, "%s",
                     base.learner.model_spec);
            if (lin)
                snprintf(f.learner.model_spec, sizeof f.learner.model_spec, "linear:%zu-1",
                         n_features);
            s->candidates[s->n_candidates++] = f;
        }
    }
}

/* One run: selection (if on), the winner's training, the final evaluation.
 * final[i] gets site i's report. *winner (1-based, 0 without selection)
 * and desc[MFL_SELECT_DESC_MAX] the chosen setting. */
static inline int s_sel_run(mfl_site_worker_t **workers, size_t n_workers, const char **ids,
                            const mfl_coord_config_t *cfg, mfl_eval_report_t *final,
                            size_t *winner, char *desc, float **theta_out, size_t *n_out,
                            mfl_select_candidate_t *trained, char *err, size_t errlen)
{
    static mfl_coord_config_t c;
    c = *cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/metafl-bench-select-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir))
        return mfl_errf(err, errlen, "%s: cannot create", dir), -1;
    snprintf(c.run_dir, sizeof c.run_dir, "%s", dir);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s/checkpoints", dir);
    snprintf(c.metrics_file, sizeof c.metrics_file, "%s/metrics.jsonl", dir);
    snprintf(c.status_file, sizeof c.status_file, "%s/status.json", dir);
    c.audit_log[0] = '\0';
    c.min_sites = c.wait_for_sites = (uint32_t)n_workers;
    static s_sel_t e;
    memset(&e, 0, sizeof e);
    e.workers = workers;
    e.ids = ids;
    e.n_workers = n_workers;
    mfl_engine_sink_t sink = {&e, s_sel_sink_task, s_sel_sink_eval, NULL, NULL,
                              s_sel_sink_report, NULL};
    int rc = -1;
    size_t head = 0;
    e.engine = mfl_round_engine_new(&c, &sink, NULL, NULL, err, errlen);
    if (!e.engine)
        goto out;
    for (size_t i = 0; i < n_workers; i++)
        mfl_round_engine_site_hello(e.engine, ids[i], mfl_site_worker_n_train(workers[i]),
                                    s_bench_wall_ms());
    for (;;) {
        for (size_t i = 0; i < n_workers; i++)
            mfl_round_engine_site_seen(e.engine, ids[i], s_bench_wall_ms());
        mfl_round_engine_tick(e.engine, s_bench_wall_ms());
        mfl_engine_phase_t ph = mfl_round_engine_phase(e.engine);
        if (e.oom || ph == MFL_ENGINE_FAILED) {
            mfl_errf(err, errlen, "round engine %s", e.oom ? "out of memory" : "failed");
            goto out;
        }
        if (ph == MFL_ENGINE_DONE)
            break;
        if (head < e.n_jobs) {
            s_sel_job_t job = e.jobs[head++];
            int jr = s_sel_run_job(&e, &job, err, errlen);
            free(job.theta);
            if (head == e.n_jobs)
                head = e.n_jobs = 0;
            if (jr != 0)
                goto out;
        } else {
            usleep(200);
        }
    }
    for (size_t i = 0; i < n_workers; i++) {
        if (!e.have_final[i]) {
            mfl_errf(err, errlen, "site %s has no final evaluation", ids[i]);
            goto out;
        }
        final[i] = e.final[i];
    }
    (void)mfl_round_engine_scaling(e.engine, &s_fed_scaling);
    size_t cand = 0, n = 0, w = 0;
    *winner = 0;
    if (mfl_round_engine_selection(e.engine, &cand, &n, &w, NULL))
        *winner = w;
    mfl_select_describe(&(mfl_select_candidate_t){.learner = c.learner, .server = c.server,
                                                  .adapt_steps = c.eval_adapt_steps,
                                                  .adapt_lr = c.eval_adapt_lr,
                                                  .federated_scaling = c.federated_scaling},
                        desc, MFL_SELECT_DESC_MAX);
    if (w && w <= c.selection.n_candidates)
        mfl_select_describe(&c.selection.candidates[w - 1], desc, MFL_SELECT_DESC_MAX);
    if (trained) {
        if (w && w <= c.selection.n_candidates)
            *trained = c.selection.candidates[w - 1];
        else
            mfl_select_base_scaled(&c.learner, &c.server, c.eval_adapt_steps, c.eval_adapt_lr,
                                   c.federated_scaling, trained);
    }
    if (theta_out) {
        size_t ns = mfl_round_engine_n_state(e.engine);
        *theta_out = malloc(ns * sizeof(float));
        if (!*theta_out) {
            mfl_errf(err, errlen, "out of memory");
            goto out;
        }
        memcpy(*theta_out, mfl_round_engine_theta(e.engine), ns * sizeof(float));
        *n_out = ns;
    }
    rc = 0;
out:
    for (size_t i = head; i < e.n_jobs; i++)
        free(e.jobs[i].theta);
    free(e.jobs);
    mfl_round_engine_destroy(&e.engine);
    s_eng_rmdir(dir);
    return rc;
}

/* Per-site adaptation chosen at the site (issue 16 item 2): the EvalTask's
 * adapt_search (eval.adapt_search), which makes the site worker choose
 * from MFL_SITE_ADAPT_STEPS × MFL_SITE_ADAPT_RATES by 5-fold
 * cross-validation on its training rows (its support cases: k_shot 0),
 * then adapt on all of them with the choice and score the test rows. *acc
 * gets the test accuracy; steps/lr the choice. */
static inline int s_sel_site_adapt(mfl_site_worker_t *w, const mfl_learner_config_t *lc,
                                   const float *theta, size_t n, uint64_t vseed, double *acc,
                                   uint32_t *steps_out, float *lr_out, char *err, size_t errlen)
{
    mfl_eval_task_t t;
    memset(&t, 0, sizeof t);
    mfl_task_algorithm_from_learner(lc, 5, 0, 5, &t.algorithm);
    t.algorithm.k_shot = 0;
    snprintf(t.model_spec, sizeof t.model_spec, "%s", lc->model_spec);
    t.nonce_len = 16;
    t.scaling = s_fed_scaling;
    t.selection.adapt_search = true;
    t.selection.validation_fraction = 0.2;
    t.selection.validation_seed = vseed;
    mfl_site_eval_result_t r;
    if (mfl_site_worker_eval(w, &t, theta, n, &r, err, errlen) != 0)
        return -1;
    *acc = r.adapt_steps_used ? r.adapted.accuracy : r.before.accuracy;
    *steps_out = r.adapt_steps_used;
    *lr_out = r.adapt_lr_used;
    return 0;
}

/* ORACLE, not a result: the best test accuracy over every (steps, rate)
 * of the per-site adaptation grid (MFL_SITE_ADAPT_STEPS × _RATES), θ
 * adapted on all of the site's training rows. The test rows CHOOSE here:
 * it bounds what any rule choosing from this grid on training rows could
 * reach with this θ. */
static inline int s_sel_oracle(mfl_site_worker_t *w, const mfl_learner_config_t *lc,
                               const float *theta, size_t n, double *acc, char *err,
                               size_t errlen)
{
    static const uint32_t steps[] = MFL_SITE_ADAPT_STEPS;
    static const float rates[] = MFL_SITE_ADAPT_RATES;
    *acc = -1;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        for (size_t j = 0; j < sizeof rates / sizeof *rates; j++) {
            if (steps[i] == 0 && j > 0)
                continue;
            mfl_eval_task_t t;
            memset(&t, 0, sizeof t);
            mfl_task_algorithm_from_learner(lc, 5, 0, 5, &t.algorithm);
            t.algorithm.k_shot = 0;
            snprintf(t.model_spec, sizeof t.model_spec, "%s", lc->model_spec);
            t.nonce_len = 16;
            t.scaling = s_fed_scaling;
            t.adapt_steps = steps[i];
            t.adapt_lr = rates[j];
            mfl_site_eval_result_t r;
            if (mfl_site_worker_eval(w, &t, theta, n, &r, err, errlen) != 0) {
                if (strstr(err, "diverged"))
                    continue; /* not a choice */
                return -1;
            }
            double a = steps[i] ? r.adapted.accuracy : r.before.accuracy;
            if (a > *acc)
                *acc = a;
        }
    return 0;
}

/* A new hospital's score: θ adapted with the chosen setting's rate and
 * steps on the drawn worker's training rows (its k labelled cases), on
 * its test rows. With `search`, the hospital instead chooses its own steps
 * and rate by cross-validation on those k cases (eval.adapt_search). */
static inline int s_sel_newsite(mfl_site_worker_t *w, const mfl_select_candidate_t *cand,
                                const float *theta, size_t n, uint32_t draw, bool search,
                                uint64_t vseed, double *acc, char *err, size_t errlen)
{
    mfl_eval_task_t t;
    memset(&t, 0, sizeof t);
    mfl_task_algorithm_from_learner(&cand->learner, 5, 0, 5, &t.algorithm);
    t.algorithm.k_shot = 0; /* the drawn worker's training rows are the k cases */
    snprintf(t.model_spec, sizeof t.model_spec, "%s", cand->learner.model_spec);
    t.nonce_len = 16;
    t.scaling = s_fed_scaling;
    t.round = draw;
    t.adapt_steps = cand->adapt_steps;
    t.adapt_lr = cand->adapt_lr;
    if (search) {
        t.selection.adapt_search = true;
        t.selection.validation_fraction = 0.2;
        t.selection.validation_seed = vseed;
    }
    mfl_site_eval_result_t r;
    if (mfl_site_worker_eval(w, &t, theta, n, &r, err, errlen) != 0)
        return -1;
    uint32_t used = search ? r.adapt_steps_used : t.adapt_steps;
    *acc = used ? r.adapted.accuracy : r.before.accuracy;
    return 0;
}

/* --standardize federated: the workers get their rows unscaled too, so
 * they can send moments and scale with the pooled statistics. */
static inline int s_sel_enable_raw(mfl_site_worker_t *w, const mfl_dataset_t *raw_train,
                                   const mfl_dataset_t *raw_test, char *err, size_t errlen)
{
    if (!s_fed_federated)
        return 0;
    return mfl_site_worker_enable_federated_scaling(w, raw_train, raw_test, err, errlen);
}

#endif
