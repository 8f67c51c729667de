/* libFuzzer target: the per-patient series loader (data/series.h). The
 * first byte picks the label rule, window and stride; the rest is the
 * long-form table (header: id,t,a,b,y). Invariants: every example has
 * window × channels features, and patients are numbered below their count. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "data/series.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    static const char *const channels[] = { "a", "b" };
    mfl_series_spec_t spec = {
        .patient = "id", .time = "t", .channels = channels, .n_channels = 2, .label = "y",
        .label_rule = (mfl_series_label_t)(opt % 3), .window = 1 + ((opt >> 2) & 3),
        .stride = 1 + ((opt >> 4) & 3),
    };
    char err[256];
    mfl_series_stats_t st;
    mfl_dataset_t *ds = mfl_series_parse((const char *)data + 1, size - 1, "fuzz.csv", &spec,
                                         &st, err, sizeof err);
    if (ds) {
        if (ds->n_features != spec.window * 2)
            __builtin_trap();
        for (size_t i = 0; i < ds->n; i++)
            if (st.patient_of_example[i] >= st.n_patients)
                __builtin_trap();
    }
    mfl_series_stats_clear(&st);
    mfl_dataset_destroy(&ds);
    return 0;
}
