/* The FLamby Fed-Heart-Disease sites for the evaluation harness
 * (bench_heart.c): four hospitals, each a training and a test set,
 * standardised either with the site's own training statistics (FLamby's
 * federated setting) or with the pooled training statistics (FLamby's
 * pooled baseline).
 *
 * Header-only (static functions) because the Makefile builds each
 * bench/bench_*.c into its own binary against libmetafl.a; only
 * bench_heart.c includes it. The loader reads the split file itself with
 * the library's JSON parser, so the harness checks the data module's
 * preprocessing rather than trusting it (see s_heart_check_against_lib). */
#ifndef MFL_BENCH_HEART_DATA_H
#define MFL_BENCH_HEART_DATA_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "data/dataset.h"
#include "core/fileio.h"
#include "data/heart.h"

#define S_HEART_SITES 4
#define S_HEART_FEATURES 13

static const char *const s_heart_site_names[S_HEART_SITES] = {"cleveland", "hungarian",
                                                              "switzerland", "va"};
static const char *const s_heart_site_labels[S_HEART_SITES] = {"Cleveland", "Hungary",
                                                               "Switzerland", "VA"};

typedef struct {
    mfl_dataset_t *train[S_HEART_SITES];  /* own-site standardisation */
    mfl_dataset_t *test[S_HEART_SITES];
    mfl_dataset_t *ptrain;                /* all 486 training rows, pooled stats */
    mfl_dataset_t *ptest[S_HEART_SITES];  /* each test set, pooled stats */
    mfl_dataset_t *rtrain[S_HEART_SITES]; /* the same rows unscaled (raw units) */
    mfl_dataset_t *rtest[S_HEART_SITES];
} s_heart_t;

static inline void s_heart_free(s_heart_t *h)
{
    for (int i = 0; i < S_HEART_SITES; i++) {
        mfl_dataset_destroy(&h->train[i]);
        mfl_dataset_destroy(&h->test[i]);
        mfl_dataset_destroy(&h->ptest[i]);
        mfl_dataset_destroy(&h->rtrain[i]);
        mfl_dataset_destroy(&h->rtest[i]);
    }
    mfl_dataset_destroy(&h->ptrain);
}

/* Parses one raw line (14 comma-separated fields, "?" or "NaN" missing)
 * into the 13 FLamby features and the label. Returns 1 if the row is
 * complete after dropping slope/ca/thal, 0 if it has a missing value,
 * -1 if malformed. */
static inline int s_heart_parse_row(const char *line, float *x, float *y)
{
    double v[14];
    const char *p = line;
    for (int c = 0; c < 14; c++) {
        while (*p == ' ')
            p++;
        if (strncmp(p, "NaN", 3) == 0 || *p == '?') {
            v[c] = NAN;
        } else {
            char *end = NULL;
            v[c] = strtod(p, &end);
            if (end == p)
                return -1;
            p = end;
        }
        while (*p && *p != ',' && *p != '\n')
            p++;
        if (c < 13) {
            if (*p != ',')
                return -1;
            p++;
        }
    }
    static const int keep[10] = {0, 1, 3, 4, 5, 7, 8, 9, 2, 6}; /* ..., cp, restecg */
    for (int i = 0; i < 10; i++)
        if (isnan(v[keep[i]]))
            return 0;
    if (isnan(v[13]))
        return 0;
    x[0] = (float)v[0];  /* age */
    x[1] = (float)v[1];  /* sex */
    x[2] = (float)v[3];  /* trestbps */
    x[3] = (float)v[4];  /* chol */
    x[4] = (float)v[5];  /* fbs */
    x[5] = (float)v[7];  /* thalach */
    x[6] = (float)v[8];  /* exang */
    x[7] = (float)v[9];  /* oldpeak */
    x[8] = v[2] == 2.0 ? 1.0f : 0.0f;
    x[9] = v[2] == 3.0 ? 1.0f : 0.0f;
    x[10] = v[2] == 4.0 ? 1.0f : 0.0f;
    x[11] = v[6] == 1.0 ? 1.0f : 0.0f;
    x[12] = v[6] == 2.0 ? 1.0f : 0.0f;
    *y = v[13] > 0.0 ? 1.0f : 0.0f;
    return 1;
}

/* Rows at 0-based file lines `lines` of the site's raw file. */
static inline mfl_dataset_t *s_heart_rows(char **line_ptr, size_t n_lines, const mfl_json_t *lines,
                                          const char *file, char *err, size_t errlen)
{
    size_t n = mfl_json_array_len(lines);
    mfl_dataset_t *d = mfl_dataset_new(n, S_HEART_FEATURES);
    if (!d) {
        mfl_errf(err, errlen, "%s: out of memory", file);
        return NULL;
    }
    d->n_classes = 2;
    for (size_t i = 0; i < n; i++) {
        size_t li = 0;
        if (mfl_json_size(mfl_json_array_at(lines, i), &li) != 0 || li >= n_lines) {
            mfl_errf(err, errlen, "%s: split names line %zu, file has %zu", file, li, n_lines);
            goto out_fail;
        }
        if (s_heart_parse_row(line_ptr[li], d->x + i * S_HEART_FEATURES, d->y + i) != 1) {
            mfl_errf(err, errlen, "%s:%zu: split row is incomplete or malformed", file, li + 1);
            goto out_fail;
        }
    }
    return d;
out_fail:
    mfl_dataset_destroy(&d);
    return NULL;
}

static inline mfl_dataset_t *s_heart_copy(const mfl_dataset_t *src)
{
    mfl_dataset_t *d = mfl_dataset_new(src->n, src->n_features);
    if (!d)
        return NULL;
    d->n_classes = src->n_classes;
    memcpy(d->x, src->x, src->n * src->n_features * sizeof(float));
    memcpy(d->y, src->y, src->n * sizeof(float));
    return d;
}

/* Loads the four sites from `dir` (raw files + flamby-split.json) and
 * standardises them both ways. Returns 0, -1 + err. */
static inline int s_heart_load(const char *dir, s_heart_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    char path[1024];
    char *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/flamby-split.json", dir);
    if (mfl_file_read_all(path, 1u << 22, &text, &len, err, errlen) != 0)
        return -1;
    mfl_json_t *json = mfl_json_parse(text, len, err, errlen);
    free(text);
    if (!json)
        return -1;
    const mfl_json_t *sites = mfl_json_get(json, "sites");
    int rc = -1;
    for (int s = 0; s < S_HEART_SITES; s++) {
        const mfl_json_t *site = sites ? mfl_json_get(sites, s_heart_site_names[s]) : NULL;
        const char *file = site ? mfl_json_string(mfl_json_get(site, "file")) : NULL;
        if (!file) {
            mfl_errf(err, errlen, "%s: no site '%s' with a file", path, s_heart_site_names[s]);
            goto out;
        }
        char fpath[1024];
        snprintf(fpath, sizeof fpath, "%s/%s", dir, file);
        char *raw = NULL;
        size_t raw_len = 0;
        if (mfl_file_read_all(fpath, 1u << 24, &raw, &raw_len, err, errlen) != 0)
            goto out;
        size_t n_lines = 0, cap = 512;
        char **lp = malloc(cap * sizeof *lp);
        for (char *q = raw; lp && *q;) {
            if (n_lines == cap) {
                char **bigger = realloc(lp, 2 * cap * sizeof *lp);
                if (!bigger) {
                    free(lp);
                    lp = NULL;
                    break;
                }
                lp = bigger;
                cap *= 2;
            }
            lp[n_lines++] = q;
            char *nl = strchr(q, '\n');
            if (!nl)
                break;
            *nl = '\0';
            q = nl + 1;
        }
        if (lp) {
            h->train[s] = s_heart_rows(lp, n_lines, mfl_json_get(site, "train_lines"), fpath,
                                       err, errlen);
            if (h->train[s])
                h->test[s] = s_heart_rows(lp, n_lines, mfl_json_get(site, "test_lines"), fpath,
                                          err, errlen);
        } else {
            mfl_errf(err, errlen, "%s: out of memory", fpath);
        }
        free(lp);
        free(raw);
        if (!h->test[s])
            goto out;
    }
    /* Pooled copies first (raw values), then standardise both ways. */
    size_t n_pool = 0;
    for (int s = 0; s < S_HEART_SITES; s++)
        n_pool += h->train[s]->n;
    h->ptrain = mfl_dataset_new(n_pool, S_HEART_FEATURES);
    if (!h->ptrain)
        goto out;
    h->ptrain->n_classes = 2;
    size_t at = 0;
    for (int s = 0; s < S_HEART_SITES; s++) {
        memcpy(h->ptrain->x + at * S_HEART_FEATURES, h->train[s]->x,
               h->train[s]->n * S_HEART_FEATURES * sizeof(float));
        memcpy(h->ptrain->y + at, h->train[s]->y, h->train[s]->n * sizeof(float));
        at += h->train[s]->n;
        h->ptest[s] = s_heart_copy(h->test[s]);
        h->rtrain[s] = s_heart_copy(h->train[s]);
        h->rtest[s] = s_heart_copy(h->test[s]);
        if (!h->ptest[s] || !h->rtrain[s] || !h->rtest[s])
            goto out;
    }
    float mean[S_HEART_FEATURES], sd[S_HEART_FEATURES];
    mfl_dataset_feature_stats(h->ptrain, mean, sd);
    mfl_dataset_standardize(h->ptrain, mean, sd);
    for (int s = 0; s < S_HEART_SITES; s++)
        mfl_dataset_standardize(h->ptest[s], mean, sd);
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_dataset_feature_stats(h->train[s], mean, sd);
        mfl_dataset_standardize(h->train[s], mean, sd);
        mfl_dataset_standardize(h->test[s], mean, sd);
    }
    rc = 0;
out:
    mfl_json_destroy(&json);
    if (rc != 0)
        s_heart_free(h);
    return rc;
}

/* Majority class of the site's training rows, scored on its test rows. */
static inline double s_heart_majority(const mfl_dataset_t *train, const mfl_dataset_t *test)
{
    size_t pos = 0;
    for (size_t i = 0; i < train->n; i++)
        pos += train->y[i] > 0.5f;
    float maj = 2 * pos >= train->n ? 1.0f : 0.0f;
    size_t hit = 0;
    for (size_t i = 0; i < test->n; i++)
        hit += test->y[i] == maj;
    return (double)hit / (double)test->n;
}

/* The harness's own preprocessing against the data module's FLamby loader
 * (data/heart.h), both standardisations: the largest absolute difference
 * over every feature and label of every site, or -1 if the module fails
 * or a shape differs (err says why). */
static inline double s_heart_check_against_lib(const s_heart_t *h, const char *shared_dir,
                                               char *err, size_t errlen)
{
    double worst = 0;
    for (int mode = 0; mode < 2; mode++)
        for (int s = 0; s < S_HEART_SITES; s++) {
            mfl_dataset_t *tr = NULL, *te = NULL;
            int rc = mode == 0 ? mfl_heart_load_site(shared_dir, s_heart_site_names[s], &tr, &te,
                                                     err, errlen)
                               : mfl_heart_load_pooled(shared_dir, s_heart_site_names[s], &tr,
                                                       &te, err, errlen);
            if (rc != 0)
                return -1;
            const mfl_dataset_t *mine[2] = {mode == 0 ? h->train[s] : NULL,
                                            mode == 0 ? h->test[s] : h->ptest[s]};
            const mfl_dataset_t *lib[2] = {tr, te};
            for (int j = 0; j < 2; j++) {
                if (!mine[j])
                    continue; /* pooled train: the harness pools all sites into one set */
                if (mine[j]->n != lib[j]->n || mine[j]->n_features != lib[j]->n_features) {
                    mfl_errf(err, errlen, "%s: shape differs", s_heart_site_names[s]);
                    mfl_dataset_destroy(&tr);
                    mfl_dataset_destroy(&te);
                    return -1;
                }
                for (size_t i = 0; i < mine[j]->n * mine[j]->n_features; i++)
                    worst = fmax(worst, fabs((double)mine[j]->x[i] - (double)lib[j]->x[i]));
                for (size_t i = 0; i < mine[j]->n; i++)
                    worst = fmax(worst, fabs((double)mine[j]->y[i] - (double)lib[j]->y[i]));
            }
            mfl_dataset_destroy(&tr);
            mfl_dataset_destroy(&te);
        }
    return worst;
}

#endif
