#include "core/rng.h"

#include <math.h>

static uint64_t s_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t s_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mfl_rng_seed(mfl_rng_t *self, uint64_t seed, uint64_t stream)
{
    uint64_t state = seed ^ s_splitmix64(&(uint64_t){stream ^ 0x6a09e667f3bcc909ULL});
    for (int i = 0; i < 4; i++)
        self->s[i] = s_splitmix64(&state);
}

uint64_t mfl_rng_u64(mfl_rng_t *self)
{
    uint64_t *s = self->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

float mfl_rng_uniform(mfl_rng_t *self)
{
    return (float)(mfl_rng_u64(self) >> 40) * (1.0f / 16777216.0f);
}

double mfl_rng_uniform_double(mfl_rng_t *self)
{
    return (double)(mfl_rng_u64(self) >> 11) * (1.0 / 9007199254740992.0);
}

void mfl_rng_uniform_double_fill(mfl_rng_t *self, double *out, size_t n)
{
    uint64_t s0 = self->s[0], s1 = self->s[1], s2 = self->s[2], s3 = self->s[3];
    for (size_t i = 0; i < n; i++) { /* mfl_rng_u64 with the state in registers */
        uint64_t result = s_rotl(s1 * 5, 7) * 9;
        uint64_t t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = s_rotl(s3, 45);
        out[i] = (double)(result >> 11) * (1.0 / 9007199254740992.0);
    }
    self->s[0] = s0;
    self->s[1] = s1;
    self->s[2] = s2;
    self->s[3] = s3;
}

float mfl_rng_range(mfl_rng_t *self, float lo, float hi)
{
    return lo + (hi - lo) * mfl_rng_uniform(self);
}

float mfl_rng_normal(mfl_rng_t *self)
{
    double u1 = mfl_rng_uniform_double(self);
    double u2 = mfl_rng_uniform_double(self);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t mfl_rng_below(mfl_rng_t *self, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = mfl_rng_u64(self);
    } while (x >= limit);
    return x % n;
}

void mfl_rng_shuffle(mfl_rng_t *self, size_t *values, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mfl_rng_below(self, i);
        size_t t = values[i - 1];
        values[i - 1] = values[j];
        values[j] = t;
    }
}
