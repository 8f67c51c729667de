/* Building a CSV schema from a YAML data section, so a site's config can
 * describe its own table (shape documented in docs/DATA.md). */
#include "data/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef struct {
    mfl_csv_column_t *columns;
    const char **missing;
    const char ***levels; /* per column, freed with the schema */
    size_t n_columns;
} s_owned_t;

static void s_owned_free(s_owned_t *o)
{
    if (!o)
        return;
    for (size_t c = 0; c < o->n_columns; c++)
        free(o->levels[c]);
    free(o->levels);
    free(o->columns);
    free(o->missing);
    free(o);
}

void mfl_csv_schema_clear(mfl_csv_schema_t *schema)
{
    if (!schema)
        return;
    s_owned_free(schema->owned);
    memset(schema, 0, sizeof *schema);
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

int mfl_csv_schema_from_yaml(mfl_yaml_doc_t *doc, const char *path, mfl_csv_schema_t *schema,
                             char *err, size_t errlen)
{
    static const char *const keys[] = { "header", "delimiter", "skip_rows", "missing",
                                        "on_missing", "categorical_last", "max_rows", "columns",
                                        NULL };
    static const char *const col_keys[] = { "name", "kind", "levels", "drop_first", "rule",
                                            "threshold", "n_classes", NULL };
    static const char *const kinds[] = { "numeric", "categorical", "label", "ignore", NULL };
    static const char *const rules[] = { "class", "greater", "less", "equal", "levels",
                                         "regression", NULL };
    static const char *const policies[] = { "drop", "impute", "error", NULL };
    char p[256];
    memset(schema, 0, sizeof *schema);
    if (!path)
        path = "";
    const char *dot = *path ? "." : "";
    if (mfl_yaml_kind(doc, path) != MFL_YAML_MAPPING) {
        mfl_yaml_fail(doc, path, "expected a mapping describing the table");
        goto out_error;
    }
    mfl_yaml_check_keys(doc, path, keys);
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

    s_owned_t *o = calloc(1, sizeof *o);
    if (!o)
        goto out_oom;
    schema->owned = o;
    snprintf(p, sizeof p, "%s%smissing", path, dot);
    if (mfl_yaml_kind(doc, p) != MFL_YAML_NONE) {
        size_t n;
        if (mfl_yaml_get_string_list(doc, p, &o->missing, &n) == 0) {
            schema->missing = o->missing;
            schema->n_missing = n;
            if (!o->missing) {
                /* "missing: ~" or "missing: []": nothing counts as missing. */
                o->missing = malloc(sizeof *o->missing);
                if (!o->missing)
                    goto out_oom;
                schema->missing = o->missing;
            }
        }
    }

    char cols[200];
    snprintf(cols, sizeof cols, "%s%scolumns", path, dot);
    size_t nc = mfl_yaml_len(doc, cols);
    if (mfl_yaml_kind(doc, cols) != MFL_YAML_SEQUENCE || nc == 0) {
        if (mfl_yaml_kind(doc, cols) == MFL_YAML_NONE)
            mfl_yaml_fail(doc, path, "missing required key 'columns' (a list of the table's columns)");
        else
            mfl_yaml_fail(doc, cols, "expected a non-empty list of columns");
        goto out_error;
    }
    if (nc > MFL_CSV_MAX_COLUMNS) {
        mfl_yaml_fail(doc, cols, "more than %u columns", (unsigned)MFL_CSV_MAX_COLUMNS);
        goto out_error;
    }
    o->columns = calloc(nc, sizeof *o->columns);
    o->levels = calloc(nc, sizeof *o->levels);
    if (!o->columns || !o->levels)
        goto out_oom;
    o->n_columns = nc;
    for (size_t c = 0; c < nc; c++) {
        mfl_csv_column_t *col = &o->columns[c];
        char base[240];
        snprintf(base, sizeof base, "%s[%zu]", cols, c);
        if (mfl_yaml_kind(doc, base) == MFL_YAML_SCALAR) {
            /* Shorthand: "- age" is a numeric column named age. */
            col->name = mfl_yaml_get_string(doc, base, NULL);
            col->kind = MFL_CSV_NUMERIC;
            continue;
        }
        if (mfl_yaml_kind(doc, base) != MFL_YAML_MAPPING) {
            mfl_yaml_fail(doc, base, "expected a column name or a mapping with name and kind");
            goto out_error;
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
    }
    schema->columns = o->columns;
    schema->n_columns = nc;
    size_t labels = 0;
    for (size_t c = 0; c < nc; c++)
        labels += o->columns[c].kind == MFL_CSV_LABEL;
    if (labels > 1)
        mfl_yaml_fail(doc, cols, "%zu columns have kind 'label'; at most one may", labels);
    if (mfl_yaml_error(doc, err, errlen) < 0) {
        mfl_csv_schema_clear(schema);
        return -1;
    }
    return 0;

out_oom:
    mfl_yaml_fail(doc, path, "out of memory");
out_error:
    mfl_yaml_error(doc, err, errlen);
    mfl_csv_schema_clear(schema);
    return -1;
}
