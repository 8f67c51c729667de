/* metafl simulate: the coordinator's round engine with every site as an
 * in-process peer (site_worker.h), no sockets. The same config as the
 * daemon plus `sites:` (site config files); the same engine, the same
 * checks, the same checkpoints and metrics, so one config run both ways
 * ends with the same θ, bit for bit (tests/integration/
 * test_federated_simulate_matches_daemons.sh). */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "round/run_config.h"
#include "core/log.h"
#include "nn/blas.h"
#include "round/round_engine.h"
#include "secagg/secagg_local.h"
#include "secagg/secagg_update.h"
#include "site/site_config.h"
#include "site/site_worker.h"
#include "wire/keys.h"
#include "wire/message.h"
#include "fed/quant.h"
#include "wire/task_codec.h"

int mfl_cmd_simulate(int argc, char **argv);

typedef struct {
    mfl_site_config_t cfg;
    mfl_site_worker_t *worker;
    mfl_public_key_t pk; /* from the coordinator's allow-list, to verify */
    bool have_pk;
    mfl_identity_t *id;  /* its identity, kept for secure aggregation's signatures */
} sim_site_t;

/* Secure aggregation: a site's update held until every job of the round
 * ran, then summed by the protocol (docs/SECAGG.md). */
typedef struct {
    size_t site;
    uint32_t round;
    uint8_t nonce[16];
    float *delta;
    double n_samples, loss_before, loss_after;
} sim_pending_t;

typedef struct {
    size_t site;
    bool eval;
    uint8_t *task;       /* packed RoundTask / EvalTask */
    size_t task_len;
    float *theta;        /* θ when the task was sent */
    size_t n_theta;      /* its size then (model selection changes the model) */
} sim_job_t;

typedef struct {
    sim_site_t *sites;
    size_t n_sites;
    sim_job_t *jobs;
    size_t n_jobs, cap_jobs, head;
    mfl_round_engine_t *engine;
    bool oom;
    const mfl_coord_config_t *config;
    sim_pending_t *pending; /* n_sites slots */
    size_t n_pending;
} sim_t;

static long s_find(const sim_t *sim, const char *site)
{
    for (size_t i = 0; i < sim->n_sites; i++) {
        if (strcmp(sim->sites[i].cfg.site_id, site) == 0)
            return (long)i;
    }
    return -1;
}

/* Queues a task: the sink must not call back into the engine, and the
 * task and θ are only borrowed, so both are copied. */
static int s_queue(sim_t *sim, const char *site, bool eval, const ProtobufCMessage *msg)
{
    long i = s_find(sim, site);
    if (i < 0)
        return -1;
    if (sim->n_jobs == sim->cap_jobs) {
        size_t cap = sim->cap_jobs ? 2 * sim->cap_jobs : 16;
        sim_job_t *j = realloc(sim->jobs, cap * sizeof *j);
        if (!j)
            return sim->oom = true, -1;
        sim->jobs = j;
        sim->cap_jobs = cap;
    }
    size_t n = mfl_round_engine_n_state(sim->engine);
    sim_job_t job = {(size_t)i, eval, NULL, protobuf_c_message_get_packed_size(msg), NULL, n};
    job.task = malloc(job.task_len ? job.task_len : 1);
    job.theta = malloc(n * sizeof(float));
    if (!job.task || !job.theta) {
        free(job.task);
        free(job.theta);
        return sim->oom = true, -1;
    }
    protobuf_c_message_pack(msg, job.task);
    /* a round's task: the model the sites train from (θ̂ with a compressed
     * broadcast, which a daemon's site rebuilds from the difference and
     * checks against the task's model hash; fed/bcast.h); an evaluation: θ */
    memcpy(job.theta,
           eval ? mfl_round_engine_theta(sim->engine)
                : mfl_round_engine_broadcast_theta(sim->engine),
           n * sizeof(float));
    sim->jobs[sim->n_jobs++] = job;
    return 0;
}

/* Tasks go through the task codec and protobuf bytes as on the wire, so
 * a site here sees exactly what a daemon's site would. */
static int s_sink_task(void *ctx, const char *site, const mfl_round_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    (void)t;
    (void)n;
    mfl_round_task_msg_t m;
    mfl_round_task_to_msg(task, &m);
    return s_queue(ctx, site, false, &m.msg.base);
}

static int s_sink_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                       const mfl_tensor_t *t, size_t n)
{
    (void)t;
    (void)n;
    mfl_eval_task_msg_t m;
    mfl_eval_task_to_msg(task, &m);
    return s_queue(ctx, site, true, &m.msg.base);
}

/* What the wire server checks before an update reaches the engine: the
 * site's signature over the header, and the signed hashes against Δ. */
static int s_verify(const sim_site_t *s, const mfl_site_round_result_t *res,
                    const Metafl__UpdateHeader *h)
{
    if (s->have_pk) {
        if (res->signature_len != MFL_SITE_SIGNATURE_BYTES ||
            crypto_sign_verify_detached(res->signature, res->header, res->header_len,
                                        s->pk.sign_pk) != 0) {
            mfl_warn("site %s: update signature does not verify against %s.pub",
                     s->cfg.site_id, s->cfg.site_id);
            return -1;
        }
    }
    size_t nt = mfl_site_worker_n_tensors(s->worker);
    if (h->n_tensor_hashes != nt) {
        mfl_warn("site %s: %zu signed hashes for %zu tensors", s->cfg.site_id,
                 h->n_tensor_hashes, nt);
        return -1;
    }
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_site_worker_tensor(s->worker, i);
        uint8_t hash[32];
        if (res->chunk_values) { /* asked in chunks: the hash of its chunks' hashes */
            mfl_quant_kind_t k = (mfl_quant_kind_t)res->encoding;
            size_t elem = res->encoding ? mfl_quant_bytes(k, 1) : sizeof(float);
            const uint8_t *b = res->encoding
                                   ? res->encoded + mfl_quant_bytes(k, ti->offset)
                                   : (const uint8_t *)(res->delta + ti->offset);
            mfl_chunked_bytes_hash(b, ti->count * elem, (size_t)res->chunk_values * elem, hash);
        } else if (res->encoding) { /* the bytes the agent would send */
            mfl_quant_kind_t k = (mfl_quant_kind_t)res->encoding;
            crypto_generichash(hash, 32, res->encoded + mfl_quant_bytes(k, ti->offset),
                               mfl_quant_bytes(k, ti->count), NULL, 0);
        } else {
            mfl_tensor_hash(res->delta + ti->offset, ti->count, hash);
        }
        if (h->tensor_hashes[i].len != 32 || memcmp(hash, h->tensor_hashes[i].data, 32) != 0) {
            mfl_warn("site %s: tensor %zu does not match its signed hash", s->cfg.site_id, i);
            return -1;
        }
    }
    return 0;
}

static void s_hold(sim_t *sim, size_t site, const mfl_update_header_t *h, const float *delta)
{
    size_t n = mfl_round_engine_n_state(sim->engine);
    if (sim->n_pending >= sim->n_sites || h->nonce_len != 16)
        return; /* cannot happen: one job per selected site, nonces checked by the worker */
    sim_pending_t *p = &sim->pending[sim->n_pending];
    if (!(p->delta = malloc(n * sizeof *p->delta))) {
        sim->oom = true;
        return;
    }
    memcpy(p->delta, delta, n * sizeof *p->delta);
    p->site = site;
    p->round = h->round;
    memcpy(p->nonce, h->nonce, sizeof p->nonce);
    /* not sent (DP or SecAgg): weight 1, as the round engine weights it */
    p->n_samples = h->not_sent & MFL_STAT_N_SAMPLES ? 1.0 : (double)h->n_samples;
    /* NaN: not sent (DP or SecAgg), so the secure sum's loss is NaN and left out */
    bool losses = h->has_metrics && !(h->not_sent & MFL_STAT_LOSSES);
    p->loss_before = losses ? h->metrics.loss_before : NAN;
    p->loss_after = losses ? h->metrics.loss_after : NAN;
    sim->n_pending++;
}

static int s_by_site_id(const void *a, const void *b, void *sites)
{
    const sim_site_t *s = sites;
    return strcmp(s[((const sim_pending_t *)a)->site].cfg.site_id,
                  s[((const sim_pending_t *)b)->site].cfg.site_id);
}

/* The held updates of one attempt, summed by secure aggregation among the
 * sites that produced them (indices 1..n in site-id order) and handed to
 * the engine as one sum. Updates of another attempt are dropped. */
static void s_secure_round(sim_t *sim)
{
    const size_t P = mfl_round_engine_n_state(sim->engine), L = P + 1;
    const uint32_t round = mfl_round_engine_round(sim->engine);
    const uint8_t *nonce = mfl_round_engine_nonce(sim->engine);
    size_t n = 0;
    for (size_t k = 0; k < sim->n_pending; k++) {
        if (sim->pending[k].round == round && memcmp(sim->pending[k].nonce, nonce, 16) == 0)
            sim->pending[n++] = sim->pending[k];
        else
            free(sim->pending[k].delta);
    }
    sim->n_pending = 0;
    qsort_r(sim->pending, n, sizeof *sim->pending, s_by_site_id, sim->sites);
    char err[512];
    const unsigned bits = sim->config->secagg_word_bits == 32 ? 32 : 64;
    const size_t wb = bits / 8;
    mfl_secagg_params_t p = {.n_sites = (uint32_t)n, .neighbours = sim->config->secagg_neighbours,
                             .length = L, .word_bits = bits};
    p.threshold = mfl_secagg_attempt_threshold(p.n_sites, p.neighbours,
                                               sim->config->secagg_threshold);
    p.scope.round = round;
    memcpy(p.scope.nonce, nonce, sizeof p.scope.nonce);
    /* the sites' quantisation, as over the daemons (the task's word width and F) */
    mfl_aggregate_t *enc = mfl_secagg_update_aggregate(P, bits, sim->config->secagg_frac_bits);
    unsigned char *words = malloc((n + 1) * L * wb);
    const void **inputs = calloc(n ? n : 1, sizeof *inputs);
    uint8_t (*sks)[64] = sodium_malloc((n ? n : 1) * 64);
    uint8_t (*roster)[32] = calloc(n ? n : 1, 32);
    const char **ids = calloc(n ? n : 1, sizeof *ids);
    int ok = enc && words && inputs && sks && roster && ids;
    if (!ok)
        sim->oom = true;
    for (size_t k = 0; ok && k < n; k++) {
        const sim_pending_t *h = &sim->pending[k];
        sim_site_t *s = &sim->sites[h->site];
        if (!s->id) {
            mfl_warn("site %s: no signing key: cannot take part in secure aggregation",
                     s->cfg.site_id);
            ok = 0;
            break;
        }
        memcpy(sks[k], mfl_identity_sign_sk(s->id), 64);
        crypto_sign_ed25519_sk_to_pk(roster[k], sks[k]);
        ids[k] = s->cfg.site_id;
        inputs[k] = words + k * L * wb;
        /* The site's own check: the same quantisation and bound as the
         * coordinator's aggregate, before masking. */
        if (mfl_secagg_update_encode(enc, h->delta, h->n_samples, words + k * L * wb, err,
                                     sizeof err) < 0) {
            mfl_warn("site %s: update refused by its own encoder: %s", s->cfg.site_id, err);
            ok = 0;
            break;
        }
    }
    void *sum = words + n * L * wb;
    uint8_t transcript[32];
    if (ok && mfl_secagg_local_sum(&p, (const uint8_t (*)[64])sks, (const uint8_t (*)[32])roster,
                                   inputs, sum, transcript, err, sizeof err) < 0) {
        mfl_warn("round %u: secure aggregation of %zu sites abandoned: %s", round, n, err);
        ok = 0;
    }
    if (ok)
        mfl_info("round %u: secure aggregation of %zu sites (threshold %u, %s), sum unmasked",
                 round, n, p.threshold,
                 p.neighbours && p.neighbours + 1 < n ? "SecAgg+" : "every pair");
    /* As over the daemons, the coordinator learns no site's losses under
     * SecAgg: the round's losses are "not sent" (NaN), not a plain sum. */
    if (ok && mfl_round_engine_secure_sum(sim->engine, round, nonce, ids, n, sum, L, NAN, NAN,
                                          transcript, mfl_round_engine_now(sim->engine), err,
                                          sizeof err) < 0)
        mfl_warn("round %u: secure sum refused: %s", round, err);
    for (size_t k = 0; k < n; k++)
        free(sim->pending[k].delta);
    if (sks)
        sodium_free(sks);
    mfl_aggregate_destroy(&enc);
    free(words);
    free(inputs);
    free(roster);
    free(ids);
}

static void s_run_round_job(sim_t *sim, const sim_job_t *job)
{
    sim_site_t *s = &sim->sites[job->site];
    char err[512];
    Metafl__RoundTask *task = metafl__round_task__unpack(NULL, job->task_len, job->task);
    if (!task)
        return;
    mfl_round_task_t plain;
    mfl_site_round_result_t res;
    int rc = mfl_round_task_from_msg(task, &plain, err, sizeof err);
    if (rc == 0)
        rc = mfl_site_worker_round(s->worker, &plain, job->theta, job->n_theta, &res, err,
                                   sizeof err);
    if (rc == MFL_SITE_ROUND_DECLINED) {
        /* The site's privacy policy refused the task: as a daemon would, it
         * withdraws from the round with the rule as the reason. */
        mfl_warn("site %s: round %u declined by the site's privacy policy: %s",
                 s->cfg.site_id, task->round, err);
        mfl_round_engine_site_withdraw(sim->engine, s->cfg.site_id, MFL_ENGINE_SITE_FAILED, false,
                                       plain.round, plain.nonce, plain.nonce_len, err,
                                       mfl_round_engine_now(sim->engine));
        metafl__round_task__free_unpacked(task, NULL);
        return;
    }
    if (rc != 0) {
        mfl_warn("site %s: round %u failed: %s", s->cfg.site_id, task->round, err);
        metafl__round_task__free_unpacked(task, NULL);
        return;
    }
    metafl__round_task__free_unpacked(task, NULL);
    Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, res.header_len, res.header);
    mfl_update_header_t header;
    if (!h || s_verify(s, &res, h) < 0 ||
        mfl_update_header_from_msg(h, &header, err, sizeof err) < 0) {
        if (h)
            metafl__update_header__free_unpacked(h, NULL);
        return;
    }
    if (sim->config->secagg_enabled) {
        s_hold(sim, job->site, &header, res.delta);
        metafl__update_header__free_unpacked(h, NULL);
        return;
    }
    size_t nt = mfl_site_worker_n_tensors(s->worker);
    mfl_tensor_t *views = calloc(nt ? nt : 1, sizeof *views);
    if (views) {
        for (size_t i = 0; i < nt; i++) {
            const mfl_tensor_info_t *ti = mfl_site_worker_tensor(s->worker, i);
            views[i] = mfl_tensor_info_view(ti, res.delta);
            /* as the wire hands them over: decoded values, how they came */
            views[i].encoding = res.encoding;
            views[i].scale = res.encoding ? res.scales[i] : 0;
        }
        mfl_round_engine_update(sim->engine, s->cfg.site_id, &header, views, nt, res.header,
                                res.header_len, res.signature, res.signature_len,
                                mfl_round_engine_now(sim->engine));
    } else {
        sim->oom = true;
    }
    free(views);
    metafl__update_header__free_unpacked(h, NULL);
}

static void s_run_eval_job(sim_t *sim, const sim_job_t *job)
{
    sim_site_t *s = &sim->sites[job->site];
    char err[512];
    Metafl__EvalTask *task = metafl__eval_task__unpack(NULL, job->task_len, job->task);
    if (!task)
        return;
    mfl_eval_task_t plain;
    mfl_site_eval_result_t res;
    if (mfl_eval_task_from_msg(task, &plain, err, sizeof err) < 0 ||
        mfl_site_worker_eval(s->worker, &plain, job->theta,
                             job->n_theta, &res, err, sizeof err) != 0) {
        mfl_warn("site %s: evaluation not reported: %s", s->cfg.site_id, err);
    } else {
        mfl_eval_report_t report;
        mfl_site_worker_fill_report(s->worker, &plain, &res, &report);
        mfl_round_engine_eval_report(sim->engine, s->cfg.site_id, &report,
                                     mfl_round_engine_now(sim->engine));
    }
    metafl__eval_task__free_unpacked(task, NULL);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl simulate --config COORDINATOR.yaml [--run-dir DIR] [--threads N]\n"
            "                       [--log-level LEVEL]\n\n"
            "Runs the coordinator's rounds with every site of the config's `sites:` list\n"
            "in this process (no sockets, same round engine, same checks). One JSON line\n"
            "per round goes to the metrics file; checkpoints to the checkpoint dir.\n"
            "With `secure_aggregation: {enabled: true}` in the config, each round's\n"
            "updates are summed by the secure aggregation protocol among the sites\n"
            "(docs/SECAGG.md): the engine gets only the sum, and the same θ.\n\n"
            "  --config FILE   coordinator config with a `sites:` list of site configs\n"
            "  --run-dir DIR   put checkpoints, metrics, audit log and status under DIR\n"
            "                  (instead of the config's), e.g. to compare with a daemon run\n"
            "  --threads N     OpenBLAS threads (default 1)\n"
            "  --log-level L   debug, info (default), warn, error\n");
}

static int s_override_run_dir(mfl_coord_config_t *c, const char *dir)
{
    int bad = 0;
    bad |= snprintf(c->run_dir, sizeof c->run_dir, "%s", dir) >= (int)sizeof c->run_dir;
    bad |= snprintf(c->checkpoint_dir, sizeof c->checkpoint_dir, "%s/checkpoints", dir) >=
           (int)sizeof c->checkpoint_dir;
    bad |= snprintf(c->metrics_file, sizeof c->metrics_file, "%s/metrics.jsonl", dir) >=
           (int)sizeof c->metrics_file;
    bad |= snprintf(c->status_file, sizeof c->status_file, "%s/status.json", dir) >=
           (int)sizeof c->status_file;
    bad |= snprintf(c->audit_log, sizeof c->audit_log, "%s/audit.log", dir) >=
           (int)sizeof c->audit_log;
    return bad ? -1 : 0;
}

static int s_open_sites(sim_t *sim, const mfl_coord_config_t *config)
{
    char err[1024];
    for (size_t i = 0; i < config->n_sites; i++) {
        sim_site_t *s = &sim->sites[i];
        if (mfl_site_config_load(config->sites[i], &s->cfg, err, sizeof err) < 0) {
            mfl_error("%s", err);
            return -1;
        }
        sim->n_sites = i + 1;
        s->worker = mfl_site_worker_new(&s->cfg, err, sizeof err);
        if (!s->worker) {
            mfl_error("site %s: %s", s->cfg.site_id, err);
            return -1;
        }
        if (s->cfg.privacy.mode != MFL_PRIVACY_MODE_NONE) {
            /* In-process: no audit log to read the budget from; this run's
             * releases are counted from zero, in memory (docs/PRIVACY.md). */
            mfl_privacy_accountant_t zero;
            mfl_privacy_accountant_init(&zero, NULL, 0, NULL, 0);
            mfl_site_worker_set_ledger(s->worker, &zero, NULL);
            mfl_info("site %s: privacy mode %s, budget %g: simulate counts this run's "
                     "releases from zero, in memory", s->cfg.site_id,
                     mfl_privacy_mode_name(s->cfg.privacy.mode), s->cfg.privacy.epsilon_budget);
        }
        mfl_identity_t *id = mfl_identity_load(s->cfg.key_file, err, sizeof err);
        if (id) {
            if (mfl_site_worker_set_signing_key(s->worker, mfl_identity_sign_sk(id)) < 0) {
                mfl_identity_destroy(&id);
                mfl_error("site %s: out of secure memory", s->cfg.site_id);
                return -1;
            }
            if (config->secagg_enabled)
                s->id = id; /* freed with the site */
            else
                mfl_identity_destroy(&id);
        } else {
            mfl_warn("site %s: no signing key (%s); its updates are unsigned", s->cfg.site_id,
                     err);
        }
        char pub[MFL_COORD_PATH_MAX + 80];
        snprintf(pub, sizeof pub, "%s/%s.pub", config->allow_dir, s->cfg.site_id);
        s->have_pk = config->allow_dir[0] && mfl_public_key_load(pub, &s->pk, err, sizeof err) == 0;
        if (!s->have_pk)
            mfl_warn("site %s: not in the allow-list (%s): signatures not checked",
                     s->cfg.site_id, pub);
    }
    return 0;
}

int mfl_cmd_simulate(int argc, char **argv)
{
    const char *config_path = NULL, *run_dir = NULL;
    int threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "metafl simulate: '%s' needs a value or is unknown\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--config") == 0) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--run-dir") == 0) {
            run_dir = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0) {
            threads = atoi(argv[++i]);
            if (threads < 1 || threads > 256) {
                fprintf(stderr, "metafl simulate: --threads must be 1..256\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--log-level") == 0) {
            mfl_log_level_t level;
            if (mfl_log_level_parse(argv[++i], &level) < 0) {
                fprintf(stderr, "metafl simulate: bad --log-level '%s'\n", argv[i]);
                return 2;
            }
            mfl_log_set_level(level);
        } else {
            fprintf(stderr, "metafl simulate: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!config_path) {
        s_usage(stderr);
        return 2;
    }
    mfl_log_set_program("simulate");
    mfl_blas_set_threads(threads);
    char err[1024];
    static mfl_coord_config_t config; /* large: keep it off the stack */
    if (mfl_coord_config_load(config_path, &config, err, sizeof err) < 0) {
        mfl_error("%s", err);
        return 1;
    }
    if (run_dir && s_override_run_dir(&config, run_dir) < 0) {
        mfl_error("--run-dir: path too long");
        return 1;
    }
    if (config.n_sites == 0) {
        mfl_error("%s: simulate needs a `sites:` list of site config files", config.file);
        return 1;
    }
    int status = 1;
    sim_t sim;
    memset(&sim, 0, sizeof sim);
    mfl_identity_t *coord_id = NULL;
    sim.sites = calloc(config.n_sites, sizeof *sim.sites);
    sim.config = &config;
    sim.pending = calloc(config.n_sites, sizeof *sim.pending);
    if (!sim.sites || !sim.pending || s_open_sites(&sim, &config) < 0)
        goto out_free;
    if (config.key_file[0])
        coord_id = mfl_identity_load(config.key_file, err, sizeof err);
    if (!coord_id && config.audit_log[0])
        mfl_warn("no coordinator key (%s): no audit log in simulate", err);
    mfl_engine_sink_t sink = {&sim, s_sink_task, s_sink_eval, NULL, NULL, NULL, NULL};
    sim.engine = mfl_round_engine_new(&config, &sink,
                                      coord_id ? mfl_identity_name(coord_id) : NULL,
                                      coord_id ? mfl_identity_sign_sk(coord_id) : NULL, err,
                                      sizeof err);
    if (!sim.engine) {
        mfl_error("%s", err);
        goto out_free;
    }
    for (size_t i = 0; i < sim.n_sites; i++) {
        /* what the agent's Hello would offer (upload.encodings) */
        mfl_round_engine_site_encodings(sim.engine, sim.sites[i].cfg.site_id,
                                        mfl_site_worker_encodings(sim.sites[i].worker));
        mfl_round_engine_site_hello(sim.engine, sim.sites[i].cfg.site_id,
                                    mfl_site_worker_n_train(sim.sites[i].worker), mfl_round_engine_now(sim.engine));
    }
    for (;;) {
        /* In simulate every site is always alive. */
        for (size_t i = 0; i < sim.n_sites; i++)
            mfl_round_engine_site_seen(sim.engine, sim.sites[i].cfg.site_id, mfl_round_engine_now(sim.engine));
        mfl_round_engine_tick(sim.engine, mfl_round_engine_now(sim.engine));
        mfl_engine_phase_t ph = mfl_round_engine_phase(sim.engine);
        if (sim.oom || ph == MFL_ENGINE_DONE || ph == MFL_ENGINE_FAILED ||
            ph == MFL_ENGINE_ABORTED)
            break;
        if (sim.head < sim.n_jobs) {
            sim_job_t job = sim.jobs[sim.head++];
            if (job.eval)
                s_run_eval_job(&sim, &job);
            else
                s_run_round_job(&sim, &job);
            free(job.task);
            free(job.theta);
            if (sim.head == sim.n_jobs)
                sim.head = sim.n_jobs = 0;
        } else if (sim.n_pending > 0) {
            s_secure_round(&sim); /* every job of the round ran */
        } else {
            usleep(5000); /* a site failed: the deadline decides */
        }
    }
    if (sim.oom)
        mfl_error("out of memory");
    else if (mfl_round_engine_phase(sim.engine) == MFL_ENGINE_DONE)
        status = 0;
    {
        /* θ's digest, as the daemons' metrics print it (theta_blake2b) */
        const uint8_t *hash = mfl_round_engine_theta_hash(sim.engine);
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", hash[i]);
        printf("simulate: %u rounds done, final theta blake2b %s\n",
               mfl_round_engine_rounds_done(sim.engine), hex);
    }
out_free:
    for (size_t i = sim.head; i < sim.n_jobs; i++) {
        free(sim.jobs[i].task);
        free(sim.jobs[i].theta);
    }
    free(sim.jobs);
    mfl_round_engine_destroy(&sim.engine);
    mfl_identity_destroy(&coord_id);
    for (size_t i = 0; i < sim.n_sites; i++) {
        mfl_site_worker_destroy(&sim.sites[i].worker);
        mfl_identity_destroy(&sim.sites[i].id);
        mfl_site_config_clear(&sim.sites[i].cfg);
    }
    for (size_t k = 0; k < sim.n_pending; k++)
        free(sim.pending[k].delta);
    free(sim.pending);
    free(sim.sites);
    return status;
}
