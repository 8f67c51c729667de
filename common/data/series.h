/* Per-patient time series in long form (one row per patient and time
 * point: a patient column, a time column, channel columns and a label
 * column, named by a header line) cut into fixed-length windows: each
 * window of `window` consecutive time points of one patient becomes one
 * example of window × n_channels features (time-major: t0's channels, then
 * t1's, ...), labelled by the rule below. Rows are grouped by patient (in
 * order of first appearance) and ordered by time within a patient, so the
 * file's row order does not matter. Each example's patient index is its
 * data set `group` (a patient is a task for the gradient meta-learners).
 *
 * Errors name the file, line and column ("ecg.csv:17: column 3 'hr': 'x'
 * is not a number"); a missing cell is an error (series are not imputed).
 * Bounded: the CSV loader's limits (data/csv.h) plus MFL_SERIES_MAX_WINDOW
 * rows per window, MFL_SERIES_MAX_CHANNELS channels and
 * MFL_SERIES_MAX_FEATURES floats per example. Thread-safety: no global
 * state. */
#ifndef MFL_DATA_SERIES_H
#define MFL_DATA_SERIES_H

#include <stdbool.h>
#include <stddef.h>

#include "data/dataset.h"

#define MFL_SERIES_MAX_WINDOW   4096u
#define MFL_SERIES_MAX_CHANNELS 256u
#define MFL_SERIES_MAX_FEATURES (1u << 20)

typedef enum {
    MFL_SERIES_LABEL_LAST = 0,   /* the class index at the window's last time point */
    MFL_SERIES_LABEL_ANY,        /* binary: 1 if any time point's label is > 0 (an event) */
    MFL_SERIES_LABEL_REGRESSION, /* the number at the window's last time point; n_classes 0 */
} mfl_series_label_t;

typedef struct {
    const char *patient;               /* column names, as in the header (borrowed) */
    const char *time;
    const char *const *channels;
    size_t n_channels;
    const char *label;
    mfl_series_label_t label_rule;
    size_t window;                     /* time points per example, >= 1 */
    size_t stride;                     /* time points between window starts, >= 1 */
    char delimiter;                    /* 0 means ',' */
} mfl_series_spec_t;

typedef struct {
    size_t rows_read;
    size_t n_patients;
    size_t patients_too_short;         /* patients with fewer than `window` time points */
    size_t *patient_of_example;        /* [n examples]: 0-based patient index (a task's unit) */
} mfl_series_stats_t;

/* Loads `path` as described by `spec` (both borrowed). Returns a new data
 * set (n_classes: max class + 1 for LAST, 2 for ANY, 0 for REGRESSION), or
 * NULL with "FILE:LINE: ..." in err. `stats` may be NULL; free it with
 * mfl_series_stats_clear. */
mfl_dataset_t *mfl_series_load(const char *path, const mfl_series_spec_t *spec,
                               mfl_series_stats_t *stats, char *err, size_t errlen);

/* The same from text[0..len); `name` is the FILE in messages. */
mfl_dataset_t *mfl_series_parse(const char *text, size_t len, const char *name,
                                const mfl_series_spec_t *spec, mfl_series_stats_t *stats,
                                char *err, size_t errlen);

void mfl_series_stats_clear(mfl_series_stats_t *stats);

/* Canonical schema text of a spec (data/csv_canon.h's format: features,
 * classes, a "label" line and one "series" line naming the window and
 * channels). Malloc'd; NULL on OOM. */
char *mfl_series_canonical(const mfl_series_spec_t *spec, size_t n_classes);

#endif
