/* FLamby's Fed-Heart-Disease preprocessing, reproduced from ANCHORS.md
 * steps 1-7, with the exact split rows read from flamby-split.json. */
#include "data/heart.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static const char *const s_sites[MFL_HEART_N_SITES] = { "cleveland", "hungarian", "switzerland",
                                                        "va" };
static const char *const s_cp_levels[] = { "1", "2", "3", "4" };
static const char *const s_restecg_levels[] = { "0", "1", "2" };
static const char *const s_missing[] = { "", "NaN", "?" };

static const mfl_csv_column_t s_columns[14] = {
    { .name = "age" },
    { .name = "sex" },
    { .name = "cp", .kind = MFL_CSV_CATEGORICAL, .levels = s_cp_levels, .n_levels = 4,
      .drop_first = true },
    { .name = "trestbps" },
    { .name = "chol" },
    { .name = "fbs" },
    { .name = "restecg", .kind = MFL_CSV_CATEGORICAL, .levels = s_restecg_levels, .n_levels = 3,
      .drop_first = true },
    { .name = "thalach" },
    { .name = "exang" },
    { .name = "oldpeak" },
    { .name = "slope", .kind = MFL_CSV_IGNORE },
    { .name = "ca", .kind = MFL_CSV_IGNORE },
    { .name = "thal", .kind = MFL_CSV_IGNORE },
    { .name = "num", .kind = MFL_CSV_LABEL, .label_rule = MFL_CSV_LABEL_GREATER, .threshold = 0.0 },
};

static const mfl_csv_schema_t s_schema = {
    .delimiter = ',',
    .missing = s_missing,
    .n_missing = 3,
    .on_missing = MFL_CSV_MISSING_DROP,
    .categorical_last = true,
    .columns = s_columns,
    .n_columns = 14,
};

const mfl_csv_schema_t *mfl_heart_csv_schema(void)
{
    return &s_schema;
}

const char *mfl_heart_site_name(size_t i)
{
    return i < MFL_HEART_N_SITES ? s_sites[i] : NULL;
}

static int s_has_heart(const char *dir)
{
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/data/uci-heart-disease/flamby-split.json", dir);
    return stat(path, &st) == 0;
}

/* A binary in <repo>/build[/x]/{bin,tests}/ started from elsewhere: the
 * shared folder is <repo>/../shared. Found once (pthread_once: the site
 * threads of `metafl simulate` may ask at the same time). */
static char s_found[4096];
static pthread_once_t s_found_once = PTHREAD_ONCE_INIT;

static void s_find_from_exe(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    for (int up = 0; up < 5; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash || slash == exe)
            return;
        *slash = '\0';
        int len = snprintf(s_found, sizeof s_found, "%s/../shared", exe);
        if (len > 0 && (size_t)len < sizeof s_found && s_has_heart(s_found))
            return;
        s_found[0] = '\0';
    }
}

const char *mfl_heart_default_shared(void)
{
    const char *env = getenv("METAFL_SHARED");
    if (env && *env)
        return env;
    if (s_has_heart("../shared"))
        return "../shared";
    pthread_once(&s_found_once, s_find_from_exe);
    return s_found[0] ? s_found : "../shared";
}

#define S_SPLIT_MAX_BYTES (1u << 20)

/* Loads one site's train and test rows, unstandardised. */
static int s_load_raw(const char *dir, const mfl_json_t *split, const char *split_path,
                      const char *site, mfl_dataset_t **train, mfl_dataset_t **test, char *err,
                      size_t errlen)
{
    *train = *test = NULL;
    const mfl_json_t *js = mfl_json_get(mfl_json_get(split, "sites"), site);
    const char *file = mfl_json_string(mfl_json_get(js, "file"));
    if (!file || strchr(file, '/') || strcmp(file, "..") == 0) {
        mfl_errf(err, errlen, "%s: site '%s' has no valid \"file\"", split_path, site);
        return -1;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path) {
        mfl_errf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    mfl_csv_stats_t stats;
    mfl_dataset_t *all = mfl_csv_load(path, &s_schema, &stats, err, errlen);
    if (!all)
        return -1;
    int rc = -1;
    size_t *idx = NULL;
    /* FLamby's column order is what its published numbers come from. */
    const mfl_json_t *names = mfl_json_get(split, "features");
    if (stats.n_features != MFL_HEART_N_FEATURES ||
        mfl_json_array_len(names) != MFL_HEART_N_FEATURES) {
        mfl_errf(err, errlen, "%s: expected %d features", split_path, MFL_HEART_N_FEATURES);
        goto out_free;
    }
    for (size_t j = 0; j < MFL_HEART_N_FEATURES; j++) {
        const char *want = mfl_json_string(mfl_json_array_at(names, j));
        if (!want || strcmp(want, stats.feature_names[j]) != 0) {
            mfl_errf(err, errlen, "%s: feature %zu is '%s' in the split file but '%s' here",
                     split_path, j, want ? want : "?", stats.feature_names[j]);
            goto out_free;
        }
    }
    /* The split file lists 0-based physical line numbers of kept rows. */
    idx = malloc((all->n ? all->n : 1) * sizeof *idx);
    if (!idx) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_free;
    }
    static const char *const parts[2] = { "train", "test" };
    mfl_dataset_t **outs[2] = { train, test };
    size_t total = 0;
    for (int part = 0; part < 2; part++) {
        char key[32], nkey[32];
        snprintf(key, sizeof key, "%s_lines", parts[part]);
        snprintf(nkey, sizeof nkey, "n_%s", parts[part]);
        const mfl_json_t *lines = mfl_json_get(js, key);
        size_t k = mfl_json_array_len(lines), want_n;
        if (mfl_json_type(lines) != MFL_JSON_ARRAY || k > all->n ||
            mfl_json_size(mfl_json_get(js, nkey), &want_n) < 0 || want_n != k) {
            mfl_errf(err, errlen, "%s: site '%s': \"%s\" must be an array of %s entries", split_path,
                     site, key, nkey);
            goto out_free;
        }
        for (size_t i = 0; i < k; i++) {
            const mfl_json_t *v = mfl_json_array_at(lines, i);
            size_t line;
            if (mfl_json_size(v, &line) < 0) {
                mfl_errf(err, errlen, "%s:%zu:%zu: site '%s': line numbers must be integers ≥ 0",
                         split_path, mfl_json_line(v), mfl_json_column(v), site);
                goto out_free;
            }
            /* stats.lines is ascending: binary search. */
            size_t lo = 0, hi = all->n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (stats.lines[mid] < line)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == all->n || stats.lines[lo] != line) {
                mfl_errf(err, errlen,
                         "%s:%zu:%zu: site '%s': line %zu of %s is not a complete-case row",
                         split_path, mfl_json_line(v), mfl_json_column(v), site, line, file);
                goto out_free;
            }
            idx[i] = lo;
        }
        total += k;
        *outs[part] = mfl_dataset_subset(all, idx, k);
        if (!*outs[part]) {
            mfl_errf(err, errlen, "%s: out of memory", path);
            goto out_free;
        }
    }
    if (total != all->n) {
        mfl_errf(err, errlen, "%s: site '%s': train + test = %zu rows but %s has %zu complete rows",
                 split_path, site, total, file, all->n);
        goto out_free;
    }
    rc = 0;
out_free:
    if (rc < 0) {
        mfl_dataset_destroy(train);
        mfl_dataset_destroy(test);
    }
    free(idx);
    mfl_csv_stats_clear(&stats);
    mfl_dataset_destroy(&all);
    return rc;
}

/* Mean and unbiased std (+1e-9) over the rows of sets[0..n), in double. */
static void s_stats(mfl_dataset_t *const *sets, size_t n, double *mean, double *sd)
{
    size_t d = MFL_HEART_N_FEATURES, rows = 0;
    for (size_t j = 0; j < d; j++)
        mean[j] = sd[j] = 0.0;
    for (size_t s = 0; s < n; s++) {
        rows += sets[s]->n;
        for (size_t i = 0; i < sets[s]->n; i++)
            for (size_t j = 0; j < d; j++)
                mean[j] += sets[s]->x[i * d + j];
    }
    for (size_t j = 0; j < d; j++)
        mean[j] = rows ? mean[j] / (double)rows : 0.0;
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < sets[s]->n; i++)
            for (size_t j = 0; j < d; j++) {
                double dv = sets[s]->x[i * d + j] - mean[j];
                sd[j] += dv * dv;
            }
    for (size_t j = 0; j < d; j++)
        sd[j] = (rows > 1 ? sqrt(sd[j] / (double)(rows - 1)) : 0.0) + 1e-9;
}

static void s_apply(mfl_dataset_t *ds, const double *mean, const double *sd)
{
    size_t d = MFL_HEART_N_FEATURES;
    for (size_t i = 0; i < ds->n; i++)
        for (size_t j = 0; j < d; j++)
            ds->x[i * d + j] = (float)((ds->x[i * d + j] - mean[j]) / sd[j]);
}

int mfl_heart_load(const char *shared_dir, const char *site, mfl_heart_std_t std,
                   mfl_dataset_t **train, mfl_dataset_t **test, char *err, size_t errlen)
{
    *train = *test = NULL;
    size_t site_i = MFL_HEART_N_SITES;
    for (size_t i = 0; i < MFL_HEART_N_SITES; i++)
        if (site && strcmp(site, s_sites[i]) == 0)
            site_i = i;
    if (site_i == MFL_HEART_N_SITES) {
        mfl_errf(err, errlen, "unknown heart-disease site '%s' (known: cleveland, hungarian, "
                 "switzerland, va)", site ? site : "(null)");
        return -1;
    }
    char dir[4096], split_path[4200];
    if ((size_t)snprintf(dir, sizeof dir, "%s/data/uci-heart-disease",
                         shared_dir ? shared_dir : mfl_heart_default_shared()) >= sizeof dir) {
        mfl_errf(err, errlen, "shared directory path too long");
        return -1;
    }
    snprintf(split_path, sizeof split_path, "%s/flamby-split.json", dir);
    char *text;
    size_t len;
    if (mfl_file_read_all(split_path, S_SPLIT_MAX_BYTES, &text, &len, err, errlen) < 0)
        return -1;
    char jerr[200];
    mfl_json_t *split = mfl_json_parse(text, len, jerr, sizeof jerr);
    free(text);
    if (!split) {
        mfl_errf(err, errlen, "%s:%s", split_path, jerr);
        return -1;
    }
    int rc = -1;
    mfl_dataset_t *tr[MFL_HEART_N_SITES] = { 0 }, *te[MFL_HEART_N_SITES] = { 0 };
    double mean[MFL_HEART_N_FEATURES], sd[MFL_HEART_N_FEATURES];
    if (std == MFL_HEART_STD_POOLED) {
        for (size_t i = 0; i < MFL_HEART_N_SITES; i++)
            if (s_load_raw(dir, split, split_path, s_sites[i], &tr[i], &te[i], err, errlen) < 0)
                goto out_free;
        s_stats(tr, MFL_HEART_N_SITES, mean, sd);
    } else {
        if (s_load_raw(dir, split, split_path, site, &tr[site_i], &te[site_i], err, errlen) < 0)
            goto out_free;
        s_stats(&tr[site_i], 1, mean, sd);
    }
    if (std != MFL_HEART_STD_NONE) {
        s_apply(tr[site_i], mean, sd);
        s_apply(te[site_i], mean, sd);
    }
    *train = tr[site_i];
    *test = te[site_i];
    tr[site_i] = te[site_i] = NULL;
    rc = 0;
out_free:
    for (size_t i = 0; i < MFL_HEART_N_SITES; i++) {
        mfl_dataset_destroy(&tr[i]);
        mfl_dataset_destroy(&te[i]);
    }
    mfl_json_destroy(&split);
    return rc;
}

int mfl_heart_load_site(const char *shared_dir, const char *site, mfl_dataset_t **train,
                        mfl_dataset_t **test, char *err, size_t errlen)
{
    return mfl_heart_load(shared_dir, site, MFL_HEART_STD_SITE, train, test, err, errlen);
}

int mfl_heart_load_pooled(const char *shared_dir, const char *site, mfl_dataset_t **train,
                          mfl_dataset_t **test, char *err, size_t errlen)
{
    return mfl_heart_load(shared_dir, site, MFL_HEART_STD_POOLED, train, test, err, errlen);
}
