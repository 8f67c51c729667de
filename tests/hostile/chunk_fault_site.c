/* chunk_fault_site: the real site agent (site-agent/agent.h) with one
 * chunked-upload fault switched on (wire/chunk_upload.h), for
 * tests/integration/test_coord_chunked_hostile.sh. It speaks real
 * CurveZMQ with the site's real key, trains on its real data and signs
 * its real update; only the chunks it sends misbehave. Not installed;
 * built by `make unit-tests` into build/tests/.
 *
 *   chunk_fault_site --config SITE.yaml --fault FAULT [--max-rounds N]
 *   FAULT: reorder | duplicate | bad-hash | skip | oversize | bad-list | stall
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_site_run.h"
#include "core/log.h"
#include "wire/chunk_upload.h"

static const struct {
    const char *name;
    mfl_chunk_fault_t fault;
} s_faults[] = {
    {"reorder", MFL_CHUNK_FAULT_REORDER},   {"duplicate", MFL_CHUNK_FAULT_DUPLICATE},
    {"bad-hash", MFL_CHUNK_FAULT_BAD_HASH}, {"skip", MFL_CHUNK_FAULT_SKIP},
    {"oversize", MFL_CHUNK_FAULT_OVERSIZE}, {"bad-list", MFL_CHUNK_FAULT_BAD_LIST},
    {"stall", MFL_CHUNK_FAULT_STALL},
};

int main(int argc, char **argv)
{
    mfl_log_set_program("chunk-fault-site");
    const char *config = NULL, *fault = NULL;
    mfl_site_agent_opts_t opts = {0};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--fault") == 0)
            fault = argv[i + 1];
        else if (strcmp(argv[i], "--max-rounds") == 0)
            opts.max_rounds = (uint32_t)atoi(argv[i + 1]);
    }
    for (size_t i = 0; fault && i < sizeof s_faults / sizeof s_faults[0]; i++)
        if (strcmp(fault, s_faults[i].name) == 0)
            opts.chunk_fault = (int)s_faults[i].fault;
    if (!config || !opts.chunk_fault) {
        fprintf(stderr, "usage: chunk_fault_site --config SITE.yaml --fault "
                        "reorder|duplicate|bad-hash|skip|oversize|bad-list|stall "
                        "[--max-rounds N]\n");
        return 2;
    }
    return mfl_fault_site_run("chunk_fault_site", config, &opts);
}
