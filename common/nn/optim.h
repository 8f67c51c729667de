/* First-order optimisers over a flat float vector: SGD, SGD with momentum
 * and Adam. Used by inner loops, outer loops and the coordinator's server
 * step (FedAvgM / FedAdam treat −Δ as the gradient). */
#ifndef MFL_NN_OPTIM_H
#define MFL_NN_OPTIM_H

#include <stddef.h>

typedef enum {
    MFL_OPTIM_SGD = 0,
    MFL_OPTIM_MOMENTUM = 1,
    MFL_OPTIM_ADAM = 2,
    MFL_OPTIM_ADAGRAD = 3,
} mfl_optim_kind_t;

typedef struct {
    mfl_optim_kind_t kind;
    float lr;
    float momentum; /* MOMENTUM: velocity decay (0.9) */
    float beta1;    /* ADAM: 0.9 */
    float beta2;    /* ADAM: 0.999 */
    float eps;      /* ADAM/ADAGRAD: 1e-8 */
} mfl_optim_config_t;

typedef struct mfl_optim mfl_optim_t;

/* Parses "sgd", "momentum", "adam" or "adagrad"; -1 otherwise. */
int mfl_optim_parse(const char *text, mfl_optim_kind_t *kind);

/* Default hyper-parameters for `kind` with learning rate `lr`. */
mfl_optim_config_t mfl_optim_defaults(mfl_optim_kind_t kind, float lr);

/* A new optimiser for vectors of `n` floats (state zeroed); NULL on OOM. */
mfl_optim_t *mfl_optim_new(const mfl_optim_config_t *config, size_t n);
void mfl_optim_destroy(mfl_optim_t **self_p);

/* θ ← step(θ, grad). */
void mfl_optim_step(mfl_optim_t *self, float *theta, const float *grad);

/* Zeroes the state (moments, step count). */
void mfl_optim_reset(mfl_optim_t *self);

/* The state as a flat vector (for checkpoints): size, pointer. */
size_t mfl_optim_state_size(const mfl_optim_t *self);
float *mfl_optim_state(mfl_optim_t *self);

#endif
