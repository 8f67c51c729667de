/* Fuzzes the number-row parser behind `metafl eval --predict` (rows come
 * from any file). Properties: no crash; accepted rows hold exactly n
 * finite floats; a refusal says why. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "data/rows.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = data[0] % 8; /* the model's input count */
    float x[8];
    char err[256] = "";
    int rc = mfl_rows_parse_line((const char *)data + 1, size - 1, n, x, "fuzz", 1, err,
                                 sizeof err);
    if (rc != 0) {
        if (!err[0])
            abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            abort();
    return 0;
}
