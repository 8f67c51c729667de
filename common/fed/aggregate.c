/* Order-independent weighted mean in fixed point (see aggregate.h for the
 * quantisation and the overflow bound). */
#include "fed/aggregate.h"

#include <math.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/bigmem.h"
#include "core/log.h"

struct mfl_aggregate {
    size_t n;
    unsigned frac_bits;     /* F */
    uint32_t max_updates;
    double scale;           /* 2^F */
    double max_product;     /* bound on |w·Δⱼ| */
    double max_weight;      /* bound on w */
    unsigned sum_bits;      /* every sum fits a signed integer of this many bits */
    size_t count;
    uint64_t weight_q;      /* Σ round(w·2^8) */
    int64_t *sum;           /* n fixed-point sums Σ round(w·Δⱼ·2^F) */
    bool spent;             /* the sums' storage holds the mean (mean_in_place) */
};

/* rint(y) as an integer for |y| < 2^51, without a scalar double → int64
 * conversion per element: adding 1.5·2^52 rounds y to an integer in the
 * current mode (round to nearest even, as rint) and leaves it in the low
 * mantissa bits, where doubles in [2^52, 2^53) count in steps of one. The
 * caller guarantees the bound; plain arithmetic and a bit copy, so the
 * compiler can vectorise the loop (SSE2 has no double → int64 convert). */
#define S_MAGIC 0x1.8p52
static inline int64_t s_rint_small(double y)
{
    double t = y + S_MAGIC;
    int64_t bits, magic_bits;
    const double magic = S_MAGIC;
    memcpy(&bits, &t, sizeof bits);
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    return bits - magic_bits;
}

/* Adds (sign = 1) or removes (sign = -1) round(w·Δⱼ·2^F) for every j with
 * |w·Δⱼ| ≤ max; returns 1 if some j failed that test (NaN included). Each
 * term is a pure function of (Δⱼ, w), so removing re-computes exactly what
 * was added. */
/* GCC's -O2 cost model ("very cheap") leaves this loop scalar; vectorised
 * it runs in about half the time (1M terms: 1.08 → 0.60 ms here). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#endif
static int s_fold(int64_t *restrict sum, const float *restrict delta, size_t n, double w_eff,
                  double scale, double max, int64_t sign)
{
    int bad = 0;
    if (max * scale < 0x1p51) {
        /* Every accepted term is below 2^51 (the defaults: 2^50). neg is
         * 0 or -1: (x ^ neg) - neg is x or -x without a 64-bit multiply. */
        const int64_t neg = sign < 0 ? -1 : 0;
        int64_t bad64 = 0;
        for (size_t j = 0; j < n; j++) {
            double prod = w_eff * (double)delta[j];
            int64_t ok = fabs(prod) <= max;
            bad64 |= ok ^ 1;
            /* A failed term (NaN, ±Inf, too big) gives garbage bits, but no
             * undefined conversion; the mask drops them. */
            int64_t q = s_rint_small(prod * scale) & -ok;
            sum[j] += (q ^ neg) - neg;
        }
        bad = bad64 != 0;
    } else {
        for (size_t j = 0; j < n; j++) {
            double prod = w_eff * (double)delta[j];
            int ok = fabs(prod) <= max;
            bad |= !ok;
            sum[j] += sign * (int64_t)rint(ok ? prod * scale : 0.0);
        }
    }
    return bad;
}

static unsigned s_ceil_log2(uint32_t v)
{
    unsigned k = 0;
    while ((1ull << k) < v)
        k++;
    return k;
}

mfl_aggregate_t *mfl_aggregate_new_bounded(size_t n_params, unsigned frac_bits,
                                           uint32_t max_updates, unsigned sum_bits)
{
    if (n_params == 0 || n_params > SIZE_MAX / sizeof(int64_t) / 2 || frac_bits < 8 ||
        frac_bits > 52 || max_updates == 0 || max_updates > (1u << 20) || sum_bits < 32 ||
        sum_bits > 64)
        return NULL;
    int log_n = (int)s_ceil_log2(max_updates);
    int room = (int)sum_bits - 2 - (int)frac_bits - log_n;
    int weight_room = (int)sum_bits - 2 - MFL_AGGREGATE_WEIGHT_BITS - log_n;
    if (room < 0 || weight_room < 0)
        return NULL;
    mfl_aggregate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n_params;
    self->frac_bits = frac_bits;
    self->max_updates = max_updates;
    self->sum_bits = sum_bits;
    self->scale = ldexp(1.0, (int)frac_bits);
    self->max_product = ldexp(1.0, room);
    self->max_weight = weight_room >= 32 ? MFL_AGGREGATE_MAX_WEIGHT : ldexp(1.0, weight_room);
    self->sum = calloc(n_params, sizeof *self->sum);
    if (!self->sum) {
        mfl_aggregate_destroy(&self);
        return NULL;
    }
    mfl_mem_advise_huge(self->sum, n_params * sizeof *self->sum);
    return self;
}

mfl_aggregate_t *mfl_aggregate_new_fixed(size_t n_params, unsigned frac_bits,
                                         uint32_t max_updates)
{
    return mfl_aggregate_new_bounded(n_params, frac_bits, max_updates, 64);
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

static int s_admit_weight(const mfl_aggregate_t *self, double weight, double *wq_out,
                          double *w_eff, char *err, size_t errlen);

/* The checks shared by add and add_parts; *wq gets the quantised weight,
 * *w_eff the effective one. */
/* The sums' storage, allocated (zeroed) on first use after a release. */
static int s_storage(mfl_aggregate_t *self, char *err, size_t errlen)
{
    if (self->sum)
        return 0;
    self->sum = calloc(self->n, sizeof *self->sum);
    if (!self->sum) {
        mfl_errf(err, errlen, "out of memory for the sums of %zu parameters", self->n);
        return -1;
    }
    /* fresh pages every round for big models (released between rounds):
     * one fault per 2 MiB instead of per 4 KiB (core/bigmem.h) */
    mfl_mem_advise_huge(self->sum, self->n * sizeof *self->sum);
    return 0;
}

static int s_admit(mfl_aggregate_t *self, double weight, double *wq_out, double *w_eff,
                   char *err, size_t errlen)
{
    if (self->spent) {
        mfl_errf(err, errlen, "aggregate's sums were turned into the mean; reset first");
        return -1;
    }
    if (s_storage(self, err, errlen) < 0)
        return -1;
    if (self->count >= self->max_updates) {
        mfl_errf(err, errlen, "aggregate already holds %zu updates (the most before a reset)",
                 self->count);
        return -1;
    }
    return s_admit_weight(self, weight, wq_out, w_eff, err, errlen);
}

/* The weight's checks and quantisation (s_admit without the count). */
static int s_admit_weight(const mfl_aggregate_t *self, double weight, double *wq_out,
                          double *w_eff, char *err, size_t errlen)
{
    if (!isfinite(weight) || weight <= 0 || weight > self->max_weight) {
        mfl_errf(err, errlen, "weight %g out of range (0, %g]", weight, self->max_weight);
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
     * added or in what order. */
    *wq_out = wq;
    *w_eff = ldexp(wq, -MFL_AGGREGATE_WEIGHT_BITS);
    return 0;
}

/* The failing element of `part` (some term failed s_fold) into err, named
 * by its flat index. */
static void s_explain(const mfl_aggregate_t *self, const mfl_aggregate_part_t *part,
                      double w_eff, char *err, size_t errlen)
{
    const double max = self->max_product;
    size_t first = 0;
    while (first < part->count && fabs(w_eff * (double)part->data[first]) <= max)
        first++;
    if (first == part->count) /* cannot happen: some term failed */
        first = 0;
    float d = part->data[first];
    if (!isfinite(d))
        mfl_errf(err, errlen, "delta[%zu] is %s", part->offset + first,
                 isnan(d) ? "NaN" : "infinite");
    else
        mfl_errf(err, errlen, "delta[%zu] = %g times weight %g exceeds the aggregation bound %g",
                 part->offset + first, (double)d, w_eff, max);
}

int mfl_aggregate_add_parts(mfl_aggregate_t *self, const mfl_aggregate_part_t *parts,
                            size_t n_parts, double weight, char *err, size_t errlen)
{
    double wq, w_eff;
    if (s_admit(self, weight, &wq, &w_eff, err, errlen) < 0)
        return -1;
    size_t total = 0;
    for (size_t k = 0; k < n_parts; k++) {
        if (parts[k].offset > self->n || parts[k].count > self->n - parts[k].offset ||
            (parts[k].count && !parts[k].data)) {
            mfl_errf(err, errlen, "part %zu ([%zu, +%zu)) lies outside the %zu parameters", k,
                     parts[k].offset, parts[k].count, self->n);
            return -1;
        }
        total += parts[k].count;
    }
    if (total != self->n) {
        mfl_errf(err, errlen, "parts hold %zu parameters, expected %zu", total, self->n);
        return -1;
    }
    /* One fused pass per part: NaN, ±Inf and out-of-bound values all fail
     * the single comparison (NaN compares false) and add 0; if any failed,
     * a second pass over the parts folded so far subtracts exactly what was
     * added (the quantisation is a pure function of Δⱼ and w), so the
     * update is all or nothing. */
    const double scale = self->scale, max = self->max_product;
    for (size_t k = 0; k < n_parts; k++) {
        const mfl_aggregate_part_t *p = &parts[k];
        if (!s_fold(self->sum + p->offset, p->data, p->count, w_eff, scale, max, 1))
            continue;
        for (size_t u = 0; u <= k; u++)
            (void)s_fold(self->sum + parts[u].offset, parts[u].data, parts[u].count, w_eff,
                         scale, max, -1);
        s_explain(self, p, w_eff, err, errlen);
        return -1;
    }
    self->weight_q += (uint64_t)wq;
    self->count++;
    return 0;
}

int mfl_aggregate_remove_parts(mfl_aggregate_t *self, const mfl_aggregate_part_t *parts,
                               size_t n_parts, double weight)
{
    if (self->spent || self->count == 0 || !isfinite(weight) || weight <= 0 ||
        weight > self->max_weight)
        return -1;
    double wq = nearbyint(ldexp(weight, MFL_AGGREGATE_WEIGHT_BITS));
    if (wq < 1 || (uint64_t)wq > self->weight_q)
        return -1;
    double w_eff = ldexp(wq, -MFL_AGGREGATE_WEIGHT_BITS);
    for (size_t k = 0; k < n_parts; k++)
        (void)s_fold(self->sum + parts[k].offset, parts[k].data, parts[k].count, w_eff,
                     self->scale, self->max_product, -1);
    self->weight_q -= (uint64_t)wq;
    self->count--;
    return 0;
}

/* Folds the reader's values [0, n) block by block with sign. Returns 0
 * when all were folded; 1 when a block was refused (only with sign > 0;
 * that block was folded in full, bad values as 0); -1 when a read failed
 * (that block was not folded). *stop: the end of the last block folded. */
static int s_fold_read(mfl_aggregate_t *self, mfl_aggregate_read_fn *read, void *ctx,
                       float *buf, size_t buf_n, size_t n_values, double w_eff, int64_t sign,
                       size_t *stop, char *err, size_t errlen)
{
    *stop = 0;
    for (size_t at = 0; at < n_values; at += buf_n) {
        size_t n = n_values - at < buf_n ? n_values - at : buf_n;
        if (read(ctx, at, buf, n, err, errlen) < 0)
            return -1;
        int bad = s_fold(self->sum + at, buf, n, w_eff, self->scale, self->max_product, sign);
        *stop = at + n;
        if (bad && sign > 0)
            return 1;
    }
    return 0;
}

int mfl_aggregate_add_read(mfl_aggregate_t *self, mfl_aggregate_read_fn *read, void *ctx,
                           float *buf, size_t buf_n, double weight, char *err, size_t errlen)
{
    double wq, w_eff;
    if (!buf || buf_n == 0) {
        mfl_errf(err, errlen, "no read buffer");
        return -1;
    }
    if (s_admit(self, weight, &wq, &w_eff, err, errlen) < 0)
        return -1;
    size_t stop = 0;
    int rc = s_fold_read(self, read, ctx, buf, buf_n, self->n, w_eff, 1, &stop, err, errlen);
    if (rc == 0) {
        self->weight_q += (uint64_t)wq;
        self->count++;
        return 0;
    }
    if (rc > 0) { /* name the refused value while its block is still in buf */
        size_t first = (stop - 1) / buf_n * buf_n;
        mfl_aggregate_part_t p = {first, buf, stop - first};
        s_explain(self, &p, w_eff, err, errlen);
    }
    /* Take out exactly what went in: the blocks [0, stop), read again. */
    char e2[128];
    size_t undone = 0;
    for (size_t at = 0; at < stop; at += buf_n) {
        size_t n = stop - at < buf_n ? stop - at : buf_n;
        if (read(ctx, at, buf, n, e2, sizeof e2) < 0)
            break;
        (void)s_fold(self->sum + at, buf, n, w_eff, self->scale, self->max_product, -1);
        undone = at + n;
    }
    if (undone != stop) { /* cannot happen unless the store fails between two reads */
        self->spent = true; /* refuse every later use: the sums are wrong */
        char first[256];
        snprintf(first, sizeof first, "%s", err ? err : "");
        mfl_errf(err, errlen, "%s; and reading it again failed (%s): aggregate discarded",
                 first, e2);
    }
    return -1;
}

int mfl_aggregate_remove_read(mfl_aggregate_t *self, mfl_aggregate_read_fn *read, void *ctx,
                              float *buf, size_t buf_n, double weight)
{
    if (self->spent || self->count == 0 || !isfinite(weight) || weight <= 0 ||
        weight > self->max_weight || !buf || !buf_n)
        return -1;
    double wq = nearbyint(ldexp(weight, MFL_AGGREGATE_WEIGHT_BITS));
    if (wq < 1 || (uint64_t)wq > self->weight_q)
        return -1;
    double w_eff = ldexp(wq, -MFL_AGGREGATE_WEIGHT_BITS);
    size_t stop;
    char e[128];
    if (s_fold_read(self, read, ctx, buf, buf_n, self->n, w_eff, -1, &stop, e, sizeof e) != 0) {
        self->spent = true; /* partly taken out: the sums are wrong */
        return -1;
    }
    self->weight_q -= (uint64_t)wq;
    self->count--;
    return 0;
}

int mfl_aggregate_add(mfl_aggregate_t *self, const float *delta, double weight, char *err,
                      size_t errlen)
{
    mfl_aggregate_part_t whole = {0, delta, self->n};
    return mfl_aggregate_add_parts(self, &whole, 1, weight, err, errlen);
}

int mfl_aggregate_quantise(const mfl_aggregate_t *self, const float *delta, double weight,
                           int64_t *out, uint64_t *weight_q, char *err, size_t errlen)
{
    double wq, w_eff;
    if (s_admit_weight(self, weight, &wq, &w_eff, err, errlen) < 0)
        return -1;
    memset(out, 0, self->n * sizeof *out);
    if (s_fold(out, delta, self->n, w_eff, self->scale, self->max_product, 1)) {
        mfl_aggregate_part_t whole = {0, delta, self->n};
        s_explain(self, &whole, w_eff, err, errlen);
        return -1;
    }
    *weight_q = (uint64_t)wq;
    return 0;
}

/* The checks add_sum and add_sum32 share. */
static int s_admit_sum(const mfl_aggregate_t *self, uint64_t weight_q, size_t count, char *err,
                       size_t errlen)
{
    if (self->spent || count == 0 || count > self->max_updates - self->count) {
        mfl_errf(err, errlen, "a sum of %zu updates does not fit (%zu of %u already held)",
                 count, self->count, self->max_updates);
        return -1;
    }
    /* Each weight_q is in [1, max_weight · 2^8] (s_admit_weight). */
    if (weight_q < count || weight_q / count > (uint64_t)ldexp(self->max_weight,
                                                                MFL_AGGREGATE_WEIGHT_BITS)) {
        mfl_errf(err, errlen, "total quantised weight %llu is impossible for %zu updates",
                 (unsigned long long)weight_q, count);
        return -1;
    }
    return 0;
}

int mfl_aggregate_add_sum(mfl_aggregate_t *self, const int64_t *sum, uint64_t weight_q,
                          size_t count, char *err, size_t errlen)
{
    if (s_admit_sum(self, weight_q, count, err, errlen) < 0)
        return -1;
    if (s_storage(self, err, errlen) < 0)
        return -1;
    for (size_t j = 0; j < self->n; j++)
        self->sum[j] = (int64_t)((uint64_t)self->sum[j] + (uint64_t)sum[j]);
    self->weight_q += weight_q;
    self->count += count;
    return 0;
}

/* Terms per pass of quantise32: its int64 scratch stays in L1. */
#define S_Q32_BLOCK 2048

int mfl_aggregate_quantise32(const mfl_aggregate_t *self, const float *delta, double weight,
                             uint32_t *out, uint64_t *weight_q, char *err, size_t errlen)
{
    if (self->sum_bits > 32) {
        mfl_errf(err, errlen, "the aggregate's sums take %u bits: its terms need 64-bit words",
                 self->sum_bits);
        return -1;
    }
    double wq, w_eff;
    if (s_admit_weight(self, weight, &wq, &w_eff, err, errlen) < 0)
        return -1;
    int64_t tmp[S_Q32_BLOCK];
    for (size_t at = 0; at < self->n; at += S_Q32_BLOCK) {
        size_t m = self->n - at < S_Q32_BLOCK ? self->n - at : S_Q32_BLOCK;
        memset(tmp, 0, m * sizeof *tmp);
        /* the same fold as every other path: the same terms, bit for bit */
        if (s_fold(tmp, delta + at, m, w_eff, self->scale, self->max_product, 1)) {
            mfl_aggregate_part_t whole = {0, delta, self->n};
            s_explain(self, &whole, w_eff, err, errlen);
            return -1;
        }
        /* |term| ≤ 2^(sum_bits − 2): its low 32 bits are it, mod 2^32 */
        for (size_t k = 0; k < m; k++)
            out[at + k] = (uint32_t)(uint64_t)tmp[k];
    }
    *weight_q = (uint64_t)wq;
    return 0;
}

int mfl_aggregate_add_sum32(mfl_aggregate_t *self, const uint32_t *sum, uint64_t weight_q,
                            size_t count, char *err, size_t errlen)
{
    if (self->sum_bits > 32) {
        mfl_errf(err, errlen, "the aggregate's sums take %u bits: a 32-bit sum cannot hold them",
                 self->sum_bits);
        return -1;
    }
    if (s_admit_sum(self, weight_q, count, err, errlen) < 0 || s_storage(self, err, errlen) < 0)
        return -1;
    /* Each sum is below 2^31 in magnitude (the bound), so the 32-bit word
     * read as two's complement is it: flip the sign bit, widen, re-centre
     * (no implementation-defined conversion). */
    for (size_t j = 0; j < self->n; j++)
        self->sum[j] += (int64_t)(sum[j] ^ 0x80000000u) - (int64_t)0x80000000;
    self->weight_q += weight_q;
    self->count += count;
    return 0;
}

unsigned mfl_aggregate_sum_bits(const mfl_aggregate_t *self)
{
    return self->sum_bits;
}

unsigned mfl_aggregate_frac_bits(const mfl_aggregate_t *self)
{
    return self->frac_bits;
}

double mfl_aggregate_max_weight(const mfl_aggregate_t *self)
{
    return self->max_weight;
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

/* Σ w·Δ = S / 2^F and Σ w = W / 2^8, so mean = S / (W · 2^(F−8)). Both
 * conversions to double are of exact integers: deterministic. */
static double s_inv_denom(const mfl_aggregate_t *self)
{
    double denom = ldexp((double)self->weight_q, (int)self->frac_bits - MFL_AGGREGATE_WEIGHT_BITS);
    return 1.0 / denom; /* one rounding more than dividing: ~1e-16 relative */
}

int mfl_aggregate_mean(const mfl_aggregate_t *self, float *out)
{
    if (self->count == 0 || self->spent)
        return -1;
    const double inv = s_inv_denom(self);
    for (size_t j = 0; j < self->n; j++)
        out[j] = (float)((double)self->sum[j] * inv);
    return 0;
}

#define S_MEAN_BLOCK 1024

float *mfl_aggregate_mean_in_place(mfl_aggregate_t *self)
{
    if (self->count == 0 || self->spent)
        return NULL;
    const double inv = s_inv_denom(self);
    /* Float j goes to bytes [4j, 4j + 4) of the sums' storage. A block's
     * sums are all read into `tmp` before its floats are written, and the
     * floats of block b land at or below the sums of block b, which are
     * read already: nothing is overwritten before it is read. */
    unsigned char *base = (unsigned char *)self->sum;
    float tmp[S_MEAN_BLOCK];
    for (size_t j = 0; j < self->n; j += S_MEAN_BLOCK) {
        size_t m = self->n - j < S_MEAN_BLOCK ? self->n - j : S_MEAN_BLOCK;
        for (size_t k = 0; k < m; k++)
            tmp[k] = (float)((double)self->sum[j + k] * inv);
        memcpy(base + j * sizeof(float), tmp, m * sizeof(float));
    }
    self->spent = true;
    return (float *)(void *)base;
}

void mfl_aggregate_release(mfl_aggregate_t *self)
{
    free(self->sum);
    self->sum = NULL;
    self->count = 0;
    self->weight_q = 0;
    self->spent = false;
}

void mfl_aggregate_reset(mfl_aggregate_t *self)
{
    if (self->sum)
        memset(self->sum, 0, self->n * sizeof *self->sum);
    self->count = 0;
    self->weight_q = 0;
    self->spent = false;
}
