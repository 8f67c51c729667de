/* Fuzzes the metrics.jsonl reader behind `metafl report` (an operator may
 * point it at any file). Properties: no crash, no leak; a refusal says why;
 * what it accepts stays within its bounds (sites, ids, histories) and
 * every round and eval line it kept came from the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "round/run_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfl_report_t r;
    char err[512] = "";
    memset(&r, 0, sizeof r);
    int rc = mfl_report_add_text(&r, (const char *)data, size, "fuzz", size % 2 == 0, err,
                                 sizeof err);
    if (rc != 0 && err[0] == '\0')
        abort(); /* refused without saying why */
    if (r.n_sites > MFL_REPORT_MAX_SITES || r.n_rounds > size)
        abort();
    size_t evals = 0;
    for (size_t i = 0; i < r.n_sites; i++) {
        if (strlen(r.sites[i].id) >= MFL_REPORT_ID_MAX || r.sites[i].id[0] == '\0')
            abort();
        evals += r.sites[i].n_history;
    }
    if (evals + r.n_rounds > size / 8 + 1) /* each kept line is at least ~16 bytes */
        abort();
    mfl_report_clear(&r);
    return 0;
}
