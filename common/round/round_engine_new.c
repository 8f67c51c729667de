/* Building the round engine: learner layout, θ (fresh or resumed from the
 * latest checkpoint), aggregator, server step, audit log, metrics file. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "fed/checkpoint.h"
#include "round/round_engine_internal.h"
#include "secagg/secagg_update.h"
#include "round/run_model.h"

/* Binds a checkpoint to the model it was written for: spec, algorithm and
 * the state size, so a config edit cannot resume into the wrong θ. */
static void s_model_hash(const mfl_round_engine_t *self, uint8_t out[32])
{
    mfl_run_model_hash(&self->config.learner, self->n_state, out);
}

static int s_layout(mfl_round_engine_t *self)
{
    size_t nt = mfl_learner_n_tensors(self->learner);
    self->n_tensors = nt;
    self->views = calloc(nt ? nt : 1, sizeof *self->views);
    self->tensor_offset = calloc(nt ? nt : 1, sizeof *self->tensor_offset);
    self->parts = calloc(nt ? nt : 1, sizeof *self->parts);
    self->cap_parts = nt ? nt : 1;
    self->theta_tensor_hash = calloc(nt ? nt : 1, 32);
    if (!self->views || !self->tensor_offset || !self->parts ||
        !self->theta_tensor_hash)
        return -1;
    size_t next = 0;
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(self->learner, i);
        self->views[i] = mfl_tensor_info_view(ti, self->theta);
        self->tensor_offset[i] = ti->offset;
        /* Updates are folded and hashed tensor by tensor as if flat. */
        MFL_ASSERT(ti->offset == next);
        next += ti->count;
    }
    MFL_ASSERT(next == self->n_state);
    return 0;
}

bool mfl_engine_has_checkpoint(const mfl_round_engine_t *self)
{
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    char path[MFL_COORD_PATH_MAX];
    char err[256];
    int have = mfl_checkpoint_latest(self->config.checkpoint_dir, &ck, path, sizeof path, err,
                                     sizeof err);
    mfl_checkpoint_clear(&ck);
    return have != 0;
}

/* Loads the latest checkpoint: 1 (its path in path[MFL_COORD_PATH_MAX]),
 * 0 if there is none and the run directory holds no earlier run, -1. */
static int s_resume(mfl_round_engine_t *self, char *path, char *err, size_t errlen)
{
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    int found = mfl_checkpoint_latest(self->config.checkpoint_dir, &ck, path,
                                      MFL_COORD_PATH_MAX, err, errlen);
    if (found == 0)
        return mfl_engine_check_fresh_start(self, err, errlen);
    if (found < 0)
        return found;
    int rc = -1;
    if (ck.n_params != self->n_state || memcmp(ck.model_hash, self->model_hash, 32) != 0) {
        mfl_errf(err, errlen, "%s: checkpoint is for another model (%zu parameters; the config "
                 "has %s with %zu); use another output.checkpoint_dir", path, ck.n_params,
                 self->config.learner.model_spec, self->n_state);
        goto out_clear;
    }
    if (ck.seed != self->config.seed || ck.optim_kind != (uint32_t)self->config.server.kind) {
        mfl_errf(err, errlen, "%s: checkpoint has seed %llu and server optimiser %u; the config "
                 "has seed %llu and %s", path, (unsigned long long)ck.seed, ck.optim_kind,
                 (unsigned long long)self->config.seed, mfl_optim_name(self->config.server.kind));
        goto out_clear;
    }
    if (mfl_server_step_state_import(self->step, ck.optim_state, ck.n_optim_state,
                                     ck.optim_steps, err, errlen) < 0)
        goto out_clear;
    memcpy(self->theta, ck.theta, self->n_state * sizeof(float));
    self->rounds_done = (uint32_t)ck.round;
    /* θ̂ of a compressed broadcast: the next round's difference is to it
     * (without one, the next round starts θ̂ from θ) */
    mfl_engine_bcast_free(self);
    if (ck.broadcast && mfl_engine_bcast_on(self) &&
        mfl_engine_bcast_adopt(self, ck.broadcast, self->rounds_done) < 0) {
        mfl_errf(err, errlen, "%s: out of memory for the broadcast model", path);
        goto out_clear;
    }
    self->round = self->rounds_done + 1;
    mfl_info("resumed from %s: %u of %u rounds done", path, self->rounds_done,
             self->config.rounds);
    rc = 1;
out_clear:
    mfl_checkpoint_clear(&ck);
    return rc;
}

void mfl_engine_unbind(mfl_round_engine_t *self)
{
    (void)mfl_engine_checkpoint_join(self);
    mfl_learner_destroy(&self->learner);
    mfl_aggregate_destroy(&self->agg);
    mfl_server_step_destroy(&self->step);
    mfl_engine_robust_reset(self);
    free(self->theta);
    free(self->views);
    free(self->tensor_offset);
    free(self->parts);
    free(self->theta_tensor_hash);
    mfl_engine_bcast_free(self);
    self->theta = NULL;
    self->views = NULL;
    self->tensor_offset = NULL;
    self->parts = NULL;
    self->cap_parts = 0;
    self->theta_tensor_hash = NULL;
    self->n_state = self->n_tensors = 0;
}

int mfl_engine_bind(mfl_round_engine_t *self, char *err, size_t errlen)
{
    const mfl_coord_config_t *config = &self->config;
    self->learner = mfl_learner_new(&config->learner, 1, err, errlen);
    if (!self->learner)
        return -1;
    self->n_state = mfl_learner_n_state(self->learner);
    /* from the configured value each time: a selection candidate's model
     * may be of another size */
    self->config.site_timeout_ms = self->site_timeout_config_ms;
    self->config.site_timeout_ms = mfl_coord_config_site_timeout_ms(&self->config, self->n_state);
    self->theta = malloc(self->n_state * sizeof(float));
    /* under secure aggregation the quantisation every site encodes with
     * (32-bit words: a bounded aggregate; docs/SECAGG.md "Word width") */
    self->agg = config->secagg_enabled
                    ? mfl_secagg_update_aggregate(self->n_state, config->secagg_word_bits,
                                                  config->secagg_frac_bits)
                    : mfl_aggregate_new(self->n_state);
    self->step = mfl_server_step_new(&config->server, self->n_state);
    if (config->secagg_enabled && !self->agg && self->theta) {
        mfl_errf(err, errlen, "%s: secure_aggregation: no quantisation for word_bits %u with "
                 "%u fractional bits", config->file, config->secagg_word_bits,
                 config->secagg_frac_bits);
        return -1;
    }
    if (!self->theta || !self->agg || s_layout(self) < 0) {
        mfl_errf(err, errlen, "out of memory for a model of %zu parameters", self->n_state);
        return -1;
    }
    if (!self->step) {
        mfl_errf(err, errlen, "%s: server: bad optimiser settings (lr %g)", config->file,
                 (double)config->server.lr);
        return -1;
    }
    s_model_hash(self, self->model_hash);
    mfl_learner_init_state(self->learner, self->theta, config->init_seed);
    return 0;
}

mfl_round_engine_t *mfl_round_engine_new(const mfl_coord_config_t *config,
                                         const mfl_engine_sink_t *sink, const char *writer,
                                         const uint8_t *audit_sk, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    mfl_round_engine_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->config = *config;
    self->site_timeout_config_ms = config->site_timeout_ms;
    if (sink)
        self->sink = *sink;
    mfl_round_engine_set_clock(self, NULL);
    if (mfl_mkdir_p(config->checkpoint_dir, 0755, err, errlen) < 0)
        goto out_fail;
    /* Model selection decides the setting this engine starts with: its
     * first candidate, or the winner a restart finds on record. */
    if (mfl_engine_select_start(self, err, errlen) < 0)
        goto out_fail;
    /* Federated standardisation: the pooled scaling on record, or owed. */
    if (mfl_engine_scaling_start(self, err, errlen) < 0)
        goto out_fail;
    if (mfl_engine_bind(self, err, errlen) < 0)
        goto out_fail;
    self->round = 1;
    char ck_path[MFL_COORD_PATH_MAX];
    int resumed = s_resume(self, ck_path, err, errlen);
    if (resumed < 0)
        goto out_fail;
    mfl_engine_hash_theta(self);
    if (config->metrics_file[0]) {
        self->metrics = fopen(config->metrics_file, "a");
        if (!self->metrics) {
            mfl_errf(err, errlen, "%s: cannot open the metrics file for appending",
                     config->metrics_file);
            goto out_fail;
        }
    }
    if (config->audit_log[0] && audit_sk) {
        snprintf(self->audit_writer, sizeof self->audit_writer, "%s",
                 writer ? writer : "coordinator");
        self->audit = mfl_audit_open(config->audit_log, self->audit_writer, audit_sk, err,
                                     errlen);
        if (!self->audit)
            goto out_fail;
        /* Sync once per round (round_close.c), not per record: a process
         * crash loses nothing (each record is one write), a power loss at
         * most the round in flight, which the checkpoint loses too. */
        mfl_audit_set_deferred_sync(self->audit, true);
    }
    self->phase = MFL_ENGINE_WAITING;
    if (resumed == 1 && mfl_engine_reconcile(self, ck_path, err, errlen) < 0)
        goto out_fail;
    return self;
out_fail:
    mfl_round_engine_destroy(&self);
    return NULL;
}

void mfl_round_engine_destroy(mfl_round_engine_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_round_engine_t *self = *self_p;
    /* The last checkpoint becomes durable before the process goes. */
    mfl_engine_unbind(self);
    mfl_engine_audit_free(self);
    mfl_audit_destroy(&self->audit);
    mfl_upload_gate_destroy(&self->gate);
    mfl_engine_secagg_free(self);
    if (self->metrics)
        fclose(self->metrics);
    free(self->sel_scores);
    free(self->sel_score_site);
    mfl_engine_scaling_free(self);
    free(self->sites);
    free(self);
    *self_p = NULL;
}
