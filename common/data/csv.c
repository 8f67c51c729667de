/* CSV loading: the table is tokenised (csv_table.c), then each step below
 * has one concern: resolve the categorical levels, resolve every used cell
 * to a number or level index (errors name file:line and column), apply the
 * missing-value policy, lay out and write the features, and describe the
 * result (row lines, names, per-column counts, canonical schema text). */
#include "data/csv.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "data/csv_canon.h"
#include "data/csv_table.h"

static const char *const s_default_missing[] = { "", "NaN", "?" };

typedef struct {
    const char **levels; /* resolved levels (borrowed strings) */
    size_t n_levels;
} s_colinfo_t;

/* One parse's working state; every array is owned and freed by s_free. */
typedef struct {
    const mfl_csv_schema_t *schema;
    mfl_csv_table_t t;
    size_t nc, nr;
    s_colinfo_t *info;     /* [nc] */
    double *vals;          /* [nr][nc]: number, level index, or NaN if missing */
    unsigned char *keep;   /* [nr] */
    size_t *dropped_by;    /* [nc] */
    size_t *imputed_by;    /* [nc] */
    size_t *offset;        /* [nc]: first feature of each column */
    size_t label_col;      /* SIZE_MAX: none */
    size_t max_class;
    size_t kept, dropped, imputed, nf;
    char *err;
    size_t errlen;
} s_parse_t;

static void s_free(s_parse_t *p)
{
    if (p->info)
        for (size_t c = 0; c < p->nc; c++)
            free(p->info[c].levels);
    free(p->info);
    free(p->vals);
    free(p->keep);
    free(p->dropped_by);
    free(p->imputed_by);
    free(p->offset);
    mfl_csv_table_free(&p->t);
}

static int s_oom(s_parse_t *p)
{
    mfl_errf(p->err, p->errlen, "%s: out of memory", p->t.name);
    return -1;
}

static bool s_is_missing(const mfl_csv_schema_t *schema, const mfl_csv_column_t *col,
                         const char *cell)
{
    const char *const *tok;
    size_t n;
    if (col->has_missing) {
        tok = col->missing;
        n = col->n_missing;
    } else if (schema->missing) {
        tok = schema->missing;
        n = schema->n_missing;
    } else {
        tok = s_default_missing;
        n = 3;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(tok[i], cell) == 0)
            return true;
    return false;
}

static bool s_as_levels(const mfl_csv_column_t *col)
{
    return col->kind == MFL_CSV_CATEGORICAL ||
           (col->kind == MFL_CSV_LABEL && col->label_rule == MFL_CSV_LABEL_LEVELS);
}

/* Index of `cell` among levels, textual or numeric match; -1 if none. */
static long s_level_index(const char *const *levels, size_t n, const char *cell)
{
    double v, w;
    int is_num = mfl_csv_number(cell, &v) == 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(levels[i], cell) == 0)
            return (long)i;
        if (is_num && mfl_csv_number(levels[i], &w) == 0 && v == w)
            return (long)i;
    }
    return -1;
}

static int s_cmp_numeric(const void *a, const void *b)
{
    double x = 0, y = 0; /* only called when every level is a number */
    mfl_csv_number(*(const char *const *)a, &x);
    mfl_csv_number(*(const char *const *)b, &y);
    return (x > y) - (x < y);
}

static const char *s_colname(const s_parse_t *p, size_t c, char *buf, size_t buflen)
{
    if (p->schema->columns[c].name)
        return p->schema->columns[c].name;
    if (p->t.header)
        return p->t.header[c];
    snprintf(buf, buflen, "col%zu", c + 1);
    return buf;
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

static int s_check_header(s_parse_t *p)
{
    if (!p->t.header)
        return 0;
    for (size_t c = 0; c < p->nc; c++) {
        const char *want = p->schema->columns[c].name;
        if (want && strcmp(want, p->t.header[c]) != 0) {
            mfl_errf(p->err, p->errlen,
                     "%s:%zu: column %zu: header '%s' does not match schema name '%s'", p->t.name,
                     p->t.header_line + 1, c + 1, p->t.header[c], want);
            return -1;
        }
    }
    return 0;
}

/* Levels of a categorical column inferred from the file: numeric order if
 * all are numbers, else order of appearance (text label levels are never
 * inferred: they must be given). */
static int s_infer_levels(s_parse_t *p, size_t c)
{
    const mfl_csv_column_t *col = &p->schema->columns[c];
    s_colinfo_t *info = &p->info[c];
    char nbuf[32];
    info->levels = malloc(MFL_CSV_MAX_LEVELS * sizeof *info->levels);
    if (!info->levels)
        return s_oom(p);
    info->n_levels = 0;
    int all_numeric = 1;
    for (size_t r = 0; r < p->nr; r++) {
        const char *cell = mfl_csv_table_cell(&p->t, r, c);
        if (s_is_missing(p->schema, col, cell) ||
            s_level_index(info->levels, info->n_levels, cell) >= 0)
            continue;
        if (info->n_levels == MFL_CSV_MAX_LEVELS) {
            mfl_errf(p->err, p->errlen, "%s:%zu: column %zu '%s': more than %u distinct levels",
                     p->t.name, p->t.recs[r].line + 1, c + 1, s_colname(p, c, nbuf, sizeof nbuf),
                     (unsigned)MFL_CSV_MAX_LEVELS);
            return -1;
        }
        double v;
        all_numeric &= mfl_csv_number(cell, &v) == 0;
        info->levels[info->n_levels++] = cell;
    }
    if (all_numeric)
        qsort(info->levels, info->n_levels, sizeof *info->levels, s_cmp_numeric);
    return 0;
}

static int s_resolve_levels(s_parse_t *p)
{
    p->info = calloc(p->nc, sizeof *p->info);
    if (!p->info)
        return s_oom(p);
    for (size_t c = 0; c < p->nc; c++) {
        const mfl_csv_column_t *col = &p->schema->columns[c];
        if (col->kind == MFL_CSV_LABEL)
            p->label_col = c;
        if (!s_as_levels(col))
            continue;
        if (!col->levels) {
            if (s_infer_levels(p, c) < 0)
                return -1;
            continue;
        }
        p->info[c].levels = malloc((col->n_levels ? col->n_levels : 1) * sizeof(char *));
        if (!p->info[c].levels)
            return s_oom(p);
        for (size_t i = 0; i < col->n_levels; i++)
            p->info[c].levels[i] = col->levels[i];
        p->info[c].n_levels = col->n_levels;
    }
    return 0;
}

static int s_level_error(s_parse_t *p, size_t r, size_t c, const char *cell)
{
    char list[200] = "", nbuf[32];
    size_t used = 0;
    for (size_t i = 0; i < p->info[c].n_levels && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                         p->info[c].levels[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    mfl_errf(p->err, p->errlen, "%s:%zu: column %zu '%s': '%.40s' is not one of the levels %s",
             p->t.name, p->t.recs[r].line + 1, c + 1, s_colname(p, c, nbuf, sizeof nbuf), cell,
             list);
    return -1;
}

/* A numeric label cell under its rule; -1 with err for a bad class index. */
static int s_label_value(s_parse_t *p, size_t r, size_t c, const char *cell, double *num)
{
    const mfl_csv_column_t *col = &p->schema->columns[c];
    char nbuf[32];
    switch (col->label_rule) {
    case MFL_CSV_LABEL_CLASS:
        if (*num < 0 || *num != floor(*num) || *num >= 1e6 ||
            (col->n_classes && *num >= (double)col->n_classes)) {
            mfl_errf(p->err, p->errlen, "%s:%zu: column %zu '%s': '%.40s' is not a class index%s",
                     p->t.name, p->t.recs[r].line + 1, c + 1, s_colname(p, c, nbuf, sizeof nbuf),
                     cell, col->n_classes ? " in range" : "");
            return -1;
        }
        if ((size_t)*num > p->max_class)
            p->max_class = (size_t)*num;
        break;
    case MFL_CSV_LABEL_GREATER: *num = *num > col->threshold; break;
    case MFL_CSV_LABEL_LESS: *num = *num < col->threshold; break;
    case MFL_CSV_LABEL_EQUAL: *num = *num == col->threshold; break;
    default: break;
    }
    return 0;
}

/* vals[r][c] for one cell: NaN if ignored or missing. */
static int s_resolve_cell(s_parse_t *p, size_t r, size_t c)
{
    const mfl_csv_column_t *col = &p->schema->columns[c];
    const char *cell = mfl_csv_table_cell(&p->t, r, c);
    double *v = &p->vals[r * p->nc + c];
    char nbuf[32];
    *v = NAN;
    if (col->kind == MFL_CSV_IGNORE || s_is_missing(p->schema, col, cell))
        return 0;
    if (s_as_levels(col)) {
        long k = s_level_index(p->info[c].levels, p->info[c].n_levels, cell);
        if (k < 0)
            return s_level_error(p, r, c, cell);
        *v = (double)k;
        return 0;
    }
    double num;
    if (mfl_csv_number(cell, &num) < 0) {
        mfl_errf(p->err, p->errlen, "%s:%zu: column %zu '%s': '%.40s' is not a number", p->t.name,
                 p->t.recs[r].line + 1, c + 1, s_colname(p, c, nbuf, sizeof nbuf), cell);
        return -1;
    }
    if (col->kind == MFL_CSV_LABEL && s_label_value(p, r, c, cell, &num) < 0)
        return -1;
    *v = num;
    return 0;
}

static int s_resolve_cells(s_parse_t *p)
{
    if (p->nr && p->nc > SIZE_MAX / sizeof(double) / p->nr)
        return s_oom(p);
    p->vals = malloc((p->nr && p->nc ? p->nr * p->nc : 1) * sizeof *p->vals);
    if (!p->vals)
        return s_oom(p);
    for (size_t r = 0; r < p->nr; r++)
        for (size_t c = 0; c < p->nc; c++)
            if (s_resolve_cell(p, r, c) < 0)
                return -1;
    return 0;
}

/* The policy decides which rows stay; counts per column. */
static int s_apply_missing(s_parse_t *p)
{
    const mfl_csv_schema_t *schema = p->schema;
    char nbuf[32];
    p->keep = malloc(p->nr ? p->nr : 1);
    p->dropped_by = calloc(p->nc, sizeof *p->dropped_by);
    p->imputed_by = calloc(p->nc, sizeof *p->imputed_by);
    if (!p->keep || !p->dropped_by || !p->imputed_by)
        return s_oom(p);
    for (size_t r = 0; r < p->nr; r++) {
        p->keep[r] = 1;
        for (size_t c = 0; c < p->nc; c++) {
            if (schema->columns[c].kind == MFL_CSV_IGNORE || !isnan(p->vals[r * p->nc + c]))
                continue;
            if (schema->on_missing == MFL_CSV_MISSING_ERROR) {
                mfl_errf(p->err, p->errlen, "%s:%zu: column %zu '%s': missing value", p->t.name,
                         p->t.recs[r].line + 1, c + 1, s_colname(p, c, nbuf, sizeof nbuf));
                return -1;
            }
            if (schema->on_missing == MFL_CSV_MISSING_DROP ||
                schema->columns[c].kind == MFL_CSV_LABEL)
                p->keep[r] = 0;
        }
        if (p->keep[r])
            p->kept++;
        else
            p->dropped++;
        for (size_t c = 0; c < p->nc; c++) {
            if (schema->columns[c].kind == MFL_CSV_IGNORE || !isnan(p->vals[r * p->nc + c]))
                continue;
            if (!p->keep[r])
                p->dropped_by[c]++;
            else
                p->imputed_by[c]++;
        }
    }
    for (size_t c = 0; c < p->nc; c++)
        p->imputed += p->imputed_by[c];
    return 0;
}

/* IMPUTE: numeric cells get the mean, categorical the mode, of the kept rows. */
static void s_impute_kept(s_parse_t *p)
{
    size_t nc = p->nc;
    for (size_t c = 0; c < nc; c++) {
        const mfl_csv_column_t *col = &p->schema->columns[c];
        if ((col->kind != MFL_CSV_NUMERIC && col->kind != MFL_CSV_CATEGORICAL) ||
            !p->imputed_by[c])
            continue;
        double fill = 0.0;
        if (col->kind == MFL_CSV_NUMERIC) {
            double s = 0;
            size_t m = 0;
            for (size_t r = 0; r < p->nr; r++)
                if (p->keep[r] && !isnan(p->vals[r * nc + c])) {
                    s += p->vals[r * nc + c];
                    m++;
                }
            fill = m ? s / (double)m : 0.0;
        } else {
            size_t best = 0, best_count = 0;
            for (size_t k = 0; k < p->info[c].n_levels; k++) {
                size_t count = 0;
                for (size_t r = 0; r < p->nr; r++)
                    count += p->keep[r] && p->vals[r * nc + c] == (double)k;
                if (count > best_count) {
                    best = k;
                    best_count = count;
                }
            }
            fill = (double)best;
        }
        for (size_t r = 0; r < p->nr; r++)
            if (p->keep[r] && isnan(p->vals[r * nc + c]))
                p->vals[r * nc + c] = fill;
    }
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

/* Column order of features: pass 0 places numerics (and, unless
 * categorical_last, categoricals in place); pass 1 the rest. */
static int s_layout(s_parse_t *p)
{
    p->offset = malloc(p->nc * sizeof *p->offset);
    if (!p->offset)
        return s_oom(p);
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t c = 0; c < p->nc; c++) {
            int is_cat = p->schema->columns[c].kind == MFL_CSV_CATEGORICAL;
            int in_pass = p->schema->categorical_last ? (pass == 0 ? !is_cat : is_cat) : pass == 0;
            if (!in_pass)
                continue;
            p->offset[c] = off;
            off += s_feature_width(&p->schema->columns[c], &p->info[c]);
        }
    p->nf = off;
    return 0;
}

static size_t s_n_classes(const s_parse_t *p)
{
    if (p->label_col == SIZE_MAX)
        return 0;
    const mfl_csv_column_t *lc = &p->schema->columns[p->label_col];
    switch (lc->label_rule) {
    case MFL_CSV_LABEL_CLASS: return lc->n_classes ? lc->n_classes : p->max_class + 1;
    case MFL_CSV_LABEL_LEVELS: return p->info[p->label_col].n_levels;
    case MFL_CSV_LABEL_REGRESSION: return 0;
    default: return 2;
    }
}

/* One cell into its feature slot(s); a hole (KEEP) becomes NaN. */
static void s_encode_cell(const s_parse_t *p, size_t c, double v, float *x)
{
    const mfl_csv_column_t *col = &p->schema->columns[c];
    size_t off = p->offset[c];
    if (col->kind == MFL_CSV_NUMERIC) {
        x[off] = (float)v;
        return;
    }
    size_t w = s_feature_width(col, &p->info[c]);
    if (isnan(v)) {
        for (size_t k = 0; k < w; k++)
            x[off + k] = NAN;
        return;
    }
    size_t k = (size_t)v;
    /* A column with no observed level at all (every cell missing,
     * imputed) has no one-hot slot to set. */
    if (k >= p->info[c].n_levels)
        return;
    if (col->drop_first) {
        if (k > 0)
            x[off + k - 1] = 1.0f;
    } else {
        x[off + k] = 1.0f;
    }
}

static mfl_dataset_t *s_encode(s_parse_t *p)
{
    mfl_dataset_t *ds = mfl_dataset_new(p->kept, p->nf);
    if (!ds) {
        s_oom(p);
        return NULL;
    }
    ds->n_classes = s_n_classes(p);
    size_t out = 0;
    for (size_t r = 0; r < p->nr; r++) {
        if (!p->keep[r])
            continue;
        float *x = ds->x + out * p->nf;
        for (size_t c = 0; c < p->nc; c++) {
            const mfl_csv_column_t *col = &p->schema->columns[c];
            double v = p->vals[r * p->nc + c];
            if (col->kind == MFL_CSV_NUMERIC || col->kind == MFL_CSV_CATEGORICAL)
                s_encode_cell(p, c, v, x);
            else if (col->kind == MFL_CSV_LABEL)
                ds->y[out] = (float)v;
        }
        out++;
    }
    return ds;
}

void mfl_csv_stats_clear(mfl_csv_stats_t *stats)
{
    if (!stats)
        return;
    if (stats->feature_names)
        for (size_t i = 0; i < stats->n_features; i++)
            free(stats->feature_names[i]);
    if (stats->column_names)
        for (size_t i = 0; i < stats->n_columns; i++)
            free(stats->column_names[i]);
    free(stats->feature_names);
    free(stats->feature_column);
    free(stats->column_names);
    free(stats->dropped_by_column);
    free(stats->imputed_by_column);
    free(stats->lines);
    free(stats->canonical);
    memset(stats, 0, sizeof *stats);
}

static char *s_feature_name(const mfl_csv_column_t *col, const s_colinfo_t *info,
                            const char *cname, size_t k)
{
    if (col->kind == MFL_CSV_NUMERIC)
        return strdup(cname);
    const char *lv = info->levels[k + (col->drop_first ? 1 : 0)];
    size_t n = strlen(cname) + strlen(lv) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s_%s", cname, lv);
    return s;
}

static int s_stats_names(s_parse_t *p, mfl_csv_stats_t *stats)
{
    char nbuf[32];
    for (size_t c = 0; c < p->nc; c++) {
        const mfl_csv_column_t *col = &p->schema->columns[c];
        const char *cname = s_colname(p, c, nbuf, sizeof nbuf);
        stats->column_names[c] = strdup(cname);
        if (!stats->column_names[c])
            return s_oom(p);
        size_t w = s_feature_width(col, &p->info[c]);
        for (size_t k = 0; k < w; k++) {
            char *s = s_feature_name(col, &p->info[c], cname, k);
            if (!s)
                return s_oom(p);
            stats->feature_names[p->offset[c] + k] = s;
            stats->feature_column[p->offset[c] + k] = c;
        }
    }
    return 0;
}

static int s_stats(s_parse_t *p, size_t n_classes, mfl_csv_stats_t *stats)
{
    stats->rows_read = p->nr;
    stats->rows_dropped = p->dropped;
    stats->cells_imputed = p->imputed;
    stats->n_features = p->nf;
    stats->n_columns = p->nc;
    stats->lines = malloc((p->kept ? p->kept : 1) * sizeof *stats->lines);
    stats->feature_names = calloc(p->nf ? p->nf : 1, sizeof *stats->feature_names);
    stats->feature_column = calloc(p->nf ? p->nf : 1, sizeof *stats->feature_column);
    stats->column_names = calloc(p->nc, sizeof *stats->column_names);
    if (!stats->lines || !stats->feature_names || !stats->feature_column || !stats->column_names)
        return s_oom(p);
    stats->dropped_by_column = p->dropped_by;
    stats->imputed_by_column = p->imputed_by;
    p->dropped_by = p->imputed_by = NULL;
    size_t out = 0;
    for (size_t r = 0; r < p->nr; r++)
        if (p->keep[r])
            stats->lines[out++] = p->t.recs[r].line;
    if (s_stats_names(p, stats) < 0)
        return -1;
    const char *const **levels = malloc(p->nc * sizeof *levels);
    size_t *n_levels = malloc(p->nc * sizeof *n_levels);
    if (levels && n_levels) {
        for (size_t c = 0; c < p->nc; c++) {
            levels[c] = p->info[c].levels;
            n_levels[c] = p->info[c].n_levels;
        }
        stats->canonical = mfl_csv_canonical_build(
            p->schema, (const char *const *)stats->column_names, levels, n_levels, n_classes);
    }
    free(levels);
    free(n_levels);
    return stats->canonical ? 0 : s_oom(p);
}

mfl_dataset_t *mfl_csv_parse(const char *text, size_t len, const char *name,
                             const mfl_csv_schema_t *schema, mfl_csv_stats_t *stats, char *err,
                             size_t errlen)
{
    s_parse_t p = { .schema = schema, .t = { .name = name ? name : "<csv>" },
                    .nc = schema->n_columns, .label_col = SIZE_MAX, .err = err,
                    .errlen = errlen };
    mfl_dataset_t *ds = NULL;
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (s_check_schema(schema, p.t.name, err, errlen) < 0)
        return NULL;
    if (mfl_csv_table_read(&p.t, text, len, schema, err, errlen) < 0 || s_check_header(&p) < 0)
        goto out_free;
    p.nr = p.t.n_recs;
    if (s_resolve_levels(&p) < 0 || s_resolve_cells(&p) < 0 || s_apply_missing(&p) < 0)
        goto out_free;
    if (schema->on_missing == MFL_CSV_MISSING_IMPUTE)
        s_impute_kept(&p);
    if (s_layout(&p) < 0)
        goto out_free;
    ds = s_encode(&p);
    if (!ds || (stats && s_stats(&p, ds->n_classes, stats) < 0))
        goto out_free;
    s_free(&p);
    return ds;

out_free:
    mfl_dataset_destroy(&ds);
    mfl_csv_stats_clear(stats);
    s_free(&p);
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

void mfl_csv_schema_clear(mfl_csv_schema_t *schema)
{
    if (!schema)
        return;
    if (schema->owned && schema->free_owned)
        schema->free_owned(schema->owned);
    memset(schema, 0, sizeof *schema);
}
