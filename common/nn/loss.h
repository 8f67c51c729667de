/* Losses over model outputs [batch][n_out].
 *
 * Targets `y` hold one float per row for classification (the class index
 * for softmax cross-entropy, 0 or 1 for binary cross-entropy with n_out 1)
 * and n_out floats per row for mean squared error. Every loss is the mean
 * over the batch. */
#ifndef MFL_NN_LOSS_H
#define MFL_NN_LOSS_H

#include <stddef.h>

typedef enum {
    MFL_LOSS_SOFTMAX_CE = 0, /* multi-class, logits in, class index target */
    MFL_LOSS_BCE = 1,        /* binary, one logit in, 0/1 target */
    MFL_LOSS_MSE = 2,        /* regression */
} mfl_loss_kind_t;

typedef struct {
    mfl_loss_kind_t kind;
    float pos_weight; /* BCE: weight of positive rows (1 = unweighted) */
} mfl_loss_t;

/* Parses "softmax_ce", "bce" or "mse"; returns -1 for anything else. */
int mfl_loss_parse(const char *text, mfl_loss_kind_t *kind);
const char *mfl_loss_name(mfl_loss_kind_t kind);

/* Returns the mean loss; if `dout` is not NULL, writes dL/dout
 * ([batch][n_out]). Numerically stable (log-sum-exp, softplus).
 *   softmax_ce: mean over rows of logsumexp(z) − z[y]
 *   bce:        mean over rows of pw·y·softplus(−z) + (1−y)·softplus(z)
 *               (y may be a soft label in [0,1]; needs n_out = 1)
 *   mse:        mean over ALL batch·n_out elements of (out − y)²
 * Returns NAN (and zeroes dout) for batch 0, a class index that is not an
 * integer in [0, n_out), a BCE target outside [0,1], n_out ≠ 1 or a
 * pos_weight that is not finite and > 0. */
float mfl_loss_eval(const mfl_loss_t *loss, const float *out, const float *y, size_t batch,
                    size_t n_out, float *dout);

/* The loss's Hessian with respect to the outputs applied to a direction:
 * rdout ← ∇²_out L · rout ([batch][n_out] each). With the forward-mode
 * derivative of the outputs as `rout`, this is the R-operator of dL/dout
 * that mfl_model_hvp needs. Returns 0, or -1 for the same invalid input
 * (bad shape or target) that makes mfl_loss_eval return NAN. */
int mfl_loss_hvp(const mfl_loss_t *loss, const float *out, const float *y, size_t batch,
                 size_t n_out, const float *rout, float *rdout);

#endif
