/* The coordinator's tensor view, in a header of its own so the transport
 * side (coord_wire.c, which includes wire/message.h) and the engine side
 * (round_engine.h, which includes meta/learner.h) can share it: those two
 * headers cannot meet in one translation unit today (both define
 * MFL_TENSOR_MAX_DIMS, with different values). */
#ifndef MFL_COORD_ENGINE_TENSOR_H
#define MFL_COORD_ENGINE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* One tensor: borrowed views, valid during the call they are passed to. */
typedef struct {
    const char *name;
    size_t ndim;
    const uint64_t *shape; /* ndim entries */
    uint64_t count;        /* elements */
    const float *data;
} mfl_engine_tensor_t;

#endif
