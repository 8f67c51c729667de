/* Wisconsin Diagnostic Breast Cancer (569 patients, 30 features), from the
 * copy of sklearn's breast_cancer.csv that deploy/get-wdbc.sh extracts
 * from Debian's python3-sklearn package into build/data/.
 *
 * The file's first line is a count header "569,30,malignant,benign"; each
 * row holds 30 numbers and a target with sklearn's encoding 0 = malignant,
 * 1 = benign. The loader checks the header against the rows and flips the
 * target so that y = 1 means malignant (212 of 569), n_classes = 2.
 * Features are raw (not standardised), in sklearn's order: the mean,
 * standard error and worst value of radius, texture, perimeter, area,
 * smoothness, compactness, concavity, concave points, symmetry and
 * fractal dimension. */
#ifndef MFL_DATA_WDBC_H
#define MFL_DATA_WDBC_H

#include <stddef.h>

#include "data/dataset.h"

#define MFL_WDBC_N_ROWS     569
#define MFL_WDBC_N_FEATURES 30

/* Where get-wdbc.sh puts the file, relative to the repository root. */
#define MFL_WDBC_DEFAULT_PATH "build/data/breast_cancer.csv"

/* Loads the table at `path` (borrowed). Returns a new data set (caller
 * destroys) or NULL with "PATH:LINE: ..." in err. */
mfl_dataset_t *mfl_wdbc_load(const char *path, char *err, size_t errlen);

/* sklearn's name of feature i ("mean radius", ..., "worst fractal
 * dimension"); NULL if i ≥ 30. */
const char *mfl_wdbc_feature_name(size_t i);

#endif
