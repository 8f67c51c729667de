/* WDBC: a count header checked by hand, then the rows through the CSV
 * loader with a fixed schema. */
#include "data/wdbc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/csv.h"

static const char *const s_names[MFL_WDBC_N_FEATURES] = {
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness",
    "mean compactness", "mean concavity", "mean concave points", "mean symmetry",
    "mean fractal dimension", "radius error", "texture error", "perimeter error", "area error",
    "smoothness error", "compactness error", "concavity error", "concave points error",
    "symmetry error", "fractal dimension error", "worst radius", "worst texture",
    "worst perimeter", "worst area", "worst smoothness", "worst compactness",
    "worst concavity", "worst concave points", "worst symmetry", "worst fractal dimension",
};

const char *mfl_wdbc_feature_name(size_t i)
{
    return i < MFL_WDBC_N_FEATURES ? s_names[i] : NULL;
}

/* Parses "N,30,malignant,benign" at the start of text. */
static int s_header(const char *path, const char *text, size_t *n_rows, char *err,
                    size_t errlen)
{
    const char *eol = strchr(text, '\n');
    size_t len = eol ? (size_t)(eol - text) : strlen(text);
    char line[128];
    if (len >= sizeof line)
        goto out_bad;
    memcpy(line, text, len);
    line[len] = '\0';
    if (len && line[len - 1] == '\r')
        line[len - 1] = '\0';
    char *end;
    errno = 0;
    unsigned long long n = strtoull(line, &end, 10);
    if (errno || end == line || n == 0 || n > 1000000 ||
        strcmp(end, ",30,malignant,benign") != 0)
        goto out_bad;
    *n_rows = (size_t)n;
    return 0;
out_bad:
    mfl_errf(err, errlen, "%s:1: expected the header 'ROWS,30,malignant,benign' of sklearn's "
             "breast_cancer.csv", path);
    return -1;
}

mfl_dataset_t *mfl_wdbc_load(const char *path, char *err, size_t errlen)
{
    mfl_csv_column_t cols[MFL_WDBC_N_FEATURES + 1];
    memset(cols, 0, sizeof cols);
    for (size_t i = 0; i < MFL_WDBC_N_FEATURES; i++)
        cols[i].name = s_names[i];
    /* Level order flips sklearn's encoding: "1" (benign) → 0, "0"
     * (malignant) → 1; any other target is an error. */
    static const char *const target_levels[2] = { "1", "0" };
    cols[MFL_WDBC_N_FEATURES] = (mfl_csv_column_t){ .name = "target", .kind = MFL_CSV_LABEL,
                                                    .label_rule = MFL_CSV_LABEL_LEVELS,
                                                    .levels = target_levels, .n_levels = 2 };
    static const char *const no_missing[1] = { "" };
    mfl_csv_schema_t schema = {
        .skip_rows = 1,
        .missing = no_missing, /* an empty cell is an error, not a value */
        .n_missing = 1,
        .on_missing = MFL_CSV_MISSING_ERROR,
        .columns = cols,
        .n_columns = MFL_WDBC_N_FEATURES + 1,
    };
    char *text;
    size_t len;
    if (mfl_file_read_all(path, 16u << 20, &text, &len, err, errlen) < 0)
        return NULL;
    size_t n_rows;
    mfl_dataset_t *ds = NULL;
    if (s_header(path, text, &n_rows, err, errlen) < 0)
        goto out_free;
    ds = mfl_csv_parse(text, len, path, &schema, NULL, err, errlen);
    if (!ds)
        goto out_free;
    if (ds->n != n_rows) {
        mfl_errf(err, errlen, "%s:1: header announces %zu rows but the file has %zu", path,
                 n_rows, ds->n);
        mfl_dataset_destroy(&ds);
    }
out_free:
    free(text);
    return ds;
}
