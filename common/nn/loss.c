/* Losses, their gradients and their output-space Hessian products. Sums are
 * accumulated in double; per-element work stays in float where it is
 * already exact enough (one exp/log per element). */
#include "nn/loss.h"

#include <math.h>
#include <string.h>

int mfl_loss_parse(const char *text, mfl_loss_kind_t *kind)
{
    static const struct {
        const char *name;
        mfl_loss_kind_t kind;
    } names[] = {{"softmax_ce", MFL_LOSS_SOFTMAX_CE}, {"bce", MFL_LOSS_BCE}, {"mse", MFL_LOSS_MSE}};
    for (size_t i = 0; text && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(text, names[i].name) == 0) {
            *kind = names[i].kind;
            return 0;
        }
    return -1;
}

const char *mfl_loss_name(mfl_loss_kind_t kind)
{
    switch (kind) {
    case MFL_LOSS_SOFTMAX_CE: return "softmax_ce";
    case MFL_LOSS_BCE: return "bce";
    case MFL_LOSS_MSE: return "mse";
    }
    return "unknown";
}

/* log(1 + e^z) without overflow for large |z|. */
static double s_softplus(double z)
{
    return (z > 0 ? z : 0.0) + log1p(exp(-fabs(z)));
}

static double s_sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* Validates shapes and targets once, so eval and hvp agree on what is
 * refused. Returns 0 or -1. */
static int s_check(const mfl_loss_t *loss, const float *y, size_t batch, size_t n_out)
{
    if (!loss || batch == 0 || n_out == 0)
        return -1;
    /* pos_weight 0 is what a zero-initialised mfl_loss_t holds: refusing it
     * turns a silent "positives count for nothing" into a visible NAN. */
    if (loss->kind == MFL_LOSS_BCE && !(loss->pos_weight > 0.0f && isfinite(loss->pos_weight)))
        return -1;
    for (size_t b = 0; b < batch; b++) {
        switch (loss->kind) {
        case MFL_LOSS_SOFTMAX_CE: {
            float t = y[b];
            if (!(t >= 0.0f) || t >= (float)n_out || t != floorf(t))
                return -1;
            break;
        }
        case MFL_LOSS_BCE:
            if (n_out != 1 || !(y[b] >= 0.0f && y[b] <= 1.0f))
                return -1;
            break;
        case MFL_LOSS_MSE:
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* log Σ exp(z_j) over one row, shifted by the maximum so nothing
 * overflows; the maximum itself contributes exactly 1 to the sum. */
static double s_logsumexp(const float *z, size_t n)
{
    size_t k = 0;
    for (size_t j = 1; j < n; j++)
        if (z[j] > z[k])
            k = j;
    const double mx = z[k];
    double sum = 1.0;
    for (size_t j = 0; j < n; j++)
        if (j != k)
            sum += exp((double)z[j] - mx);
    return mx + log(sum);
}

float mfl_loss_eval(const mfl_loss_t *loss, const float *out, const float *y, size_t batch,
                    size_t n_out, float *dout)
{
    if (s_check(loss, y, batch, n_out) != 0) {
        if (dout && batch && n_out)
            memset(dout, 0, batch * n_out * sizeof *dout);
        return NAN;
    }
    const double inv_b = 1.0 / (double)batch;
    double total = 0.0;
    switch (loss->kind) {
    case MFL_LOSS_SOFTMAX_CE:
        for (size_t b = 0; b < batch; b++) {
            const float *z = out + b * n_out;
            size_t t = (size_t)y[b];
            double lse = s_logsumexp(z, n_out);
            total += lse - z[t];
            if (dout)
                for (size_t j = 0; j < n_out; j++) {
                    double p = exp((double)z[j] - lse);
                    dout[b * n_out + j] = (float)((p - (j == t ? 1.0 : 0.0)) * inv_b);
                }
        }
        break;
    case MFL_LOSS_BCE: {
        const double pw = loss->pos_weight;
        for (size_t b = 0; b < batch; b++) {
            double z = out[b], t = y[b];
            total += pw * t * s_softplus(-z) + (1.0 - t) * s_softplus(z);
            if (dout) {
                double s = s_sigmoid(z);
                dout[b] = (float)((pw * t * (s - 1.0) + (1.0 - t) * s) * inv_b);
            }
        }
        break;
    }
    case MFL_LOSS_MSE: {
        const size_t n = batch * n_out;
        for (size_t i = 0; i < n; i++) {
            double d = (double)out[i] - y[i];
            total += d * d;
            if (dout)
                dout[i] = (float)(2.0 * d / (double)n);
        }
        return (float)(total / (double)n);
    }
    }
    return (float)(total * inv_b);
}

int mfl_loss_hvp(const mfl_loss_t *loss, const float *out, const float *y, size_t batch,
                 size_t n_out, const float *rout, float *rdout)
{
    if (s_check(loss, y, batch, n_out) != 0)
        return -1;
    const double inv_b = 1.0 / (double)batch;
    switch (loss->kind) {
    case MFL_LOSS_SOFTMAX_CE:
        /* H = (diag p − p pᵀ)/B per row: Hr = (p⊙r − p·(p·r))/B, with p
         * recomputed from log-sum-exp rather than buffered. */
        for (size_t b = 0; b < batch; b++) {
            const float *z = out + b * n_out, *r = rout + b * n_out;
            const double lse = s_logsumexp(z, n_out);
            double pr = 0.0;
            for (size_t j = 0; j < n_out; j++)
                pr += exp((double)z[j] - lse) * r[j];
            for (size_t j = 0; j < n_out; j++)
                rdout[b * n_out + j] = (float)(exp((double)z[j] - lse) * (r[j] - pr) * inv_b);
        }
        return 0;
    case MFL_LOSS_BCE: {
        const double pw = loss->pos_weight;
        for (size_t b = 0; b < batch; b++) {
            double s = s_sigmoid(out[b]), t = y[b];
            rdout[b] = (float)(s * (1.0 - s) * (pw * t + 1.0 - t) * rout[b] * inv_b);
        }
        return 0;
    }
    case MFL_LOSS_MSE: {
        const size_t n = batch * n_out;
        for (size_t i = 0; i < n; i++)
            rdout[i] = (float)(2.0 * rout[i] / (double)n);
        return 0;
    }
    }
    return -1;
}
