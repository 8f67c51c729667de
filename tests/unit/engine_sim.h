/* An in-process federation for the round engine's unit tests: a real
 * engine and ENGINE_SIM_SITES real site workers, with the transport
 * replaced by a job queue. The engine's round and eval tasks (with a copy
 * of θ as it was sent) are queued; each tick the oldest job runs on its
 * site's worker and the update or report goes back to the engine, until
 * the run is DONE. A test sees what happens through hooks (count tasks,
 * assert on a report or a round's result, tamper with a report) and keeps
 * its own counters behind `user`. Header-only (static inline) because each
 * unit test is one .c file; include it after cmocka.h. */
#ifndef MFL_TEST_ENGINE_SIM_H
#define MFL_TEST_ENGINE_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "round/round_engine.h"
#include "round/run_config.h"
#include "site/site_worker.h"
#include "wire/task_codec.h"

#define ENGINE_SIM_SITES 3
#define ENGINE_SIM_MAX_JOBS 64

/* One task the engine sent, waiting for its site. */
typedef struct {
    int site;    /* index into engine_sim_t.w / ids */
    bool eval;   /* et is the task, else t */
    mfl_round_task_t t;
    mfl_eval_task_t et;
    float *theta; /* θ as sent (owned) */
    size_t n;
} engine_sim_job_t;

typedef struct engine_sim engine_sim_t;

struct engine_sim {
    mfl_round_engine_t *engine;
    mfl_site_worker_t *w[ENGINE_SIM_SITES]; /* the caller's, freed by engine_sim_free */
    const char *ids[ENGINE_SIM_SITES];      /* "site-a", "site-b", "site-c" */
    engine_sim_job_t jobs[ENGINE_SIM_MAX_JOBS];
    size_t n_jobs;
    bool may_fail; /* the run is expected to fail: engine_sim_run stops there */
    /* Hooks, all optional; `user` is the test's. */
    void *user;
    /* Every task as the engine sends it (exactly one of t / et is set). */
    void (*on_task)(void *user, const mfl_round_task_t *t, const mfl_eval_task_t *et);
    /* A site's eval report before the engine takes it (may change it). */
    void (*on_report)(void *user, const engine_sim_job_t *j, mfl_eval_report_t *rep);
    /* A site's round result before the engine takes its update. */
    void (*on_round)(void *user, const engine_sim_job_t *j, const mfl_site_round_result_t *r);
    /* The engine's eval_report sink (a final evaluation's summary). */
    void (*on_summary)(void *user, const mfl_eval_summary_t *s);
};

/* Zeroes `e` and names its sites; then the caller makes e->w[i] for
 * e->ids[i] and sets the hooks it wants. */
static inline void engine_sim_init(engine_sim_t *e)
{
    static const char *ids[ENGINE_SIM_SITES] = {"site-a", "site-b", "site-c"};
    memset(e, 0, sizeof *e);
    for (int i = 0; i < ENGINE_SIM_SITES; i++)
        e->ids[i] = ids[i];
}

static inline int engine_sim_queue(engine_sim_t *e, const char *site, const mfl_round_task_t *t,
                                   const mfl_eval_task_t *et)
{
    int i = 0;
    while (i < ENGINE_SIM_SITES && strcmp(e->ids[i], site) != 0)
        i++;
    assert_true(i < ENGINE_SIM_SITES && e->n_jobs < ENGINE_SIM_MAX_JOBS);
    engine_sim_job_t *j = &e->jobs[e->n_jobs++];
    memset(j, 0, sizeof *j);
    j->site = i;
    j->eval = et != NULL;
    if (t)
        j->t = *t;
    if (et)
        j->et = *et;
    if (e->on_task)
        e->on_task(e->user, t, et);
    j->n = mfl_round_engine_n_state(e->engine);
    j->theta = malloc(j->n * sizeof(float));
    assert_non_null(j->theta);
    memcpy(j->theta, mfl_round_engine_theta(e->engine), j->n * sizeof(float));
    return 0;
}

static inline int engine_sim_send_task(void *ctx, const char *site, const mfl_round_task_t *t,
                                       const mfl_tensor_t *x, size_t n)
{
    (void)x;
    (void)n;
    return engine_sim_queue(ctx, site, t, NULL);
}

static inline int engine_sim_send_eval(void *ctx, const char *site, const mfl_eval_task_t *t,
                                       const mfl_tensor_t *x, size_t n)
{
    (void)x;
    (void)n;
    return engine_sim_queue(ctx, site, NULL, t);
}

static inline void engine_sim_summary(void *ctx, const mfl_eval_summary_t *s)
{
    engine_sim_t *e = ctx;
    e->on_summary(e->user, s);
}

/* Runs the oldest job on its site and hands the result to the engine. */
static inline void engine_sim_step(engine_sim_t *e, uint64_t now)
{
    char err[512];
    engine_sim_job_t j = e->jobs[0];
    memmove(e->jobs, e->jobs + 1, (--e->n_jobs) * sizeof *e->jobs);
    mfl_site_worker_t *w = e->w[j.site];
    if (j.eval) {
        mfl_site_eval_result_t r;
        assert_int_equal(mfl_site_worker_eval(w, &j.et, j.theta, j.n, &r, err, sizeof err), 0);
        mfl_eval_report_t rep;
        mfl_site_worker_fill_report(w, &j.et, &r, &rep);
        if (e->on_report)
            e->on_report(e->user, &j, &rep);
        assert_int_equal(mfl_round_engine_eval_report(e->engine, e->ids[j.site], &rep, now), 0);
    } else {
        mfl_site_round_result_t r;
        assert_int_equal(mfl_site_worker_round(w, &j.t, j.theta, j.n, &r, err, sizeof err), 0);
        if (e->on_round)
            e->on_round(e->user, &j, &r);
        mfl_update_header_t h;
        assert_int_equal(mfl_update_header_decode(r.header, r.header_len, &h, err, sizeof err),
                         0);
        size_t nt = mfl_site_worker_n_tensors(w);
        mfl_tensor_t v[8];
        assert_true(nt <= 8);
        for (size_t i = 0; i < nt; i++)
            v[i] = mfl_tensor_info_view(mfl_site_worker_tensor(w, i), r.delta);
        assert_int_equal(mfl_round_engine_update(e->engine, e->ids[j.site], &h, v, nt, NULL, 0,
                                                 NULL, 0, now),
                         0);
    }
    free(j.theta);
}

/* Points c's run dir, checkpoints and metrics into `dir` (no audit log),
 * starts the engine, says every site hello with `n_train` rows and runs
 * one job a millisecond until the engine is DONE (it must not fail,
 * unless e->may_fail: then a FAILED engine ends the run too). */
static inline void engine_sim_run(engine_sim_t *e, mfl_coord_config_t *c, const char *dir,
                                  uint64_t n_train)
{
    char err[512];
    snprintf(c->run_dir, sizeof c->run_dir, "%s", dir);
    snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s/ck", dir);
    snprintf(c->metrics_file, sizeof c->metrics_file, "%s/metrics.jsonl", dir);
    c->audit_log[0] = '\0';
    mfl_engine_sink_t sink = {e,    engine_sim_send_task, engine_sim_send_eval,
                              NULL, NULL, e->on_summary ? engine_sim_summary : NULL,
                              NULL};
    e->engine = mfl_round_engine_new(c, &sink, NULL, NULL, err, sizeof err);
    if (!e->engine)
        fail_msg("%s", err);
    uint64_t now = 1000;
    for (int i = 0; i < ENGINE_SIM_SITES; i++)
        mfl_round_engine_site_hello(e->engine, e->ids[i], n_train, now);
    for (int guard = 0; guard < 100000; guard++) {
        now += 1;
        for (int i = 0; i < ENGINE_SIM_SITES; i++)
            mfl_round_engine_site_seen(e->engine, e->ids[i], now);
        mfl_round_engine_tick(e->engine, now);
        mfl_engine_phase_t ph = mfl_round_engine_phase(e->engine);
        if (ph == MFL_ENGINE_FAILED && e->may_fail)
            return;
        assert_true(ph != MFL_ENGINE_FAILED);
        if (ph == MFL_ENGINE_DONE)
            break;
        if (e->n_jobs)
            engine_sim_step(e, now);
    }
    assert_int_equal(mfl_round_engine_phase(e->engine), MFL_ENGINE_DONE);
}

/* Frees the queued jobs, the engine and the workers. */
static inline void engine_sim_free(engine_sim_t *e)
{
    for (size_t i = 0; i < e->n_jobs; i++)
        free(e->jobs[i].theta);
    mfl_round_engine_destroy(&e->engine);
    for (int i = 0; i < ENGINE_SIM_SITES; i++)
        mfl_site_worker_destroy(&e->w[i]);
}

#endif
