/* bench_meta_fmnist_fed: few-shot Fashion-MNIST meta-trained federated
 * across four sites that hold DIFFERENT classes, against the same
 * meta-training done centrally, both scored on the held-out classes of
 * configs/train-fmnist.yaml (5-way 5-shot, t10k images).
 *
 * Sites: the 5 meta-train classes in 4 orientations (bench_meta_fmnist's
 * rotation classes); site r holds the 5 classes rotated by r x 90 degrees,
 * so no class is on two sites. The federated run is the coordinator's real
 * round engine (common/round/round_engine.h) with the sites as in-process
 * site workers (common/site/site_worker.h), driven the way `metafl
 * simulate` drives them (cli/cmd_simulate.c) minus signatures: simulate
 * itself reads sites from CSV/built-in site configs and cannot express
 * class-disjoint image sites. Each round every site runs LOCAL ProtoNets
 * outer steps (Adam restarted per round) from θ; the server averages the
 * Δs (SGD, rate 1). Centralised: the same number of episodes
 * (rounds x sites x local steps) from all 20 classes in one Adam run.
 *
 *   bench_meta_fmnist_fed [--quick] [--out FILE] [--config FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_fmnist_fed.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "config/experiment_config.h"
#include "nn/blas.h"
#include "round/round_engine.h"
#include "site/site_worker.h"

#include "fmnist_rot.h"
#include "bench_common.h"

#define N_SITES 4
#define ROT_PER_CLASS 1500
#define EMBED "cnn4:1x28x28:16:0:p3"
#define EVAL_QUERY 30

typedef struct {
    size_t site;
    mfl_round_task_t task;
    float *theta;
} s_job_t;

typedef struct {
    mfl_site_worker_t *worker[N_SITES];
    char id[N_SITES][16];
    s_job_t jobs[4 * N_SITES];
    size_t n_jobs;
    mfl_round_engine_t *engine;
    int failed;
} s_sim_t;

/* The sink only queues (it must not call back into the engine). */
static int s_sink_task(void *ctx, const char *site, const mfl_round_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    (void)t;
    (void)n;
    s_sim_t *sim = ctx;
    size_t i = 0;
    while (i < N_SITES && strcmp(sim->id[i], site) != 0)
        i++;
    if (i == N_SITES || sim->n_jobs == sizeof sim->jobs / sizeof sim->jobs[0])
        return -1;
    size_t ns = mfl_round_engine_n_state(sim->engine);
    s_job_t *j = &sim->jobs[sim->n_jobs];
    j->site = i;
    j->task = *task;
    j->theta = malloc(ns * sizeof(float));
    if (!j->theta) {
        sim->failed = 1;
        return -1;
    }
    memcpy(j->theta, mfl_round_engine_theta(sim->engine), ns * sizeof(float));
    sim->n_jobs++;
    return 0;
}

static int s_sink_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    (void)ctx;
    (void)site;
    (void)task;
    (void)t;
    (void)n;
    return 0; /* the bench scores θ itself on the held-out classes */
}

static void s_run_job(s_sim_t *sim, s_job_t *job)
{
    char err[512];
    mfl_site_worker_t *w = sim->worker[job->site];
    mfl_site_round_result_t res;
    if (mfl_site_worker_round(w, &job->task, job->theta, mfl_round_engine_n_state(sim->engine), &res,
                              err, sizeof err) < 0) {
        fprintf(stderr, "bench_meta_fmnist_fed: site %s: %s\n", sim->id[job->site], err);
        sim->failed = 1;
        return;
    }
    mfl_update_header_t hdr, *h = &hdr;
    size_t nt = mfl_site_worker_n_tensors(w);
    mfl_tensor_t views[64];
    if (mfl_update_header_decode(res.header, res.header_len, h, err, sizeof err) != 0 ||
        nt > 64) {
        sim->failed = 1;
    } else {
        for (size_t i = 0; i < nt; i++) {
            const mfl_tensor_info_t *ti = mfl_site_worker_tensor(w, i);
            views[i] = mfl_tensor_info_view(ti, res.delta);
        }
        mfl_round_engine_update(sim->engine, sim->id[job->site], h, views, nt, res.header,
                                res.header_len, res.signature, res.signature_len, s_bench_wall_ms());
    }
}

static void s_learner_config(mfl_learner_config_t *c, int local_steps)
{
    mfl_learner_config_defaults(c, MFL_ALGO_PROTONET);
    snprintf(c->model_spec, sizeof c->model_spec, "%s", EMBED);
    c->loss = MFL_LOSS_SOFTMAX_CE;
    c->meta_batch = 1;
    c->outer_steps = local_steps;
    c->outer_lr = 0.001f;
    c->outer_optim = MFL_OPTIM_ADAM;
}

int main(int argc, char **argv)
{
    int quick = s_bench_quick_env();
    const char *out = NULL, *config = "configs/train-fmnist.yaml";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "usage: bench_meta_fmnist_fed [--quick] [--out FILE] [--config FILE]\n");
            return 2;
        }
    }
    char path[1024];
    out = s_bench_out_path(out, path, sizeof(path), "meta_fmnist_fed.json");
    mfl_blas_set_threads(1);
    mfl_log_set_level(MFL_LOG_WARN);
    const int rounds = quick ? 4 : 30, local = quick ? 5 : 12;
    const int central_steps = rounds * N_SITES * local;
    char err[1024];
    double t0 = s_bench_now();
    mfl_experiment_t *exp = mfl_experiment_load(config, err, sizeof(err));
    if (!exp || mfl_bench_fmnist_add_rotations(exp, ROT_PER_CLASS)) {
        fprintf(stderr, "bench_meta_fmnist_fed: %s\n", exp ? "rotations failed" : err);
        return 1;
    }
    exp->eval_tasks = quick ? 100 : 300;
    exp->max_batch = 256;
    size_t n0 = exp->n_train_classes / 4;

    /* Centralised: one run over all 20 classes. */
    s_learner_config(&exp->learner, 1);
    exp->train_steps = central_steps;
    exp->log_every = local * N_SITES;
    mfl_learner_t *l = mfl_experiment_learner(exp, err, sizeof(err));
    if (!l)
        return fprintf(stderr, "bench_meta_fmnist_fed: %s\n", err), 1;
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *theta0 = malloc(ns * sizeof(float));
    mfl_learner_init_state(l, theta, 1);
    memcpy(theta0, theta, ns * sizeof(float));
    double tc = s_bench_now();
    if (mfl_experiment_train(exp, l, theta, NULL, NULL, NULL, err, sizeof(err)))
        return fprintf(stderr, "bench_meta_fmnist_fed: central: %s\n", err), 1;
    tc = s_bench_now() - tc;
    size_t tq = exp->q_query;
    exp->q_query = EVAL_QUERY;
    mfl_exp_eval_t ev_c, ev_f, ev_0;
    if (mfl_experiment_evaluate(exp, l, theta0, 0, 0, &ev_0, err, sizeof(err)) ||
        mfl_experiment_evaluate(exp, l, theta, 0, 0, &ev_c, err, sizeof(err)))
        return fprintf(stderr, "bench_meta_fmnist_fed: %s\n", err), 1;
    exp->q_query = tq;
    fprintf(stderr, "  untrained %.4f, centralised %.4f (%.0f s)\n", ev_0.mean.accuracy,
            ev_c.mean.accuracy, tc);

    /* Federated: site r holds rotation r of the meta-train classes. */
    static s_sim_t sim;
    const mfl_dataset_t *all = exp->train_data;
    size_t *idx = malloc(all->n * sizeof(size_t));
    for (int r = 0; r < N_SITES; r++) {
        size_t k = 0;
        for (size_t i = 0; i < all->n; i++) {
            size_t y = (size_t)all->y[i];
            for (size_t c = 0; c < n0; c++)
                if (exp->train_classes[(size_t)r * n0 + c] == y)
                    idx[k++] = i;
        }
        snprintf(sim.id[r], sizeof sim.id[r], "site%d", r);
        mfl_dataset_t *d = mfl_dataset_subset(all, idx, k);
        sim.worker[r] = d ? mfl_site_worker_new_from_data(sim.id[r], d, NULL, NULL, err,
                                                          sizeof(err))
                          : NULL;
        if (!sim.worker[r])
            return fprintf(stderr, "bench_meta_fmnist_fed: site %d: %s\n", r, err), 1;
        fprintf(stderr, "  site%d: %zu images, classes", r, k);
        for (size_t c = 0; c < n0; c++)
            fprintf(stderr, " %zu", exp->train_classes[(size_t)r * n0 + c]);
        fprintf(stderr, "\n");
    }
    free(idx);
    static mfl_coord_config_t cc;
    mfl_coord_config_defaults(&cc);
    s_learner_config(&cc.learner, local);
    cc.n_way = (uint32_t)exp->n_way;
    cc.k_shot = (uint32_t)exp->k_shot;
    cc.n_query = (uint32_t)exp->q_query;
    cc.init_seed = 1;
    cc.rounds = (uint32_t)rounds;
    cc.sites_fraction = 1.0;
    cc.min_sites = N_SITES;
    cc.wait_for_sites = N_SITES;
    cc.deadline_ms = 3600u * 1000u;
    cc.server.kind = MFL_OPTIM_SGD;
    cc.server.lr = 1.0f;
    char tmpl[] = "/tmp/bench_fmnist_fed.XXXXXX";
    if (!mkdtemp(tmpl))
        return fprintf(stderr, "bench_meta_fmnist_fed: mkdtemp failed\n"), 1;
    snprintf(cc.run_dir, sizeof cc.run_dir, "%s", tmpl);
    snprintf(cc.checkpoint_dir, sizeof cc.checkpoint_dir, "%s/checkpoints", tmpl);
    snprintf(cc.metrics_file, sizeof cc.metrics_file, "%s/metrics.jsonl", tmpl);
    snprintf(cc.status_file, sizeof cc.status_file, "%s/status.json", tmpl);
    cc.audit_log[0] = '\0';
    mfl_engine_sink_t sink = {&sim, s_sink_task, s_sink_eval, NULL, NULL, NULL, NULL};
    sim.engine = mfl_round_engine_new(&cc, &sink, NULL, NULL, err, sizeof err);
    if (!sim.engine)
        return fprintf(stderr, "bench_meta_fmnist_fed: engine: %s\n", err), 1;
    if (mfl_round_engine_n_state(sim.engine) != ns ||
        memcmp(mfl_round_engine_theta(sim.engine), theta0, ns * sizeof(float)) != 0)
        fprintf(stderr, "  note: the engine's θ0 differs from the centralised run's\n");
    for (int r = 0; r < N_SITES; r++)
        mfl_round_engine_site_hello(sim.engine, sim.id[r], mfl_site_worker_n_train(sim.worker[r]),
                                    s_bench_wall_ms());
    double tf = s_bench_now();
    while (!sim.failed && mfl_round_engine_rounds_done(sim.engine) < (uint32_t)rounds) {
        for (int r = 0; r < N_SITES; r++)
            mfl_round_engine_site_seen(sim.engine, sim.id[r], s_bench_wall_ms());
        mfl_round_engine_tick(sim.engine, s_bench_wall_ms());
        mfl_engine_phase_t ph = mfl_round_engine_phase(sim.engine);
        if (ph == MFL_ENGINE_DONE || ph == MFL_ENGINE_FAILED || ph == MFL_ENGINE_ABORTED)
            break;
        size_t n = sim.n_jobs;
        sim.n_jobs = 0;
        s_job_t jobs[4 * N_SITES];
        memcpy(jobs, sim.jobs, n * sizeof jobs[0]);
        for (size_t j = 0; j < n; j++) {
            s_run_job(&sim, &jobs[j]);
            free(jobs[j].theta);
        }
        if (n == 0)
            usleep(1000);
    }
    tf = s_bench_now() - tf;
    if (sim.failed || mfl_round_engine_rounds_done(sim.engine) < (uint32_t)rounds)
        return fprintf(stderr, "bench_meta_fmnist_fed: federated run stopped early\n"), 1;
    exp->q_query = EVAL_QUERY;
    if (mfl_experiment_evaluate(exp, l, mfl_round_engine_theta(sim.engine), 0, 0, &ev_f, err,
                                sizeof(err)))
        return fprintf(stderr, "bench_meta_fmnist_fed: %s\n", err), 1;
    double gap = ev_f.mean.accuracy - ev_c.mean.accuracy;
    printf("ProtoNets %s, 5-way 5-shot, held-out classes, %d episodes x %d query/class\n", EMBED,
           exp->eval_tasks, EVAL_QUERY);
    printf("%-26s %16s %10s %8s\n", "run", "acc ±95%", "vs central", "train s");
    printf("%-26s %8.4f ±%.4f %10s %8s\n", "untrained", ev_0.mean.accuracy, ev_0.accuracy_ci95,
           "", "-");
    printf("%-26s %8.4f ±%.4f %10s %8.1f\n", "centralised", ev_c.mean.accuracy,
           ev_c.accuracy_ci95, "", tc);
    printf("%-26s %8.4f ±%.4f %+10.4f %8.1f\n", "federated (4 class-disjoint)", ev_f.mean.accuracy,
           ev_f.accuracy_ci95, gap, tf);
    printf("episodes: %d centralised = %d rounds x %d sites x %d local steps\n", central_steps,
           rounds, N_SITES, local);
    FILE *f = fopen(out, "w");
    if (f) {
        fprintf(f, "{\"benchmark\":\"meta_fmnist_fed\",\"quick\":%s,\"model\":\"%s\","
                   "\"sites\":%d,\"rounds\":%d,\"local_steps\":%d,\"central_steps\":%d,"
                   "\"eval_tasks\":%d,\"eval_q_query\":%d,\"untrained\":%.5f,"
                   "\"central\":%.5f,\"central_ci95\":%.5f,\"federated\":%.5f,"
                   "\"federated_ci95\":%.5f,\"gap\":%.5f,\"central_seconds\":%.1f,"
                   "\"federated_seconds\":%.1f,\"total_seconds\":%.0f}\n",
                quick ? "true" : "false", EMBED, N_SITES, rounds, local, central_steps,
                exp->eval_tasks, EVAL_QUERY, ev_0.mean.accuracy, ev_c.mean.accuracy,
                ev_c.accuracy_ci95, ev_f.mean.accuracy, ev_f.accuracy_ci95, gap, tc, tf,
                s_bench_now() - t0);
        fclose(f);
        printf("wrote %s\n", out);
    }
    mfl_round_engine_destroy(&sim.engine);
    for (int r = 0; r < N_SITES; r++)
        mfl_site_worker_destroy(&sim.worker[r]);
    mfl_learner_destroy(&l);
    free(theta);
    free(theta0);
    mfl_experiment_destroy(&exp);
    return 0;
}
