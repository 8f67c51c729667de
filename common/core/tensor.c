/* The tensor view's constructors. */
#include "core/tensor.h"

#include <string.h>

mfl_tensor_t mfl_tensor_vec(const char *name, const float *data, uint64_t count)
{
    mfl_tensor_t t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.ndim = 1;
    t.shape[0] = count;
    t.count = count;
    t.data = data;
    return t;
}

mfl_tensor_t mfl_tensor_view(const char *name, size_t ndim, const size_t *shape,
                             const float *data)
{
    mfl_tensor_t t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.ndim = ndim;
    t.count = 1;
    for (size_t d = 0; d < ndim && d < MFL_TENSOR_MAX_DIMS; d++) {
        t.shape[d] = shape[d];
        t.count *= shape[d];
    }
    t.data = data;
    return t;
}

const mfl_tensor_piece_t *mfl_tensor_pieces(const mfl_tensor_t *t, mfl_tensor_piece_t *one,
                                            size_t *n)
{
    if (t->n_pieces) {
        *n = t->n_pieces;
        return t->pieces;
    }
    one->data = t->data;
    one->count = t->count;
    *n = 1;
    return one;
}
