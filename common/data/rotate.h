/* Rotated copies of images as further classes (the Omniglot recipe for
 * widening a small class pool, Vinyals et al. 2016): class c turned
 * clockwise by q quarter turns is its own class, c + q·C, where C is the
 * source's number of classes. Four orientations, so the label space
 * becomes 4·C whichever orientations are asked for: a site that lists
 * fewer orientations keeps the same labels (and schema) as one that
 * lists all four. */
#ifndef MFL_DATA_ROTATE_H
#define MFL_DATA_ROTATE_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

#define MFL_ROTATE_ORIENTATIONS 4 /* 0, 90, 180, 270 degrees */

/* The label of class `c` (of `n_classes`) turned clockwise by
 * `quarters` quarter turns (0..3). */
static inline uint32_t mfl_rotate_label(uint32_t c, size_t n_classes, unsigned quarters)
{
    return c + (uint32_t)(quarters * n_classes);
}

/* A new data set holding, for each q in quarters[0..n_quarters) in that
 * order, every row of `src` (in order) turned clockwise by q·90°, labelled
 * mfl_rotate_label(y, src->n_classes, q); rows whose new label is not one
 * of keep[0..n_keep) are left out (n_keep 0: all kept). n_classes of the
 * result = 4 · src->n_classes; groups are not carried. Every plane of a
 * multi-channel image is turned alike. All borrowed.
 * Returns NULL with "what" in err when src is not a classification image
 * set, a 90°/270° turn meets a non-square image, a quarter is > 3 or
 * listed twice, or memory runs out. */
mfl_dataset_t *mfl_dataset_rotate_classes(const mfl_dataset_t *src, const unsigned *quarters,
                                          size_t n_quarters, const uint32_t *keep,
                                          size_t n_keep, char *err, size_t errlen);

#endif
