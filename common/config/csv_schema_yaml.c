/* A CSV schema from YAML: the table-wide keys, then one column at a time. */
#include "config/csv_schema_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef struct {
    mfl_csv_column_t *columns;
    const char **missing;
    const char ***levels;  /* per column */
    const char ***col_missing; /* per column */
    size_t n_columns;
} s_owned_t;

static void s_owned_free(void *p)
{
    s_owned_t *o = p;
    if (!o)
        return;
    for (size_t c = 0; c < o->n_columns; c++) {
        free(o->levels[c]);
        free(o->col_missing[c]);
    }
    free(o->levels);
    free(o->col_missing);
    free(o->columns);
    free(o->missing);
    free(o);
}

static int s_enum(mfl_yaml_doc_t *doc, const char *path, const char *const *names, int def)
{
    const char *v = mfl_yaml_get_string(doc, path, NULL);
    if (!v)
        return def;
    for (int i = 0; names[i]; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    char list[200] = "";
    size_t used = 0;
    for (int i = 0; names[i] && used < sizeof list; i++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    mfl_yaml_fail(doc, path, "'%s' is not one of %s", v, list);
    return def;
}

/* A list of missing tokens at `p` (absent: 0 with *has false). "missing: ~"
 * or "missing: []" means nothing is missing: a non-NULL empty list. */
static int s_tokens(mfl_yaml_doc_t *doc, const char *p, const char ***out, size_t *n, bool *has)
{
    *has = false;
    if (mfl_yaml_kind(doc, p) == MFL_YAML_NONE)
        return 0;
    if (mfl_yaml_get_string_list(doc, p, out, n) < 0)
        return 0; /* the doc holds the error */
    *has = true;
    if (!*out) {
        *out = malloc(sizeof **out);
        if (!*out)
            return -1;
    }
    return 0;
}

/* Table-wide keys. */
static void s_read_table(mfl_yaml_doc_t *doc, const char *path, const char *dot,
                         mfl_csv_schema_t *schema)
{
    static const char *const policies[] = { "drop", "impute", "error", NULL };
    char p[256];
    snprintf(p, sizeof p, "%s%sheader", path, dot);
    schema->header = mfl_yaml_get_bool(doc, p, false);
    snprintf(p, sizeof p, "%s%sdelimiter", path, dot);
    const char *delim = mfl_yaml_get_string(doc, p, ",");
    if (strcmp(delim, "\\t") == 0 || strcmp(delim, "tab") == 0)
        delim = "\t";
    if (strlen(delim) != 1 || delim[0] == '"' || delim[0] == '\n' || delim[0] == '\r')
        mfl_yaml_fail(doc, p, "expected a single character (or \"tab\")");
    schema->delimiter = delim[0];
    snprintf(p, sizeof p, "%s%sskip_rows", path, dot);
    schema->skip_rows = mfl_yaml_get_size(doc, p, 0);
    snprintf(p, sizeof p, "%s%smax_rows", path, dot);
    schema->max_rows = mfl_yaml_get_size(doc, p, 0);
    snprintf(p, sizeof p, "%s%son_missing", path, dot);
    schema->on_missing = (mfl_csv_missing_t)s_enum(doc, p, policies, MFL_CSV_MISSING_DROP);
    snprintf(p, sizeof p, "%s%scategorical_last", path, dot);
    schema->categorical_last = mfl_yaml_get_bool(doc, p, false);
}

/* One column at `base` (a mapping, or a scalar: a numeric column's name). */
static int s_read_column(mfl_yaml_doc_t *doc, const char *base, s_owned_t *o, size_t c)
{
    static const char *const col_keys[] = { "name", "kind", "levels", "drop_first", "rule",
                                            "threshold", "n_classes", "missing", NULL };
    static const char *const kinds[] = { "numeric", "categorical", "label", "ignore", NULL };
    static const char *const rules[] = { "class", "greater", "less", "equal", "levels",
                                         "regression", NULL };
    mfl_csv_column_t *col = &o->columns[c];
    char p[340];
    if (mfl_yaml_kind(doc, base) == MFL_YAML_SCALAR) {
        /* Shorthand: "- age" is a numeric column named age. */
        col->name = mfl_yaml_get_string(doc, base, NULL);
        col->kind = MFL_CSV_NUMERIC;
        return 0;
    }
    if (mfl_yaml_kind(doc, base) != MFL_YAML_MAPPING) {
        mfl_yaml_fail(doc, base, "expected a column name or a mapping with name and kind");
        return -1;
    }
    mfl_yaml_check_keys(doc, base, col_keys);
    snprintf(p, sizeof p, "%s.name", base);
    col->name = mfl_yaml_get_string(doc, p, NULL);
    snprintf(p, sizeof p, "%s.kind", base);
    col->kind = (mfl_csv_kind_t)s_enum(doc, p, kinds, MFL_CSV_NUMERIC);
    snprintf(p, sizeof p, "%s.drop_first", base);
    col->drop_first = mfl_yaml_get_bool(doc, p, false);
    snprintf(p, sizeof p, "%s.rule", base);
    col->label_rule = (mfl_csv_label_rule_t)s_enum(doc, p, rules, MFL_CSV_LABEL_CLASS);
    if (col->kind != MFL_CSV_LABEL && mfl_yaml_has(doc, p))
        mfl_yaml_fail(doc, p, "only a label column has a rule");
    snprintf(p, sizeof p, "%s.threshold", base);
    col->threshold = mfl_yaml_get_double(doc, p, 0.0);
    snprintf(p, sizeof p, "%s.n_classes", base);
    col->n_classes = mfl_yaml_get_size(doc, p, 0);
    snprintf(p, sizeof p, "%s.missing", base);
    if (s_tokens(doc, p, &o->col_missing[c], &col->n_missing, &col->has_missing) < 0)
        return -1;
    col->missing = o->col_missing[c];
    snprintf(p, sizeof p, "%s.levels", base);
    size_t nl = 0;
    if (mfl_yaml_get_string_list(doc, p, &o->levels[c], &nl) == 0 && o->levels[c]) {
        col->levels = o->levels[c];
        col->n_levels = nl;
        if (nl > MFL_CSV_MAX_LEVELS)
            mfl_yaml_fail(doc, p, "more than %u levels", (unsigned)MFL_CSV_MAX_LEVELS);
    }
    if (col->kind == MFL_CSV_LABEL && col->label_rule == MFL_CSV_LABEL_LEVELS && nl < 2)
        mfl_yaml_fail(doc, base, "a label with rule 'levels' needs 'levels' (at least 2)");
    return 0;
}

/* columns[]: every column of the file; at most one label. */
static int s_read_columns(mfl_yaml_doc_t *doc, const char *path, const char *cols,
                          s_owned_t *o)
{
    size_t nc = mfl_yaml_len(doc, cols);
    if (mfl_yaml_kind(doc, cols) != MFL_YAML_SEQUENCE || nc == 0) {
        if (mfl_yaml_kind(doc, cols) == MFL_YAML_NONE)
            mfl_yaml_fail(doc, path, "missing required key 'columns' (a list of the table's columns)");
        else
            mfl_yaml_fail(doc, cols, "expected a non-empty list of columns");
        return -1;
    }
    if (nc > MFL_CSV_MAX_COLUMNS) {
        mfl_yaml_fail(doc, cols, "more than %u columns", (unsigned)MFL_CSV_MAX_COLUMNS);
        return -1;
    }
    o->columns = calloc(nc, sizeof *o->columns);
    o->levels = calloc(nc, sizeof *o->levels);
    o->col_missing = calloc(nc, sizeof *o->col_missing);
    if (!o->columns || !o->levels || !o->col_missing) {
        mfl_yaml_fail(doc, path, "out of memory");
        return -1;
    }
    o->n_columns = nc;
    for (size_t c = 0; c < nc; c++) {
        char base[300];
        snprintf(base, sizeof base, "%s[%zu]", cols, c);
        if (s_read_column(doc, base, o, c) < 0)
            return -1;
    }
    size_t labels = 0;
    for (size_t c = 0; c < nc; c++)
        labels += o->columns[c].kind == MFL_CSV_LABEL;
    if (labels > 1)
        mfl_yaml_fail(doc, cols, "%zu columns have kind 'label'; at most one may", labels);
    return 0;
}

int mfl_csv_schema_from_yaml(mfl_yaml_doc_t *doc, const char *path, mfl_csv_schema_t *schema,
                             char *err, size_t errlen)
{
    static const char *const keys[] = { "header", "delimiter", "skip_rows", "missing",
                                        "on_missing", "categorical_last", "max_rows", "columns",
                                        NULL };
    memset(schema, 0, sizeof *schema);
    if (!path)
        path = "";
    const char *dot = *path ? "." : "";
    if (mfl_yaml_kind(doc, path) != MFL_YAML_MAPPING) {
        mfl_yaml_fail(doc, path, "expected a mapping describing the table");
        goto out_error;
    }
    mfl_yaml_check_keys(doc, path, keys);
    s_read_table(doc, path, dot, schema);
    s_owned_t *o = calloc(1, sizeof *o);
    if (!o) {
        mfl_yaml_fail(doc, path, "out of memory");
        goto out_error;
    }
    schema->owned = o;
    schema->free_owned = s_owned_free;
    char p[256];
    snprintf(p, sizeof p, "%s%smissing", path, dot);
    bool has = false;
    if (s_tokens(doc, p, &o->missing, &schema->n_missing, &has) < 0) {
        mfl_yaml_fail(doc, path, "out of memory");
        goto out_error;
    }
    schema->missing = has ? o->missing : NULL;
    snprintf(p, sizeof p, "%s%scolumns", path, dot);
    if (s_read_columns(doc, path, p, o) < 0)
        goto out_error;
    schema->columns = o->columns;
    schema->n_columns = o->n_columns;
    if (mfl_yaml_error(doc, err, errlen) < 0) {
        mfl_csv_schema_clear(schema);
        return -1;
    }
    return 0;

out_error:
    mfl_yaml_error(doc, err, errlen);
    mfl_csv_schema_clear(schema);
    return -1;
}

int mfl_csv_schema_file_load(const char *path, mfl_csv_schema_t *schema,
                             mfl_yaml_doc_t **doc_out, char *err, size_t errlen)
{
    memset(schema, 0, sizeof *schema);
    *doc_out = NULL;
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, errlen);
    if (!doc)
        return -1;
    if (mfl_csv_schema_from_yaml(doc, "", schema, err, errlen) < 0) {
        mfl_yaml_destroy(&doc);
        return -1;
    }
    *doc_out = doc;
    return 0;
}
