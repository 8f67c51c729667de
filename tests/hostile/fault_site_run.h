/* fault_site_run: what the fault sites of tests/hostile/ share. Each is the
 * real site agent (site-agent/agent.h) with one test fault switched on in
 * its options; only the option parsing differs, so each main() fills an
 * mfl_site_agent_opts_t and hands over to this. Tests only: never
 * installed, built by `make unit-tests` into build/tests/.
 */
#ifndef MFL_TESTS_FAULT_SITE_RUN_H
#define MFL_TESTS_FAULT_SITE_RUN_H

#include "agent.h"

/* Loads the site config at `config`, runs the agent with `opts` (borrowed)
 * until it ends or SIGINT / SIGTERM asks it to stop, and returns the
 * process exit status: the agent's, or 1 when the config or the agent
 * cannot be loaded (said on stderr, prefixed with `prog`). */
int mfl_fault_site_run(const char *prog, const char *config, const mfl_site_agent_opts_t *opts);

#endif
