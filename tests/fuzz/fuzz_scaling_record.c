/* Fuzzes the pooled scaling's two readers (round/scaling_record.h): the
 * coordinator's scaling.state bytes, and an export's three metadata values
 * (the input split at its first two NUL bytes). Properties: never crashes;
 * a refusal says why; an accepted scaling has 1..MFL_TASK_SCALING_MAX
 * finite means and finite scales > 0, and what the state parser accepts
 * writes back out through the export's format and reads back the same. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "round/scaling_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(const mfl_task_scaling_t *sc)
{
    if (sc->n == 0 || sc->n > MFL_TASK_SCALING_MAX)
        abort();
    for (uint32_t j = 0; j < sc->n; j++)
        if (!isfinite(sc->mean[j]) || !isfinite(sc->scale[j]) || !(sc->scale[j] > 0))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfl_task_scaling_t sc, back;
    static char center[MFL_TASK_SCALING_MAX * 18], scale[MFL_TASK_SCALING_MAX * 18];
    char err[512] = "", hex[65];
    if (mfl_scaling_state_parse((const char *)data, size, "fuzz.state", &sc, NULL, err,
                                sizeof err) == 0) {
        s_check(&sc);
        uint8_t h[32];
        mfl_scaling_digest(&sc, h);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", h[i]);
        if (mfl_scaling_format_list(sc.mean, sc.n, center, sizeof center) < 0 ||
            mfl_scaling_format_list(sc.scale, sc.n, scale, sizeof scale) < 0 ||
            mfl_scaling_from_metadata(center, scale, hex, "fuzz", &back, err, sizeof err) < 0 ||
            back.n != sc.n || memcmp(back.mean, sc.mean, sc.n * sizeof(float)) != 0 ||
            memcmp(back.scale, sc.scale, sc.n * sizeof(float)) != 0)
            abort(); /* the export's decimals must read back to the same floats */
    } else if (!err[0]) {
        abort();
    }
    /* Three NUL-separated strings: centre list, scale list, digest. */
    char *text = malloc(size + 3);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = text[size + 1] = text[size + 2] = '\0';
    const char *c = text;                  /* text[size..size+2] are NUL: */
    const char *s = c + strlen(c) + 1;     /* at most text + size + 1 */
    const char *d = s + strlen(s) + 1;     /* at most text + size + 2 */
    err[0] = '\0';
    if (mfl_scaling_from_metadata(c, s, d, "fuzz", &sc, err, sizeof err) == 0)
        s_check(&sc);
    else if (!err[0])
        abort();
    free(text);
    return 0;
}
