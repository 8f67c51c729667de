/* Complete or Harary neighbour graphs (see secagg_graph.h). */
#include "secagg/secagg_graph.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct mfl_secagg_graph {
    uint32_t n, k;      /* k == n - 1: complete */
    uint32_t *pos;      /* pos[i]: ring position of site i (1..n), NULL if complete */
};

/* A uniform draw below `bound` from a ChaCha20 stream (rejection, no bias). */
typedef struct {
    uint8_t key[32];
    uint8_t buf[256];
    size_t used;
    uint64_t block;
} s_stream_t;

static uint32_t s_next32(s_stream_t *st)
{
    if (st->used + 4 > sizeof st->buf) {
        uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
        memset(st->buf, 0, sizeof st->buf);
        crypto_stream_chacha20_ietf_xor_ic(st->buf, st->buf, sizeof st->buf, nonce,
                                           (uint32_t)st->block, st->key);
        st->block += sizeof st->buf / 64;
        st->used = 0;
    }
    const uint8_t *b = st->buf + st->used;
    st->used += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t s_below(s_stream_t *st, uint32_t bound)
{
    uint32_t limit = (uint32_t)(0x100000000ull - (0x100000000ull % bound)); /* 0 if 2^32 fits */
    for (;;) {
        uint32_t v = s_next32(st);
        if (limit == 0 || v < limit)
            return v % bound;
    }
}

mfl_secagg_graph_t *mfl_secagg_graph_new(uint32_t n, uint32_t k, const uint8_t seed[32])
{
    if (n < 2 || n > 255 || sodium_init() < 0)
        return NULL;
    int complete = k == 0 || k >= n - 1;
    if (!complete && (k < 2 || k % 2 != 0))
        return NULL;
    mfl_secagg_graph_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->k = complete ? n - 1 : k;
    if (complete)
        return self;
    self->pos = calloc((size_t)n + 1, sizeof *self->pos);
    uint32_t *order = calloc(n, sizeof *order);
    if (!self->pos || !order) {
        free(order);
        mfl_secagg_graph_destroy(&self);
        return NULL;
    }
    s_stream_t st;
    memset(&st, 0, sizeof st);
    memcpy(st.key, seed, sizeof st.key);
    st.used = sizeof st.buf; /* empty: the first draw fills it */
    for (uint32_t r = 0; r < n; r++)
        order[r] = r + 1;
    for (uint32_t r = n - 1; r > 0; r--) { /* Fisher-Yates */
        uint32_t s = s_below(&st, r + 1);
        uint32_t t = order[r];
        order[r] = order[s];
        order[s] = t;
    }
    for (uint32_t r = 0; r < n; r++)
        self->pos[order[r]] = r;
    free(order);
    sodium_memzero(&st, sizeof st);
    return self;
}

void mfl_secagg_graph_destroy(mfl_secagg_graph_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->pos);
    free(*self_p);
    *self_p = NULL;
}

int mfl_secagg_graph_adjacent(const mfl_secagg_graph_t *self, uint32_t a, uint32_t b)
{
    if (a == b || a < 1 || b < 1 || a > self->n || b > self->n)
        return 0;
    if (!self->pos)
        return 1;
    uint32_t pa = self->pos[a], pb = self->pos[b];
    uint32_t d = pa > pb ? pa - pb : pb - pa;
    if (self->n - d < d)
        d = self->n - d; /* distance around the ring */
    return d <= self->k / 2;
}

uint32_t mfl_secagg_graph_degree(const mfl_secagg_graph_t *self)
{
    return self->k;
}

uint32_t mfl_secagg_graph_size(const mfl_secagg_graph_t *self)
{
    return self->n;
}
