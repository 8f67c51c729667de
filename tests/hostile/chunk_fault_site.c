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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "core/log.h"
#include "wire/chunk_upload.h"

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

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
    char err[2048];
    mfl_site_config_t cfg;
    if (mfl_site_config_load(config, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "chunk_fault_site: %s\n", err);
        return 1;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    mfl_site_agent_t *agent = mfl_site_agent_new(&cfg, &opts, err, sizeof err);
    if (!agent) {
        fprintf(stderr, "chunk_fault_site: %s\n", err);
        mfl_site_config_clear(&cfg);
        return 1;
    }
    int rc = mfl_site_agent_run(agent, &s_stop);
    mfl_site_agent_destroy(&agent);
    mfl_site_config_clear(&cfg);
    return rc;
}
