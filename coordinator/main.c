/* metafl-coordinator: arguments, config, signals; the work is in
 * coordinator.c (the daemon object) and round_engine.c (the rounds). */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "round/run_config.h"
#include "coord_check.h"
#include "coordinator.h"
#include "core/log.h"

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl-coordinator --config FILE.yaml [--log-level LEVEL]\n\n"
            "Runs federated meta-learning rounds: sends θ to the allow-listed site agents\n"
            "over CurveZMQ, checks and aggregates their signed updates, checkpoints after\n"
            "every round and resumes from the latest checkpoint when restarted.\n\n"
            "  --config FILE     coordinator YAML (see configs/coordinator.yaml)\n"
            "  --log-level L     debug, info (default), warn or error\n"
            "  --help            this text\n"
            "  --version         print the version\n\n"
            "Progress: one line per round on stderr; RUN_DIR/status.json (metafl status);\n"
            "metrics: one JSON line per round in the metrics file.\n"
            "SIGINT/SIGTERM stop cleanly (the last completed round is checkpointed and\n"
            "connected sites are told Bye, then keep redialling);\n"
            "starting again with the same config resumes from that checkpoint and says\n"
            "so. Pause, resume or abort a running coordinator with metafl status.\n"
            "SIGHUP re-reads the allow-list directory (add or revoke a site's .pub\n"
            "without a restart; connected sites keep their session until they reconnect).\n"
            "Exit status: 0 run finished or stopped on a signal, 1 config/key/run error\n"
            "or aborted (metafl status --abort), 2 bad arguments.\n");
}

/* RUN_DIR/control is read by the running process (metafl status). One
 * found at start was written while no coordinator ran: 'pause' there means
 * "start paused" (tests and cautious operators stage a run that way) and is
 * kept; an old 'abort' would stop this run at once, so it is dropped,
 * loudly. */
static void s_check_control(const mfl_coord_config_t *config)
{
    char path[MFL_COORD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/control", config->run_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char cmd[32] = "";
    if (!fgets(cmd, sizeof cmd, f))
        cmd[0] = '\0';
    fclose(f);
    cmd[strcspn(cmd, "\r\n")] = '\0';
    if (strcmp(cmd, "pause") == 0) {
        mfl_info("%s says 'pause': starting paused (metafl status --resume starts the rounds)",
                 path);
    } else if (unlink(path) != 0) {
        mfl_warn("%s: cannot remove a stale control file: %s", path, strerror(errno));
    } else {
        mfl_warn("ignored '%s' in %s: it was written while no coordinator ran (use metafl "
                 "status --resume/--abort while the coordinator runs)", cmd, path);
    }
}

int main(int argc, char **argv)
{
    /* One malloc arena for every thread. ZeroMQ's I/O threads allocate the
     * granted updates' 1 MiB frames; with an arena per thread (glibc's
     * default) each thread's arena kept its own high-water mark of freed
     * frames resident, so the retained heap was the sum over the I/O
     * threads, not the frames alive at once. P = 10M, N = 4: peak RSS
     * 378.8 -> 276.8 MiB; no CPU cost seen at 1M (docs/PERFORMANCE.md,
     * "Large models"). Before any thread starts. */
    (void)mallopt(M_ARENA_MAX, 1);
    mfl_log_set_program("coordinator");
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("metafl-coordinator %s\n", MFL_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            mfl_log_level_t level;
            if (mfl_log_level_parse(argv[++i], &level) < 0) {
                fprintf(stderr, "metafl-coordinator: bad --log-level '%s' (debug, info, warn, "
                                "error)\n", argv[i]);
                return 2;
            }
            mfl_log_set_level(level);
        } else {
            fprintf(stderr, "metafl-coordinator: unknown or incomplete argument '%s'\n",
                    argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "metafl-coordinator: --config FILE is required\n\n");
        s_usage(stderr);
        return 2;
    }
    char err[1024];
    mfl_coord_config_t config;
    if (mfl_coord_config_load(config_path, &config, err, sizeof err) < 0) {
        mfl_error("%s", err);
        return 1;
    }
    if (mfl_coord_check_start(&config, err, sizeof err) < 0) {
        mfl_error("%s", err);
        return 1;
    }
    s_check_control(&config);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    mfl_coordinator_t *coord = mfl_coordinator_new(&config, err, sizeof err);
    if (!coord) {
        mfl_coord_check_explain(&config, err, sizeof err);
        mfl_error("%s", err);
        return 1;
    }
    int status = mfl_coordinator_run(coord, &s_stop, &s_reload);
    mfl_coordinator_destroy(&coord);
    return status;
}
