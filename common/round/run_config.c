/* Coordinator YAML → mfl_coord_config_t, every field checked before use. */
#include "round/run_config.h"

#include <math.h>
#include <errno.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "config/yaml_doc.h"
#include "core/log.h"
#include "fed/quant.h"
#include "secagg/secagg_msg.h"
#include "secagg/secagg_update.h"
#include "wire/task.h"

void mfl_coord_config_defaults(mfl_coord_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "tcp://0.0.0.0:7000");
    c->secagg_word_bits = 64;
    mfl_learner_config_defaults(&c->learner, MFL_ALGO_REPTILE);
    c->n_way = 5;
    c->k_shot = 5;
    c->n_query = 5;
    c->init_seed = 1;
    c->clip_norm = 1.0;
    c->noise_multiplier = 1.0;
    c->target_delta = 1e-5;
    c->rounds = 10;
    c->sites_fraction = 1.0;
    c->min_sites = 1;
    c->wait_for_sites = 1;
    c->deadline_ms = 60000;
    c->max_attempts = 0;
    c->max_concurrent_uploads = 2;
    c->seed = 42;
    c->server = mfl_optim_defaults(MFL_OPTIM_SGD, 1.0f);
    c->eval_every = 0;
    c->eval_adapt_steps = 10;
    c->eval_adapt_lr = 0.01f;
    c->eval_deadline_ms = 60000;
    c->max_message_bytes = 256u << 20;
    c->heartbeat_ms = 2000;
    c->site_timeout_ms = 30000;
    c->chunked_upload_bytes = 16u << 20;
    c->upload_chunk_bytes = 1u << 20;
    c->audit_give_up_ms = 300000;
    c->aggregator = MFL_AGG_MEAN;
    c->trim_fraction = 0.2;
    c->krum_f = 1;
    c->robust_max_updates = 32;
}

int mfl_coord_path_resolve(const char *base_file, const char *rel, char *out, size_t outlen)
{
    int n;
    if (rel[0] == '/' || !strchr(base_file, '/')) {
        n = snprintf(out, outlen, "%s", rel);
    } else {
        const char *slash = strrchr(base_file, '/');
        n = snprintf(out, outlen, "%.*s/%s", (int)(slash - base_file), base_file, rel);
    }
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Reads an optional path key into out (resolved), or `def` (relative to
 * the run dir) when absent; def NULL leaves out empty. */
static void s_path(mfl_yaml_doc_t *doc, const mfl_coord_config_t *c, const char *key,
                   const char *def, char *out, size_t outlen)
{
    const char *v = mfl_yaml_get_string(doc, key, NULL);
    int rc = 0;
    if (v && *v)
        rc = mfl_coord_path_resolve(c->file, v, out, outlen);
    else if (def && c->run_dir[0])
        rc = snprintf(out, outlen, "%s/%s", c->run_dir, def) >= (int)outlen ? -1 : 0;
    else
        out[0] = '\0';
    if (rc < 0)
        mfl_yaml_fail(doc, key, "path too long");
}

static uint32_t s_u32(mfl_yaml_doc_t *doc, const char *key, uint32_t def, int64_t lo,
                      int64_t hi)
{
    int64_t v = mfl_yaml_get_int(doc, key, def);
    if (mfl_yaml_check_range(doc, key, v, lo, hi) < 0)
        return def;
    return (uint32_t)v;
}

static uint32_t s_ms(mfl_yaml_doc_t *doc, const char *key, uint32_t def_ms)
{
    double s = mfl_yaml_get_double(doc, key, def_ms / 1000.0);
    if (!(s > 0 && s <= 86400.0)) {
        mfl_yaml_fail(doc, key, "must be in (0, 86400] seconds, got %g", s);
        return def_ms;
    }
    return (uint32_t)llround(s * 1000.0);
}

static float s_pos_float(mfl_yaml_doc_t *doc, const char *key, float def, bool allow_zero)
{
    double v = mfl_yaml_get_double(doc, key, def);
    if (v < 0 || (!allow_zero && v == 0) || v > 1e6) {
        mfl_yaml_fail(doc, key, "must be %s and at most 1e6, got %g",
                      allow_zero ? "≥ 0" : "> 0", v);
        return def;
    }
    return (float)v;
}

static void s_check_all_keys(mfl_yaml_doc_t *doc)
{
    mfl_yaml_check_keys(doc, "", (const char *[]){"coordinator", "model", "algorithm",
                                                  "privacy", "rounds", "server", "eval",
                                                  "selection",
                                                  "output", "limits", "sites", "data",
                                                  "secure_aggregation", NULL});
    mfl_yaml_check_keys(doc, "data", (const char *[]){"schema", "standardize", "scaling_pool", NULL});
    mfl_yaml_check_keys(doc, "secure_aggregation",
                        (const char *[]){"enabled", "threshold", "neighbours", "word_bits",
                                         "update_bound", "phase_deadline_s", NULL});
    mfl_yaml_check_keys(doc, "coordinator",
                        (const char *[]){"listen", "key", "allow_dir", "run_dir", NULL});
    mfl_yaml_check_keys(doc, "model",
                        (const char *[]){"spec", "loss", "pos_weight", "init_seed", NULL});
    mfl_yaml_check_keys(doc, "algorithm",
                        (const char *[]){"name", "inner_steps", "inner_lr", "meta_batch",
                                         "outer_steps", "outer_lr", "outer_optim",
                                         "batch_size", "local_epochs", "n_way", "k_shot",
                                         "n_query", "relation_spec", NULL});
    mfl_yaml_check_keys(doc, "privacy",
                        (const char *[]){"enabled", "clip_norm", "noise_multiplier",
                                         "target_delta", NULL});
    mfl_yaml_check_keys(doc, "rounds",
                        (const char *[]){"count", "sites_per_round", "min_sites",
                                         "wait_for_sites", "deadline_s", "max_attempts",
                                         "norm_bound", "norm_action", "seed",
                                         "max_concurrent_uploads", "upload_encoding",
                                         "broadcast_encoding", NULL});
    mfl_yaml_check_keys(doc, "server",
                        (const char *[]){"optimizer", "lr", "momentum", "beta1", "beta2",
                                         "eps", "aggregator", "trim_fraction", "krum_f",
                                         "krum_m", "max_updates", "max_weight", NULL});
    mfl_yaml_check_keys(doc, "eval",
                        (const char *[]){"every", "adapt_steps", "adapt_lr", "deadline_s",
                                         "adapt_search", NULL});
    mfl_yaml_check_keys(doc, "output",
                        (const char *[]){"checkpoint_dir", "audit_log", "audit_give_up_s",
                                         "metrics", "status", "prometheus_file", NULL});
    mfl_yaml_check_keys(doc, "limits",
                        (const char *[]){"max_message_bytes", "heartbeat_s", "site_timeout_s",
                                         "chunked_upload_bytes", "upload_chunk_bytes", NULL});
}

static void s_read_model(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    const char *algo = mfl_yaml_get_string(doc, "algorithm.name", "reptile");
    mfl_algo_kind_t kind = MFL_ALGO_REPTILE;
    if (mfl_algo_parse(algo, &kind) < 0)
        mfl_yaml_fail(doc, "algorithm.name",
                      "unknown algorithm '%s'; known: fedavg, reptile, fomaml, maml, "
                      "meta_sgd, protonet, matching, relation", algo);
    mfl_learner_config_defaults(&c->learner, kind);
    mfl_learner_config_t *l = &c->learner;

    const char *spec = mfl_yaml_require_string(doc, "model.spec");
    if (spec[strspn(spec, " \t\r\n")] == '\0')
        mfl_yaml_fail(doc, "model.spec", "is empty; e.g. 'mlp:30-32-1' or 'linear:30-1'");
    else if (strlen(spec) >= sizeof l->model_spec)
        mfl_yaml_fail(doc, "model.spec", "longer than %zu characters",
                      sizeof l->model_spec - 1);
    else
        snprintf(l->model_spec, sizeof l->model_spec, "%s", spec);
    const char *loss = mfl_yaml_get_string(doc, "model.loss", NULL);
    if (loss && mfl_loss_parse(loss, &l->loss) < 0)
        mfl_yaml_fail(doc, "model.loss", "unknown loss '%s'; known: softmax_ce, bce, mse",
                      loss);
    l->pos_weight = s_pos_float(doc, "model.pos_weight", l->pos_weight, false);
    c->init_seed = (uint64_t)mfl_yaml_get_int(doc, "model.init_seed", (int64_t)c->init_seed);

    l->inner_steps = (int)s_u32(doc, "algorithm.inner_steps", (uint32_t)l->inner_steps, 0,
                                100000);
    l->inner_lr = s_pos_float(doc, "algorithm.inner_lr", l->inner_lr, true);
    l->meta_batch = (int)s_u32(doc, "algorithm.meta_batch", (uint32_t)l->meta_batch, 1, 100000);
    l->outer_steps = (int)s_u32(doc, "algorithm.outer_steps", (uint32_t)l->outer_steps, 1,
                                100000);
    l->outer_lr = s_pos_float(doc, "algorithm.outer_lr", l->outer_lr, true);
    const char *oo = mfl_yaml_get_string(doc, "algorithm.outer_optim", NULL);
    if (oo && mfl_optim_parse(oo, &l->outer_optim) < 0)
        mfl_yaml_fail(doc, "algorithm.outer_optim",
                      "unknown optimiser '%s'; known: sgd, momentum, adam, adagrad, yogi", oo);
    l->batch_size = mfl_yaml_get_size(doc, "algorithm.batch_size", l->batch_size);
    l->local_epochs = (int)s_u32(doc, "algorithm.local_epochs", (uint32_t)l->local_epochs, 0,
                                 100000);
    c->n_way = s_u32(doc, "algorithm.n_way", c->n_way, 1, 1000);
    c->k_shot = s_u32(doc, "algorithm.k_shot", c->k_shot, 0, 100000);
    c->n_query = s_u32(doc, "algorithm.n_query", c->n_query, 1, 100000);
    const char *rel = mfl_yaml_get_string(doc, "algorithm.relation_spec", NULL);
    if (rel && strlen(rel) >= sizeof l->relation_spec)
        mfl_yaml_fail(doc, "algorithm.relation_spec", "too long");
    else if (rel)
        snprintf(l->relation_spec, sizeof l->relation_spec, "%s", rel);
}

static void s_read_rounds(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    c->rounds = s_u32(doc, "rounds.count", c->rounds, 1, 1000000);
    if (mfl_yaml_has(doc, "rounds.sites_per_round")) {
        const char *v = mfl_yaml_get_string(doc, "rounds.sites_per_round", "all");
        char *end = NULL;
        double f = strcmp(v, "all") == 0 ? 1.0 : strtod(v, &end);
        if ((end && (*end || end == v)) || !(f > 0 && f <= 1))
            mfl_yaml_fail(doc, "rounds.sites_per_round",
                          "must be 'all' or a fraction in (0, 1], got '%s'", v);
        else
            c->sites_fraction = f;
    }
    c->min_sites = s_u32(doc, "rounds.min_sites", c->min_sites, 1, 100000);
    c->wait_for_sites = s_u32(doc, "rounds.wait_for_sites", c->min_sites, 1, 100000);
    if (c->wait_for_sites < c->min_sites)
        mfl_yaml_fail(doc, "rounds.wait_for_sites", "%u is below rounds.min_sites (%u)",
                      c->wait_for_sites, c->min_sites);
    c->deadline_ms = s_ms(doc, "rounds.deadline_s", c->deadline_ms);
    c->max_attempts = s_u32(doc, "rounds.max_attempts", c->max_attempts, 0, 1000000);
    /* 0 would grant nobody: every round would hang until its deadline. */
    c->max_concurrent_uploads = s_u32(doc, "rounds.max_concurrent_uploads",
                                      c->max_concurrent_uploads, 1, 100000);
    double nb = mfl_yaml_get_double(doc, "rounds.norm_bound", 0.0);
    if (nb < 0)
        mfl_yaml_fail(doc, "rounds.norm_bound", "must be ≥ 0 (0 = off), got %g", nb);
    else
        c->norm_bound = nb;
    const char *action = mfl_yaml_get_string(doc, "rounds.norm_action", "reject");
    if (strcmp(action, "reject") != 0 && strcmp(action, "clip") != 0)
        mfl_yaml_fail(doc, "rounds.norm_action", "must be 'reject' or 'clip', got '%s'", action);
    c->norm_clip = strcmp(action, "clip") == 0;
    if (c->norm_clip && c->norm_bound <= 0)
        mfl_yaml_fail(doc, "rounds.norm_action", "'clip' needs rounds.norm_bound > 0");
    c->seed = (uint64_t)mfl_yaml_get_int(doc, "rounds.seed", (int64_t)c->seed);
    const char *enc = mfl_yaml_get_string(doc, "rounds.upload_encoding", "fp32");
    mfl_quant_kind_t k;
    if (mfl_quant_parse(enc, &k) < 0)
        mfl_yaml_fail(doc, "rounds.upload_encoding", "'%s' is not one of fp32, fp16, int8", enc);
    else
        c->upload_encoding = (uint32_t)k;
    enc = mfl_yaml_get_string(doc, "rounds.broadcast_encoding", "fp32");
    if (mfl_quant_parse(enc, &k) < 0)
        mfl_yaml_fail(doc, "rounds.broadcast_encoding", "'%s' is not one of fp32, fp16, int8",
                      enc);
    else
        c->broadcast_encoding = (uint32_t)k;
}

/* server.aggregator and its parameters; checked against the rounds'
 * site counts (Multi-Krum needs 2f + 3 updates to close a round). */
static void s_read_aggregator(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    const char *agg = mfl_yaml_get_string(doc, "server.aggregator", "mean");
    if (mfl_agg_kind_parse(agg, &c->aggregator) < 0)
        mfl_yaml_fail(doc, "server.aggregator",
                      "unknown aggregator '%s'; known: mean, median, trimmed_mean, multi_krum",
                      agg);
    double tf = mfl_yaml_get_double(doc, "server.trim_fraction", c->trim_fraction);
    if (!(tf >= 0 && tf < 0.5))
        mfl_yaml_fail(doc, "server.trim_fraction", "must be in [0, 0.5), got %g", tf);
    else
        c->trim_fraction = tf;
    c->krum_f = s_u32(doc, "server.krum_f", c->krum_f, 0, 1000);
    c->krum_m = s_u32(doc, "server.krum_m", c->krum_m, 0, 100000);
    c->robust_max_updates = s_u32(doc, "server.max_updates", c->robust_max_updates, 1, 4096);
    double mw = mfl_yaml_get_double(doc, "server.max_weight", 0.0);
    if (!(mw >= 0 && mw <= 4294967296.0))
        mfl_yaml_fail(doc, "server.max_weight", "must be in [0, 2^32] (0 = no cap), got %g", mw);
    else
        c->max_weight = mw;
    if (c->aggregator == MFL_AGG_MULTI_KRUM && c->min_sites < 2 * c->krum_f + 3)
        mfl_yaml_fail(doc, "server.krum_f",
                      "multi_krum with krum_f = %u needs rounds.min_sites ≥ %u (2f + 3), "
                      "got %u", c->krum_f, 2 * c->krum_f + 3, c->min_sites);
    if (c->aggregator != MFL_AGG_MEAN && c->min_sites > c->robust_max_updates)
        mfl_yaml_fail(doc, "server.max_updates",
                      "%u is below rounds.min_sites (%u): a round could never close",
                      c->robust_max_updates, c->min_sites);
}

/* After rounds and the aggregator: the checks compare with both. */
static void s_read_secagg(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    c->secagg_enabled = mfl_yaml_get_bool(doc, "secure_aggregation.enabled", false);
    c->secagg_threshold = s_u32(doc, "secure_aggregation.threshold", 3, 3, 255);
    c->secagg_neighbours = s_u32(doc, "secure_aggregation.neighbours", 0, 0, 254);
    c->secagg_word_bits = s_u32(doc, "secure_aggregation.word_bits", 64, 32, 64);
    c->secagg_update_bound = mfl_yaml_get_double(doc, "secure_aggregation.update_bound", 0.0);
    c->secagg_frac_bits = 0;
    /* advertise, share, signoff and unmask each end at this deadline from
     * their start (0: max(1 s, rounds.deadline_s / 4)); the masked phase
     * ends with the round (the sites train meanwhile) */
    c->secagg_phase_ms = mfl_yaml_has(doc, "secure_aggregation.phase_deadline_s")
                             ? s_ms(doc, "secure_aggregation.phase_deadline_s", 0)
                             : 0;
    if (!c->secagg_enabled)
        return;
    if (c->secagg_phase_ms && c->secagg_phase_ms > c->deadline_ms)
        mfl_yaml_fail(doc, "secure_aggregation.phase_deadline_s",
                      "%g s is longer than rounds.deadline_s (%g s): the round would end "
                      "before its first phase", c->secagg_phase_ms / 1000.0,
                      c->deadline_ms / 1000.0);
    /* Masked words narrower than 64 bits: every site's terms must be
     * bounded so that the sum of up to MFL_SECAGG_NARROW_MAX_SITES of them
     * cannot wrap (docs/SECAGG.md "Word width"). */
    if (c->secagg_word_bits != 64 && c->secagg_word_bits != 32) {
        mfl_yaml_fail(doc, "secure_aggregation.word_bits", "must be 64 or 32, got %u",
                      c->secagg_word_bits);
    } else if (c->secagg_word_bits == 64) {
        if (mfl_yaml_has(doc, "secure_aggregation.update_bound"))
            mfl_yaml_fail(doc, "secure_aggregation.update_bound",
                          "only with word_bits 32 (64-bit words use the aggregate's fixed "
                          "bound |w·Δ| ≤ 2^20)");
    } else if (!mfl_yaml_has(doc, "secure_aggregation.update_bound")) {
        mfl_yaml_fail(doc, "secure_aggregation.update_bound",
                      "required with word_bits 32: the largest |w·Δⱼ| a site sends (w its "
                      "weight, e.g. its training rows; Δⱼ a coordinate of its clipped update)");
    } else if (!(c->secagg_update_bound > 0) || !isfinite(c->secagg_update_bound)) {
        mfl_yaml_fail(doc, "secure_aggregation.update_bound", "must be a positive number, got %g",
                      c->secagg_update_bound);
    } else if ((c->secagg_frac_bits = mfl_secagg_update_frac_bits(c->secagg_update_bound)) == 0) {
        mfl_yaml_fail(doc, "secure_aggregation.update_bound",
                      "%g leaves fewer than %d fractional bits in a 32-bit sum of %d sites "
                      "(the most is %g); lower it, or use word_bits 64",
                      c->secagg_update_bound, MFL_SECAGG_MIN_FRAC_BITS,
                      MFL_SECAGG_NARROW_MAX_SITES, ldexp(1.0, 24 - MFL_SECAGG_MIN_FRAC_BITS));
    }
    if (c->secagg_neighbours % 2 != 0)
        mfl_yaml_fail(doc, "secure_aggregation.neighbours",
                      "must be even (a Harary graph), or 0 for every pair; got %u",
                      c->secagg_neighbours);
    else if (c->secagg_neighbours && c->secagg_threshold > c->secagg_neighbours + 1)
        mfl_yaml_fail(doc, "secure_aggregation.threshold",
                      "%u is more than a neighbourhood (neighbours + 1 = %u)",
                      c->secagg_threshold, c->secagg_neighbours + 1);
    /* Fewer sites than the threshold could never be summed: every round
     * would be abandoned at its deadline. */
    if (c->min_sites < c->secagg_threshold)
        mfl_yaml_fail(doc, "rounds.min_sites",
                      "%u is below secure_aggregation.threshold (%u): such a round could "
                      "never be summed",
                      c->min_sites, c->secagg_threshold);
    /* The coordinator no longer sees a site's Δ: the sites clip. */
    if (c->norm_bound > 0)
        mfl_yaml_fail(doc, "rounds.norm_bound",
                      "must be 0 with secure aggregation: the coordinator never sees a site's "
                      "update; bound it at the sites (privacy.clip_norm)");
    /* Robust aggregators and the weight cap need the individual updates. */
    if (c->aggregator != MFL_AGG_MEAN)
        mfl_yaml_fail(doc, "server.aggregator",
                      "must be mean with secure aggregation: a robust aggregator needs the "
                      "individual updates, which the coordinator no longer sees");
    if (c->max_weight > 0)
        mfl_yaml_fail(doc, "server.max_weight",
                      "must be 0 with secure aggregation: the coordinator never sees a site's "
                      "weight, only the sum");
}

static void s_read_server(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    const char *opt = mfl_yaml_get_string(doc, "server.optimizer", "sgd");
    mfl_optim_kind_t kind = MFL_OPTIM_SGD;
    if (mfl_optim_parse(opt, &kind) < 0)
        mfl_yaml_fail(doc, "server.optimizer",
                      "unknown optimiser '%s'; known: sgd (β step), momentum, adam, adagrad, yogi",
                      opt);
    float lr = s_pos_float(doc, "server.lr", 1.0f, false);
    c->server = mfl_optim_defaults(kind, lr);
    c->server.momentum = s_pos_float(doc, "server.momentum", c->server.momentum, true);
    c->server.beta1 = s_pos_float(doc, "server.beta1", c->server.beta1, true);
    c->server.beta2 = s_pos_float(doc, "server.beta2", c->server.beta2, true);
    c->server.eps = s_pos_float(doc, "server.eps", c->server.eps, true);
}

/* One candidate of selection.candidates[i]: the base setting with the
 * keys it names changed. */
static void s_read_candidate(mfl_yaml_doc_t *doc, const mfl_coord_config_t *c, size_t i,
                             const mfl_select_candidate_t *base, mfl_select_candidate_t *out)
{
    char p[96], k[128];
    snprintf(p, sizeof p, "selection.candidates[%zu]", i);
    mfl_yaml_check_keys(doc, p, (const char *[]){"model", "algorithm", "inner_lr",
                                                 "inner_steps", "server_optimizer", "server_lr",
                                                 "adapt_lr", "adapt_steps", "standardize",
                                                 NULL});
    *out = *base;
    snprintf(k, sizeof k, "%s.model", p);
    const char *spec = mfl_yaml_get_string(doc, k, NULL);
    if (spec) {
        unsigned long bi, bo, ci, co;
        bool base_io = mfl_select_spec_io(c->learner.model_spec, &bi, &bo) == 0;
        if (!*spec || strlen(spec) >= sizeof out->learner.model_spec)
            mfl_yaml_fail(doc, k, "must be a model spec of at most %zu characters",
                          sizeof out->learner.model_spec - 1);
        else if (strcmp(spec, c->learner.model_spec) != 0 &&
                 (!base_io || mfl_select_spec_io(spec, &ci, &co) < 0 || ci != bi || co != bo))
            mfl_yaml_fail(doc, k, "'%s' must read the same features and give the same "
                          "outputs as model.spec '%s' (an mlp: or linear: spec with the same "
                          "first and last size)", spec, c->learner.model_spec);
        else
            snprintf(out->learner.model_spec, sizeof out->learner.model_spec, "%s", spec);
    }
    snprintf(k, sizeof k, "%s.algorithm", p);
    const char *algo = mfl_yaml_get_string(doc, k, NULL);
    if (algo && mfl_algo_parse(algo, &out->learner.algo) < 0)
        mfl_yaml_fail(doc, k, "unknown algorithm '%s'", algo);
    snprintf(k, sizeof k, "%s.inner_lr", p);
    out->learner.inner_lr = s_pos_float(doc, k, out->learner.inner_lr, false);
    snprintf(k, sizeof k, "%s.inner_steps", p);
    out->learner.inner_steps = (int)s_u32(doc, k, (uint32_t)out->learner.inner_steps, 1, 10000);
    snprintf(k, sizeof k, "%s.server_optimizer", p);
    const char *opt = mfl_yaml_get_string(doc, k, NULL);
    snprintf(p, sizeof p, "selection.candidates[%zu].server_lr", i);
    if (opt) {
        mfl_optim_kind_t kind;
        if (mfl_optim_parse(opt, &kind) < 0)
            mfl_yaml_fail(doc, k, "unknown optimiser '%s'; known: sgd, momentum, adam, adagrad, "
                          "yogi", opt);
        else
            out->server = mfl_optim_defaults(kind, s_pos_float(doc, p, out->server.lr, false));
    } else {
        out->server.lr = s_pos_float(doc, p, out->server.lr, false);
    }
    snprintf(k, sizeof k, "selection.candidates[%zu].adapt_lr", i);
    out->adapt_lr = s_pos_float(doc, k, out->adapt_lr, true);
    snprintf(k, sizeof k, "selection.candidates[%zu].adapt_steps", i);
    out->adapt_steps = s_u32(doc, k, out->adapt_steps, 0, 100000);
    snprintf(k, sizeof k, "selection.candidates[%zu].standardize", i);
    const char *stdz = mfl_yaml_get_string(doc, k, NULL);
    if (stdz && strcmp(stdz, "federated") == 0)
        out->federated_scaling = true;
    else if (stdz && strcmp(stdz, "site") == 0)
        out->federated_scaling = false;
    else if (stdz)
        mfl_yaml_fail(doc, k, "'%s' is not one of site, federated", stdz);
}

/* selection: after model, algorithm, server and eval (candidates are
 * changes to those). */
static void s_read_selection(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    mfl_yaml_check_keys(doc, "selection", (const char *[]){"enabled", "rounds",
                                                          "validation_fraction",
                                                          "validation_seed", "rule",
                                                          "candidates", "score_adaptation",
                                                          NULL});
    mfl_select_config_t *s = &c->selection;
    s->enabled = mfl_yaml_get_bool(doc, "selection.enabled", false);
    s->rounds = s_u32(doc, "selection.rounds", 5, 1, 100000);
    s->validation_fraction = mfl_yaml_get_double(doc, "selection.validation_fraction", 0.2);
    if (!(s->validation_fraction > 0 && s->validation_fraction <= MFL_TASK_VALIDATION_MAX))
        mfl_yaml_fail(doc, "selection.validation_fraction", "must be in (0, %g], got %g",
                      MFL_TASK_VALIDATION_MAX, s->validation_fraction);
    s->validation_seed = (uint64_t)mfl_yaml_get_int(doc, "selection.validation_seed",
                                                    (int64_t)c->seed);
    const char *score = mfl_yaml_get_string(doc, "selection.score_adaptation", "fixed");
    if (strcmp(score, "search") == 0)
        s->score_search = true;
    else if (strcmp(score, "fixed") != 0)
        mfl_yaml_fail(doc, "selection.score_adaptation", "'%s' is not one of fixed, search",
                      score);
    const char *rule = mfl_yaml_get_string(doc, "selection.rule", "auto");
    if (mfl_select_rule_parse(rule, &s->rule) < 0)
        mfl_yaml_fail(doc, "selection.rule", "'%s' is not one of auto, auroc, accuracy, loss",
                      rule);
    mfl_select_candidate_t base;
    mfl_select_base_scaled(&c->learner, &c->server, c->eval_adapt_steps, c->eval_adapt_lr,
                           c->federated_scaling, &base);
    size_t n = mfl_yaml_len(doc, "selection.candidates");
    if (!mfl_yaml_has(doc, "selection.candidates")) {
        mfl_select_default_grid(&base, s);
    } else if (n == 0 || n > MFL_SELECT_MAX_CANDIDATES ||
               mfl_yaml_kind(doc, "selection.candidates") != MFL_YAML_SEQUENCE) {
        mfl_yaml_fail(doc, "selection.candidates", "must be a list of 1 to %d candidates (each "
                      "a mapping of the settings it changes; {} = the configured ones)",
                      MFL_SELECT_MAX_CANDIDATES);
    } else {
        s->n_candidates = n;
        for (size_t i = 0; i < n; i++)
            s_read_candidate(doc, c, i, &base, &s->candidates[i]);
    }
    if (s->enabled && c->secagg_enabled)
        mfl_yaml_fail(doc, "selection.enabled", "model selection does not run under "
                      "secure_aggregation yet");
}

static void s_read_privacy(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    c->dp_enabled = mfl_yaml_get_bool(doc, "privacy.enabled", false);
    c->clip_norm = s_pos_float(doc, "privacy.clip_norm", (float)c->clip_norm, false);
    c->noise_multiplier = s_pos_float(doc, "privacy.noise_multiplier",
                                      (float)c->noise_multiplier, true);
    double d = mfl_yaml_get_double(doc, "privacy.target_delta", c->target_delta);
    if (!(d > 0 && d < 1))
        mfl_yaml_fail(doc, "privacy.target_delta", "must be in (0, 1), got %g", d);
    else
        c->target_delta = d;
}

static void s_read_sites(mfl_yaml_doc_t *doc, mfl_coord_config_t *c)
{
    const char **items = NULL;
    size_t n = 0;
    if (mfl_yaml_get_string_list(doc, "sites", &items, &n) < 0)
        return;
    if (n > MFL_COORD_MAX_SITES) {
        mfl_yaml_fail(doc, "sites", "%zu sites; at most %d", n, MFL_COORD_MAX_SITES);
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (mfl_coord_path_resolve(c->file, items[i], c->sites[i], sizeof c->sites[i]) < 0)
            mfl_yaml_fail(doc, "sites", "path too long: %s", items[i]);
    }
    c->n_sites = n;
    free(items);
}

int mfl_coord_listen_check(const char *listen, char *why, size_t whylen)
{
    if (!listen || !*listen) {
        snprintf(why, whylen, "is empty");
        return -1;
    }
    if (strncmp(listen, "tcp://", 6) != 0) {
        snprintf(why, whylen, "does not start with tcp://");
        return -1;
    }
    const char *colon = strrchr(listen + 6, ':');
    if (!colon || colon == listen + 6) {
        snprintf(why, whylen, "has no %s", colon ? "host" : "port");
        return -1;
    }
    const char *port = colon + 1;
    if (strcmp(port, "*") == 0)
        return 0;
    char *end = NULL;
    errno = 0;
    long v = *port ? strtol(port, &end, 10) : -1;
    if (!*port || errno || *end || v < 1 || v > 65535 || !isdigit((unsigned char)*port)) {
        snprintf(why, whylen, "has port '%s', not a number in 1-65535 or *", port);
        return -1;
    }
    return 0;
}

static int s_from_doc(mfl_yaml_doc_t *doc, mfl_coord_config_t *c, char *err, size_t errlen)
{
    s_check_all_keys(doc);

    const char *listen = mfl_yaml_get_string(doc, "coordinator.listen", c->listen);
    char why[128];
    if (strlen(listen) >= sizeof c->listen)
        mfl_yaml_fail(doc, "coordinator.listen", "too long");
    else if (mfl_coord_listen_check(listen, why, sizeof why) < 0)
        /* Caught here, at FILE:LINE, rather than as ZeroMQ's bare "Invalid
         * argument" from bind (or a port silently wrapped: 99999 listened
         * on 34463). */
        mfl_yaml_fail(doc, "coordinator.listen",
                      "'%s' %s: it must look like tcp://HOST:PORT with PORT 1-65535 (e.g. "
                      "tcp://0.0.0.0:7000, or tcp://127.0.0.1:* for any free port)",
                      listen, why);
    else
        snprintf(c->listen, sizeof c->listen, "%s", listen);
    s_path(doc, c, "coordinator.run_dir", NULL, c->run_dir, sizeof c->run_dir);
    if (!c->run_dir[0] && mfl_coord_path_resolve(c->file, "run", c->run_dir,
                                                  sizeof c->run_dir) < 0)
        mfl_yaml_fail(doc, "coordinator.run_dir", "path too long");
    s_path(doc, c, "coordinator.key", NULL, c->key_file, sizeof c->key_file);
    s_path(doc, c, "coordinator.allow_dir", NULL, c->allow_dir, sizeof c->allow_dir);

    s_read_model(doc, c);
    c->model_line = mfl_yaml_line(doc, "model.spec");
    /* The consortium's data schema: sites are checked against it at Hello. */
    s_path(doc, c, "data.schema", NULL, c->schema_file, sizeof c->schema_file);
    c->schema_line = mfl_yaml_line(doc, "data.schema");
    s_read_privacy(doc, c);
    s_read_rounds(doc, c);
    s_read_server(doc, c);
    s_read_aggregator(doc, c);
    s_read_secagg(doc, c);

    c->eval_every = s_u32(doc, "eval.every", c->eval_every, 0, 1000000);
    c->eval_adapt_steps = s_u32(doc, "eval.adapt_steps", c->eval_adapt_steps, 0, 100000);
    c->eval_adapt_lr = s_pos_float(doc, "eval.adapt_lr", c->eval_adapt_lr, true);
    c->eval_deadline_ms = s_ms(doc, "eval.deadline_s", c->eval_deadline_ms);
    c->eval_adapt_search = mfl_yaml_get_bool(doc, "eval.adapt_search", false);
    const char *stdz = mfl_yaml_get_string(doc, "data.standardize", "site");
    if (strcmp(stdz, "federated") == 0)
        c->federated_scaling = true;
    else if (strcmp(stdz, "site") != 0)
        mfl_yaml_fail(doc, "data.standardize", "'%s' is not one of site, federated", stdz);
    s_read_selection(doc, c);
    const char *pool = mfl_yaml_get_string(doc, "data.scaling_pool", "mean");
    bool any_federated = c->federated_scaling;
    for (size_t i = 0; i < c->selection.n_candidates; i++)
        any_federated = any_federated || c->selection.candidates[i].federated_scaling;
    if (strcmp(pool, "median") == 0)
        c->scaling_pool_median = true;
    else if (strcmp(pool, "mean") != 0)
        mfl_yaml_fail(doc, "data.scaling_pool", "'%s' is not one of mean, median", pool);
    if (mfl_yaml_has(doc, "data.scaling_pool") && !any_federated)
        mfl_yaml_fail(doc, "data.scaling_pool", "pools the sites' moments, which only "
                      "data.standardize: federated (or a selection candidate with it) asks for");

    s_path(doc, c, "output.checkpoint_dir", "checkpoints", c->checkpoint_dir,
           sizeof c->checkpoint_dir);
    s_path(doc, c, "output.audit_log", "audit.log", c->audit_log, sizeof c->audit_log);
    c->audit_give_up_ms = s_ms(doc, "output.audit_give_up_s", c->audit_give_up_ms);
    s_path(doc, c, "output.metrics", "metrics.jsonl", c->metrics_file, sizeof c->metrics_file);
    s_path(doc, c, "output.status", "status.json", c->status_file, sizeof c->status_file);
    /* Opt-in: "" (no default) writes no Prometheus file. */
    s_path(doc, c, "output.prometheus_file", NULL, c->prometheus_file,
           sizeof c->prometheus_file);

    c->max_message_bytes_set = mfl_yaml_has(doc, "limits.max_message_bytes");
    c->max_message_bytes = mfl_yaml_get_size(doc, "limits.max_message_bytes",
                                             c->max_message_bytes);
    if (c->max_message_bytes < 4096)
        mfl_yaml_fail(doc, "limits.max_message_bytes", "must be at least 4K");
    c->heartbeat_ms = s_ms(doc, "limits.heartbeat_s", c->heartbeat_ms);
    c->site_timeout_set = mfl_yaml_has(doc, "limits.site_timeout_s");
    c->site_timeout_ms = s_ms(doc, "limits.site_timeout_s", c->site_timeout_ms);
    c->chunked_upload_bytes = mfl_yaml_get_size(doc, "limits.chunked_upload_bytes",
                                                c->chunked_upload_bytes);
    c->upload_chunk_bytes = mfl_yaml_get_size(doc, "limits.upload_chunk_bytes",
                                              c->upload_chunk_bytes);
    if (c->upload_chunk_bytes < 4096 || c->upload_chunk_bytes > (64u << 20) ||
        c->upload_chunk_bytes % 4)
        mfl_yaml_fail(doc, "limits.upload_chunk_bytes",
                      "must be a multiple of 4 from 4K to 64M (got %llu)",
                      (unsigned long long)c->upload_chunk_bytes);

    s_read_sites(doc, c);

    int rc = mfl_yaml_error(doc, err, errlen);
    mfl_yaml_destroy(&doc);
    return rc;
}

static int s_begin(const char *path, mfl_coord_config_t *c, char *err, size_t errlen)
{
    mfl_coord_config_defaults(c);
    if (strlen(path) >= sizeof c->file) {
        mfl_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    snprintf(c->file, sizeof c->file, "%s", path);
    return 0;
}

int mfl_coord_config_load(const char *path, mfl_coord_config_t *c, char *err, size_t errlen)
{
    if (s_begin(path, c, err, errlen) < 0)
        return -1;
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, errlen);
    return doc ? s_from_doc(doc, c, err, errlen) : -1;
}

int mfl_coord_config_parse(const char *text, size_t len, const char *name,
                           mfl_coord_config_t *c, char *err, size_t errlen)
{
    if (s_begin(name, c, err, errlen) < 0)
        return -1;
    mfl_yaml_doc_t *doc = mfl_yaml_parse(text, len, name, err, errlen);
    return doc ? s_from_doc(doc, c, err, errlen) : -1;
}

int mfl_coord_config_apply_selection(mfl_coord_config_t *c, char *err, size_t errlen)
{
    const mfl_select_config_t *s = &c->selection;
    if (!s->enabled || !s->n_candidates)
        return 0;
    uint8_t digest[32];
    mfl_select_digest(s, c->seed, c->init_seed, digest);
    char path[MFL_COORD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/selection.state", c->checkpoint_dir);
    size_t w = 0;
    int found = mfl_select_state_read(path, digest, s->n_candidates, &w, err, errlen);
    if (found != 1)
        return found;
    c->learner = s->candidates[w].learner;
    c->server = s->candidates[w].server;
    c->eval_adapt_steps = s->candidates[w].adapt_steps;
    c->eval_adapt_lr = s->candidates[w].adapt_lr;
    c->federated_scaling = s->candidates[w].federated_scaling;
    return 1;
}

size_t mfl_coord_config_message_bytes(const mfl_coord_config_t *config, size_t n_state)
{
    if (config->max_message_bytes_set)
        return config->max_message_bytes;
    /* Chunked uploads on (docs/WIRE.md "Chunked uploads"): no site message
     * is bigger than the chunked-upload threshold or a chunk, so the limit
     * need not grow with the model. */
    if (!config->secagg_enabled && config->chunked_upload_bytes) {
        uint64_t big = config->chunked_upload_bytes > config->upload_chunk_bytes
                           ? config->chunked_upload_bytes
                           : config->upload_chunk_bytes;
        size_t need = big + (1u << 20) > SIZE_MAX ? SIZE_MAX : (size_t)big + (1u << 20);
        return need > config->max_message_bytes ? need : config->max_message_bytes;
    }
    /* a masked input is n_state + 1 words of 8 or 4 bytes (docs/SECAGG.md) */
    size_t per = config->secagg_enabled && config->secagg_word_bits != 32 ? 8 : 4,
           words = n_state + (config->secagg_enabled ? 1 : 0);
    size_t need = words > (SIZE_MAX - (1u << 20)) / per ? SIZE_MAX : per * words + (1u << 20);
    return need > config->max_message_bytes ? need : config->max_message_bytes;
}

uint32_t mfl_coord_config_site_timeout_ms(const mfl_coord_config_t *config, size_t n_state)
{
    if (config->site_timeout_set || config->site_timeout_ms == 0)
        return config->site_timeout_ms;
    uint64_t units = (n_state + MFL_COORD_SITE_TIMEOUT_PARAMS - 1) / MFL_COORD_SITE_TIMEOUT_PARAMS;
    uint64_t ms = (uint64_t)config->site_timeout_ms * (units ? units : 1);
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}
