/* metafl status: what the coordinator is doing, read from its run dir's
 * status.json (rewritten atomically by the daemon every second), and the
 * operator's pause / resume / abort, written to RUN_DIR/control. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "round/run_config.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

int mfl_cmd_status(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl status (--config COORDINATOR.yaml | --run-dir DIR)\n"
            "                     [--json | --watch [SECONDS] | --pause | --resume | --abort]\n\n"
            "Shows the coordinator's phase, round (open for how long, deadline), which\n"
            "sites reported and which are pending, connected sites (last seen), the\n"
            "last round's metrics and an estimate of when the run ends, from\n"
            "RUN_DIR/status.json (rewritten every second by the coordinator on this\n"
            "host). Says so when that coordinator is no longer running.\n\n"
            "  --json     print the status document as is\n"
            "  --watch [SECONDS]\n"
            "             show it again every SECONDS (default 2) until the run is over\n"
            "             or its coordinator stops (Ctrl-C to leave)\n"
            "  --pause    finish the open round, then open no new one\n"
            "  --resume   continue after --pause\n"
            "  --abort    stop the run now (the last checkpoint is kept; starting the\n"
            "             coordinator again resumes from it)\n\n"
            "--pause/--resume/--abort write RUN_DIR/control and wait (up to 5 s) until\n"
            "the running coordinator has taken it. With no coordinator running, --pause\n"
            "makes its next start wait before the first round (also before the very\n"
            "first start: the run dir is created, mode 0700); --resume and --abort are\n"
            "refused, so no command is left behind for a later start.\n"
            "Exit status: 0 ok, 1 no status / coordinator not running / not taken, 2 usage.\n");
}

static double s_num(const mfl_json_t *o, const char *key)
{
    double v = 0;
    if (mfl_json_number(mfl_json_get(o, key), &v) < 0)
        return -1;
    return v;
}

static const char *s_str(const mfl_json_t *o, const char *key)
{
    const char *s = mfl_json_string(mfl_json_get(o, key));
    return s ? s : "?";
}

/* 1 if the coordinator that wrote the status still exists, 0 if it has
 * exited, -1 if unknown (no pid, or written on another host or in a
 * container: a local kill(pid, 0) says nothing about that pid). */
static int s_alive(const mfl_json_t *root)
{
    double pid = s_num(root, "pid");
    if (!(pid > 1) || pid > 4194304.0)
        return -1;
    const char *host = mfl_json_string(mfl_json_get(root, "host"));
    char here[128] = "";
    if (!host || gethostname(here, sizeof here - 1) != 0 || strncmp(host, here, 127) != 0)
        return -1;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        return 1;
    return errno == ESRCH ? 0 : -1;
}

/* "round 12 of 300 (11 done)" reads wrong once the run is over: say what
 * the phase means instead of its internal name. */
static void s_headline(const mfl_json_t *root, bool paused, int alive)
{
    const char *phase = s_str(root, "phase");
    double round = s_num(root, "round"), rounds = s_num(root, "rounds");
    double done = s_num(root, "rounds_done");
    printf("coordinator pid %.0f on %s: ", s_num(root, "pid"), s_str(root, "endpoint"));
    if (strcmp(phase, "done") == 0)
        printf("finished, %.0f of %.0f rounds done", done, rounds);
    else if (strcmp(phase, "aborted") == 0)
        printf("aborted by operator after %.0f of %.0f rounds (last checkpoint kept; starting "
               "the coordinator again resumes from it)", done, rounds);
    else if (strcmp(phase, "failed") == 0)
        printf("FAILED after %.0f of %.0f rounds (a round ran out of attempts or a fatal "
               "error; see the coordinator's log)", done, rounds);
    else if (strcmp(phase, "waiting") == 0)
        printf("%s round %.0f of %.0f (%.0f done)",
               paused ? "paused before" : "waiting for sites for", round, rounds, done);
    else if (strcmp(phase, "round") == 0)
        printf("running round %.0f of %.0f (%.0f done)%s", round, rounds, done,
               paused ? ", pausing after it" : "");
    else if (strcmp(phase, "eval") == 0)
        printf("sites are evaluating the model after %.0f of %.0f rounds", done, rounds);
    else
        printf("%s, round %.0f of %.0f (%.0f done)", phase, round, rounds, done);
    printf(", %.0f updates rejected\n", s_num(root, "rejections"));
    /* Upload flow control: who is sending its Δ now and who waits for a
     * slot (absent in an older coordinator's status: s_num gives -1). */
    double sending = s_num(root, "uploads_in_flight"), waiting = s_num(root, "uploads_waiting");
    if (strcmp(phase, "round") == 0 && (sending > 0 || waiting > 0))
        printf("  uploads: %.0f site(s) sending, %.0f waiting for a slot\n", sending,
               waiting > 0 ? waiting : 0);
    const char *aerr = mfl_json_string(mfl_json_get(root, "audit_error"));
    if (aerr)
        printf("  AUDIT LOG NOT WRITABLE: %s; updates are refused and no round opens or closes "
               "until it is (the run stops after output.audit_give_up_s)\n", aerr);
    /* A finished or aborted run says what it is in the headline; "start
     * again to resume" is only advice for a run that stopped midway. */
    if (alive == 0 && strcmp(phase, "done") != 0 && strcmp(phase, "aborted") != 0)
        printf("  NOT RUNNING: process %.0f has exited; this is its last status. Start the "
               "coordinator again to resume from its last checkpoint.\n",
               s_num(root, "pid"));
}

/* "12.3 s", "4 min 5 s", "2 h 3 min". */
static void s_dur(char *buf, size_t len, double sec)
{
    if (sec < 0)
        sec = 0;
    if (sec < 60)
        snprintf(buf, len, "%.1f s", sec);
    else if (sec < 3600)
        snprintf(buf, len, "%.0f min %.0f s", floor(sec / 60), fmod(sec, 60));
    else
        snprintf(buf, len, "%.0f h %.0f min", floor(sec / 3600), floor(fmod(sec, 3600) / 60));
}

/* The open round's (or evaluation's) clock, who reported and who is
 * pending, and the run's estimated end. Absent fields (an older
 * coordinator's status) are skipped. */
static void s_progress(const mfl_json_t *root, uint64_t now_ms, int alive)
{
    const char *phase = s_str(root, "phase");
    bool eval = strcmp(phase, "eval") == 0;
    double opened = s_num(root, "round_opened_unix_ms");
    double deadline = s_num(root, eval ? "eval_deadline_unix_ms" : "round_deadline_unix_ms");
    char a[32], b[32];
    if (alive != 0 && strcmp(phase, "round") == 0 && opened > 0 && deadline > 0) {
        s_dur(a, sizeof a, ((double)now_ms - opened) / 1000.0);
        s_dur(b, sizeof b, (deadline - (double)now_ms) / 1000.0);
        printf("  round %.0f open for %s (attempt %.0f); deadline in %s\n",
               s_num(root, "round"), a, s_num(root, "attempt"), b);
        const char *sp = mfl_json_string(mfl_json_get(root, "secagg_phase"));
        if (sp)
            printf("  secure aggregation: phase %s\n", sp);
    } else if (alive != 0 && eval && deadline > 0) {
        s_dur(b, sizeof b, (deadline - (double)now_ms) / 1000.0);
        printf("  evaluation deadline in %s\n", b);
    }
    if (strcmp(phase, "round") == 0 || eval) {
        const mfl_json_t *sites = mfl_json_get(root, "sites");
        char done[2048] = "", pending[2048] = "";
        size_t n_done = 0, n_pending = 0;
        for (size_t i = 0; i < mfl_json_array_len(sites); i++) {
            const mfl_json_t *st = mfl_json_array_at(sites, i);
            bool selected = false, reported = false, sent = false;
            mfl_json_bool(mfl_json_get(st, "selected"), &selected);
            mfl_json_bool(mfl_json_get(st, "eval_sent"), &sent);
            if (mfl_json_bool(mfl_json_get(st, "reported"), &reported) < 0 ||
                (eval ? !sent : !selected))
                continue;
            char *dst = reported ? done : pending;
            size_t used = strlen(dst);
            snprintf(dst + used, sizeof done - used, "%s%s", used ? ", " : "",
                     s_str(st, "id"));
            *(reported ? &n_done : &n_pending) += 1;
        }
        if (n_done + n_pending)
            printf("  %s: %zu reported (%s), %zu pending (%s)\n",
                   eval ? "evaluation" : "this round", n_done, n_done ? done : "none",
                   n_pending, n_pending ? pending : "none");
    }
    double eta = s_num(root, "eta_unix_ms");
    if (alive != 0 && eta > 0) {
        time_t t = (time_t)(eta / 1000.0);
        struct tm tm;
        char when[32] = "";
        if (localtime_r(&t, &tm))
            strftime(when, sizeof when, "%H:%M:%S", &tm);
        s_dur(a, sizeof a, (eta - (double)now_ms) / 1000.0);
        printf("  run ends in about %s (%s), estimated from the last round's duration\n", a,
               when);
    }
}

/* Prints the status; *over (if not NULL) is set when there is nothing more
 * to watch: the run is over or its coordinator has exited. */
static int s_show(const char *path, const char *text, size_t len, uint64_t now_ms, int *over)
{
    char err[256];
    mfl_json_t *root = mfl_json_parse(text, len, err, sizeof err);
    if (!root) {
        fprintf(stderr, "metafl status: %s:%s\n", path, err);
        return 1;
    }
    double updated = s_num(root, "updated_unix_ms");
    bool paused = false;
    mfl_json_bool(mfl_json_get(root, "paused"), &paused);
    double age = updated > 0 ? ((double)now_ms - updated) / 1000.0 : -1;
    int alive = s_alive(root);
    if (over) {
        const char *ph = s_str(root, "phase");
        *over = alive == 0 || strcmp(ph, "done") == 0 || strcmp(ph, "failed") == 0 ||
                strcmp(ph, "aborted") == 0;
    }
    s_headline(root, paused, alive);
    if (alive != 0 && age > 5)
        printf("  status is %.0f s old: the coordinator may be hung (it rewrites the status "
               "every second)\n", age);
    s_progress(root, now_ms, alive);
    const mfl_json_t *sites = mfl_json_get(root, "sites");
    printf("sites (%zu):\n", mfl_json_array_len(sites));
    for (size_t i = 0; i < mfl_json_array_len(sites); i++) {
        const mfl_json_t *s = mfl_json_array_at(sites, i);
        bool connected = false, selected = false;
        mfl_json_bool(mfl_json_get(s, "connected"), &connected);
        mfl_json_bool(mfl_json_get(s, "selected"), &selected);
        double seen = s_num(s, "last_seen_unix_ms");
        bool reported = false;
        mfl_json_bool(mfl_json_get(s, "reported"), &reported);
        const char *phase = s_str(root, "phase");
        const char *in_round = !selected || strcmp(phase, "round") != 0 ? ""
                               : reported ? "  (in this round: reported)"
                                          : "  (in this round: pending)";
        printf("  %-24s %-12s last seen %6.1f s ago%s\n", s_str(s, "id"),
               connected && alive != 0 ? "connected" : "gone", seen > 0 ? ((double)now_ms - seen) / 1000.0 : -1,
               in_round);
        /* Its last failure, e.g. a refusal by its privacy policy (the
         * reason names the rule: docs/PRIVACY.md). */
        const char *lf = s_str(s, "last_failure");
        if (s_num(s, "failures") > 0 && lf && *lf)
            printf("    last failure: %s\n", lf);
    }
    const mfl_json_t *last = mfl_json_get(root, "last_round");
    if (mfl_json_type(last) == MFL_JSON_OBJECT) {
        char loss[96];
        double lb = 0, la = 0;
        if (mfl_json_number(mfl_json_get(last, "loss_before"), &lb) == 0 &&
            mfl_json_number(mfl_json_get(last, "loss_after"), &la) == 0)
            snprintf(loss, sizeof loss, "their mean training loss %.4g -> %.4g", lb, la);
        else /* null: no update of the round sent losses (DP on at the sites) */
            snprintf(loss, sizeof loss, "training losses not sent (DP or SecAgg)");
        printf("last round %.0f: %.0f of %.0f selected sites' updates accepted; %s; %.2f s\n",
               s_num(last, "round"), s_num(last, "accepted"), s_num(last, "selected"), loss,
               s_num(last, "seconds"));
    } else if (s_num(root, "rounds_done") > 0)
        printf("no round completed since this coordinator started (it resumed after %.0f)\n",
               s_num(root, "rounds_done"));
    else
        printf("no round completed yet\n");
    mfl_json_destroy(&root);
    return 0;
}

/* A 'pause' written while no coordinator runs makes the next start wait
 * before its first round (the coordinator keeps it; it drops any other
 * command found at start). */
static int s_pause_next_start(const char *dir, double pid)
{
    char path[MFL_COORD_PATH_MAX + 16], err[1024];
    snprintf(path, sizeof path, "%s/control", dir);
    if (mfl_file_write_atomic_mode(path, "pause", 5, 0600, err, sizeof err) < 0) {
        fprintf(stderr, "metafl status: %s\n", err);
        return 1;
    }
    if (pid > 0)
        printf("the coordinator (pid %.0f) is not running; its next start will wait, paused, "
               "before opening a round (metafl status --resume then)\n", pid);
    else
        printf("no coordinator has run here yet; its first start will wait, paused, before "
               "opening a round (metafl status --resume then)\n");
    return 0;
}

/* Hands `command` to the running coordinator through RUN_DIR/control and
 * waits until it has taken the file (it unlinks it after reading, within
 * a second). Refuses when the coordinator is not running: a command left
 * behind would be acted on by the next start, e.g. an old 'abort' would
 * stop a restarted run at once. */
static int s_control(const char *dir, const char *command, const char *status_path,
                     const char *text, size_t len)
{
    char err[1024];
    mfl_json_t *root = mfl_json_parse(text, len, err, sizeof err);
    if (!root) {
        fprintf(stderr, "metafl status: %s:%s; nothing sent\n", status_path, err);
        return 1;
    }
    double pid = s_num(root, "pid");
    const char *phase_s = s_str(root, "phase");
    char phase[16];
    snprintf(phase, sizeof phase, "%s", phase_s);
    int alive = s_alive(root);
    mfl_json_destroy(&root);
    if (alive == 0 && strcmp(command, "pause") == 0)
        return s_pause_next_start(dir, pid);
    if (alive == 0) {
        fprintf(stderr, "metafl status: the coordinator (pid %.0f, from %s) is not running; "
                "nothing sent. Start it again (it resumes from its last checkpoint) and "
                "retry.\n", pid, status_path);
        return 1;
    }
    if (strcmp(phase, "done") == 0 || strcmp(phase, "failed") == 0 ||
        strcmp(phase, "aborted") == 0) {
        fprintf(stderr, "metafl status: the run is already over (phase '%s'); nothing sent\n",
                phase);
        return 1;
    }
    char path[MFL_COORD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/control", dir);
    if (mfl_file_write_atomic_mode(path, command, strlen(command), 0600, err, sizeof err) < 0) {
        fprintf(stderr, "metafl status: %s\n", err);
        return 1;
    }
    uint64_t deadline = mfl_clock_wall_ms() + 5000;
    while (access(path, F_OK) == 0 && mfl_clock_wall_ms() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (access(path, F_OK) == 0 && unlink(path) == 0) {
        fprintf(stderr, "metafl status: the coordinator (pid %.0f) did not take '%s' within "
                "5 s (hung?); withdrawn, nothing changed\n", pid, command);
        return 1;
    }
    const char *what = strcmp(command, "pause") == 0
                           ? "it finishes the open round, then opens no new one until "
                             "--resume"
                       : strcmp(command, "resume") == 0 ? "it opens rounds again"
                                                        : "it stops now; the last checkpoint "
                                                          "is kept and a restart resumes "
                                                          "from it";
    printf("coordinator pid %.0f took '%s': %s\n", pid, command, what);
    return 0;
}

/* --watch: the status again every `every` seconds until nothing more can
 * change (run over, coordinator gone). A terminal is cleared between
 * screens; a pipe or file gets them one after the other. */
static int s_watch(const char *status_path, double every)
{
    bool tty = isatty(1);
    for (;;) {
        char *text = NULL, err[1024];
        size_t len = 0;
        if (mfl_file_read_all(status_path, 1u << 20, &text, &len, err, sizeof err) < 0) {
            fprintf(stderr, "metafl status: %s (is a coordinator running with this run dir?)\n",
                    err);
            return 1;
        }
        if (tty)
            printf("\033[H\033[2J");
        else
            printf("--- %llu\n", (unsigned long long)(mfl_clock_wall_ms() / 1000));
        int over = 0, rc = s_show(status_path, text, len, mfl_clock_wall_ms(), &over);
        free(text);
        fflush(stdout);
        if (rc != 0 || over)
            return rc;
        struct timespec ts = {(time_t)every, (long)((every - floor(every)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int mfl_cmd_status(int argc, char **argv)
{
    const char *config_path = NULL, *run_dir = NULL, *command = NULL;
    bool json = false;
    double watch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(a, "--run-dir") == 0 && i + 1 < argc) {
            run_dir = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--watch") == 0) {
            watch = 2;
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                char *end = NULL;
                watch = strtod(argv[++i], &end);
                if (*end || !(watch >= 0.5) || watch > 3600) {
                    fprintf(stderr, "metafl status: --watch wants seconds between 0.5 and "
                                    "3600\n");
                    return 2;
                }
            }
        } else if (strcmp(a, "--pause") == 0 || strcmp(a, "--resume") == 0 ||
                   strcmp(a, "--abort") == 0) {
            command = a + 2;
        } else {
            fprintf(stderr, "metafl status: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (!config_path == !run_dir || (watch > 0 && (json || command))) {
        if (watch > 0 && (json || command))
            fprintf(stderr, "metafl status: --watch shows the status; it takes neither --json "
                            "nor a command\n");
        s_usage(stderr);
        return 2;
    }
    char status_path[MFL_COORD_PATH_MAX + 32], dir[MFL_COORD_PATH_MAX];
    char err[1024];
    if (config_path) {
        static mfl_coord_config_t c;
        if (mfl_coord_config_load(config_path, &c, err, sizeof err) < 0) {
            fprintf(stderr, "metafl status: %s\n", err);
            return 1;
        }
        snprintf(status_path, sizeof status_path, "%s", c.status_file);
        snprintf(dir, sizeof dir, "%s", c.run_dir);
    } else {
        snprintf(status_path, sizeof status_path, "%s/status.json", run_dir);
        snprintf(dir, sizeof dir, "%s", run_dir);
    }
    char *text = NULL;
    size_t len = 0;
    if (watch > 0)
        return s_watch(status_path, watch);
    if (mfl_file_read_all(status_path, 1u << 20, &text, &len, err, sizeof err) < 0) {
        /* Before the very first start the run dir may not exist yet: make
         * it as the coordinator would (0700), so the pause can wait there. */
        if (command && strcmp(command, "pause") == 0 && access(dir, F_OK) != 0 &&
            mfl_mkdir_p(dir, 0700, err, sizeof err) < 0) {
            fprintf(stderr, "metafl status: %s; nothing sent\n", err);
            return 1;
        }
        if (command && strcmp(command, "pause") == 0 && access(dir, W_OK) == 0)
            return s_pause_next_start(dir, 0);
        fprintf(stderr, "metafl status: %s (is a coordinator running with this run dir? it "
                "writes the file within a second of starting)%s\n", err,
                command ? "; nothing sent" : "");
        return 1;
    }
    if (command) {
        int rc = s_control(dir, command, status_path, text, len);
        free(text);
        return rc;
    }
    int rc = 0;
    if (json) {
        fwrite(text, 1, len, stdout);
    } else {
        rc = s_show(status_path, text, len, mfl_clock_wall_ms(), NULL);
    }
    free(text);
    return rc;
}
