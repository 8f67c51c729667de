/* MNIST-format IDX files (images idx3-ubyte + labels idx1-ubyte), plain or
 * gzipped, into a data set: one row per image, pixels scaled to [0, 1],
 * channels = 1, height/width from the file, labels as class indices.
 *
 * Strict: magic 0x00000803 (images) / 0x00000801 (labels), unsigned-byte
 * data only, non-zero dimensions, equal counts in both files, and the
 * payload exactly as long as the header says (no truncation, no trailing
 * bytes when the whole file is read). Bounded: an image has at most
 * MFL_IDX_MAX_PIXELS pixels and a file at most MFL_IDX_MAX_ITEMS items, so
 * a forged header cannot demand a huge allocation. Errors name the file. */
#ifndef MFL_DATA_IDX_H
#define MFL_DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

#define MFL_IDX_MAX_PIXELS (1u << 20)  /* per image */
#define MFL_IDX_MAX_ITEMS  (1u << 24)  /* images per file */
#define MFL_IDX_MAX_BYTES  (1u << 30)  /* pixel payload actually loaded */

/* Loads the first max_rows images (0 = all) and their labels. Paths are
 * borrowed. Returns a new data set (caller destroys) with n_classes =
 * largest label + 1, or NULL with "PATH: what" in err. */
mfl_dataset_t *mfl_idx_load(const char *images_path, const char *labels_path, size_t max_rows,
                            char *err, size_t errlen);

/* The same from two uncompressed in-memory files (for tests and fuzzing);
 * the names are used in messages. */
mfl_dataset_t *mfl_idx_parse(const uint8_t *images, size_t images_len, const uint8_t *labels,
                             size_t labels_len, size_t max_rows, char *err, size_t errlen);

#endif
