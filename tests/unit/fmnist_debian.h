/* Fashion-MNIST's test set from Debian's dataset-fashion-mnist package,
 * for the unit tests that need real images: loaded, or the test skipped
 * (with a SKIP line naming the file and the package) when the package is
 * not installed. Header-only (static inline) because each unit test is one
 * .c file; include it after cmocka.h. */
#ifndef MFL_TEST_FMNIST_DEBIAN_H
#define MFL_TEST_FMNIST_DEBIAN_H

#include <stdio.h>
#include <sys/stat.h>

#include "data/idx.h"

#define FMNIST_DEBIAN_IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
#define FMNIST_DEBIAN_LABELS "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"

/* The first `max` test items (0: all 10,000); fails the test if the
 * files are there but do not load. */
static inline mfl_dataset_t *fmnist_debian_load(size_t max)
{
    struct stat st;
    if (stat(FMNIST_DEBIAN_IMAGES, &st) != 0) {
        printf("SKIP: %s not found (apt-get install dataset-fashion-mnist)\n",
               FMNIST_DEBIAN_IMAGES);
        skip();
    }
    char err[256] = "";
    mfl_dataset_t *d = mfl_idx_load(FMNIST_DEBIAN_IMAGES, FMNIST_DEBIAN_LABELS, max, err,
                                    sizeof err);
    if (!d)
        fail_msg("%s", err);
    return d;
}

#endif
