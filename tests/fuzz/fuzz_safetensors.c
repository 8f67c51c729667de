/* libFuzzer target for the safetensors decoder: any byte string must be
 * either rejected with a message or parsed into tensors whose byte ranges
 * lie inside the input (copying them out must stay in bounds). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    mfl_safetensors_t *st = mfl_safetensors_parse(data, size, "fuzz", err, sizeof err);
    if (!st) {
        if (err[0] == '\0')
            abort(); /* a refusal must say why */
        return 0;
    }
    size_t total = 0;
    for (size_t i = 0; i < mfl_safetensors_n_tensors(st); i++) {
        const mfl_st_tensor_t *t = mfl_safetensors_tensor(st, i);
        if (t->end - t->begin != 4 * t->count || t->end > size)
            abort();
        total += t->count;
        float *buf = malloc(t->count ? t->count * sizeof(float) : 1);
        if (buf) {
            mfl_safetensors_copy(st, t, buf);
            free(buf);
        }
        if (mfl_safetensors_find(st, t->name) == NULL)
            abort();
    }
    (void)total;
    (void)mfl_safetensors_metadata(st, "spec");
    mfl_safetensors_destroy(&st);
    return 0;
}
