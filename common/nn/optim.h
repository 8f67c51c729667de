/* First-order optimisers over a flat float vector: SGD, SGD with momentum
 * (v ← μv + g; θ ← θ − lr·v), Adam (bias-corrected), Adagrad and Yogi
 * (Zaheer et al. 2018, as FedYogi uses it: Reddi et al. 2021, Algorithm 2,
 * no bias correction):
 *   m ← β1·m + (1−β1)·g;  v ← v − (1−β2)·g²·sign(v − g²);  θ ← θ − lr·m/(√v + ε). Used by inner loops, outer loops and the coordinator's server
 * step (FedAvgM / FedAdam treat −Δ as the gradient). */
#ifndef MFL_NN_OPTIM_H
#define MFL_NN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    MFL_OPTIM_SGD = 0,
    MFL_OPTIM_MOMENTUM = 1,
    MFL_OPTIM_ADAM = 2,
    MFL_OPTIM_ADAGRAD = 3,
    MFL_OPTIM_YOGI = 4,
    MFL_OPTIM_LAST = MFL_OPTIM_YOGI, /* the largest valid kind (checkpoints check it) */
} mfl_optim_kind_t;

typedef struct {
    mfl_optim_kind_t kind;
    float lr;
    float momentum; /* MOMENTUM: velocity decay (0.9) */
    float beta1;    /* ADAM: 0.9; YOGI: 0.9 */
    float beta2;    /* ADAM: 0.999; YOGI: 0.99 */
    float eps;      /* ADAM: 1e-8; ADAGRAD: 1e-10; YOGI: 1e-3 (τ of Reddi et al.) */
} mfl_optim_config_t;

typedef struct mfl_optim mfl_optim_t;

/* Parses "sgd", "momentum", "adam", "adagrad" or "yogi"; -1 otherwise. */
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

/* The state as a flat vector (for checkpoints): size, pointer. Layout:
 * SGD none (size 0, pointer NULL); MOMENTUM the velocity [n]; ADAM and
 * YOGI the first then the second moment [2n]; ADAGRAD the sum of squared
 * gradients [n]. Writable: restore a checkpoint by copying into it. */
size_t mfl_optim_state_size(const mfl_optim_t *self);
float *mfl_optim_state(mfl_optim_t *self);

/* Steps taken since creation or reset (Adam's bias correction depends on
 * it, so a checkpoint must carry it next to the state vector). */
uint64_t mfl_optim_step_count(const mfl_optim_t *self);
void mfl_optim_set_step_count(mfl_optim_t *self, uint64_t steps);

/* The configuration the optimiser was created with. */
const mfl_optim_config_t *mfl_optim_config(const mfl_optim_t *self);
const char *mfl_optim_name(mfl_optim_kind_t kind);

#endif
