/* The coordinator's server step: how the aggregated mean delta moves θ.
 *
 *   SGD (Reptile / FedAvg):  θ ← θ + β · mean          (β = config.lr; β = 1 is FedAvg)
 *   MOMENTUM / ADAM / ADAGRAD (the FedOpt family: FedAvgM, FedAdam,
 *   FedAdagrad): the optimiser of common/nn/optim.h steps θ with the
 *   "gradient" g = −mean, so a plain SGD step of rate β is the line above.
 *
 * The state (optimiser moments + number of steps taken) can be exported for
 * a checkpoint and imported on resume, so a resumed run continues
 * bit-identically. Not thread-safe: one caller at a time. */
#ifndef MFL_FED_SERVER_STEP_H
#define MFL_FED_SERVER_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "nn/optim.h"

typedef struct mfl_server_step mfl_server_step_t;

/* A server step for vectors of `n_params` floats. `config` is copied
 * (config->lr is β). NULL if n_params == 0, lr is not finite and > 0, or
 * out of memory. */
mfl_server_step_t *mfl_server_step_new(const mfl_optim_config_t *config, size_t n_params);

/* Frees; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_server_step_destroy(mfl_server_step_t **self_p);

/* θ ← step(θ, mean) as above. `theta` (n_params, updated in place) and
 * `mean` (n_params, borrowed) are the caller's. Returns 0, or -1 with err if
 * the result would hold NaN/Inf (θ is then left unchanged). */
int mfl_server_step_apply(mfl_server_step_t *self, float *theta, const float *mean, char *err,
                          size_t errlen);

/* The configuration in force (kind, β, hyper-parameters). */
const mfl_optim_config_t *mfl_server_step_config(const mfl_server_step_t *self);

/* Number of successful applies since new (or as imported). */
uint64_t mfl_server_step_count(const mfl_server_step_t *self);

/* Number of floats in the exported optimiser state (0 for SGD). */
size_t mfl_server_step_state_size(const mfl_server_step_t *self);

/* Copies the optimiser state into out[0..state_size) and the step count into
 * *steps (for a checkpoint). */
void mfl_server_step_state_export(const mfl_server_step_t *self, float *out, uint64_t *steps);

/* Restores a state exported by a server step of the same kind and size.
 * Returns 0, or -1 with err if n != state_size or any value is NaN/Inf
 * (state then unchanged). */
int mfl_server_step_state_import(mfl_server_step_t *self, const float *state, size_t n,
                                 uint64_t steps, char *err, size_t errlen);

#endif
