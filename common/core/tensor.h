/* The tensor view: one named float32 tensor as every layer passes it (the
 * model's θ tensors, the engine's θ and Δ, the wire's frames). Everything
 * in it is borrowed: a view never owns its name, shape or data.
 *
 * Layout records that need more than a view keep their own fields next to
 * one (the model's mfl_tensor_info_t: offset into the flat θ; safetensors'
 * mfl_st_tensor_t: byte range in the file), with shapes of the same named
 * maximum. A tensor with more than MFL_TENSOR_MAX_DIMS dimensions cannot be
 * described and is refused wherever one arrives (file, wire). */
#ifndef MFL_CORE_TENSOR_H
#define MFL_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define MFL_TENSOR_MAX_DIMS 8  /* dimensions of any tensor (the wire's limit too) */
#define MFL_TENSOR_NAME_MAX 64 /* bytes of a model tensor's name, NUL included */

/* A run of a tensor's values where they arrived (a received frame). */
typedef struct {
    const float *data; /* count floats, 4-byte aligned */
    uint64_t count;
} mfl_tensor_piece_t;

typedef struct {
    const char *name;
    size_t ndim;                         /* ≤ MFL_TENSOR_MAX_DIMS; 0 = scalar (count 1) */
    uint64_t shape[MFL_TENSOR_MAX_DIMS]; /* elements per dimension, first ndim used */
    uint64_t count;                      /* product of shape (elements) */
    const float *data;                   /* count floats, 4-byte aligned */
    /* Optional BLAKE2b-256 of the data's bytes when the holder already has
     * it (a signed update, a received frame), so it is not hashed twice;
     * NULL when unknown. */
    const uint8_t *blake2b;
    /* How the values travel (fed/quant.h's mfl_quant_kind_t): 0 (the
     * default everywhere) float32. Only the wire and the site's update
     * path set another: on send, encoding ≠ 0 makes `data` point to
     * mfl_quant_bytes(encoding, count) encoded bytes (cast) and blake2b
     * hash those bytes; on receive, data is the decoded float32 values
     * (or, where the receiver asked for wire/message.h encoded_runs, NULL
     * with `pieces` runs of codes: fed/quant.h mfl_quant_decode_view),
     * encoding/scale say how they came and blake2b is the hash of the
     * bytes that came. */
    uint32_t encoding;
    float scale; /* int8: value = code · scale */
    /* Receive side only, where the receiver asked for it (the coordinator's
     * updates: wire/message.h, mfl_wire_limits_t.pieces): a float32 tensor
     * that arrived in several frames is left in them instead of being
     * copied into one buffer; `data` is then NULL and the values are these
     * n_pieces runs, in order, their counts adding up to `count`. NULL / 0
     * everywhere else. Read a view either way with mfl_tensor_pieces. */
    const mfl_tensor_piece_t *pieces;
    size_t n_pieces;
} mfl_tensor_t;

/* A 1-D view {count} of data named `name` (blake2b NULL). */
mfl_tensor_t mfl_tensor_vec(const char *name, const float *data, uint64_t count);

/* A view of ndim dimensions (ndim ≤ MFL_TENSOR_MAX_DIMS, checked by the
 * caller) with shape copied from `shape` (size_t, as layouts keep it) and
 * count their product. */
mfl_tensor_t mfl_tensor_view(const char *name, size_t ndim, const size_t *shape,
                             const float *data);

/* The view's values as runs: t->pieces (*n = t->n_pieces) when it has
 * them, else one run {t->data, t->count} written into *one. */
const mfl_tensor_piece_t *mfl_tensor_pieces(const mfl_tensor_t *t, mfl_tensor_piece_t *one,
                                            size_t *n);

#endif
