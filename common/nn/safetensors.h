/* safetensors files (https://huggingface.co/docs/safetensors): the model
 * checkpoint and export format, readable by PyTorch/NumPy tooling.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"NAME":{"dtype":"F32","shape":[..],"data_offsets":[BEGIN,END]}, ...,
 *    "__metadata__":{"key":"value", ...}}
 * (padded with spaces to a multiple of 8), then the raw little-endian data;
 * offsets are relative to the end of the header.
 *
 * Reading is strict and bounded: header ≤ MFL_ST_MAX_HEADER bytes, only F32
 * tensors of at most MFL_MODEL_MAX_DIMS dimensions, shapes that match the
 * byte ranges exactly (overflow-checked), ranges inside the file that tile
 * the data section with no gap or overlap, no unknown keys, metadata values
 * strings only. Every error names the file (or label) and the tensor. */
#ifndef MFL_NN_SAFETENSORS_H
#define MFL_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/model.h"

#define MFL_ST_MAX_HEADER (16u * 1024u * 1024u) /* bytes of JSON header */
#define MFL_ST_MAX_TENSORS 65536u
#define MFL_ST_MAX_FILE ((size_t)4 << 30)       /* 4 GiB */

/* One tensor of a parsed file. `name` is borrowed from the parsed file. */
typedef struct {
    const char *name;
    size_t ndim;
    size_t shape[MFL_MODEL_MAX_DIMS];
    size_t count;        /* product of shape (1 for a scalar) */
    size_t begin, end;   /* byte range in the data section */
} mfl_st_tensor_t;

typedef struct mfl_safetensors mfl_safetensors_t;

/* Parses a complete file image data[0..len) (borrowed: it must outlive the
 * result, which points into it). `label` names the source in messages
 * (a path). Returns NULL with "LABEL: ..." in err on any violation. */
mfl_safetensors_t *mfl_safetensors_parse(const uint8_t *data, size_t len, const char *label,
                                         char *err, size_t errlen);

/* Reads and parses the file at `path` (the result owns the bytes). */
mfl_safetensors_t *mfl_safetensors_read(const char *path, char *err, size_t errlen);

void mfl_safetensors_destroy(mfl_safetensors_t **self_p);

/* Tensors in file order of their data (ascending offsets). */
size_t mfl_safetensors_n_tensors(const mfl_safetensors_t *self);
const mfl_st_tensor_t *mfl_safetensors_tensor(const mfl_safetensors_t *self, size_t index);
const mfl_st_tensor_t *mfl_safetensors_find(const mfl_safetensors_t *self, const char *name);

/* Copies a tensor's values into dst[t->count] (converting from little
 * endian). */
void mfl_safetensors_copy(const mfl_safetensors_t *self, const mfl_st_tensor_t *t, float *dst);

/* A "__metadata__" value (borrowed), or NULL if absent. */
const char *mfl_safetensors_metadata(const mfl_safetensors_t *self, const char *key);

/* Encodes θ of `model` as a safetensors image (malloc'd into *out, caller
 * frees) with metadata "spec" = mfl_model_spec(model) plus the caller's
 * `metadata`: key, value, key, value, ..., NULL (may be NULL itself; the
 * key "spec" is reserved). Returns 0 or -1 with err. */
int mfl_safetensors_encode(const mfl_model_t *model, const float *theta,
                           const char *const *metadata, uint8_t **out, size_t *out_len,
                           char *err, size_t errlen);

/* Encodes and writes to `path` atomically (temp file, fsync, rename), so a
 * crash leaves the old or the new file, never half of one. */
int mfl_safetensors_save(const char *path, const mfl_model_t *model, const float *theta,
                         const char *const *metadata, char *err, size_t errlen);

/* Loads θ for `model` from `path`: the file must hold exactly the model's
 * tensors with the model's shapes (and, if it records a "spec", the same
 * spec). θ is written only when everything checks out. */
int mfl_safetensors_load(const char *path, const mfl_model_t *model, float *theta, char *err,
                         size_t errlen);

#endif
