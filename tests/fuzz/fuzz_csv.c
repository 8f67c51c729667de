/* libFuzzer target: the CSV loader. The first byte picks schema options
 * (missing policy, header, one-hot order, inferred or given levels); the
 * rest is the table, loaded with a 4-column schema whose first column has
 * its own missing token ("0"). With KEEP, the holes are filled from the
 * first half of the rows and none may remain. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "data/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    static const char *const levels[] = { "1", "2", "x" };
    static const char *const zero[] = { "0" };
    mfl_csv_column_t cols[4] = {
        { .name = "a", .has_missing = true, .missing = zero, .n_missing = 1 },
        { .name = "b", .kind = MFL_CSV_CATEGORICAL, .levels = (opt & 8) ? NULL : levels,
          .n_levels = (opt & 8) ? 0 : 3, .drop_first = (opt & 16) != 0 },
        { .name = "c", .kind = (opt & 32) ? MFL_CSV_IGNORE : MFL_CSV_NUMERIC },
        { .name = "y", .kind = MFL_CSV_LABEL },
    };
    static const mfl_csv_label_rule_t rules[4] = { MFL_CSV_LABEL_CLASS, MFL_CSV_LABEL_GREATER,
                                                   MFL_CSV_LABEL_LEVELS, MFL_CSV_LABEL_REGRESSION };
    static const mfl_csv_missing_t policies[4] = { MFL_CSV_MISSING_DROP, MFL_CSV_MISSING_IMPUTE,
                                                   MFL_CSV_MISSING_ERROR, MFL_CSV_MISSING_KEEP };
    cols[3].label_rule = rules[(opt >> 6) & 3];
    if (cols[3].label_rule == MFL_CSV_LABEL_LEVELS) {
        cols[3].levels = levels;
        cols[3].n_levels = 3;
    }
    mfl_csv_schema_t schema = {
        .header = (opt & 4) != 0,
        .on_missing = policies[opt & 3],
        .categorical_last = (opt & 16) != 0,
        .skip_rows = (opt & 32) ? 1 : 0,
        .columns = cols,
        .n_columns = 4,
    };
    char err[256];
    mfl_csv_stats_t stats;
    mfl_dataset_t *ds = mfl_csv_parse((const char *)data + 1, size - 1, "fuzz.csv", &schema,
                                      &stats, err, sizeof err);
    if (ds) {
        if (stats.n_features != ds->n_features)
            __builtin_trap();
        for (size_t i = 1; i < ds->n; i++)
            if (stats.lines[i] <= stats.lines[i - 1])
                __builtin_trap(); /* lines must be strictly ascending */
        if (!stats.canonical)
            __builtin_trap();
        if (schema.on_missing == MFL_CSV_MISSING_KEEP && ds->n_features) {
            float fill[64];
            size_t half[64], k = 0;
            for (size_t i = 0; i < ds->n / 2 && k < 64; i++)
                half[k++] = i;
            mfl_dataset_t *part = mfl_dataset_subset(ds, half, k);
            if (part && ds->n_features <= 64 &&
                mfl_csv_impute_fit(&schema, &stats, part, fill) == 0) {
                mfl_csv_impute_apply(ds, fill);
                for (size_t i = 0; i < ds->n * ds->n_features; i++)
                    if (isnan(ds->x[i]))
                        __builtin_trap(); /* every hole filled */
            }
            mfl_dataset_destroy(&part);
        }
    }
    mfl_csv_stats_clear(&stats);
    mfl_dataset_destroy(&ds);
    return 0;
}
