/* Saving and loading a learner's whole state (the model's tensors plus
 * Meta-SGD's rates or the relation module) as safetensors, readable by
 * PyTorch/NumPy tooling. Metadata records "spec", "algo" and, for
 * Relation nets, "relation". */
#ifndef MFL_META_LEARNER_IO_H
#define MFL_META_LEARNER_IO_H

#include <stddef.h>

#include "meta/learner.h"

/* Writes state[n_state] to `path` atomically (temp file, fsync, rename).
 * `metadata` is key, value, ..., NULL (may be NULL; "spec", "algo" and
 * "relation" are reserved). Returns 0 or -1 with err naming the path. */
int mfl_learner_save(const mfl_learner_t *self, const float *state, const char *path,
                     const char *const *metadata, char *err, size_t errlen);

/* Reads `path` into state[n_state]: the file must hold exactly the
 * learner's tensors with their shapes and, where recorded, the same spec
 * and algorithm. state is written only when everything checks out. */
int mfl_learner_load(const mfl_learner_t *self, float *state, const char *path, char *err,
                     size_t errlen);

#endif
