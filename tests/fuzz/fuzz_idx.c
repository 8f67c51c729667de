/* libFuzzer target: IDX headers and payloads. The first byte says where
 * the images file ends and the labels file begins (as a fraction of the
 * rest), so the fuzzer controls both files. */
#include <stddef.h>
#include <stdint.h>

#include "data/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t rest = size - 1;
    size_t cut = rest * data[0] / 255;
    const uint8_t *img = data + 1, *lab = data + 1 + cut;
    char err[256];
    mfl_dataset_t *ds = mfl_idx_parse(img, cut, lab, rest - cut, (size_t)(data[0] & 3), err, sizeof err);
    if (ds) {
        for (size_t i = 0; i < ds->n * ds->n_features; i++)
            if (!(ds->x[i] >= 0.0f && ds->x[i] <= 1.0f))
                __builtin_trap();
        if (ds->n_features != ds->height * ds->width || ds->channels != 1)
            __builtin_trap();
    }
    mfl_dataset_destroy(&ds);
    return 0;
}
