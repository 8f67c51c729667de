/* SGD, momentum, Adam, Adagrad and Yogi over flat float vectors. The update
 * arithmetic is in float, like the parameters; the only double is Adam's
 * bias correction, which needs β^t for large t. */
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mfl_optim {
    mfl_optim_config_t config;
    size_t n;
    uint64_t steps;
    size_t state_size;
    float *state; /* see optim.h for the layout */
};

static const char *const s_names[] = {"sgd", "momentum", "adam", "adagrad", "yogi"};

int mfl_optim_parse(const char *text, mfl_optim_kind_t *kind)
{
    for (size_t i = 0; text && i < sizeof s_names / sizeof s_names[0]; i++)
        if (strcmp(text, s_names[i]) == 0) {
            *kind = (mfl_optim_kind_t)i;
            return 0;
        }
    return -1;
}

const char *mfl_optim_name(mfl_optim_kind_t kind)
{
    return (unsigned)kind < sizeof s_names / sizeof s_names[0] ? s_names[kind] : "unknown";
}

mfl_optim_config_t mfl_optim_defaults(mfl_optim_kind_t kind, float lr)
{
    mfl_optim_config_t c = {
        .kind = kind, .lr = lr, .momentum = 0.9f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (kind == MFL_OPTIM_ADAGRAD)
        c.eps = 1e-10f;
    if (kind == MFL_OPTIM_YOGI) { /* Reddi et al. 2021's server defaults */
        c.beta2 = 0.99f;
        c.eps = 1e-3f;
    }
    return c;
}

mfl_optim_t *mfl_optim_new(const mfl_optim_config_t *config, size_t n)
{
    if (!config || (unsigned)config->kind > MFL_OPTIM_LAST)
        return NULL;
    mfl_optim_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->config = *config;
    self->n = n;
    switch (config->kind) {
    case MFL_OPTIM_SGD: self->state_size = 0; break;
    case MFL_OPTIM_MOMENTUM:
    case MFL_OPTIM_ADAGRAD: self->state_size = n; break;
    case MFL_OPTIM_ADAM:
    case MFL_OPTIM_YOGI:
        if (n > SIZE_MAX / 2 / sizeof(float))
            goto fail;
        self->state_size = 2 * n;
        break;
    }
    if (self->state_size && !(self->state = calloc(self->state_size, sizeof(float))))
        goto fail;
    return self;
fail:
    free(self);
    return NULL;
}

void mfl_optim_destroy(mfl_optim_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->state);
    free(*self_p);
    *self_p = NULL;
}

void mfl_optim_step(mfl_optim_t *self, float *theta, const float *grad)
{
    const mfl_optim_config_t *c = &self->config;
    const size_t n = self->n;
    const float lr = c->lr;
    if (++self->steps == 0) /* a restored count of 2^64 − 1 must not divide by 0 */
        self->steps = 1;
    switch (c->kind) {
    case MFL_OPTIM_SGD:
        for (size_t i = 0; i < n; i++)
            theta[i] -= lr * grad[i];
        break;
    case MFL_OPTIM_MOMENTUM: {
        float *v = self->state;
        for (size_t i = 0; i < n; i++) {
            v[i] = c->momentum * v[i] + grad[i];
            theta[i] -= lr * v[i];
        }
        break;
    }
    case MFL_OPTIM_ADAM: {
        float *m = self->state, *v = self->state + n;
        const double t = (double)self->steps;
        /* Folding both bias corrections into the step size:
         * θ −= lr·sqrt(1−β2^t)/(1−β1^t) · m / (sqrt(v) + ε'), with
         * ε' = ε·sqrt(1−β2^t) so it matches the textbook form exactly. */
        const double c1 = 1.0 - pow(c->beta1, t), c2 = 1.0 - pow(c->beta2, t);
        const float alpha = (float)(lr * sqrt(c2) / c1);
        const float eps = (float)(c->eps * sqrt(c2));
        for (size_t i = 0; i < n; i++) {
            m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * grad[i];
            v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * grad[i] * grad[i];
            theta[i] -= alpha * m[i] / (sqrtf(v[i]) + eps);
        }
        break;
    }
    case MFL_OPTIM_ADAGRAD: {
        float *s = self->state;
        for (size_t i = 0; i < n; i++) {
            s[i] += grad[i] * grad[i];
            theta[i] -= lr * grad[i] / (sqrtf(s[i]) + c->eps);
        }
        break;
    }
    case MFL_OPTIM_YOGI: {
        /* v moves towards g² by at most (1−β2)·g² per step, in either
         * direction: unlike Adam it cannot grow quickly after a large
         * gradient, which is what makes it steadier on federated updates. */
        float *m = self->state, *v = self->state + n;
        for (size_t i = 0; i < n; i++) {
            const float g2 = grad[i] * grad[i];
            const float d = v[i] - g2;
            const float sign = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
            m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * grad[i];
            v[i] = v[i] - (1.0f - c->beta2) * g2 * sign;
            theta[i] -= lr * m[i] / (sqrtf(v[i]) + c->eps);
        }
        break;
    }
    }
}

void mfl_optim_reset(mfl_optim_t *self)
{
    self->steps = 0;
    if (self->state)
        memset(self->state, 0, self->state_size * sizeof *self->state);
}

size_t mfl_optim_state_size(const mfl_optim_t *self) { return self->state_size; }
float *mfl_optim_state(mfl_optim_t *self) { return self->state; }
uint64_t mfl_optim_step_count(const mfl_optim_t *self) { return self->steps; }
void mfl_optim_set_step_count(mfl_optim_t *self, uint64_t steps) { self->steps = steps; }
const mfl_optim_config_t *mfl_optim_config(const mfl_optim_t *self) { return &self->config; }
