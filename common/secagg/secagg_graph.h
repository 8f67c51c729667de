/* Who masks with whom (and holds whose shares) among a round's n sites.
 *
 * Complete graph (Bonawitz et al. 2017): every pair of sites. Sparse graph
 * (SecAgg+, Bell et al. 2020): a Harary graph H(k, n) — sites on a ring,
 * each joined to the k/2 nearest on either side — over a ring order drawn
 * from `seed` (a uniform permutation by Fisher-Yates on ChaCha20), so each
 * site has exactly k neighbours and every party that knows the seed builds
 * the same graph. Sites are indices 1..n. Read-only after new: thread-safe. */
#ifndef MFL_SECAGG_GRAPH_H
#define MFL_SECAGG_GRAPH_H

#include <stddef.h>
#include <stdint.h>

typedef struct mfl_secagg_graph mfl_secagg_graph_t;

/* The graph over n sites (2..255) with k neighbours each: k == 0 or
 * k ≥ n − 1 gives the complete graph; otherwise k must be even and ≥ 2.
 * `seed` (32 bytes) picks the ring order (unused when complete). NULL on
 * bad arguments or out of memory. */
mfl_secagg_graph_t *mfl_secagg_graph_new(uint32_t n, uint32_t k, const uint8_t seed[32]);

/* Frees; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_secagg_graph_destroy(mfl_secagg_graph_t **self_p);

/* 1 if sites a and b (distinct, 1..n) are neighbours, else 0 (also for
 * a == b or an index out of range). */
int mfl_secagg_graph_adjacent(const mfl_secagg_graph_t *self, uint32_t a, uint32_t b);

/* Neighbours per site: n − 1 when complete, else k. */
uint32_t mfl_secagg_graph_degree(const mfl_secagg_graph_t *self);

/* Number of sites. */
uint32_t mfl_secagg_graph_size(const mfl_secagg_graph_t *self);

#endif
