/* Order-independent weighted mean in fixed point (see aggregate.h for the
 * quantisation and the overflow bound). */
#include "fed/aggregate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct mfl_aggregate {
    size_t n;
    unsigned frac_bits;     /* F */
    uint32_t max_updates;
    double scale;           /* 2^F */
    double max_product;     /* bound on |w·Δⱼ| */
    size_t count;
    uint64_t weight_q;      /* Σ round(w·2^8) */
    int64_t *sum;           /* n fixed-point sums Σ round(w·Δⱼ·2^F) */
};

static unsigned s_ceil_log2(uint32_t v)
{
    unsigned k = 0;
    while ((1ull << k) < v)
        k++;
    return k;
}

mfl_aggregate_t *mfl_aggregate_new_fixed(size_t n_params, unsigned frac_bits,
                                         uint32_t max_updates)
{
    if (n_params == 0 || n_params > SIZE_MAX / sizeof(int64_t) / 2 || frac_bits < 8 ||
        frac_bits > 52 || max_updates == 0 || max_updates > (1u << 20))
        return NULL;
    int room = 62 - (int)frac_bits - (int)s_ceil_log2(max_updates);
    if (room < 0)
        return NULL;
    mfl_aggregate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n_params;
    self->frac_bits = frac_bits;
    self->max_updates = max_updates;
    self->scale = ldexp(1.0, (int)frac_bits);
    self->max_product = ldexp(1.0, room);
    self->sum = calloc(n_params, sizeof *self->sum);
    if (!self->sum) {
        mfl_aggregate_destroy(&self);
        return NULL;
    }
    return self;
}

mfl_aggregate_t *mfl_aggregate_new(size_t n_params)
{
    return mfl_aggregate_new_fixed(n_params, MFL_AGGREGATE_FRAC_BITS, MFL_AGGREGATE_MAX_UPDATES);
}

void mfl_aggregate_destroy(mfl_aggregate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_aggregate_t *self = *self_p;
    free(self->sum);
    free(self);
    *self_p = NULL;
}

int mfl_aggregate_add(mfl_aggregate_t *self, const float *delta, double weight, char *err,
                      size_t errlen)
{
    if (self->count >= self->max_updates) {
        mfl_errf(err, errlen, "aggregate already holds %zu updates (the most before a reset)",
                 self->count);
        return -1;
    }
    if (!isfinite(weight) || weight <= 0 || weight > MFL_AGGREGATE_MAX_WEIGHT) {
        mfl_errf(err, errlen, "weight %g out of range (0, 2^32]", weight);
        return -1;
    }
    double wq = nearbyint(ldexp(weight, MFL_AGGREGATE_WEIGHT_BITS));
    if (wq < 1) {
        mfl_errf(err, errlen, "weight %g rounds to 0 (smallest is 2^-%d)", weight,
                 MFL_AGGREGATE_WEIGHT_BITS);
        return -1;
    }
    /* The effective weight is exactly wq / 2^8; each product is computed in
     * double from this update alone and rounded to nearest (rint, default
     * rounding mode), so its quantised value cannot depend on what else was
     * added or in what order. One fused pass: NaN, ±Inf and out-of-bound
     * values all fail the single comparison (NaN compares false) and add 0;
     * if any failed, a second pass subtracts exactly what was added (the
     * quantisation is a pure function of Δⱼ and w), so the update is all or
     * nothing. */
    const double w_eff = ldexp(wq, -MFL_AGGREGATE_WEIGHT_BITS);
    const double scale = self->scale, max = self->max_product;
    int64_t *restrict sum = self->sum;
    int bad = 0;
    for (size_t j = 0; j < self->n; j++) {
        double prod = w_eff * (double)delta[j];
        int ok = fabs(prod) <= max;
        bad |= !ok;
        sum[j] += (int64_t)rint(ok ? prod * scale : 0.0);
    }
    if (bad) {
        size_t first = self->n;
        for (size_t j = 0; j < self->n; j++) {
            double prod = w_eff * (double)delta[j];
            int ok = fabs(prod) <= max;
            if (!ok && first == self->n)
                first = j;
            sum[j] -= (int64_t)rint(ok ? prod * scale : 0.0);
        }
        float d = delta[first];
        if (!isfinite(d))
            mfl_errf(err, errlen, "delta[%zu] is %s", first, isnan(d) ? "NaN" : "infinite");
        else
            mfl_errf(err, errlen,
                     "delta[%zu] = %g times weight %g exceeds the aggregation bound %g", first,
                     (double)d, w_eff, max);
        return -1;
    }
    self->weight_q += (uint64_t)wq;
    self->count++;
    return 0;
}

size_t mfl_aggregate_count(const mfl_aggregate_t *self)
{
    return self->count;
}

double mfl_aggregate_total_weight(const mfl_aggregate_t *self)
{
    return ldexp((double)self->weight_q, -MFL_AGGREGATE_WEIGHT_BITS);
}

size_t mfl_aggregate_n_params(const mfl_aggregate_t *self)
{
    return self->n;
}

double mfl_aggregate_max_product(const mfl_aggregate_t *self)
{
    return self->max_product;
}

int mfl_aggregate_mean(const mfl_aggregate_t *self, float *out)
{
    if (self->count == 0)
        return -1;
    /* Σ w·Δ = S / 2^F and Σ w = W / 2^8, so mean = S / (W · 2^(F−8)). Both
     * conversions to double are of exact integers: deterministic. */
    double denom = ldexp((double)self->weight_q, (int)self->frac_bits - MFL_AGGREGATE_WEIGHT_BITS);
    const double inv = 1.0 / denom; /* one rounding more than dividing: ~1e-16 relative */
    for (size_t j = 0; j < self->n; j++)
        out[j] = (float)((double)self->sum[j] * inv);
    return 0;
}

void mfl_aggregate_reset(mfl_aggregate_t *self)
{
    memset(self->sum, 0, self->n * sizeof *self->sum);
    self->count = 0;
    self->weight_q = 0;
}
