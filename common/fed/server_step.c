/* Server step: θ ← θ + β·mean, or a FedOpt optimiser fed with −mean. */
#include "fed/server_step.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fed/vec.h"

struct mfl_server_step {
    mfl_optim_config_t config;
    size_t n;
    mfl_optim_t *optim;     /* NULL for plain SGD */
    uint64_t steps;
    float *grad;            /* n: −mean */
    float *theta_new;       /* n: candidate θ, committed only if finite */
    float *state_saved;     /* state_size: rolled back if the step fails */
};

mfl_server_step_t *mfl_server_step_new(const mfl_optim_config_t *config, size_t n_params)
{
    if (!config || n_params == 0 || !isfinite(config->lr) || config->lr <= 0 ||
        (unsigned)config->kind > MFL_OPTIM_LAST)
        return NULL;
    mfl_server_step_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->n = n_params;
    /* Plain SGD needs no candidate copy of θ (it checks, then writes in
     * place: 4·P bytes less at the coordinator's peak); an optimiser does,
     * to roll its step back. */
    if (config->kind != MFL_OPTIM_SGD) {
        self->theta_new = malloc(n_params * sizeof(float));
        self->optim = mfl_optim_new(config, n_params);
        self->grad = malloc(n_params * sizeof(float));
        if (!self->theta_new || !self->optim || !self->grad)
            goto fail;
        size_t ss = mfl_optim_state_size(self->optim);
        if (ss && !(self->state_saved = malloc(ss * sizeof(float))))
            goto fail;
    }
    return self;
fail:
    mfl_server_step_destroy(&self);
    return NULL;
}

void mfl_server_step_destroy(mfl_server_step_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_server_step_t *self = *self_p;
    mfl_optim_destroy(&self->optim);
    free(self->grad);
    free(self->theta_new);
    free(self->state_saved);
    free(self);
    *self_p = NULL;
}

/* 1 and *at = the index if v has a NaN or ±Inf (vectorised: fed/vec.h). */
static int s_first_nonfinite(const float *v, size_t n, size_t *at)
{
    *at = mfl_vec_first_nonfinite(v, n);
    return *at < n;
}

/* 1 and *at = the first index where θ + β·mean (the same float expression
 * the step then stores) is not finite; computed without storing, so θ is
 * touched only once the whole step is known to be finite. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
static int s_sgd_check(const float *theta, const float *mean, float beta, size_t n, size_t *at)
{
    enum { BLOCK = 1024 };
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t m = n - i < BLOCK ? n - i : BLOCK;
        uint32_t any = 0;
        for (size_t j = i; j < i + m; j++) {
            float x = theta[j] + beta * mean[j];
            uint32_t b;
            memcpy(&b, &x, sizeof b);
            any |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
        }
        if (!any)
            continue;
        for (size_t j = i; j < i + m; j++) {
            if (!isfinite(theta[j] + beta * mean[j])) {
                *at = j;
                return 1;
            }
        }
    }
    return 0;
}

int mfl_server_step_apply(mfl_server_step_t *self, float *theta, const float *mean, char *err,
                          size_t errlen)
{
    const size_t n = self->n;
    size_t bad;
    if (s_first_nonfinite(mean, n, &bad)) {
        mfl_errf(err, errlen, "server step: mean[%zu] is not finite", bad);
        return -1;
    }
    if (!self->optim) {
        const float beta = self->config.lr;
        if (s_sgd_check(theta, mean, beta, n, &bad)) {
            mfl_errf(err, errlen, "server step gives non-finite theta[%zu]; θ kept", bad);
            return -1;
        }
        for (size_t i = 0; i < n; i++)
            theta[i] += beta * mean[i];
        self->steps++;
        return 0;
    }
    memcpy(self->theta_new, theta, n * sizeof(float));
    {
        size_t ss = mfl_optim_state_size(self->optim);
        float *state = mfl_optim_state(self->optim);
        uint64_t opt_steps = mfl_optim_step_count(self->optim);
        if (ss)
            memcpy(self->state_saved, state, ss * sizeof(float));
        for (size_t i = 0; i < n; i++)
            self->grad[i] = -mean[i];
        mfl_optim_step(self->optim, self->theta_new, self->grad);
        size_t bad_state;
        if (s_first_nonfinite(self->theta_new, n, &bad) ||
            (ss && s_first_nonfinite(state, ss, &bad_state))) {
            if (ss)
                memcpy(state, self->state_saved, ss * sizeof(float));
            mfl_optim_set_step_count(self->optim, opt_steps);
            mfl_errf(err, errlen, "server step (%s) gives a non-finite θ or state; θ kept",
                     mfl_optim_name(self->config.kind));
            return -1;
        }
    }
    memcpy(theta, self->theta_new, n * sizeof(float));
    self->steps++;
    return 0;
}

const mfl_optim_config_t *mfl_server_step_config(const mfl_server_step_t *self)
{
    return &self->config;
}

uint64_t mfl_server_step_count(const mfl_server_step_t *self)
{
    return self->steps;
}

size_t mfl_server_step_state_size(const mfl_server_step_t *self)
{
    return self->optim ? mfl_optim_state_size(self->optim) : 0;
}

void mfl_server_step_state_export(const mfl_server_step_t *self, float *out, uint64_t *steps)
{
    size_t ss = mfl_server_step_state_size(self);
    if (ss)
        memcpy(out, mfl_optim_state(self->optim), ss * sizeof(float));
    if (steps)
        *steps = self->steps;
}

int mfl_server_step_state_import(mfl_server_step_t *self, const float *state, size_t n,
                                 uint64_t steps, char *err, size_t errlen)
{
    size_t ss = mfl_server_step_state_size(self);
    if (n != ss) {
        mfl_errf(err, errlen, "server step (%s): state has %zu floats, expected %zu",
                 mfl_optim_name(self->config.kind), n, ss);
        return -1;
    }
    size_t bad;
    if (ss && s_first_nonfinite(state, ss, &bad)) {
        mfl_errf(err, errlen, "server step state[%zu] is not finite", bad);
        return -1;
    }
    if (ss)
        memcpy(mfl_optim_state(self->optim), state, ss * sizeof(float));
    /* The optimiser's own step count drives Adam's bias correction; the
     * server applies exactly one optimiser step per server step. */
    if (self->optim)
        mfl_optim_set_step_count(self->optim, steps);
    self->steps = steps;
    return 0;
}
