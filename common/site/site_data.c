/* A site's data, from its config: build the schema (the consortium's
 * schema file, an inline data.schema, or a built-in source's), load the
 * table (and the optional test file), split training / held-out rows with
 * the config's seed, impute and standardise with statistics of the
 * training rows only (held-out rows play future patients: nothing of
 * theirs may leak into the model's inputs), and build the worker. Errors
 * name FILE:LINE (and the column) of the offending cell. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/csv.h"
#include "data/csv_canon.h"
#include "data/idx.h"
#include "data/rotate.h"
#include "data/series.h"
#include "data/wdbc.h"
#include "site/site_config.h"
#include "site/site_worker_internal.h"

/* One load's working state; s_load_free releases everything it holds. */
typedef struct {
    const mfl_site_config_t *cfg;
    mfl_csv_schema_t schema;     /* CSV and heart sources */
    mfl_yaml_doc_t *schema_doc;  /* a schema file's document (the schema borrows it) */
    bool is_table;               /* loaded through the CSV loader */
    mfl_csv_stats_t stats;       /* of data.path */
    mfl_dataset_t *all, *test, *train, *heldout;
    mfl_dataset_t *raw_train, *raw_heldout; /* standardize: federated: unscaled copies */
    char *canonical;
    char *report;
} s_load_t;

static void s_load_free(s_load_t *l)
{
    mfl_csv_schema_clear(&l->schema);
    mfl_yaml_destroy(&l->schema_doc);
    mfl_csv_stats_clear(&l->stats);
    mfl_dataset_destroy(&l->all);
    mfl_dataset_destroy(&l->test);
    mfl_dataset_destroy(&l->train);
    mfl_dataset_destroy(&l->heldout);
    mfl_dataset_destroy(&l->raw_train);
    mfl_dataset_destroy(&l->raw_heldout);
    free(l->canonical);
    free(l->report);
}

static int s_build_schema(s_load_t *l, char *err, size_t errlen)
{
    if (mfl_site_config_csv_schema(l->cfg, &l->schema, &l->schema_doc, err, errlen) < 0)
        return -1;
    /* Imputation waits for the split: statistics of the training rows only. */
    if (l->schema.on_missing == MFL_CSV_MISSING_IMPUTE)
        l->schema.on_missing = MFL_CSV_MISSING_KEEP;
    l->is_table = true;
    return 0;
}

static int s_load_wdbc(s_load_t *l, char *err, size_t errlen)
{
    l->all = mfl_wdbc_load(l->cfg->data_path, err, errlen);
    if (!l->all)
        return -1;
    const char *names[MFL_WDBC_N_FEATURES];
    for (size_t i = 0; i < MFL_WDBC_N_FEATURES; i++)
        names[i] = mfl_wdbc_feature_name(i);
    l->canonical = mfl_schema_canonical_plain(names, MFL_WDBC_N_FEATURES, 0, 0, 0,
                                              l->all->n_classes);
    if (!l->canonical)
        return mfl_errf(err, errlen, "out of memory"), -1;
    return 0;
}

/* The rows of `ds` whose class is one of keep[0..n) (n 0: all). */
static int s_keep_classes(mfl_dataset_t **ds, const uint32_t *keep, size_t n)
{
    if (n == 0)
        return 0;
    size_t *idx = malloc(((*ds)->n ? (*ds)->n : 1) * sizeof *idx), k = 0;
    if (!idx)
        return -1;
    for (size_t r = 0; r < (*ds)->n; r++)
        for (size_t i = 0; i < n; i++)
            if ((*ds)->y[r] == (float)keep[i]) {
                idx[k++] = r;
                break;
            }
    mfl_dataset_t *sub = mfl_dataset_subset(*ds, idx, k);
    free(idx);
    if (!sub)
        return -1;
    mfl_dataset_destroy(ds);
    *ds = sub;
    return 0;
}

/* data.classes against the rotated label space: every class must be one
 * of the C label-file classes in an orientation data.rotations lists. */
static int s_check_rotated_classes(const mfl_site_config_t *cfg, size_t n_file_classes,
                                   char *err, size_t errlen)
{
    for (size_t i = 0; i < cfg->n_keep_classes; i++) {
        uint32_t k = cfg->keep_classes[i];
        size_t q = k / n_file_classes;
        if (q >= MFL_ROTATE_ORIENTATIONS)
            return mfl_errf(err, errlen, "%s:%zu: key 'data.classes': class %u is not one of "
                            "the %zu classes of %s in 4 orientations (0..%zu)", cfg->file,
                            cfg->classes_line, k, n_file_classes, cfg->labels_path,
                            MFL_ROTATE_ORIENTATIONS * n_file_classes - 1), -1;
        bool listed = false;
        for (size_t j = 0; j < cfg->n_rotations; j++)
            listed |= cfg->rotations[j] == q;
        if (!listed)
            return mfl_errf(err, errlen, "%s:%zu: key 'data.classes': class %u is class %zu "
                            "turned %zu degrees, an orientation data.rotations (line %zu) "
                            "does not list", cfg->file, cfg->classes_line, k,
                            k % n_file_classes, q * 90, cfg->rotations_line), -1;
    }
    return 0;
}

/* The site's own view of a split half: its classes, and with
 * data.rotations the rotated copies as classes of their own. */
static int s_site_view(const mfl_site_config_t *cfg, mfl_dataset_t **ds, char *err,
                       size_t errlen)
{
    if (!cfg->n_rotations) {
        if (s_keep_classes(ds, cfg->keep_classes, cfg->n_keep_classes) < 0)
            return mfl_errf(err, errlen, "out of memory"), -1;
        return 0;
    }
    char why[200];
    mfl_dataset_t *r = mfl_dataset_rotate_classes(*ds, cfg->rotations, cfg->n_rotations,
                                                  cfg->keep_classes, cfg->n_keep_classes, why,
                                                  sizeof why);
    if (!r)
        return mfl_errf(err, errlen, "%s:%zu: key 'data.rotations': %s: %s", cfg->file,
                        cfg->rotations_line, cfg->data_path, why), -1;
    mfl_dataset_destroy(ds);
    *ds = r;
    return 0;
}

/* IDX images; the schema names the image shape and the label file's
 * classes (before any data.classes filter, so hospitals that see
 * different classes still share one schema; with data.rotations 4 × the
 * file's classes, whichever orientations the site lists). */
static int s_load_idx(s_load_t *l, char *err, size_t errlen)
{
    const mfl_site_config_t *cfg = l->cfg;
    l->all = mfl_idx_load(cfg->data_path, cfg->labels_path, cfg->max_rows, err, errlen);
    if (!l->all)
        return -1;
    const mfl_dataset_t *d = l->all;
    size_t n_file_classes = d->n_classes;
    size_t n_classes = cfg->n_rotations ? MFL_ROTATE_ORIENTATIONS * n_file_classes
                                        : n_file_classes;
    l->canonical = mfl_schema_canonical_plain(NULL, d->n_features, d->channels, d->height,
                                              d->width, n_classes);
    if (!l->canonical)
        return mfl_errf(err, errlen, "out of memory"), -1;
    if (cfg->n_rotations && s_check_rotated_classes(cfg, n_file_classes, err, errlen) < 0)
        return -1;
    if (cfg->train_fraction < 1.0 && (cfg->n_keep_classes || cfg->n_rotations)) {
        /* Split every image of the file before keeping the site's classes,
         * so an image is on the same side at every site that reads it (same
         * file, max_rows and split_seed): no site trains on an image another
         * holds out, and a pooled site's training rows are the union of the
         * sites' (docs/APPS.md). Rotated copies are made after the split,
         * so an image and its rotations are on the same side too. s_split
         * takes the two halves as they are. */
        mfl_rng_t rng;
        mfl_rng_seed(&rng, cfg->split_seed, 0x5157u /* "split" stream */);
        mfl_dataset_t *tr = NULL, *ho = NULL;
        if (mfl_dataset_split(l->all, cfg->train_fraction, &rng, &tr, &ho))
            return mfl_errf(err, errlen, "out of memory splitting %s", cfg->data_path), -1;
        mfl_dataset_destroy(&l->all);
        l->all = tr;
        l->test = ho;
        if (s_site_view(cfg, &l->test, err, errlen) < 0)
            return -1;
    }
    if (s_site_view(cfg, &l->all, err, errlen) < 0)
        return -1;
    if (cfg->n_keep_classes && l->all->n == 0)
        return mfl_errf(err, errlen, "%s: data.classes: no image of these classes in %s",
                        cfg->file, cfg->labels_path), -1;
    return 0;
}

/* Per-patient series cut into windows (data/series.h). */
static int s_load_series(s_load_t *l, char *err, size_t errlen)
{
    const mfl_site_config_t *cfg = l->cfg;
    mfl_series_stats_t st;
    l->all = mfl_series_load(cfg->data_path, &cfg->series, &st, err, errlen);
    if (!l->all)
        return -1;
    l->canonical = mfl_series_canonical(&cfg->series, l->all->n_classes);
    l->report = malloc(256);
    if (l->report)
        snprintf(l->report, 256, "%zu rows read, %zu patients, %zu windows of %zu time points "
                 "(%zu patients shorter than a window)", st.rows_read, st.n_patients,
                 l->all->n, cfg->series.window, st.patients_too_short);
    mfl_series_stats_clear(&st);
    if (!l->canonical)
        return mfl_errf(err, errlen, "out of memory"), -1;
    return 0;
}

static int s_load_table(s_load_t *l, char *err, size_t errlen)
{
    const mfl_site_config_t *cfg = l->cfg;
    if (s_build_schema(l, err, errlen) < 0)
        return -1;
    bool has_label = false;
    for (size_t c = 0; c < l->schema.n_columns; c++)
        has_label |= l->schema.columns[c].kind == MFL_CSV_LABEL;
    if (!has_label)
        return mfl_errf(err, errlen, "%s: data.schema: no column has kind 'label' (a site "
                        "trains on labelled rows)", cfg->file), -1;
    l->all = mfl_csv_load(cfg->data_path, &l->schema, &l->stats, err, errlen);
    if (!l->all)
        return -1;
    l->canonical = strdup(l->stats.canonical);
    if (!l->canonical)
        return mfl_errf(err, errlen, "out of memory"), -1;
    if (!cfg->test_path[0])
        return 0;
    mfl_csv_stats_t ts;
    l->test = mfl_csv_load(cfg->test_path, &l->schema, &ts, err, errlen);
    if (!l->test)
        return -1;
    bool same = strcmp(ts.canonical, l->stats.canonical) == 0;
    mfl_csv_stats_clear(&ts);
    if (!same)
        return mfl_errf(err, errlen, "%s: data.test_path: %s encodes differently from %s "
                        "(categorical levels inferred from each file differ: list the levels "
                        "in the schema)", cfg->file, cfg->test_path, cfg->data_path), -1;
    return 0;
}

/* data.split patients: whole patients (groups) to each side, patients with
 * and without a positive window shuffled apart so both sides keep the
 * label balance; round(frac × count) of each kind train. */
static int s_split_patients(const mfl_dataset_t *all, double frac, mfl_rng_t *rng,
                            mfl_dataset_t **train, mfl_dataset_t **heldout)
{
    size_t ng = 0;
    for (size_t i = 0; i < all->n; i++)
        if (all->group[i] + 1 > ng)
            ng = all->group[i] + 1;
    bool *pos = calloc(ng ? ng : 1, sizeof *pos), *seen = calloc(ng ? ng : 1, sizeof *seen),
         *in_train = calloc(ng ? ng : 1, sizeof *in_train);
    size_t *kind[2] = {malloc((ng ? ng : 1) * sizeof(size_t)),
                       malloc((ng ? ng : 1) * sizeof(size_t))};
    size_t *tr = malloc(all->n * sizeof *tr), *ho = malloc(all->n * sizeof *ho);
    int rc = -1;
    if (!pos || !seen || !in_train || !kind[0] || !kind[1] || !tr || !ho)
        goto out;
    for (size_t i = 0; i < all->n; i++) {
        seen[all->group[i]] = true;
        pos[all->group[i]] |= all->y[i] > 0.5f;
    }
    size_t nk[2] = {0, 0};
    for (size_t g = 0; g < ng; g++)
        if (seen[g])
            kind[pos[g]][nk[pos[g]]++] = g;
    for (int k = 0; k < 2; k++) {
        mfl_rng_shuffle(rng, kind[k], nk[k]);
        size_t take = (size_t)(frac * (double)nk[k] + 0.5);
        for (size_t j = 0; j < take && j < nk[k]; j++)
            in_train[kind[k][j]] = true;
    }
    size_t nt = 0, nh = 0;
    for (size_t i = 0; i < all->n; i++) {
        if (in_train[all->group[i]])
            tr[nt++] = i;
        else
            ho[nh++] = i;
    }
    *train = mfl_dataset_subset(all, tr, nt);
    *heldout = mfl_dataset_subset(all, ho, nh);
    if (*train && *heldout) {
        (*train)->n_classes = (*heldout)->n_classes = all->n_classes;
        rc = 0;
    } else {
        mfl_dataset_destroy(train);
        mfl_dataset_destroy(heldout);
    }
out:
    free(pos);
    free(seen);
    free(in_train);
    free(kind[0]);
    free(kind[1]);
    free(tr);
    free(ho);
    return rc;
}

static int s_split(s_load_t *l, char *err, size_t errlen)
{
    const mfl_site_config_t *cfg = l->cfg;
    if (cfg->split_patients && cfg->train_fraction < 1.0 && l->all->group) {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, cfg->split_seed, 0x5157u /* "split" stream */);
        if (s_split_patients(l->all, cfg->train_fraction, &rng, &l->train, &l->heldout))
            return mfl_errf(err, errlen, "out of memory splitting %s", cfg->data_path), -1;
        if (l->train->n == 0 || l->heldout->n == 0)
            return mfl_errf(err, errlen, "%s: data.split patients: %zu training and %zu "
                            "held-out windows after the %.2f split of patients; a site needs "
                            "patients on both sides", cfg->data_path, l->train->n,
                            l->heldout->n, cfg->train_fraction), -1;
    } else if (l->test) {
        l->train = l->all;
        l->heldout = l->test;
        l->all = l->test = NULL;
    } else if (cfg->train_fraction >= 1.0) {
        l->train = l->all;
        l->all = NULL;
    } else {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, cfg->split_seed, 0x5157u /* "split" stream */);
        if (mfl_dataset_split(l->all, cfg->train_fraction, &rng, &l->train, &l->heldout))
            return mfl_errf(err, errlen, "out of memory splitting %s", cfg->data_path), -1;
    }
    if (!l->train || l->train->n == 0)
        return mfl_errf(err, errlen, "%s: no training rows after the %.2f split",
                        cfg->data_path, cfg->train_fraction), -1;
    return 0;
}

/* KEEP holes filled with the training rows' means / modes. */
static int s_impute(s_load_t *l, char *err, size_t errlen)
{
    if (!l->is_table || l->schema.on_missing != MFL_CSV_MISSING_KEEP)
        return 0;
    float *fill = malloc((l->train->n_features ? l->train->n_features : 1) * sizeof *fill);
    if (!fill)
        return mfl_errf(err, errlen, "out of memory"), -1;
    int rc = mfl_csv_impute_fit(&l->schema, &l->stats, l->train, fill);
    if (rc == 0) {
        mfl_csv_impute_apply(l->train, fill);
        if (l->heldout)
            mfl_csv_impute_apply(l->heldout, fill);
    }
    free(fill);
    return rc < 0 ? (mfl_errf(err, errlen, "%s: imputation failed", l->cfg->data_path), -1)
                  : 0;
}

/* Statistics of the training rows only, applied to both splits; or the
 * config's fixed constants (no statistic of the rows). */
static int s_standardize(s_load_t *l, char *err, size_t errlen)
{
    size_t nf = l->train->n_features;
    if (l->cfg->standardize == MFL_SITE_STD_FIXED) {
        if (l->cfg->n_fixed != nf)
            return mfl_errf(err, errlen, "%s: data.center and data.scale have %zu values; the "
                            "data has %zu features (after encoding): one of each per feature",
                            l->cfg->file, l->cfg->n_fixed, nf), -1;
        mfl_dataset_standardize(l->train, l->cfg->fixed_center, l->cfg->fixed_scale);
        if (l->heldout)
            mfl_dataset_standardize(l->heldout, l->cfg->fixed_center, l->cfg->fixed_scale);
        return 0;
    }
    if (l->cfg->standardize == MFL_SITE_STD_FEDERATED) {
        /* Kept unscaled for the worker, which scales them (its own
         * statistics, or the consortium's when a task carries them). */
        const mfl_dataset_t *tr[1] = {l->train}, *he[1] = {l->heldout};
        l->raw_train = mfl_dataset_concat(tr, 1);
        l->raw_heldout = l->heldout ? mfl_dataset_concat(he, 1) : NULL;
        if (!l->raw_train || (l->heldout && !l->raw_heldout))
            return mfl_errf(err, errlen, "out of memory"), -1;
    }
    if (l->cfg->standardize != MFL_SITE_STD_SITE &&
        l->cfg->standardize != MFL_SITE_STD_FEDERATED)
        return 0;
    float *mean = malloc(nf * sizeof(float)), *sd = malloc(nf * sizeof(float));
    if (!mean || !sd) {
        free(mean);
        free(sd);
        return mfl_errf(err, errlen, "out of memory"), -1;
    }
    mfl_dataset_feature_stats(l->train, mean, sd);
    mfl_dataset_standardize(l->train, mean, sd);
    if (l->heldout)
        mfl_dataset_standardize(l->heldout, mean, sd);
    free(mean);
    free(sd);
    return 0;
}

/* For --check: rows dropped and cells imputed, per column that had any. */
static void s_report(s_load_t *l)
{
    const mfl_csv_stats_t *st = &l->stats;
    if (!l->is_table || !st->n_columns)
        return;
    size_t cap = 256 + st->n_columns * 96, o = 0;
    l->report = malloc(cap);
    if (!l->report)
        return;
    bool keep = l->schema.on_missing == MFL_CSV_MISSING_KEEP;
    o += (size_t)snprintf(l->report, cap, "%zu rows read, %zu dropped for a missing value, "
                          "%zu cells imputed%s", st->rows_read, st->rows_dropped,
                          st->cells_imputed, keep ? " (from training rows only)" : "");
    for (size_t c = 0; c < st->n_columns && o < cap; c++) {
        if (!st->dropped_by_column[c] && !st->imputed_by_column[c])
            continue;
        o += (size_t)snprintf(l->report + o, cap - o, "\n    %.40s: %zu rows dropped, %zu "
                              "cells imputed", st->column_names[c], st->dropped_by_column[c],
                              st->imputed_by_column[c]);
    }
}

mfl_site_worker_t *mfl_site_worker_new(const struct mfl_site_config *cfg, char *err,
                                       size_t errlen)
{
    s_load_t l = { .cfg = cfg };
    int rc;
    switch (cfg->data_kind) {
    case MFL_SITE_DATA_WDBC: rc = s_load_wdbc(&l, err, errlen); break;
    case MFL_SITE_DATA_IDX: rc = s_load_idx(&l, err, errlen); break;
    case MFL_SITE_DATA_SERIES: rc = s_load_series(&l, err, errlen); break;
    default: rc = s_load_table(&l, err, errlen); break;
    }
    if (rc < 0)
        goto out_fail;
    if (l.all->n < 2 || l.all->n_classes == 1) {
        mfl_errf(err, errlen, "%s: %zu usable rows with %zu classes; a site needs at least 2 "
                 "rows and a label with 2 or more classes (or a continuous label: rule "
                 "regression)", cfg->data_path, l.all->n, l.all->n_classes);
        goto out_fail;
    }
    if (!l.report)
        s_report(&l);
    if (s_split(&l, err, errlen) < 0 || s_impute(&l, err, errlen) < 0 ||
        s_standardize(&l, err, errlen) < 0)
        goto out_fail;
    mfl_site_worker_opts_t opts = {.local_only_min_steps = (int)cfg->local_only_steps,
                                   .eval_support = cfg->eval_support,
                                   .treatment_arms = cfg->treatment_arms};
    mfl_site_worker_t *w = mfl_site_worker_new_internal(cfg->site_id, l.train, l.heldout, NULL,
                                                        l.canonical, &opts, err, errlen);
    l.train = l.heldout = NULL; /* the worker took them (also on failure) */
    if (w && l.raw_train &&
        mfl_site_worker_enable_federated_scaling(w, l.raw_train, l.raw_heldout, err, errlen)) {
        mfl_site_worker_destroy(&w);
        s_load_free(&l);
        return NULL;
    }
    if (w) {
        mfl_site_worker_set_encodings(w, cfg->upload_encodings);
        w->data_report = l.report;
        l.report = NULL;
    }
    s_load_free(&l);
    if (w && mfl_site_worker_set_privacy(w, &cfg->privacy, err, errlen)) {
        mfl_site_worker_destroy(&w);
        return NULL;
    }
    /* With a DP mode the budget spent must come from the audit log (the
     * agent reads it); until then no DP task runs. */
    if (w && cfg->privacy.mode != MFL_PRIVACY_MODE_NONE)
        mfl_site_worker_set_ledger(w, NULL, "the site's audit log has not been read yet");
    /* Own-row statistics shape every update but are not noised: say so. */
    if (w && cfg->privacy.mode != MFL_PRIVACY_MODE_NONE && cfg->standardize == MFL_SITE_STD_SITE)
        mfl_log(MFL_LOG_WARN, "%s: data.standardize: site scales the features with this site's "
                "own training-row mean and std, which the DP noise does not cover; "
                "'standardize: fixed' with the consortium's data.center and data.scale keeps "
                "the whole pipeline under epsilon (docs/PRIVACY.md)", cfg->file);
    if (w && cfg->privacy.mode != MFL_PRIVACY_MODE_NONE &&
        cfg->standardize == MFL_SITE_STD_FEDERATED)
        mfl_log(MFL_LOG_WARN, "%s: data.standardize: federated sends this site's fit-row "
                "count, sums and sums of squares in the clear (only with "
                "privacy.allow_unnoised_stats) and scales with statistics of every site's "
                "rows, which the DP noise does not cover; 'standardize: fixed' keeps the whole "
                "pipeline under epsilon (docs/PRIVACY.md)", cfg->file);
    return w;

out_fail:
    s_load_free(&l);
    return NULL;
}
