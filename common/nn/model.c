/* The layer graph: spec parsing, parameter layout, activation buffers and
 * the forward, backward and Hessian-vector passes. The arithmetic lives in
 * kernels.c; this file only wires layers together.
 *
 * Buffers: every layer owns its output [max_batch][out_size], except ReLU,
 * which works in place on its input's buffer (no layer needs its own output
 * after a ReLU consumed it: dense and conv backward read their input, norm
 * reads its saved xh). Flatten is free: [B][C][H][W] already is [B][C·H·W].
 * Everything is allocated in mfl_model_new, except the tangent buffers of
 * the R-pass, which are allocated once, on the first mfl_model_hvp call, so
 * first-order users do not pay for them. */
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/kernels.h"
#include "nn/model_internal.h"

#define S_MAX_DENSE 16                    /* dense layers in an mlp spec */
#define S_MAX_DIM (1u << 24)              /* any one width, channel count or side */
#define S_MAX_PARAMS ((size_t)1 << 28)    /* 1 GiB of float32 */
#define S_MAX_BATCH ((size_t)1 << 20)
#define S_MAX_ACT_BYTES ((size_t)1 << 34) /* all activation buffers together */
/* Rows up to which mfl_model_sgd_step fuses. Past OpenBLAS's K block
 * (320–384 for sgemm here) a weight product over the batch is summed in
 * parts, and fused each part would be added into θ and rounded at θ's
 * scale; measured: K ≤ 320 bit-identical to the unfused update, K ≥ 384
 * not. Longer batches take the unfused path (gradient, then SGD). */
#define S_FUSE_MAX_BATCH 256


/* Parses a decimal size in [1, S_MAX_DIM] at *p (no sign, no leading
 * zero) and advances *p. Returns 0 or -1. */
static int s_parse_dim(const char **p, size_t *out)
{
    const char *s = *p;
    if (*s < '1' || *s > '9')
        return -1;
    size_t v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (size_t)(*s - '0');
        if (v > S_MAX_DIM)
            return -1;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

static int s_add_tensor(mfl_model_t *self, const char *name, size_t ndim, const size_t *shape,
                        size_t *offset_out)
{
    mfl_tensor_info_t *t = &self->tensors[self->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->count = 1;
    for (size_t i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        if (shape[i] && t->count > S_MAX_PARAMS / shape[i])
            return -1;
        t->count *= shape[i];
    }
    t->offset = self->n_params;
    if (t->count > S_MAX_PARAMS - self->n_params)
        return -1;
    self->n_params += t->count;
    *offset_out = t->offset;
    return 0;
}

static s_layer_t *s_push(mfl_model_t *self, s_kind_t kind, size_t c, size_t h, size_t w)
{
    s_layer_t *l = &self->layers[self->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->c = c;
    l->h = h;
    l->w = w;
    l->in_size = c * h * w;
    l->oc = c;
    l->oh = h;
    l->ow = w;
    return l;
}

static int s_add_dense(mfl_model_t *self, const char *prefix, size_t in, size_t out)
{
    char name[MFL_TENSOR_NAME_MAX];
    s_layer_t *l = s_push(self, S_DENSE, in, 1, 1);
    l->oc = out;
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (s_add_tensor(self, name, 2, (size_t[]){out, in}, &l->w_off) != 0)
        return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return s_add_tensor(self, name, 1, (size_t[]){out}, &l->b_off);
}

static int s_build_mlp(mfl_model_t *self, const char *p, int linear, char *err, size_t errlen)
{
    size_t dims[S_MAX_DENSE + 1], n = 0;
    for (;;) {
        if (n == S_MAX_DENSE + 1 || s_parse_dim(&p, &dims[n]) != 0) {
            mfl_errf(err, errlen,
                     "model spec '%s': expected up to %d sizes in [1, %u] separated by '-'",
                     self->spec, S_MAX_DENSE + 1, S_MAX_DIM);
            return -1;
        }
        n++;
        if (*p == '\0')
            break;
        if (*p++ != '-') {
            mfl_errf(err, errlen, "model spec '%s': unexpected character after a size",
                     self->spec);
            return -1;
        }
    }
    if (n < 2 || (linear && n != 2)) {
        mfl_errf(err, errlen, "model spec '%s': %s needs %s sizes (inputs-...-outputs)",
                 self->spec, linear ? "linear" : "mlp", linear ? "exactly 2" : "at least 2");
        return -1;
    }
    int len = snprintf(self->spec, sizeof self->spec, "%s:", linear ? "linear" : "mlp");
    for (size_t i = 0; i < n; i++)
        len += snprintf(self->spec + len, sizeof self->spec - (size_t)len, "%s%zu",
                        i ? "-" : "", dims[i]);
    for (size_t i = 0; i + 1 < n; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "fc%zu", i + 1);
        if (s_add_dense(self, prefix, dims[i], dims[i + 1]) != 0)
            goto too_big;
        if (i + 2 < n)
            s_push(self, S_RELU, dims[i + 1], 1, 1);
    }
    self->n_in = dims[0];
    self->n_out = dims[n - 1];
    return 0;
too_big:
    mfl_errf(err, errlen, "model spec '%s': more than %zu parameters", self->spec, S_MAX_PARAMS);
    return -1;
}

/* Block b of a conv stack: conv3x3 (ch → f channels) "blockB.conv.*",
 * per-sample norm "blockB.norm.*" and ReLU on an h×w map. -1 if the
 * parameters would exceed the cap. */
static int s_add_conv_block(mfl_model_t *self, int b, size_t ch, size_t f, size_t h, size_t w)
{
    char name[MFL_TENSOR_NAME_MAX];
    s_layer_t *l = s_push(self, S_CONV, ch, h, w);
    l->oc = f;
    snprintf(name, sizeof name, "block%d.conv.weight", b);
    if (s_add_tensor(self, name, 4, (size_t[]){f, ch, 3, 3}, &l->w_off))
        return -1;
    snprintf(name, sizeof name, "block%d.conv.bias", b);
    if (s_add_tensor(self, name, 1, (size_t[]){f}, &l->b_off))
        return -1;
    l = s_push(self, S_NORM, f, h, w);
    snprintf(name, sizeof name, "block%d.norm.scale", b);
    if (s_add_tensor(self, name, 1, (size_t[]){f}, &l->w_off))
        return -1;
    snprintf(name, sizeof name, "block%d.norm.shift", b);
    if (s_add_tensor(self, name, 1, (size_t[]){f}, &l->b_off))
        return -1;
    s_push(self, S_RELU, f, h, w);
    return 0;
}

static int s_build_cnn4(mfl_model_t *self, const char *p, char *err, size_t errlen)
{
    size_t c, h, w, f, k = 0;
    int pools = 4;
    if (s_parse_dim(&p, &c) || *p++ != 'x' || s_parse_dim(&p, &h) || *p++ != 'x' ||
        s_parse_dim(&p, &w) || *p++ != ':' || s_parse_dim(&p, &f) || *p++ != ':')
        goto bad;
    if (p[0] == '0' && (p[1] == '\0' || p[1] == ':'))
        p++;
    else if (s_parse_dim(&p, &k) != 0)
        goto bad;
    /* ":p3": no pool after block 4, so a 28x28 image keeps a 3x3 map and
     * the embedding is 9F wide instead of F (few-shot metric heads need
     * more than F = 16..32 numbers per image; the convolutions cost the same) */
    if (strcmp(p, ":p3") == 0) {
        pools = 3;
        p += 3;
    }
    if (*p != '\0')
        goto bad;
    if (h < 16 || w < 16) {
        mfl_errf(err, errlen, "model spec '%s': cnn4 needs images of at least 16x16 "
                 "(four 2x2 pools)", self->spec);
        return -1;
    }
    /* h·w ≤ 2^48 cannot overflow; divide rather than multiply by c or f. */
    const size_t limit = (size_t)1 << 30, hw = h * w;
    if (hw > limit || c > limit / hw || f > limit / hw) {
        mfl_errf(err, errlen, "model spec '%s': feature maps too large", self->spec);
        return -1;
    }
    snprintf(self->spec, sizeof self->spec, "cnn4:%zux%zux%zu:%zu:%zu%s", c, h, w, f, k,
             pools == 3 ? ":p3" : "");
    self->n_in = c * h * w;
    size_t ch = c;
    for (int b = 1; b <= 4; b++) {
        if (s_add_conv_block(self, b, ch, f, h, w))
            goto too_big;
        if (b > pools)
            break;
        s_layer_t *l = s_push(self, S_POOL, f, h, w);
        l->oh = h / 2;
        l->ow = w / 2;
        ch = f;
        h /= 2;
        w /= 2;
    }
    self->n_out = f * h * w;
    if (k > 0) {
        if (s_add_dense(self, "head", f * h * w, k) != 0)
            goto too_big;
        self->n_out = k;
    }
    return 0;
bad:
    mfl_errf(err, errlen, "model spec '%s': expected cnn4:CxHxW:FILTERS:CLASSES[:p3] "
             "(e.g. cnn4:1x28x28:64:5; CLASSES 0 = embedding only; :p3 = no 4th pool)",
             self->spec);
    return -1;
too_big:
    mfl_errf(err, errlen, "model spec '%s': more than %zu parameters", self->spec, S_MAX_PARAMS);
    return -1;
}

/* "relconv:CxHxW:F:H", a Relation-network module (Sung et al. 2018) over
 * a pair of feature maps stacked on channels: two blocks of conv3x3 (F
 * filters), norm and ReLU without pooling (a 3x3 map is already small),
 * then dense F·H·W → H, ReLU, dense H → 1 (the relation score's logit). */
static int s_build_relconv(mfl_model_t *self, const char *p, char *err, size_t errlen)
{
    size_t c, h, w, f, hid;
    if (s_parse_dim(&p, &c) || *p++ != 'x' || s_parse_dim(&p, &h) || *p++ != 'x' ||
        s_parse_dim(&p, &w) || *p++ != ':' || s_parse_dim(&p, &f) || *p++ != ':' ||
        s_parse_dim(&p, &hid) || *p != '\0') {
        mfl_errf(err, errlen, "model spec '%s': expected relconv:CxHxW:FILTERS:HIDDEN "
                 "(e.g. relconv:32x3x3:16:8)", self->spec);
        return -1;
    }
    const size_t limit = (size_t)1 << 20, hw = h * w;
    if (h > limit || w > limit || hw > limit || c > limit / hw || f > limit / hw) {
        mfl_errf(err, errlen, "model spec '%s': feature maps too large", self->spec);
        return -1;
    }
    snprintf(self->spec, sizeof self->spec, "relconv:%zux%zux%zu:%zu:%zu", c, h, w, f, hid);
    self->n_in = c * hw;
    size_t ch = c;
    for (int b = 1; b <= 2; b++) {
        if (s_add_conv_block(self, b, ch, f, h, w))
            goto too_big;
        ch = f;
    }
    if (s_add_dense(self, "fc1", f * hw, hid) || !s_push(self, S_RELU, hid, 1, 1) ||
        s_add_dense(self, "fc2", hid, 1))
        goto too_big;
    self->n_out = 1;
    return 0;
too_big:
    mfl_errf(err, errlen, "model spec '%s': more than %zu parameters", self->spec, S_MAX_PARAMS);
    return -1;
}

/* calloc of n·size bytes that refuses products that overflow. */
static void *s_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return calloc(n ? n : 1, size);
}

static int s_alloc_buffers(mfl_model_t *self)
{
    const size_t mb = self->max_batch;
    size_t total = 0;
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        l->out_size = l->oc * l->oh * l->ow;
        if (l->in_size > self->max_act)
            self->max_act = l->in_size;
        if (l->out_size > self->max_act)
            self->max_act = l->out_size;
        if (l->kind == S_CONV && l->c * 9 * l->h * l->w > self->max_cols)
            self->max_cols = l->c * 9 * l->h * l->w;
        size_t small = l->kind == S_CONV ? l->oc * l->c * 9 + l->oc
                       : l->kind == S_NORM ? 2 * l->c
                       : l->kind == S_DENSE ? l->oc : 0;
        if (small > self->max_small)
            self->max_small = small;
        total += l->in_size + 3 * l->out_size; /* out, xh, the ping-pong, tangents */
    }
    if (total > S_MAX_ACT_BYTES / sizeof(float) / mb)
        return -1;
    self->x = s_calloc(mb * self->n_in, sizeof(float));
    self->g0 = s_calloc(mb * self->max_act, sizeof(float));
    self->g1 = s_calloc(mb * self->max_act, sizeof(float));
    self->cols = s_calloc(self->max_cols, sizeof(float));
    self->dcols = s_calloc(self->max_cols, sizeof(float));
    self->out = s_calloc(mb * self->n_out, sizeof(float));
    self->dout = s_calloc(mb * self->n_out, sizeof(float));
    self->gsmall = s_calloc(self->max_small, sizeof(float));
    if (!self->x || !self->g0 || !self->g1 || !self->cols || !self->dcols || !self->out ||
        !self->dout || !self->gsmall)
        return -1;
    if (mb > S_FUSE_MAX_BATCH && !(self->gfull = s_calloc(self->n_params, sizeof(float))))
        return -1;
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        if (l->kind == S_RELU) {
            MFL_ASSERT(i > 0);
            l->out = self->layers[i - 1].out;
            continue;
        }
        if (!(l->out = s_calloc(mb * l->out_size, sizeof(float))))
            return -1;
        if (l->kind == S_NORM && (!(l->xh = s_calloc(mb * l->out_size, sizeof(float))) ||
                                  !(l->r = s_calloc(mb, sizeof(float)))))
            return -1;
        if (l->kind == S_POOL && !(l->idx = s_calloc(mb * l->out_size, sizeof(uint32_t))))
            return -1;
    }
    return 0;
}

mfl_model_t *mfl_model_new(const char *spec, size_t max_batch, char *err, size_t errlen)
{
    if (!spec) {
        mfl_errf(err, errlen, "model spec missing");
        return NULL;
    }
    if (max_batch == 0 || max_batch > S_MAX_BATCH) {
        mfl_errf(err, errlen, "model spec '%s': max_batch %zu outside [1, %zu]", spec, max_batch,
                 S_MAX_BATCH);
        return NULL;
    }
    mfl_model_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "model spec '%s': out of memory", spec);
        return NULL;
    }
    self->max_batch = max_batch;
    if (strlen(spec) >= 100) {
        mfl_errf(err, errlen, "model spec '%.40s...': too long", spec);
        goto fail;
    }
    snprintf(self->spec, sizeof self->spec, "%s", spec);
    int rc;
    if (strncmp(spec, "mlp:", 4) == 0)
        rc = s_build_mlp(self, spec + 4, 0, err, errlen);
    else if (strncmp(spec, "linear:", 7) == 0)
        rc = s_build_mlp(self, spec + 7, 1, err, errlen);
    else if (strncmp(spec, "cnn4:", 5) == 0)
        rc = s_build_cnn4(self, spec + 5, err, errlen);
    else if (strncmp(spec, "relconv:", 8) == 0)
        rc = s_build_relconv(self, spec + 8, err, errlen);
    else {
        mfl_errf(err, errlen,
                 "model spec '%s': unknown family (want mlp:, linear:, cnn4: or relconv:)", spec);
        rc = -1;
    }
    if (rc != 0)
        goto fail;
    if (s_alloc_buffers(self) != 0) {
        mfl_errf(err, errlen, "model spec '%s': cannot allocate activations for max_batch %zu",
                 spec, max_batch);
        goto fail;
    }
    return self;
fail:
    mfl_model_destroy(&self);
    return NULL;
}

void mfl_model_destroy(mfl_model_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_model_t *self = *self_p;
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        if (l->kind != S_RELU) {
            free(l->out);
            free(l->rout);
        }
        free(l->xh);
        free(l->r);
        free(l->idx);
        free(l->rxh);
        free(l->rr);
    }
    free(self->x);
    free(self->g0);
    free(self->g1);
    free(self->cols);
    free(self->dcols);
    free(self->out);
    free(self->dout);
    free(self->gsmall);
    free(self->gfull);
    free(self->rg0);
    free(self->rg1);
    free(self->rdout);
    free(self);
    *self_p = NULL;
}

const char *mfl_model_spec(const mfl_model_t *self) { return self->spec; }
size_t mfl_model_n_params(const mfl_model_t *self) { return self->n_params; }
size_t mfl_model_n_inputs(const mfl_model_t *self) { return self->n_in; }
size_t mfl_model_n_outputs(const mfl_model_t *self) { return self->n_out; }
size_t mfl_model_max_batch(const mfl_model_t *self) { return self->max_batch; }
size_t mfl_model_n_tensors(const mfl_model_t *self) { return self->n_tensors; }

const mfl_tensor_info_t *mfl_model_tensor(const mfl_model_t *self, size_t index)
{
    return index < self->n_tensors ? &self->tensors[index] : NULL;
}

mfl_tensor_t mfl_tensor_info_view(const mfl_tensor_info_t *ti, const float *flat)
{
    return mfl_tensor_view(ti->name, ti->ndim, ti->shape, flat + ti->offset);
}

void mfl_model_init_params(const mfl_model_t *self, float *theta, mfl_rng_t *rng)
{
    for (size_t i = 0; i < self->n_layers; i++) {
        const s_layer_t *l = &self->layers[i];
        size_t fan_in, n_w;
        switch (l->kind) {
        case S_DENSE:
            fan_in = l->in_size;
            n_w = l->in_size * l->oc;
            break;
        case S_CONV:
            fan_in = l->c * 9;
            n_w = l->oc * l->c * 9;
            break;
        case S_NORM:
            for (size_t j = 0; j < l->c; j++) {
                theta[l->w_off + j] = 1.0f;
                theta[l->b_off + j] = 0.0f;
            }
            continue;
        default:
            continue;
        }
        /* He-uniform: Var(w) = 2/fan_in keeps ReLU activations at scale. */
        float bound = sqrtf(6.0f / (float)fan_in);
        for (size_t j = 0; j < n_w; j++)
            theta[l->w_off + j] = mfl_rng_range(rng, -bound, bound);
        memset(theta + l->b_off, 0, l->oc * sizeof *theta);
    }
}

static const float *s_input(const mfl_model_t *self, size_t i)
{
    return i == 0 ? self->x : self->layers[i - 1].out;
}

int mfl_model_forward(mfl_model_t *self, const float *theta, const float *x, size_t batch,
                      float *out)
{
    if (batch == 0 || batch > self->max_batch)
        return -1;
    self->batch = batch;
    memcpy(self->x, x, batch * self->n_in * sizeof *x);
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        const float *in = s_input(self, i);
        switch (l->kind) {
        case S_DENSE:
            if (i + 1 < self->n_layers && self->layers[i + 1].kind == S_RELU) {
                /* Bias and the following ReLU in one pass (the ReLU layer
                 * shares this buffer, so skipping it leaves it done). */
                mfl_nn_dense_forward(in, batch, l->in_size, theta + l->w_off, NULL, l->oc,
                                     l->out, 0);
                mfl_nn_bias_relu(l->out, theta + l->b_off, batch, l->oc);
                i++;
                break;
            }
            mfl_nn_dense_forward(in, batch, l->in_size, theta + l->w_off, theta + l->b_off, l->oc,
                                 l->out, 0);
            break;
        case S_CONV:
            mfl_nn_conv3_forward(in, batch, l->c, l->h, l->w, theta + l->w_off, theta + l->b_off,
                                 l->oc, l->out, self->cols, 0);
            break;
        case S_NORM:
            mfl_nn_norm_forward(in, batch, l->c, l->h * l->w, theta + l->w_off, theta + l->b_off,
                                l->out, l->xh, l->r);
            break;
        case S_RELU:
            mfl_nn_relu_forward(in, batch * l->in_size, l->out);
            break;
        case S_POOL:
            mfl_nn_maxpool2_forward(in, batch, l->c, l->h, l->w, l->out, l->idx);
            break;
        }
    }
    memcpy(out, self->layers[self->n_layers - 1].out, batch * self->n_out * sizeof *out);
    return 0;
}

void mfl_model_backward(mfl_model_t *self, const float *theta, const float *dout, float *grad,
                        float *dx)
{
    const size_t batch = self->batch;
    if (batch == 0)
        return;
    float *gy = self->g0, *gx = self->g1;
    int bias_done = 0; /* a ReLU already summed the next dense layer's db */
    memcpy(gy, dout, batch * self->n_out * sizeof *gy);
    for (size_t i = self->n_layers; i-- > 0;) {
        const s_layer_t *l = &self->layers[i];
        const float *in = s_input(self, i);
        float *dst = i == 0 ? dx : gx; /* the first layer writes the caller's dx */
        float *gw = grad ? grad + l->w_off : NULL, *gb = grad ? grad + l->b_off : NULL;
        if (bias_done)
            gb = NULL;
        bias_done = 0;
        switch (l->kind) {
        case S_DENSE:
            mfl_nn_dense_backward(in, batch, l->in_size, theta + l->w_off, l->oc, gy, gw, gb,
                                  dst, 0);
            break;
        case S_CONV:
            mfl_nn_conv3_backward(in, batch, l->c, l->h, l->w, theta + l->w_off, l->oc, gy, gw,
                                  gb, dst, 0, self->cols, self->dcols);
            break;
        case S_NORM:
            mfl_nn_norm_backward(l->xh, l->r, batch, l->c, l->h * l->w, theta + l->w_off, gy,
                                 gw, gb, dst);
            break;
        case S_RELU:
            MFL_ASSERT(dst); /* a ReLU is never the first layer */
            if (grad && self->layers[i - 1].kind == S_DENSE) {
                mfl_nn_relu_mask_bias_grad(l->out, gy, batch, l->in_size, dst,
                                           grad + self->layers[i - 1].b_off);
                bias_done = 1;
            } else {
                mfl_nn_relu_mask(l->out, gy, batch * l->in_size, dst);
            }
            break;
        case S_POOL:
            if (dst)
                mfl_nn_maxpool2_scatter(gy, l->idx, batch, l->in_size, l->out_size, dst);
            break;
        }
        float *t = gy;
        gy = gx;
        gx = t;
    }
}

float mfl_model_loss_grad(mfl_model_t *self, const float *theta, const mfl_loss_t *loss,
                          const float *x, const float *y, size_t batch, float *grad)
{
    if (mfl_model_forward(self, theta, x, batch, self->out) != 0)
        return NAN;
    float value = mfl_loss_eval(loss, self->out, y, batch, self->n_out, grad ? self->dout : NULL);
    if (grad) {
        memset(grad, 0, self->n_params * sizeof *grad);
        if (!isnan(value))
            mfl_model_backward(self, theta, self->dout, grad, NULL);
    }
    return value;
}

/* p[i] −= lr·g[i]: the same expression as mfl_optim_step's SGD, so the
 * parameters updated from gsmall match the unfused path bit for bit. */
static void s_sgd(float *p, const float *g, size_t n, float lr)
{
    for (size_t i = 0; i < n; i++)
        p[i] -= lr * g[i];
}

/* mfl_model_backward with the SGD update folded in. Every layer reads its
 * parameters for dx before it changes them; the ReLU after a dense layer
 * sums and applies that layer's bias step (the dense backward itself does
 * not read the bias). */
static void s_backward_sgd(mfl_model_t *self, float *theta, float lr)
{
    const size_t batch = self->batch;
    float *gy = self->g0, *gx = self->g1, *gs = self->gsmall;
    int bias_done = 0;
    memcpy(gy, self->dout, batch * self->n_out * sizeof *gy);
    for (size_t i = self->n_layers; i-- > 0;) {
        const s_layer_t *l = &self->layers[i];
        const float *in = s_input(self, i);
        float *dst = i == 0 ? NULL : gx; /* nobody wants dL/dx of the input */
        switch (l->kind) {
        case S_DENSE:
            if (!bias_done) {
                memset(gs, 0, l->oc * sizeof *gs);
                mfl_nn_dense_backward(in, batch, l->in_size, NULL, l->oc, gy, NULL, gs, NULL, 0);
                s_sgd(theta + l->b_off, gs, l->oc, lr);
            }
            if (i == 2 && self->layers[1].kind == S_RELU && self->layers[0].kind == S_DENSE) {
                /* The MLP's bottom: this layer, the ReLU and the first
                 * dense layer in one tiled sweep; nothing is left below. */
                const s_layer_t *l0 = &self->layers[0];
                mfl_nn_mlp_bottom_sgd(self->x, batch, l0->in_size, l0->out, l->in_size, gy, l->oc,
                                      lr, theta + l0->w_off, theta + l0->b_off,
                                      theta + l->w_off, gx, gs);
                return;
            }
            if (dst)
                mfl_nn_dense_backward(in, batch, l->in_size, theta + l->w_off, l->oc, gy, NULL,
                                      NULL, dst, 0);
            mfl_nn_dense_sgd(in, batch, l->in_size, gy, l->oc, lr, theta + l->w_off);
            break;
        case S_CONV: {
            const size_t nk = l->oc * l->c * 9;
            memset(gs, 0, (nk + l->oc) * sizeof *gs);
            mfl_nn_conv3_backward(in, batch, l->c, l->h, l->w, theta + l->w_off, l->oc, gy, gs,
                                  gs + nk, dst, 0, self->cols, self->dcols);
            s_sgd(theta + l->w_off, gs, nk, lr);
            s_sgd(theta + l->b_off, gs + nk, l->oc, lr);
            break;
        }
        case S_NORM:
            memset(gs, 0, 2 * l->c * sizeof *gs);
            mfl_nn_norm_backward(l->xh, l->r, batch, l->c, l->h * l->w, theta + l->w_off, gy, gs,
                                 gs + l->c, dst);
            s_sgd(theta + l->w_off, gs, l->c, lr);
            s_sgd(theta + l->b_off, gs + l->c, l->c, lr);
            break;
        case S_RELU:
            MFL_ASSERT(dst); /* a ReLU is never the first layer */
            if (self->layers[i - 1].kind == S_DENSE) {
                memset(gs, 0, l->in_size * sizeof *gs);
                mfl_nn_relu_mask_bias_grad(l->out, gy, batch, l->in_size, dst, gs);
                s_sgd(theta + self->layers[i - 1].b_off, gs, l->in_size, lr);
                bias_done = 1;
                break;
            }
            mfl_nn_relu_mask(l->out, gy, batch * l->in_size, dst);
            break;
        case S_POOL:
            if (dst)
                mfl_nn_maxpool2_scatter(gy, l->idx, batch, l->in_size, l->out_size, dst);
            break;
        }
        if (l->kind != S_RELU)
            bias_done = 0;
        float *t = gy;
        gy = gx;
        gx = t;
    }
}

float mfl_model_sgd_step(mfl_model_t *self, float *theta, const mfl_loss_t *loss,
                         const float *x, const float *y, size_t batch, float lr)
{
    if (batch > S_FUSE_MAX_BATCH && batch <= self->max_batch) {
        float value = mfl_model_loss_grad(self, theta, loss, x, y, batch, self->gfull);
        if (isfinite(value))
            s_sgd(theta, self->gfull, self->n_params, lr);
        return value;
    }
    if (mfl_model_forward(self, theta, x, batch, self->out) != 0)
        return NAN;
    float value = mfl_loss_eval(loss, self->out, y, batch, self->n_out, self->dout);
    if (isfinite(value))
        s_backward_sgd(self, theta, lr);
    return value;
}

/* The R-pass tangents, allocated on first use (see the file comment). */
static int s_hvp_alloc(mfl_model_t *self)
{
    if (self->hvp_ready)
        return 0;
    const size_t mb = self->max_batch;
    if (!(self->rg0 = s_calloc(mb * self->max_act, sizeof(float))) ||
        !(self->rg1 = s_calloc(mb * self->max_act, sizeof(float))) ||
        !(self->rdout = s_calloc(mb * self->n_out, sizeof(float))))
        return -1;
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        if (l->kind == S_RELU) {
            l->rout = self->layers[i - 1].rout;
            continue;
        }
        if (!l->rout && !(l->rout = s_calloc(mb * l->out_size, sizeof(float))))
            return -1;
        if (l->kind == S_NORM && ((!l->rxh && !(l->rxh = s_calloc(mb * l->out_size, sizeof(float)))) ||
                                  (!l->rr && !(l->rr = s_calloc(mb, sizeof(float))))))
            return -1;
    }
    self->hvp_ready = 1;
    return 0;
}

/* Forward-mode pass along v: every layer's rout = d(out)/dθ · v. */
static void s_rforward(mfl_model_t *self, const float *theta, const float *v)
{
    const size_t batch = self->batch;
    for (size_t i = 0; i < self->n_layers; i++) {
        s_layer_t *l = &self->layers[i];
        const float *in = s_input(self, i);
        const float *rin = i == 0 ? NULL : self->layers[i - 1].rout; /* input: no tangent */
        switch (l->kind) {
        case S_DENSE:
            /* R{y} = R{x}·Wᵀ + x·Vᵀ + v_b */
            if (rin) {
                mfl_nn_dense_forward(rin, batch, l->in_size, theta + l->w_off, v + l->b_off,
                                     l->oc, l->rout, 0);
                mfl_nn_dense_forward(in, batch, l->in_size, v + l->w_off, NULL, l->oc, l->rout, 1);
            } else {
                mfl_nn_dense_forward(in, batch, l->in_size, v + l->w_off, v + l->b_off, l->oc,
                                     l->rout, 0);
            }
            break;
        case S_CONV:
            if (rin) {
                mfl_nn_conv3_forward(rin, batch, l->c, l->h, l->w, theta + l->w_off,
                                     v + l->b_off, l->oc, l->rout, self->cols, 0);
                mfl_nn_conv3_forward(in, batch, l->c, l->h, l->w, v + l->w_off, NULL, l->oc,
                                     l->rout, self->cols, 1);
            } else {
                mfl_nn_conv3_forward(in, batch, l->c, l->h, l->w, v + l->w_off, v + l->b_off,
                                     l->oc, l->rout, self->cols, 0);
            }
            break;
        case S_NORM:
            mfl_nn_norm_rforward(l->xh, l->r, batch, l->c, l->h * l->w, theta + l->w_off,
                                 v + l->w_off, v + l->b_off, rin, l->rout, l->rxh, l->rr);
            break;
        case S_RELU:
            MFL_ASSERT(rin);
            mfl_nn_relu_mask(l->out, rin, batch * l->in_size, l->rout);
            break;
        case S_POOL:
            MFL_ASSERT(rin);
            mfl_nn_maxpool2_gather(rin, l->idx, batch, l->in_size, l->out_size, l->rout);
            break;
        }
    }
}

/* Reverse pass carrying both dL/da (gy) and its R-derivative (ry); the
 * R-derivatives of the parameter gradients are added into hv. */
static void s_rbackward(mfl_model_t *self, const float *theta, const float *v, float *hv)
{
    const size_t batch = self->batch;
    float *gy = self->g0, *gx = self->g1, *ry = self->rg0, *rx = self->rg1;
    memcpy(gy, self->dout, batch * self->n_out * sizeof *gy);
    memcpy(ry, self->rdout, batch * self->n_out * sizeof *ry);
    for (size_t i = self->n_layers; i-- > 0;) {
        const s_layer_t *l = &self->layers[i];
        const float *in = s_input(self, i);
        const float *rin = i == 0 ? NULL : self->layers[i - 1].rout;
        const int need_dx = i > 0;
        switch (l->kind) {
        case S_DENSE:
            /* dx = dy·W, dW = dyᵀx, db = Σdy. Their R-derivatives:
             * R{dx} = R{dy}·W + dy·V, R{dW} = R{dy}ᵀx + dyᵀR{x}, R{db} = ΣR{dy}. */
            if (need_dx)
                mfl_nn_dense_backward(in, batch, l->in_size, theta + l->w_off, l->oc, gy, NULL,
                                      NULL, gx, 0);
            mfl_nn_dense_backward(in, batch, l->in_size, theta + l->w_off, l->oc, ry,
                                  hv + l->w_off, hv + l->b_off, need_dx ? rx : NULL, 0);
            if (rin)
                mfl_nn_dense_backward(rin, batch, l->in_size, NULL, l->oc, gy, hv + l->w_off,
                                      NULL, NULL, 0);
            if (need_dx)
                mfl_nn_dense_backward(NULL, batch, l->in_size, v + l->w_off, l->oc, gy, NULL,
                                      NULL, rx, 1);
            break;
        case S_CONV:
            /* Bilinear in (x, K) exactly like dense. */
            if (need_dx)
                mfl_nn_conv3_backward(in, batch, l->c, l->h, l->w, theta + l->w_off, l->oc, gy,
                                      NULL, NULL, gx, 0, self->cols, self->dcols);
            mfl_nn_conv3_backward(in, batch, l->c, l->h, l->w, theta + l->w_off, l->oc, ry,
                                  hv + l->w_off, hv + l->b_off, need_dx ? rx : NULL, 0,
                                  self->cols, self->dcols);
            if (rin)
                mfl_nn_conv3_backward(rin, batch, l->c, l->h, l->w, NULL, l->oc, gy,
                                      hv + l->w_off, NULL, NULL, 0, self->cols, self->dcols);
            if (need_dx)
                mfl_nn_conv3_backward(NULL, batch, l->c, l->h, l->w, v + l->w_off, l->oc, gy,
                                      NULL, NULL, rx, 1, self->cols, self->dcols);
            break;
        case S_NORM:
            if (need_dx)
                mfl_nn_norm_backward(l->xh, l->r, batch, l->c, l->h * l->w, theta + l->w_off, gy,
                                     NULL, NULL, gx);
            mfl_nn_norm_rbackward(l->xh, l->r, l->rxh, l->rr, batch, l->c, l->h * l->w,
                                  theta + l->w_off, v + l->w_off, gy, ry, hv + l->w_off,
                                  hv + l->b_off, need_dx ? rx : NULL);
            break;
        case S_RELU:
            /* ReLU'' = 0 almost everywhere: both passes use the same mask. */
            mfl_nn_relu_mask(l->out, gy, batch * l->in_size, gx);
            mfl_nn_relu_mask(l->out, ry, batch * l->in_size, rx);
            break;
        case S_POOL:
            mfl_nn_maxpool2_scatter(gy, l->idx, batch, l->in_size, l->out_size, gx);
            mfl_nn_maxpool2_scatter(ry, l->idx, batch, l->in_size, l->out_size, rx);
            break;
        }
        float *t = gy;
        gy = gx;
        gx = t;
        t = ry;
        ry = rx;
        rx = t;
    }
}

int mfl_model_hvp(mfl_model_t *self, const float *theta, const mfl_loss_t *loss,
                  const float *x, const float *y, size_t batch, const float *v, float *hv)
{
    if (batch == 0 || batch > self->max_batch || s_hvp_alloc(self) != 0)
        return -1;
    if (mfl_model_forward(self, theta, x, batch, self->out) != 0)
        return -1;
    if (isnan(mfl_loss_eval(loss, self->out, y, batch, self->n_out, self->dout)))
        return -1;
    s_rforward(self, theta, v);
    const float *rout = self->layers[self->n_layers - 1].rout;
    if (mfl_loss_hvp(loss, self->out, y, batch, self->n_out, rout, self->rdout) != 0)
        return -1;
    memset(hv, 0, self->n_params * sizeof *hv);
    s_rbackward(self, theta, v, hv);
    return 0;
}
