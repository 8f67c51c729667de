/* metafl-site-agent: the hospital's daemon. Thin: arguments, config,
 * signals, then the agent object (agent.h) does the work. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "core/log.h"
#include "nn/blas.h"
#include "site_check.h"
#include "site/site_config.h"
#include "site/site_offline.h"

static volatile sig_atomic_t s_stop = 0;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl-site-agent --config FILE.yaml [options]\n\n"
            "Runs a hospital's site agent: dials out to the coordinator over CurveZMQ,\n"
            "trains on local data and sends back only signed parameter deltas and\n"
            "evaluation metrics. Patient rows never leave this machine.\n\n"
            "options:\n"
            "  --config FILE        site configuration (see configs/site.yaml)\n"
            "  --check              validate the config, keys, data, audit log and endpoint\n"
            "                       without connecting; print a summary; exit 0 if usable\n"
            "  --log-level LEVEL    debug, info, warn or error (overrides runtime.log_level)\n"
            "  --exit-after-eval    exit after the first evaluation report is sent\n"
            "  --new-privacy-ledger the audit log holds no privacy ledger (a new site, or\n"
            "                       the log was lost): start counting the budget from zero;\n"
            "                       recorded in the log (docs/PRIVACY.md)\n"
            "  --max-rounds N       exit after N updates have been sent\n"
            "  --evaluate CKPT --coordinator-config FILE\n"
            "                       no network: adapt a published checkpoint (file or\n"
            "                       directory) on this site's data, print one JSON line\n"
            "  --help               this text\n"
            "  --version            print the version\n\n"
            "Exit status: 0 done (or --check passed), 1 a config, key, data or audit\n"
            "problem (one line naming the file, the key and the fix), 2 bad arguments.\n"
            "Signals: SIGINT / SIGTERM stop the agent cleanly (a Bye is sent).\n"
            "Guide for hospital IT: docs/SITE-AGENT.md.\n");
}

int main(int argc, char **argv)
{
    mfl_log_set_program("site-agent");
    const char *config_path = NULL, *level_text = NULL, *ckpt = NULL, *coord_cfg = NULL;
    int check_only = 0;
    mfl_site_agent_opts_t opts = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("metafl-site-agent %s\n", MFL_VERSION);
            return 0;
        }
        if (strcmp(a, "--check") == 0) {
            check_only = 1;
        } else if (strcmp(a, "--new-privacy-ledger") == 0) {
            opts.new_privacy_ledger = true;
        } else if (strcmp(a, "--exit-after-eval") == 0) {
            opts.exit_after_eval = true;
        } else if (strcmp(a, "--evaluate") == 0 && i + 1 < argc) {
            ckpt = argv[++i];
        } else if (strcmp(a, "--coordinator-config") == 0 && i + 1 < argc) {
            coord_cfg = argv[++i];
        } else if ((strcmp(a, "--config") == 0 || strcmp(a, "--log-level") == 0 ||
                    strcmp(a, "--max-rounds") == 0) && i + 1 < argc) {
            if (strcmp(a, "--config") == 0) {
                config_path = argv[++i];
            } else if (strcmp(a, "--log-level") == 0) {
                level_text = argv[++i];
            } else {
                char *end = NULL;
                long v = strtol(argv[++i], &end, 10);
                if (!end || *end || v < 1 || v > 100000000) {
                    fprintf(stderr, "metafl-site-agent: --max-rounds needs a positive "
                            "integer, got '%s'\n", argv[i]);
                    return 2;
                }
                opts.max_rounds = (uint32_t)v;
            }
        } else {
            fprintf(stderr, "metafl-site-agent: unknown or incomplete option '%s' (see "
                    "--help)\n", a);
            return 2;
        }
    }
    if (!config_path || (!ckpt) != (!coord_cfg)) {
        if (config_path)
            fprintf(stderr, "metafl-site-agent: --evaluate and --coordinator-config go "
                    "together\n");
        else
            fprintf(stderr, "metafl-site-agent: --config FILE is required\n\n");
        s_usage(stderr);
        return 2;
    }
    mfl_log_level_t level = MFL_LOG_INFO;
    if (level_text && mfl_log_level_parse(level_text, &level) < 0) {
        fprintf(stderr, "metafl-site-agent: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    char err[2048];
    mfl_site_config_t cfg;
    if (mfl_site_config_load(config_path, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "metafl-site-agent: %s\n", err);
        return 1;
    }
    mfl_log_set_level(level_text ? level : cfg.log_level);
    mfl_blas_set_threads(cfg.threads);

    if (ckpt) {
        int rc = mfl_site_offline_eval(&cfg, coord_cfg, ckpt, stdout, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "metafl-site-agent: %s\n", err);
        mfl_site_config_clear(&cfg);
        return rc < 0 ? 1 : 0;
    }

    if (check_only) {
        /* Never builds the agent: its client would start dialing. */
        int crc = mfl_site_check(&cfg, stdout, err, sizeof(err));
        if (crc < 0)
            fprintf(stderr, "metafl-site-agent: %s\n", err);
        else
            printf("metafl-site-agent: %s: config, keys and data are valid\n", config_path);
        mfl_site_config_clear(&cfg);
        return crc < 0 ? 1 : 0;
    }
    if (mfl_site_check_files(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "metafl-site-agent: %s\n", err);
        mfl_site_config_clear(&cfg);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mfl_site_agent_t *agent = mfl_site_agent_new(&cfg, &opts, err, sizeof(err));
    if (!agent) {
        mfl_site_check_prefix(&cfg, err, sizeof(err));
        fprintf(stderr, "metafl-site-agent: %s\n", err);
        mfl_site_config_clear(&cfg);
        return 1;
    }
    int rc = mfl_site_agent_run(agent, &s_stop);
    mfl_site_agent_destroy(&agent);
    mfl_site_config_clear(&cfg);
    return rc;
}
