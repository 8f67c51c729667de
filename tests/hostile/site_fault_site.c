/* site_fault_site: the real site agent (site-agent/agent.h) that lies about
 * its data or damages the model it holds, for tests/integration/
 * test_scaling_daemons_hostile.sh, test_federated_broadcast_site_resync.sh
 * and test_coord_upload_slot_hog.sh. It
 * speaks real CurveZMQ with the site's real key and trains on its real
 * data; only the fault differs. Not installed; built by `make unit-tests`
 * into build/tests/.
 *
 *   site_fault_site --config SITE.yaml --fault FAULT [--exit-after-eval]
 *   FAULT: moments-beyond-floats | moments-more-rows | corrupt-held | hog-grant
 */
#include <stdio.h>
#include <string.h>

#include "fault_site_run.h"
#include "core/log.h"

static const struct {
    const char *name;
    mfl_site_agent_fault_t fault;
} s_faults[] = {
    {"moments-beyond-floats", MFL_SITE_FAULT_MOMENTS_BEYOND_FLOATS},
    {"moments-more-rows", MFL_SITE_FAULT_MOMENTS_MORE_ROWS},
    {"corrupt-held", MFL_SITE_FAULT_CORRUPT_HELD},
    {"hog-grant", MFL_SITE_FAULT_HOG_GRANT},
};

int main(int argc, char **argv)
{
    mfl_log_set_program("site-fault-site");
    const char *config = NULL, *fault = NULL;
    mfl_site_agent_opts_t opts = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exit-after-eval") == 0)
            opts.exit_after_eval = true;
        else if (i + 1 < argc && strcmp(argv[i], "--config") == 0)
            config = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--fault") == 0)
            fault = argv[++i];
    }
    for (size_t i = 0; fault && i < sizeof s_faults / sizeof s_faults[0]; i++)
        if (strcmp(fault, s_faults[i].name) == 0)
            opts.site_fault = s_faults[i].fault;
    if (!config || !opts.site_fault) {
        fprintf(stderr, "usage: site_fault_site --config SITE.yaml --fault "
                        "moments-beyond-floats|moments-more-rows|corrupt-held|hog-grant "
                        "[--exit-after-eval]\n");
        return 2;
    }
    return mfl_fault_site_run("site_fault_site", config, &opts);
}
