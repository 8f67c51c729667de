/* Loading a delimited text table into a data set, described by a schema:
 * which columns are numeric, categorical (one-hot), the label, or ignored;
 * which tokens mean "missing" and what to do about them.
 *
 * Every malformed input is rejected with a message naming the file, the
 * 1-based line and column, e.g.
 *   "processed.va.data:17: column 5 'chol': 'abc' is not a number"
 *   "x.csv:3: expected 14 columns, found 13"
 * Bounded: MFL_CSV_MAX_BYTES per file, MFL_CSV_MAX_LINE bytes per line,
 * MFL_CSV_MAX_COLUMNS columns, MFL_CSV_MAX_LEVELS levels per categorical.
 *
 * Fields: separated by `delimiter`; surrounding spaces/tabs trimmed; a field
 * may be double-quoted ("a,b", with "" for a quote) but may not span lines.
 * Empty lines are skipped (they still count for line numbers). "\r\n" ok.
 *
 * A schema is a plain struct: fill it in code (pointers borrowed), or have
 * the config layer build it from YAML (config/csv_schema_yaml.h, shape in
 * docs/DATA.md). The data layer knows no YAML.
 * Thread-safety: loading has no global state. */
#ifndef MFL_DATA_CSV_H
#define MFL_DATA_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "data/dataset.h"

#define MFL_CSV_MAX_BYTES   (256u * 1024u * 1024u)
#define MFL_CSV_MAX_LINE    (64u * 1024u)
#define MFL_CSV_MAX_COLUMNS 4096u
#define MFL_CSV_MAX_LEVELS  256u

typedef enum {
    MFL_CSV_NUMERIC = 0, /* one float feature */
    MFL_CSV_CATEGORICAL, /* one-hot over its levels */
    MFL_CSV_LABEL,       /* the target (at most one column) */
    MFL_CSV_IGNORE,      /* read (column count checked) but unused */
} mfl_csv_kind_t;

typedef enum {
    MFL_CSV_LABEL_CLASS = 0,  /* an integer class index 0..n_classes-1 */
    MFL_CSV_LABEL_GREATER,    /* binary: value > threshold */
    MFL_CSV_LABEL_LESS,       /* binary: value < threshold */
    MFL_CSV_LABEL_EQUAL,      /* binary: value == threshold */
    MFL_CSV_LABEL_LEVELS,     /* text label: its index in `levels` */
    MFL_CSV_LABEL_REGRESSION, /* the number itself; n_classes = 0 */
} mfl_csv_label_rule_t;

typedef enum {
    MFL_CSV_MISSING_DROP = 0, /* complete-case: drop any row with a missing used cell */
    MFL_CSV_MISSING_IMPUTE,   /* numeric: mean; categorical: mode (of the kept rows);
                                 rows with a missing label are still dropped */
    MFL_CSV_MISSING_ERROR,    /* a missing used cell is an error */
    MFL_CSV_MISSING_KEEP,     /* as IMPUTE, but the holes stay NaN (a missing categorical:
                                 NaN in every slot of its one-hot block) for the caller to
                                 fill with statistics of the rows it chooses
                                 (mfl_csv_impute_fit / _apply): a site imputes from its
                                 training rows only. Not offered in YAML. */
} mfl_csv_missing_t;

typedef struct {
    const char *name;            /* for messages and feature names; NULL: from the header or "colN" */
    mfl_csv_kind_t kind;
    /* Categorical: the levels in order (NULL: inferred from the file, in
     * numeric order if all are numbers, else in order of appearance). A
     * cell matches a level textually or, if both are numbers, numerically
     * ("2.0" matches "2"). A value outside given levels is an error. */
    const char *const *levels;
    size_t n_levels;
    bool drop_first;             /* one-hot without the first level */
    /* Label column only. */
    mfl_csv_label_rule_t label_rule;
    double threshold;            /* GREATER / LESS / EQUAL */
    size_t n_classes;            /* CLASS: 0 = max index + 1 */
    /* Per-column missing tokens (Pima-style data code "0" as missing in some
     * columns only): with has_missing, missing[0..n_missing) replace the
     * schema's tokens for this column (n_missing 0: nothing is missing). */
    bool has_missing;
    const char *const *missing;
    size_t n_missing;
} mfl_csv_column_t;

typedef struct {
    bool header;                 /* first line (after skip_rows) holds column names */
    char delimiter;              /* 0 means ',' */
    size_t skip_rows;            /* lines skipped before anything else */
    const char *const *missing;  /* tokens meaning "missing"; NULL: "", "NaN", "?" */
    size_t n_missing;
    mfl_csv_missing_t on_missing;
    /* Features: numerics first, then one-hots (pandas get_dummies order,
     * which FLamby uses) instead of column order. */
    bool categorical_last;
    size_t max_rows;             /* 0: no limit other than the file size */
    const mfl_csv_column_t *columns; /* [n_columns]: every column of the file */
    size_t n_columns;
    void *owned;                 /* memory of a built schema (e.g. from YAML), freed by */
    void (*free_owned)(void *owned); /* mfl_csv_schema_clear with this; NULL: not owned */
} mfl_csv_schema_t;

/* What a load did; filled if the caller passes one. Clear it with
 * mfl_csv_stats_clear. */
typedef struct {
    size_t rows_read;            /* data records in the file */
    size_t rows_dropped;         /* dropped for a missing value */
    size_t cells_imputed;        /* with KEEP: the holes left for the caller to fill */
    size_t *lines;               /* [n] 0-based physical line of each output row */
    char **feature_names;        /* [n_features]: "age", "cp_2", ... */
    size_t *feature_column;      /* [n_features]: the schema column each feature comes from */
    size_t n_features;
    /* Per schema column ([n_columns]): its name (schema, header or "colN"),
     * rows dropped with this cell missing (a row missing two cells counts
     * in both), and cells imputed (or, with KEEP, left to impute). */
    char **column_names;
    size_t *dropped_by_column;
    size_t *imputed_by_column;
    size_t n_columns;
    /* The canonical schema text of what was loaded (mfl_csv_canonical's
     * format, with the levels actually used and the data set's classes). */
    char *canonical;
} mfl_csv_stats_t;

/* Loads `path` (borrowed) as described by `schema` (borrowed). Returns a new
 * data set (caller destroys), or NULL with "FILE:LINE: ..." in err. The
 * data set's n_classes follows the label rule (2 for the binary rules). If
 * stats is not NULL it is filled (and owns memory: mfl_csv_stats_clear). */
mfl_dataset_t *mfl_csv_load(const char *path, const mfl_csv_schema_t *schema,
                            mfl_csv_stats_t *stats, char *err, size_t errlen);

/* Same, from text[0..len) in memory; `name` is the FILE in messages. */
mfl_dataset_t *mfl_csv_parse(const char *text, size_t len, const char *name,
                             const mfl_csv_schema_t *schema, mfl_csv_stats_t *stats, char *err,
                             size_t errlen);

/* Frees what a load put into *stats and zeroes it; accepts a zeroed one. */
void mfl_csv_stats_clear(mfl_csv_stats_t *stats);

/* Frees the memory of a built schema (free_owned(owned)) and zeroes it;
 * harmless on a hand-built one (owned == NULL). */
void mfl_csv_schema_clear(mfl_csv_schema_t *schema);

/* Deferred imputation (MFL_CSV_MISSING_KEEP): fill[n_features] receives,
 * from the rows of `from` only, each numeric feature's mean over its
 * non-missing cells (0 if none) and, for each categorical column, the
 * one-hot encoding of its most frequent level (ties: the earlier level).
 * `stats` and `schema` are those of the load that produced the features
 * (borrowed). Returns 0, or -1 if `from` does not have the stats' width. */
int mfl_csv_impute_fit(const mfl_csv_schema_t *schema, const mfl_csv_stats_t *stats,
                       const mfl_dataset_t *from, float *fill);

/* Replaces every NaN feature of `ds` with fill[feature]. */
void mfl_csv_impute_apply(mfl_dataset_t *ds, const float *fill);

#endif
