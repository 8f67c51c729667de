/* CSV loading in three passes over a bounded in-memory copy of the file:
 * split into NUL-terminated cells, resolve every used cell to a number or a
 * level (errors name file:line and column), then apply the missing-value
 * policy and write the features. */
#include "data/csv.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"

static const char *const s_default_missing[] = { "", "NaN", "?" };

typedef struct {
    size_t line;  /* 0-based physical line */
    size_t first; /* index of its first cell */
} s_record_t;

typedef struct {
    const char *name;
    char *buf; /* owned copy of the text (cells point into it) */
    char **cells;
    size_t n_cells, cap_cells;
    s_record_t *recs;
    size_t n_recs, cap_recs;
    char **header; /* [n_columns] when schema->header */
    size_t header_line;
} s_table_t;

static void s_table_free(s_table_t *t)
{
    free(t->buf);
    free(t->cells);
    free(t->recs);
    free(t->header);
}

static int s_push_cell(s_table_t *t, char *cell)
{
    if (t->n_cells == t->cap_cells) {
        size_t cap = t->cap_cells ? t->cap_cells * 2 : 1024;
        char **c = realloc(t->cells, cap * sizeof *c);
        if (!c)
            return -1;
        t->cells = c;
        t->cap_cells = cap;
    }
    t->cells[t->n_cells++] = cell;
    return 0;
}

static int s_push_rec(s_table_t *t, size_t line, size_t first)
{
    if (t->n_recs == t->cap_recs) {
        size_t cap = t->cap_recs ? t->cap_recs * 2 : 256;
        s_record_t *r = realloc(t->recs, cap * sizeof *r);
        if (!r)
            return -1;
        t->recs = r;
        t->cap_recs = cap;
    }
    t->recs[t->n_recs].line = line;
    t->recs[t->n_recs].first = first;
    t->n_recs++;
    return 0;
}

static char *s_trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    return s;
}

/* Unescapes the quoted cell starting after the opening quote at *p, in
 * place (""" -> '"'); on return *p is just past the closing quote. */
static char *s_unquote(char **p, int *closed)
{
    char *src = *p + 1, *dst = src, *cell = src;
    *closed = 0;
    while (*src) {
        if (*src == '"') {
            if (src[1] != '"') {
                src++;
                *closed = 1;
                break;
            }
            src++; /* "" is one quote */
        }
        *dst++ = *src++;
    }
    *dst = '\0'; /* dst ≤ src - 1 once closed: never past the quote */
    *p = src;
    return cell;
}

/* Splits one line (NUL-terminated, in place) into cells. */
static int s_split_line(s_table_t *t, char *line, size_t lineno, char delim, size_t *n_fields,
                        char *err, size_t errlen)
{
    char *p = line;
    size_t fields = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *cell, *end, next;
        if (*p == '"') {
            int closed;
            end = p;
            cell = s_unquote(&end, &closed);
            if (!closed) {
                mfl_errf(err, errlen, "%s:%zu: column %zu: unterminated quoted field", t->name,
                         lineno + 1, fields + 1);
                return -1;
            }
            while (*end == ' ' || *end == '\t')
                end++;
            if (*end != '\0' && *end != delim) {
                mfl_errf(err, errlen, "%s:%zu: column %zu: text after a closing quote", t->name,
                         lineno + 1, fields + 1);
                return -1;
            }
            next = *end;
        } else {
            end = p;
            while (*end && *end != delim)
                end++;
            next = *end; /* before s_trim writes the terminator there */
            cell = s_trim(p, end);
        }
        if (s_push_cell(t, cell) < 0) {
            mfl_errf(err, errlen, "%s:%zu: out of memory", t->name, lineno + 1);
            return -1;
        }
        if (++fields > MFL_CSV_MAX_COLUMNS) {
            mfl_errf(err, errlen, "%s:%zu: more than %u columns", t->name, lineno + 1,
                     (unsigned)MFL_CSV_MAX_COLUMNS);
            return -1;
        }
        if (!next)
            break;
        p = end + 1;
    }
    *n_fields = fields;
    return 0;
}

static int s_tokenize(s_table_t *t, const mfl_csv_schema_t *schema, char *err, size_t errlen)
{
    char delim = schema->delimiter ? schema->delimiter : ',';
    char *p = t->buf;
    size_t lineno = 0;
    int header_pending = schema->header;
    size_t len = strlen(t->buf); /* NUL bytes inside are caught below */
    char *end_all = t->buf + len;
    while (p < end_all) {
        char *nl = memchr(p, '\n', (size_t)(end_all - p));
        char *eol = nl ? nl : end_all;
        if ((size_t)(eol - p) > MFL_CSV_MAX_LINE) {
            mfl_errf(err, errlen, "%s:%zu: line longer than %u bytes", t->name, lineno + 1,
                     (unsigned)MFL_CSV_MAX_LINE);
            return -1;
        }
        char *line_end = eol;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        *line_end = '\0';
        char *next = nl ? nl + 1 : end_all;
        if (lineno < schema->skip_rows || p == line_end) {
            p = next;
            lineno++;
            continue;
        }
        size_t first = t->n_cells, fields;
        if (s_split_line(t, p, lineno, delim, &fields, err, errlen) < 0)
            return -1;
        if (fields != schema->n_columns) {
            mfl_errf(err, errlen, "%s:%zu: expected %zu columns, found %zu", t->name, lineno + 1,
                     schema->n_columns, fields);
            return -1;
        }
        if (header_pending) {
            header_pending = 0;
            t->header = malloc(fields * sizeof *t->header);
            if (!t->header)
                goto out_oom;
            memcpy(t->header, t->cells + first, fields * sizeof *t->header);
            t->n_cells = first;
            t->header_line = lineno;
        } else {
            if (schema->max_rows && t->n_recs >= schema->max_rows)
                break;
            if (s_push_rec(t, lineno, first) < 0)
                goto out_oom;
        }
        p = next;
        lineno++;
    }
    return 0;
out_oom:
    mfl_errf(err, errlen, "%s: out of memory", t->name);
    return -1;
}

/* A whole-cell finite number, or -1. */
static int s_number(const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v) || strpbrk(s, "nNiIxX"))
        return -1;
    *out = v;
    return 0;
}

static int s_is_missing(const mfl_csv_schema_t *schema, const char *cell)
{
    const char *const *tok = schema->missing ? schema->missing : s_default_missing;
    size_t n = schema->missing ? schema->n_missing : 3;
    for (size_t i = 0; i < n; i++)
        if (strcmp(tok[i], cell) == 0)
            return 1;
    return 0;
}

typedef struct {
    const char **levels; /* resolved levels (borrowed strings) */
    size_t n_levels;
} s_colinfo_t;

/* Index of `cell` among levels, textual or numeric match; -1 if none. */
static long s_level_index(const char *const *levels, size_t n, const char *cell)
{
    double v, w;
    int is_num = s_number(cell, &v) == 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(levels[i], cell) == 0)
            return (long)i;
        if (is_num && s_number(levels[i], &w) == 0 && v == w)
            return (long)i;
    }
    return -1;
}

static int s_cmp_numeric(const void *a, const void *b)
{
    double x = 0, y = 0; /* only called when every level is a number */
    s_number(*(const char *const *)a, &x);
    s_number(*(const char *const *)b, &y);
    return (x > y) - (x < y);
}

static const char *s_colname(const mfl_csv_schema_t *schema, const s_table_t *t, size_t c,
                             char *buf, size_t buflen)
{
    if (schema->columns[c].name)
        return schema->columns[c].name;
    if (t->header)
        return t->header[c];
    snprintf(buf, buflen, "col%zu", c + 1);
    return buf;
}

/* Infers the levels of categorical column c (and text label levels are
 * never inferred: they must be given). */
static int s_infer_levels(const mfl_csv_schema_t *schema, s_table_t *t, size_t c,
                          s_colinfo_t *info, char *err, size_t errlen)
{
    char nbuf[32];
    info->levels = malloc(MFL_CSV_MAX_LEVELS * sizeof *info->levels);
    if (!info->levels) {
        mfl_errf(err, errlen, "%s: out of memory", t->name);
        return -1;
    }
    info->n_levels = 0;
    int all_numeric = 1;
    for (size_t r = 0; r < t->n_recs; r++) {
        const char *cell = t->cells[t->recs[r].first + c];
        if (s_is_missing(schema, cell))
            continue;
        if (s_level_index(info->levels, info->n_levels, cell) >= 0)
            continue;
        if (info->n_levels == MFL_CSV_MAX_LEVELS) {
            mfl_errf(err, errlen, "%s:%zu: column %zu '%s': more than %u distinct levels",
                     t->name, t->recs[r].line + 1, c + 1,
                     s_colname(schema, t, c, nbuf, sizeof nbuf), (unsigned)MFL_CSV_MAX_LEVELS);
            return -1;
        }
        double v;
        all_numeric &= s_number(cell, &v) == 0;
        info->levels[info->n_levels++] = cell;
    }
    if (all_numeric)
        qsort(info->levels, info->n_levels, sizeof *info->levels, s_cmp_numeric);
    return 0;
}

static size_t s_feature_width(const mfl_csv_column_t *col, const s_colinfo_t *info)
{
    if (col->kind == MFL_CSV_NUMERIC)
        return 1;
    if (col->kind != MFL_CSV_CATEGORICAL)
        return 0;
    if (col->drop_first)
        return info->n_levels ? info->n_levels - 1 : 0;
    return info->n_levels;
}

void mfl_csv_stats_clear(mfl_csv_stats_t *stats)
{
    if (!stats)
        return;
    if (stats->feature_names)
        for (size_t i = 0; i < stats->n_features; i++)
            free(stats->feature_names[i]);
    free(stats->feature_names);
    free(stats->lines);
    memset(stats, 0, sizeof *stats);
}

static int s_check_schema(const mfl_csv_schema_t *schema, const char *name, char *err,
                          size_t errlen)
{
    if (schema->n_columns == 0 || schema->n_columns > MFL_CSV_MAX_COLUMNS || !schema->columns) {
        mfl_errf(err, errlen, "%s: schema must list between 1 and %u columns", name,
                 (unsigned)MFL_CSV_MAX_COLUMNS);
        return -1;
    }
    size_t labels = 0;
    for (size_t c = 0; c < schema->n_columns; c++) {
        const mfl_csv_column_t *col = &schema->columns[c];
        if (col->kind == MFL_CSV_LABEL) {
            labels++;
            if (col->label_rule == MFL_CSV_LABEL_LEVELS && (!col->levels || col->n_levels < 2)) {
                mfl_errf(err, errlen, "%s: label column %zu: rule 'levels' needs at least 2 levels",
                         name, c + 1);
                return -1;
            }
        }
        if (col->n_levels > MFL_CSV_MAX_LEVELS) {
            mfl_errf(err, errlen, "%s: column %zu: more than %u levels", name, c + 1,
                     (unsigned)MFL_CSV_MAX_LEVELS);
            return -1;
        }
    }
    if (labels > 1) {
        mfl_errf(err, errlen, "%s: schema has %zu label columns; at most one is allowed", name,
                 labels);
        return -1;
    }
    return 0;
}

mfl_dataset_t *mfl_csv_parse(const char *text, size_t len, const char *name,
                             const mfl_csv_schema_t *schema, mfl_csv_stats_t *stats, char *err,
                             size_t errlen)
{
    s_table_t t = { .name = name ? name : "<csv>" };
    s_colinfo_t *info = NULL;
    double *vals = NULL;
    unsigned char *keep = NULL;
    mfl_dataset_t *ds = NULL;
    char nbuf[32];
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (s_check_schema(schema, t.name, err, errlen) < 0)
        return NULL;
    if (len > MFL_CSV_MAX_BYTES) {
        mfl_errf(err, errlen, "%s: %zu bytes exceeds the limit of %u", t.name, len,
                 (unsigned)MFL_CSV_MAX_BYTES);
        return NULL;
    }
    if (memchr(text, '\0', len)) {
        const char *z = memchr(text, '\0', len);
        size_t line = 1;
        for (const char *q = text; q < z; q++)
            line += *q == '\n';
        mfl_errf(err, errlen, "%s:%zu: NUL byte in text", t.name, line);
        return NULL;
    }
    t.buf = malloc(len + 1);
    if (!t.buf)
        goto out_oom;
    memcpy(t.buf, text, len);
    t.buf[len] = '\0';
    if (s_tokenize(&t, schema, err, errlen) < 0)
        goto out_free;
    size_t nc = schema->n_columns, nr = t.n_recs;
    if (t.header) {
        for (size_t c = 0; c < nc; c++) {
            const char *want = schema->columns[c].name;
            if (want && strcmp(want, t.header[c]) != 0) {
                mfl_errf(err, errlen, "%s:%zu: column %zu: header '%s' does not match schema name '%s'",
                         t.name, t.header_line + 1, c + 1, t.header[c], want);
                goto out_free;
            }
        }
    }

    /* Resolve levels. */
    MFL_ASSERT(nc > 0); /* s_check_schema refused an empty schema */
    info = calloc(nc, sizeof *info);
    if (!info)
        goto out_oom;
    size_t label_col = SIZE_MAX;
    for (size_t c = 0; c < nc; c++) {
        const mfl_csv_column_t *col = &schema->columns[c];
        if (col->kind == MFL_CSV_LABEL)
            label_col = c;
        if (col->kind != MFL_CSV_CATEGORICAL &&
            !(col->kind == MFL_CSV_LABEL && col->label_rule == MFL_CSV_LABEL_LEVELS))
            continue;
        if (col->levels) {
            info[c].levels = malloc((col->n_levels ? col->n_levels : 1) * sizeof(char *));
            if (!info[c].levels)
                goto out_oom;
            for (size_t i = 0; i < col->n_levels; i++)
                info[c].levels[i] = col->levels[i];
            info[c].n_levels = col->n_levels;
        } else if (s_infer_levels(schema, &t, c, &info[c], err, errlen) < 0) {
            goto out_free;
        }
    }

    /* Resolve cells: vals[r][c] is the number, the level index, or NaN if
     * missing. */
    if (nr && nc > SIZE_MAX / sizeof(double) / nr)
        goto out_oom;
    vals = malloc((nr && nc ? nr * nc : 1) * sizeof *vals);
    keep = malloc(nr ? nr : 1);
    if (!vals || !keep)
        goto out_oom;
    size_t max_class = 0;
    for (size_t r = 0; r < nr; r++) {
        for (size_t c = 0; c < nc; c++) {
            const mfl_csv_column_t *col = &schema->columns[c];
            const char *cell = t.cells[t.recs[r].first + c];
            double *v = &vals[r * nc + c];
            size_t line = t.recs[r].line + 1;
            *v = NAN;
            if (col->kind == MFL_CSV_IGNORE || s_is_missing(schema, cell))
                continue;
            int as_levels = col->kind == MFL_CSV_CATEGORICAL ||
                            (col->kind == MFL_CSV_LABEL && col->label_rule == MFL_CSV_LABEL_LEVELS);
            if (as_levels) {
                long k = s_level_index(info[c].levels, info[c].n_levels, cell);
                if (k < 0) {
                    char list[200] = "";
                    size_t used = 0;
                    for (size_t i = 0; i < info[c].n_levels && used < sizeof list; i++) {
                        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                         info[c].levels[i]);
                        if (w < 0)
                            break;
                        used += (size_t)w;
                    }
                    mfl_errf(err, errlen, "%s:%zu: column %zu '%s': '%.40s' is not one of the levels %s",
                             t.name, line, c + 1, s_colname(schema, &t, c, nbuf, sizeof nbuf), cell,
                             list);
                    goto out_free;
                }
                *v = (double)k;
                continue;
            }
            double num;
            if (s_number(cell, &num) < 0) {
                mfl_errf(err, errlen, "%s:%zu: column %zu '%s': '%.40s' is not a number", t.name,
                         line, c + 1, s_colname(schema, &t, c, nbuf, sizeof nbuf), cell);
                goto out_free;
            }
            if (col->kind == MFL_CSV_LABEL) {
                switch (col->label_rule) {
                case MFL_CSV_LABEL_CLASS:
                    if (num < 0 || num != floor(num) || num >= 1e6 ||
                        (col->n_classes && num >= (double)col->n_classes)) {
                        mfl_errf(err, errlen, "%s:%zu: column %zu '%s': '%.40s' is not a class index%s",
                                 t.name, line, c + 1, s_colname(schema, &t, c, nbuf, sizeof nbuf),
                                 cell, col->n_classes ? " in range" : "");
                        goto out_free;
                    }
                    if ((size_t)num > max_class)
                        max_class = (size_t)num;
                    break;
                case MFL_CSV_LABEL_GREATER: num = num > col->threshold; break;
                case MFL_CSV_LABEL_LESS: num = num < col->threshold; break;
                case MFL_CSV_LABEL_EQUAL: num = num == col->threshold; break;
                default: break;
                }
            }
            *v = num;
        }
    }

    /* Missing values. */
    size_t kept = 0, dropped = 0, imputed = 0;
    for (size_t r = 0; r < nr; r++) {
        keep[r] = 1;
        for (size_t c = 0; c < nc; c++) {
            if (schema->columns[c].kind == MFL_CSV_IGNORE || !isnan(vals[r * nc + c]))
                continue;
            if (schema->on_missing == MFL_CSV_MISSING_ERROR) {
                mfl_errf(err, errlen, "%s:%zu: column %zu '%s': missing value", t.name,
                         t.recs[r].line + 1, c + 1, s_colname(schema, &t, c, nbuf, sizeof nbuf));
                goto out_free;
            }
            if (schema->on_missing == MFL_CSV_MISSING_DROP || schema->columns[c].kind == MFL_CSV_LABEL)
                keep[r] = 0;
        }
        if (keep[r])
            kept++;
        else
            dropped++;
    }
    if (schema->on_missing == MFL_CSV_MISSING_IMPUTE) {
        for (size_t c = 0; c < nc; c++) {
            const mfl_csv_column_t *col = &schema->columns[c];
            if (col->kind != MFL_CSV_NUMERIC && col->kind != MFL_CSV_CATEGORICAL)
                continue;
            double fill = 0.0;
            if (col->kind == MFL_CSV_NUMERIC) {
                double s = 0;
                size_t m = 0;
                for (size_t r = 0; r < nr; r++)
                    if (keep[r] && !isnan(vals[r * nc + c])) {
                        s += vals[r * nc + c];
                        m++;
                    }
                fill = m ? s / (double)m : 0.0;
            } else {
                size_t best = 0, best_count = 0;
                for (size_t k = 0; k < info[c].n_levels; k++) {
                    size_t count = 0;
                    for (size_t r = 0; r < nr; r++)
                        count += keep[r] && vals[r * nc + c] == (double)k;
                    if (count > best_count) {
                        best = k;
                        best_count = count;
                    }
                }
                fill = (double)best;
            }
            for (size_t r = 0; r < nr; r++)
                if (keep[r] && isnan(vals[r * nc + c])) {
                    vals[r * nc + c] = fill;
                    imputed++;
                }
        }
    }

    /* Features. */
    size_t nf = 0;
    for (size_t c = 0; c < nc; c++)
        nf += s_feature_width(&schema->columns[c], &info[c]);
    ds = mfl_dataset_new(kept, nf);
    if (!ds)
        goto out_oom;
    if (label_col != SIZE_MAX) {
        const mfl_csv_column_t *lc = &schema->columns[label_col];
        switch (lc->label_rule) {
        case MFL_CSV_LABEL_CLASS: ds->n_classes = lc->n_classes ? lc->n_classes : max_class + 1; break;
        case MFL_CSV_LABEL_LEVELS: ds->n_classes = info[label_col].n_levels; break;
        case MFL_CSV_LABEL_REGRESSION: ds->n_classes = 0; break;
        default: ds->n_classes = 2; break;
        }
    }
    /* Column order of features: pass 0 writes numerics (and, unless
     * categorical_last, categoricals in place); pass 1 the rest. */
    size_t *offset = malloc(nc * sizeof *offset);
    if (!offset)
        goto out_oom;
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t c = 0; c < nc; c++) {
            int is_cat = schema->columns[c].kind == MFL_CSV_CATEGORICAL;
            int in_pass = schema->categorical_last ? (pass == 0 ? !is_cat : is_cat) : pass == 0;
            if (!in_pass)
                continue;
            offset[c] = off;
            off += s_feature_width(&schema->columns[c], &info[c]);
        }
    size_t out = 0;
    for (size_t r = 0; r < nr; r++) {
        if (!keep[r])
            continue;
        float *x = ds->x + out * nf;
        for (size_t c = 0; c < nc; c++) {
            const mfl_csv_column_t *col = &schema->columns[c];
            double v = vals[r * nc + c];
            if (col->kind == MFL_CSV_NUMERIC) {
                x[offset[c]] = (float)v;
            } else if (col->kind == MFL_CSV_CATEGORICAL) {
                size_t k = (size_t)v;
                /* A column with no observed level at all (every cell
                 * missing, imputed) has no one-hot slot to set. */
                if (k >= info[c].n_levels)
                    continue;
                if (col->drop_first) {
                    if (k > 0)
                        x[offset[c] + k - 1] = 1.0f;
                } else {
                    x[offset[c] + k] = 1.0f;
                }
            } else if (col->kind == MFL_CSV_LABEL) {
                ds->y[out] = (float)v;
            }
        }
        out++;
    }

    if (stats) {
        stats->rows_read = nr;
        stats->rows_dropped = dropped;
        stats->cells_imputed = imputed;
        stats->lines = malloc((kept ? kept : 1) * sizeof *stats->lines);
        stats->feature_names = calloc(nf ? nf : 1, sizeof *stats->feature_names);
        if (!stats->lines || !stats->feature_names) {
            free(offset);
            goto out_oom;
        }
        stats->n_features = nf;
        out = 0;
        for (size_t r = 0; r < nr; r++)
            if (keep[r])
                stats->lines[out++] = t.recs[r].line;
        for (size_t c = 0; c < nc; c++) {
            const mfl_csv_column_t *col = &schema->columns[c];
            const char *cname = s_colname(schema, &t, c, nbuf, sizeof nbuf);
            size_t w = s_feature_width(col, &info[c]);
            for (size_t k = 0; k < w; k++) {
                char *s;
                if (col->kind == MFL_CSV_NUMERIC) {
                    s = strdup(cname);
                } else {
                    const char *lv = info[c].levels[k + (col->drop_first ? 1 : 0)];
                    size_t n = strlen(cname) + strlen(lv) + 2;
                    s = malloc(n);
                    if (s)
                        snprintf(s, n, "%s_%s", cname, lv);
                }
                if (!s) {
                    free(offset);
                    goto out_oom;
                }
                stats->feature_names[offset[c] + k] = s;
            }
        }
    }
    free(offset);
    for (size_t c = 0; c < nc; c++)
        free(info[c].levels);
    free(info);
    free(vals);
    free(keep);
    s_table_free(&t);
    return ds;

out_oom:
    mfl_errf(err, errlen, "%s: out of memory", t.name);
out_free:
    if (info)
        for (size_t c = 0; c < schema->n_columns; c++)
            free(info[c].levels);
    free(info);
    free(vals);
    free(keep);
    mfl_dataset_destroy(&ds);
    mfl_csv_stats_clear(stats);
    s_table_free(&t);
    return NULL;
}

mfl_dataset_t *mfl_csv_load(const char *path, const mfl_csv_schema_t *schema,
                            mfl_csv_stats_t *stats, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (mfl_file_read_all(path, MFL_CSV_MAX_BYTES, &buf, &len, err, errlen) < 0)
        return NULL;
    mfl_dataset_t *ds = mfl_csv_parse(buf, len, path, schema, stats, err, errlen);
    free(buf);
    return ds;
}
