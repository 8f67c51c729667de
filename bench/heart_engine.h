/* The production round engine driving the heart harness's site workers:
 * the same code path as `metafl simulate` (cli/cmd_simulate.c) and the
 * daemon (common/round/round_engine.h), with the sites in-process.
 *
 * s_engine_train() has s_fed_train()'s signature: θ₀ is the engine's own
 * (the learner's init from init_seed = seed), every round goes through the
 * engine's selection, update checks, fixed-point aggregation, server step,
 * checkpoint and metrics line. Checkpoints, metrics and status go to a
 * fresh directory under /dev/shm (tmpfs: durable writes cost nothing, so
 * accuracy runs are not slowed by fsync), removed afterwards. Updates are
 * unsigned (no keys in the harness) and there is no audit log.
 *
 * What it cannot do that s_fed_train() can: a per-site number of local
 * epochs (the engine sends one task to all) and a custom θ₀ (torch init);
 * so FLamby's rows use s_fed_train() and the report says so. */
#ifndef MFL_BENCH_HEART_ENGINE_H
#define MFL_BENCH_HEART_ENGINE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "round/run_config.h"
#include "heart_fed.h"
#include "round/round_engine.h"

#define S_ENGINE_NAME                                                                          \
    "coordinator round engine (common/round/round_engine.h, as `metafl simulate`) with "        \
    "in-process common/site/site_worker sites"

typedef struct {
    size_t site;
    mfl_round_task_t task;
    float *theta;
    bool eval;              /* an EvalTask (federated standardisation's moments) */
    mfl_eval_task_t etask;
} s_eng_job_t;

typedef struct {
    mfl_site_worker_t **workers;
    const char **ids;
    size_t n_workers;
    s_eng_job_t *jobs;
    size_t n_jobs, cap;
    mfl_round_engine_t *engine;
    int oom;
} s_eng_t;

static inline int s_eng_sink_task(void *ctx, const char *site, const mfl_round_task_t *task,
                                  const mfl_tensor_t *t, size_t nt)
{
    (void)t;
    (void)nt;
    s_eng_t *e = ctx;
    size_t i = 0;
    while (i < e->n_workers && strcmp(e->ids[i], site) != 0)
        i++;
    if (i == e->n_workers)
        return -1;
    if (e->n_jobs == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        s_eng_job_t *j = realloc(e->jobs, cap * sizeof *j);
        if (!j)
            return e->oom = 1, -1;
        e->jobs = j;
        e->cap = cap;
    }
    size_t n = mfl_round_engine_n_state(e->engine);
    s_eng_job_t job;
    memset(&job, 0, sizeof job);
    job.site = i;
    if (task)
        job.task = *task;
    job.theta = malloc(n * sizeof(float));
    if (!job.theta)
        return e->oom = 1, -1;
    memcpy(job.theta, mfl_round_engine_theta(e->engine), n * sizeof(float));
    e->jobs[e->n_jobs++] = job;
    return 0;
}

/* EvalTasks: only federated standardisation's moments task is answered
 * (the harness scores θ itself); it is queued like a round task. */
static inline int s_eng_sink_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                                  const mfl_tensor_t *t, size_t nt)
{
    s_eng_t *e = ctx;
    if (!task->moments)
        return 0;
    size_t before = e->n_jobs;
    if (s_eng_sink_task(ctx, site, NULL, t, nt) != 0)
        return -1;
    if (e->n_jobs > before) {
        e->jobs[e->n_jobs - 1].eval = true;
        e->jobs[e->n_jobs - 1].etask = *task;
    }
    return 0;
}

/* Runs one queued round task at its worker and feeds the update back. */
static inline int s_eng_run_job(s_eng_t *e, const s_eng_job_t *job, char *err, size_t errlen)
{
    mfl_site_worker_t *w = e->workers[job->site];
    if (job->eval) {
        mfl_site_eval_result_t er;
        if (mfl_site_worker_eval(w, &job->etask, job->theta,
                                 mfl_round_engine_n_state(e->engine), &er, err, errlen) != 0)
            return -1;
        mfl_eval_report_t rep;
        mfl_site_worker_fill_report(w, &job->etask, &er, &rep);
        return mfl_round_engine_eval_report(e->engine, e->ids[job->site], &rep,
                                            s_bench_wall_ms());
    }
    mfl_site_round_result_t res;
    int rc = mfl_site_worker_round(w, &job->task, job->theta,
                                   mfl_round_engine_n_state(e->engine), &res, err, errlen);
    if (rc != 0)
        return -1;
    mfl_update_header_t hdr, *h = &hdr;
    if (mfl_update_header_decode(res.header, res.header_len, h, err, errlen) != 0)
        return -1;
    size_t nt = mfl_site_worker_n_tensors(w);
    mfl_tensor_t *views = calloc(nt ? nt : 1, sizeof *views);
    rc = -1;
    if (views) {
        for (size_t i = 0; i < nt; i++) {
            const mfl_tensor_info_t *ti = mfl_site_worker_tensor(w, i);
            views[i] = mfl_tensor_info_view(ti, res.delta);
        }
        rc = mfl_round_engine_update(e->engine, e->ids[job->site], h, views, nt, res.header,
                                     res.header_len, res.signature, res.signature_len,
                                     s_bench_wall_ms());
        if (rc != 0)
            mfl_errf(err, errlen, "the engine rejected %s's update (see the log)",
                     e->ids[job->site]);
    } else {
        mfl_errf(err, errlen, "out of memory");
    }
    free(views);
    return rc;
}

static inline void s_eng_rmdir(const char *dir)
{
    char cmd[1200];
    /* the directory is ours (mkdtemp) and holds only the engine's files */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_heart: could not remove %s\n", dir);
}

static inline int s_engine_train(const s_fed_spec_t *sp, mfl_site_worker_t **workers,
                                 size_t n_workers, uint64_t seed, float **theta_out,
                                 size_t *n_out, char *err, size_t errlen)
{
    static mfl_coord_config_t c; /* large */
    mfl_coord_config_defaults(&c);
    mfl_task_algorithm_t a;
    s_fed_pb_algo(sp, 0, &a);
    if (mfl_task_algorithm_to_learner(&a, sp->model, &c.learner, err, errlen) != 0)
        return -1;
    if (sp->local_updates > 0 || sp->torch_init) {
        mfl_errf(err, errlen, "the engine sends one task to every site and inits θ itself: "
                              "use the harness loop for local_updates / torch_init");
        return -1;
    }
    mfl_optim_kind_t kind;
    if (mfl_optim_parse(sp->server, &kind) != 0)
        return mfl_errf(err, errlen, "unknown server optimiser '%s'", sp->server), -1;
    c.server = mfl_optim_defaults(kind, sp->server_lr);
    c.server.eps = 1e-8f;
    c.init_seed = seed;
    c.seed = seed;
    c.rounds = (uint32_t)sp->rounds;
    c.sites_fraction = 1.0;
    c.min_sites = (uint32_t)n_workers;
    c.wait_for_sites = (uint32_t)n_workers;
    c.deadline_ms = 3600u * 1000u;
    c.max_attempts = 1;
    c.norm_bound = 0;
    c.eval_every = 0;
    c.federated_scaling = s_fed_federated;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/metafl-bench-heart-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir))
        return mfl_errf(err, errlen, "%s: cannot create", dir), -1;
    snprintf(c.run_dir, sizeof c.run_dir, "%s", dir);
    snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s/checkpoints", dir);
    snprintf(c.metrics_file, sizeof c.metrics_file, "%s/metrics.jsonl", dir);
    snprintf(c.status_file, sizeof c.status_file, "%s/status.json", dir);
    c.audit_log[0] = '\0';

    s_eng_t e;
    memset(&e, 0, sizeof e);
    size_t head = 0;
    const char *ids[64];
    if (n_workers > 64) {
        s_eng_rmdir(dir);
        return mfl_errf(err, errlen, "too many workers"), -1;
    }
    for (size_t i = 0; i < n_workers; i++)
        ids[i] = mfl_site_worker_site(workers[i]);
    e.workers = workers;
    e.ids = ids;
    e.n_workers = n_workers;
    mfl_engine_sink_t sink = {&e, s_eng_sink_task, s_eng_sink_eval, NULL, NULL, NULL, NULL};
    int rc = -1;
    e.engine = mfl_round_engine_new(&c, &sink, NULL, NULL, err, errlen);
    if (!e.engine)
        goto out;
    for (size_t i = 0; i < n_workers; i++)
        mfl_round_engine_site_hello(e.engine, ids[i], mfl_site_worker_n_train(workers[i]),
                                    s_bench_wall_ms());
    while (mfl_round_engine_rounds_done(e.engine) < c.rounds) {
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
            s_eng_job_t job = e.jobs[head++];
            int jr = s_eng_run_job(&e, &job, err, errlen);
            free(job.theta);
            if (head == e.n_jobs)
                head = e.n_jobs = 0;
            if (jr != 0)
                goto out;
        } else {
            usleep(1000);
        }
    }
    if (mfl_round_engine_rounds_done(e.engine) < c.rounds) {
        mfl_errf(err, errlen, "engine stopped after %u of %u rounds",
                 mfl_round_engine_rounds_done(e.engine), c.rounds);
        goto out;
    }
    (void)mfl_round_engine_scaling(e.engine, &s_fed_scaling);
    size_t n = mfl_round_engine_n_state(e.engine);
    float *theta = malloc(n * sizeof *theta);
    if (!theta) {
        mfl_errf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(theta, mfl_round_engine_theta(e.engine), n * sizeof *theta);
    *theta_out = theta;
    *n_out = n;
    rc = 0;
out:
    for (size_t i = head; i < e.n_jobs; i++)
        free(e.jobs[i].theta);
    free(e.jobs);
    mfl_round_engine_destroy(&e.engine);
    s_eng_rmdir(dir);
    return rc;
}

#endif
