/* Long-form per-patient series → windows: tokenise (csv_table.c), find the
 * named columns, read every used cell, order rows by patient and time, cut
 * windows. One concern per function. */
#include "data/series.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/csv.h"
#include "data/csv_table.h"

typedef struct {
    size_t patient; /* index in order of first appearance */
    double time;
    size_t rec;     /* record index (for the channel values and line) */
} s_row_t;

typedef struct {
    const mfl_series_spec_t *spec;
    mfl_csv_table_t t;
    size_t nc;                 /* columns in the file */
    size_t col_patient, col_time, col_label;
    size_t *col_channel;       /* [n_channels] */
    s_row_t *rows;             /* [n_recs] */
    double *values;            /* [n_recs][n_channels] */
    double *labels;            /* [n_recs] */
    const char **patients;     /* [n_patients] (cells of the table) */
    size_t n_patients;
    char *err;
    size_t errlen;
} s_series_t;

static void s_free(s_series_t *s)
{
    mfl_csv_table_free(&s->t);
    free(s->col_channel);
    free(s->rows);
    free(s->values);
    free(s->labels);
    free(s->patients);
}

static int s_oom(s_series_t *s)
{
    mfl_errf(s->err, s->errlen, "%s: out of memory", s->t.name);
    return -1;
}

static int s_check_spec(const mfl_series_spec_t *sp, const char *name, char *err, size_t errlen)
{
    if (!sp->patient || !sp->time || !sp->label || !sp->channels || sp->n_channels == 0)
        return mfl_errf(err, errlen, "%s: a series needs patient, time, label and at least one "
                        "channel column", name), -1;
    if (sp->n_channels > MFL_SERIES_MAX_CHANNELS)
        return mfl_errf(err, errlen, "%s: more than %u channels", name,
                        (unsigned)MFL_SERIES_MAX_CHANNELS), -1;
    if (sp->window < 1 || sp->window > MFL_SERIES_MAX_WINDOW || sp->stride < 1)
        return mfl_errf(err, errlen, "%s: window must be in 1..%u and stride >= 1 (got %zu, "
                        "%zu)", name, (unsigned)MFL_SERIES_MAX_WINDOW, sp->window,
                        sp->stride), -1;
    if (sp->window * sp->n_channels > MFL_SERIES_MAX_FEATURES)
        return mfl_errf(err, errlen, "%s: window × channels = %zu features, over %u", name,
                        sp->window * sp->n_channels, (unsigned)MFL_SERIES_MAX_FEATURES), -1;
    return 0;
}

/* Fields of the first non-empty line: the header's width. */
static size_t s_header_width(const char *text, size_t len, char delim)
{
    size_t i = 0, n = 1;
    while (i < len && (text[i] == '\n' || text[i] == '\r'))
        i++;
    int quoted = 0;
    for (; i < len && text[i] != '\n'; i++) {
        if (text[i] == '"')
            quoted = !quoted;
        else if (text[i] == delim && !quoted)
            n++;
    }
    return n;
}

static size_t s_find(const s_series_t *s, const char *name, const char *role)
{
    for (size_t c = 0; c < s->nc; c++)
        if (strcmp(s->t.header[c], name) == 0)
            return c;
    mfl_errf(s->err, s->errlen, "%s:%zu: the %s column '%s' is not in the header", s->t.name,
             s->t.header_line + 1, role, name);
    return SIZE_MAX;
}

static int s_find_columns(s_series_t *s)
{
    const mfl_series_spec_t *sp = s->spec;
    s->col_channel = malloc(sp->n_channels * sizeof *s->col_channel);
    if (!s->col_channel)
        return s_oom(s);
    if ((s->col_patient = s_find(s, sp->patient, "patient")) == SIZE_MAX ||
        (s->col_time = s_find(s, sp->time, "time")) == SIZE_MAX ||
        (s->col_label = s_find(s, sp->label, "label")) == SIZE_MAX)
        return -1;
    for (size_t k = 0; k < sp->n_channels; k++)
        if ((s->col_channel[k] = s_find(s, sp->channels[k], "channel")) == SIZE_MAX)
            return -1;
    return 0;
}

static int s_cell_number(s_series_t *s, size_t r, size_t c, double *v)
{
    const char *cell = mfl_csv_table_cell(&s->t, r, c);
    if (mfl_csv_number(cell, v) == 0)
        return 0;
    mfl_errf(s->err, s->errlen, "%s:%zu: column %zu '%s': '%.40s' is not a number", s->t.name,
             s->t.recs[r].line + 1, c + 1, s->t.header[c], cell);
    return -1;
}

/* Patient index of a record's id, adding a new patient on first sight.
 * Linear in patients: a site's file holds few enough. */
static size_t s_patient(s_series_t *s, const char *id)
{
    for (size_t p = s->n_patients; p-- > 0;)
        if (strcmp(s->patients[p], id) == 0)
            return p;
    s->patients[s->n_patients] = id;
    return s->n_patients++;
}

static int s_read_rows(s_series_t *s)
{
    size_t n = s->t.n_recs, nch = s->spec->n_channels;
    if (n && nch > SIZE_MAX / sizeof(double) / n)
        return s_oom(s);
    s->rows = malloc((n ? n : 1) * sizeof *s->rows);
    s->values = malloc((n ? n * nch : 1) * sizeof *s->values);
    s->labels = malloc((n ? n : 1) * sizeof *s->labels);
    s->patients = malloc((n ? n : 1) * sizeof *s->patients);
    if (!s->rows || !s->values || !s->labels || !s->patients)
        return s_oom(s);
    for (size_t r = 0; r < n; r++) {
        s->rows[r].rec = r;
        s->rows[r].patient = s_patient(s, mfl_csv_table_cell(&s->t, r, s->col_patient));
        if (s_cell_number(s, r, s->col_time, &s->rows[r].time) < 0 ||
            s_cell_number(s, r, s->col_label, &s->labels[r]) < 0)
            return -1;
        for (size_t k = 0; k < nch; k++)
            if (s_cell_number(s, r, s->col_channel[k], &s->values[r * nch + k]) < 0)
                return -1;
        double y = s->labels[r];
        if (s->spec->label_rule == MFL_SERIES_LABEL_LAST &&
            (y < 0 || y != floor(y) || y >= 1e6)) {
            mfl_errf(s->err, s->errlen, "%s:%zu: column %zu '%s': '%.40s' is not a class index",
                     s->t.name, s->t.recs[r].line + 1, s->col_label + 1,
                     s->t.header[s->col_label], mfl_csv_table_cell(&s->t, r, s->col_label));
            return -1;
        }
    }
    return 0;
}

static int s_cmp_rows(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (x->patient != y->patient)
        return x->patient < y->patient ? -1 : 1;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return (x->rec > y->rec) - (x->rec < y->rec); /* stable */
}

static double s_window_label(const s_series_t *s, size_t first)
{
    size_t w = s->spec->window;
    if (s->spec->label_rule != MFL_SERIES_LABEL_ANY)
        return s->labels[s->rows[first + w - 1].rec];
    for (size_t i = 0; i < w; i++)
        if (s->labels[s->rows[first + i].rec] > 0)
            return 1.0;
    return 0.0;
}

/* Window starts of every patient: count (out == NULL) or write them. */
static size_t s_windows(const s_series_t *s, size_t *out, mfl_series_stats_t *stats)
{
    size_t n = s->t.n_recs, w = s->spec->window, count = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s->rows[j].patient == s->rows[i].patient)
            j++;
        if (j - i < w && stats)
            stats->patients_too_short++;
        for (size_t start = i; start + w <= j; start += s->spec->stride) {
            if (out)
                out[count] = start;
            count++;
        }
        i = j;
    }
    return count;
}

static mfl_dataset_t *s_build(s_series_t *s, mfl_series_stats_t *stats)
{
    const mfl_series_spec_t *sp = s->spec;
    size_t nch = sp->n_channels, nf = sp->window * nch;
    size_t count = s_windows(s, NULL, stats);
    size_t *starts = malloc((count ? count : 1) * sizeof *starts);
    mfl_dataset_t *ds = starts ? mfl_dataset_new(count, nf) : NULL;
    if (!ds) {
        free(starts);
        s_oom(s);
        return NULL;
    }
    s_windows(s, starts, NULL);
    size_t max_class = 0;
    for (size_t e = 0; e < count; e++) {
        for (size_t t = 0; t < sp->window; t++) {
            const double *v = s->values + s->rows[starts[e] + t].rec * nch;
            for (size_t k = 0; k < nch; k++)
                ds->x[e * nf + t * nch + k] = (float)v[k];
        }
        double y = s_window_label(s, starts[e]);
        ds->y[e] = (float)y;
        if (sp->label_rule == MFL_SERIES_LABEL_LAST && (size_t)y > max_class)
            max_class = (size_t)y;
    }
    if (mfl_dataset_add_groups(ds) < 0) {
        free(starts);
        mfl_dataset_destroy(&ds);
        s_oom(s);
        return NULL;
    }
    for (size_t e = 0; e < count; e++)
        ds->group[e] = s->rows[starts[e]].patient;
    ds->n_classes = sp->label_rule == MFL_SERIES_LABEL_REGRESSION ? 0
                    : sp->label_rule == MFL_SERIES_LABEL_ANY      ? 2
                                                                  : max_class + 1;
    if (stats) {
        stats->patient_of_example = malloc((count ? count : 1) * sizeof(size_t));
        if (!stats->patient_of_example) {
            free(starts);
            mfl_dataset_destroy(&ds);
            s_oom(s);
            return NULL;
        }
        for (size_t e = 0; e < count; e++)
            stats->patient_of_example[e] = s->rows[starts[e]].patient;
    }
    free(starts);
    return ds;
}

mfl_dataset_t *mfl_series_parse(const char *text, size_t len, const char *name,
                                const mfl_series_spec_t *spec, mfl_series_stats_t *stats,
                                char *err, size_t errlen)
{
    s_series_t s = { .spec = spec, .t = { .name = name ? name : "<series>" }, .err = err,
                     .errlen = errlen };
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (s_check_spec(spec, s.t.name, err, errlen) < 0)
        return NULL;
    char delim = spec->delimiter ? spec->delimiter : ',';
    s.nc = s_header_width(text, len, delim);
    if (s.nc > MFL_CSV_MAX_COLUMNS)
        return mfl_errf(err, errlen, "%s:1: more than %u columns", s.t.name,
                        (unsigned)MFL_CSV_MAX_COLUMNS), NULL;
    /* The tokeniser needs only the width and the layout. */
    mfl_csv_column_t dummy = { 0 };
    mfl_csv_schema_t layout = { .header = true, .delimiter = delim, .columns = &dummy,
                                .n_columns = s.nc };
    mfl_dataset_t *ds = NULL;
    if (mfl_csv_table_read(&s.t, text, len, &layout, err, errlen) < 0)
        goto out;
    if (!s.t.header) {
        mfl_errf(err, errlen, "%s: no header line (a series names its columns)", s.t.name);
        goto out;
    }
    if (s_find_columns(&s) < 0 || s_read_rows(&s) < 0)
        goto out;
    qsort(s.rows, s.t.n_recs, sizeof *s.rows, s_cmp_rows);
    ds = s_build(&s, stats);
    if (ds && stats) {
        stats->rows_read = s.t.n_recs;
        stats->n_patients = s.n_patients;
    }
out:
    if (!ds)
        mfl_series_stats_clear(stats);
    s_free(&s);
    return ds;
}

mfl_dataset_t *mfl_series_load(const char *path, const mfl_series_spec_t *spec,
                               mfl_series_stats_t *stats, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (mfl_file_read_all(path, MFL_CSV_MAX_BYTES, &buf, &len, err, errlen) < 0)
        return NULL;
    mfl_dataset_t *ds = mfl_series_parse(buf, len, path, spec, stats, err, errlen);
    free(buf);
    return ds;
}

void mfl_series_stats_clear(mfl_series_stats_t *stats)
{
    if (!stats)
        return;
    free(stats->patient_of_example);
    memset(stats, 0, sizeof *stats);
}

char *mfl_series_canonical(const mfl_series_spec_t *spec, size_t n_classes)
{
    static const char *const rules[] = { "last", "any", "regression" };
    size_t len = 256 + strlen(spec->label);
    for (size_t k = 0; k < spec->n_channels; k++)
        len += strlen(spec->channels[k]) + 1;
    char *t = malloc(len);
    if (!t)
        return NULL;
    size_t o = (size_t)snprintf(t, len, "metafl-schema v2\nfeatures %zu\nclasses %zu\n"
                                "label %s window-%s\nseries window=%zu channels=",
                                spec->window * spec->n_channels, n_classes, spec->label,
                                rules[spec->label_rule <= 2 ? spec->label_rule : 0],
                                spec->window);
    for (size_t k = 0; k < spec->n_channels && o < len; k++)
        o += (size_t)snprintf(t + o, len - o, "%s%s", k ? "," : "", spec->channels[k]);
    if (o < len)
        snprintf(t + o, len - o, "\n");
    return t;
}
