/* secagg_fault_site: the real site agent (site-agent/agent.h) with one
 * secure-aggregation fault switched on, for tests/integration/
 * test_secagg_daemons.sh. It speaks real CurveZMQ with the site's real key
 * and trains on its real data; only the masked phase misbehaves. Not
 * installed; built by `make unit-tests` into build/tests/.
 *
 *   secagg_fault_site --config SITE.yaml --fault exit-after-share|short-masked|twice-masked
 *   secagg_fault_site --config SITE.yaml --fault hold-masked --hold FILE
 *       (sends its masked input only once FILE exists, at most 60 s later)
 */
#include <stdio.h>
#include <string.h>

#include "fault_site_run.h"
#include "core/log.h"

int main(int argc, char **argv)
{
    mfl_log_set_program("secagg-fault-site");
    const char *config = NULL, *fault = NULL, *hold = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--fault") == 0)
            fault = argv[i + 1];
        else if (strcmp(argv[i], "--hold") == 0)
            hold = argv[i + 1];
    }
    mfl_site_agent_opts_t opts = {0};
    opts.exit_after_eval = true;
    if (fault && strcmp(fault, "exit-after-share") == 0)
        opts.secagg_fault = MFL_SECAGG_FAULT_EXIT_AFTER_SHARE;
    else if (fault && strcmp(fault, "short-masked") == 0)
        opts.secagg_fault = MFL_SECAGG_FAULT_SHORT_MASKED;
    else if (fault && strcmp(fault, "twice-masked") == 0)
        opts.secagg_fault = MFL_SECAGG_FAULT_TWICE_MASKED;
    else if (fault && strcmp(fault, "hold-masked") == 0 && hold)
        opts.secagg_fault = MFL_SECAGG_FAULT_HOLD_MASKED;
    opts.secagg_hold_file = hold;
    if (!config || !opts.secagg_fault) {
        fprintf(stderr, "usage: secagg_fault_site --config SITE.yaml --fault "
                        "exit-after-share|short-masked|twice-masked|hold-masked --hold FILE\n");
        return 2;
    }
    return mfl_fault_site_run("secagg_fault_site", config, &opts);
}
