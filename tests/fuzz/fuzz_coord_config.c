/* Fuzzes the coordinator's config reader (an operator's YAML, possibly
 * hand-edited badly). Properties: never crashes, never leaks; an accepted
 * config satisfies the invariants the round engine relies on. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "round/run_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfl_coord_config_t c;
    char err[512];
    if (mfl_coord_config_parse((const char *)data, size, "fuzz.yaml", &c, err, sizeof err) != 0) {
        if (!memchr(err, '\0', sizeof err) || !err[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    if (c.rounds < 1 || c.min_sites < 1 || c.wait_for_sites < c.min_sites ||
        !(c.sites_fraction > 0 && c.sites_fraction <= 1) || c.deadline_ms == 0 ||
        c.n_sites > MFL_COORD_MAX_SITES || !c.learner.model_spec[0] || c.norm_bound < 0)
        abort();
    return 0;
}
