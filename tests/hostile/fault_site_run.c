/* fault_site_run: load a site config and run the real agent with the
 * caller's fault options (fault_site_run.h). */
#include "fault_site_run.h"

#include <signal.h>
#include <stdio.h>

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

int mfl_fault_site_run(const char *prog, const char *config, const mfl_site_agent_opts_t *opts)
{
    char err[2048];
    mfl_site_config_t cfg;
    if (mfl_site_config_load(config, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    mfl_site_agent_t *agent = mfl_site_agent_new(&cfg, opts, err, sizeof err);
    if (!agent) {
        fprintf(stderr, "%s: %s\n", prog, err);
        mfl_site_config_clear(&cfg);
        return 1;
    }
    int rc = mfl_site_agent_run(agent, &s_stop);
    mfl_site_agent_destroy(&agent);
    mfl_site_config_clear(&cfg);
    return rc;
}
