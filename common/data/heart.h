/* UCI Heart Disease, four real hospitals, prepared exactly as FLamby's
 * Fed-Heart-Disease benchmark (see /work/shared/ANCHORS.md and docs/DATA.md):
 * complete cases over 11 columns (slope, ca, thal dropped), cp and restecg
 * one-hot without their first level and appended after the numerics, label
 * num > 0, the exact train/test rows of flamby-split.json, standardised
 * with the training mean and unbiased std (+1e-9).
 *
 * Feature order (13): age, sex, trestbps, chol, fbs, thalach, exang,
 * oldpeak, cp_2, cp_3, cp_4, restecg_1, restecg_2. Labels 0/1, n_classes 2.
 * Rows keep the order of flamby-split.json (ascending file line). */
#ifndef MFL_DATA_HEART_H
#define MFL_DATA_HEART_H

#include <stddef.h>

#include "data/csv.h"
#include "data/dataset.h"

#define MFL_HEART_N_FEATURES 13
#define MFL_HEART_N_SITES    4

typedef enum {
    MFL_HEART_STD_SITE = 0, /* each site with its own training rows (FLamby) */
    MFL_HEART_STD_POOLED,   /* with all 486 training rows (pooled baseline) */
    MFL_HEART_STD_NONE,     /* raw features */
} mfl_heart_std_t;

/* Site names in FLamby's order: "cleveland", "hungarian", "switzerland",
 * "va"; NULL for i ≥ MFL_HEART_N_SITES. */
const char *mfl_heart_site_name(size_t i);

/* The shared data folder: $METAFL_SHARED if set; else "../shared" if it
 * holds the heart data (a process started in the repo root); else the
 * repository's sibling found from the executable's path (<repo>/../shared);
 * else "../shared". Borrowed string. Thread-safe. */
const char *mfl_heart_default_shared(void);

/* Loads one site from `shared_dir`/data/uci-heart-disease/ into new data sets
 * *train and *test (caller destroys both), standardised as `std` says.
 * Returns 0, or -1 with a message naming the file (and line/key) in err;
 * on error both outputs are NULL. */
int mfl_heart_load(const char *shared_dir, const char *site, mfl_heart_std_t std,
                   mfl_dataset_t **train, mfl_dataset_t **test, char *err, size_t errlen);

/* mfl_heart_load with MFL_HEART_STD_SITE: FLamby's per-site setup. */
int mfl_heart_load_site(const char *shared_dir, const char *site, mfl_dataset_t **train,
                        mfl_dataset_t **test, char *err, size_t errlen);

/* mfl_heart_load with MFL_HEART_STD_POOLED: the centralised baseline's
 * standardisation (train and test of `site`, pooled statistics). */
int mfl_heart_load_pooled(const char *shared_dir, const char *site, mfl_dataset_t **train,
                          mfl_dataset_t **test, char *err, size_t errlen);

/* The CSV schema of one raw site file (14 columns, as above). Borrowed,
 * static. Useful for site configs that want the same preprocessing. */
const mfl_csv_schema_t *mfl_heart_csv_schema(void);

#endif
