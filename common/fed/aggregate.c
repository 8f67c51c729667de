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
    int64_t *scratch;       /* n quantised products of the update being added */
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
    self->scratch = malloc(n_params * sizeof *self->scratch);
    if (!self->sum || !self->scratch) {
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
    free(self->scratch);
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
    /* The effective weight is exactly wq / 2^8; the product is computed in
     * double from this update alone, so its rounding cannot depend on what
     * else was added or in what order. Quantise into scratch first: the
     * update is all or nothing. */
    double w_eff = ldexp(wq, -MFL_AGGREGATE_WEIGHT_BITS);
    for (size_t j = 0; j < self->n; j++) {
        float d = delta[j];
        if (!isfinite(d)) {
            mfl_errf(err, errlen, "delta[%zu] is %s", j, isnan(d) ? "NaN" : "infinite");
            return -1;
        }
        double prod = w_eff * (double)d;
        if (fabs(prod) > self->max_product) {
            mfl_errf(err, errlen,
                     "delta[%zu] = %g times weight %g exceeds the aggregation bound %g",
                     j, (double)d, w_eff, self->max_product);
            return -1;
        }
        self->scratch[j] = llrint(prod * self->scale);
    }
    for (size_t j = 0; j < self->n; j++)
        self->sum[j] += self->scratch[j];
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
    for (size_t j = 0; j < self->n; j++)
        out[j] = (float)((double)self->sum[j] / denom);
    return 0;
}

void mfl_aggregate_reset(mfl_aggregate_t *self)
{
    memset(self->sum, 0, self->n * sizeof *self->sum);
    self->count = 0;
    self->weight_q = 0;
}
