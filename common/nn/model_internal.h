/* The model's layer graph, shared by model.c and the passes that need its
 * activations layer by layer (per_example.c). Private to common/nn: not a
 * contract for other modules; see model.h for the public API. */
#ifndef MFL_NN_MODEL_INTERNAL_H
#define MFL_NN_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn/model.h"

#define S_MAX_LAYERS 40

typedef enum { S_DENSE, S_CONV, S_NORM, S_RELU, S_POOL } s_kind_t;

typedef struct {
    s_kind_t kind;
    size_t c, h, w;          /* input channels (dense: features), height, width */
    size_t oc, oh, ow;       /* output */
    size_t in_size, out_size; /* floats per sample */
    size_t w_off, b_off;     /* weight/scale and bias/shift offsets in θ */
    float *out;              /* [max_batch][out_size]; ReLU: its input's buffer */
    float *xh, *r;           /* norm: normalised input, 1/std per sample */
    uint32_t *idx;           /* pool: argmax per output */
    float *rout, *rxh, *rr;  /* R-pass tangents (lazily allocated) */
} s_layer_t;

struct mfl_model {
    char spec[128];
    size_t max_batch, n_in, n_out, n_params;
    size_t n_layers, n_tensors;
    s_layer_t layers[S_MAX_LAYERS];
    mfl_tensor_info_t tensors[2 * S_MAX_LAYERS];
    size_t batch;           /* rows in the last forward; 0 before any */
    size_t max_act;         /* floats per sample of the widest in/out */
    size_t max_cols;        /* floats of one image's im2col */
    float *x;               /* copy of the last input */
    float *g0, *g1;         /* backward ping-pong [max_batch][max_act] */
    float *cols, *dcols;    /* im2col scratch */
    float *out, *dout;      /* loss_grad scratch [max_batch][n_out] */
    float *gsmall;          /* sgd_step: one layer's non-dense-weight gradient */
    size_t max_small;       /* its floats: the largest bias, conv kernel+bias or norm pair */
    float *gfull;           /* sgd_step over S_FUSE_MAX_BATCH rows: the whole gradient */
    float *rg0, *rg1, *rdout; /* R-pass ping-pong and loss tangent */
    int hvp_ready;
};

#endif
