/* metafl status: what the coordinator is doing, read from its run dir's
 * status.json (rewritten atomically by the daemon every second), and the
 * operator's pause / resume / abort, written to RUN_DIR/control. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

int mfl_cmd_status(int argc, char **argv);

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: metafl status (--config COORDINATOR.yaml | --run-dir DIR)\n"
            "                     [--json | --pause | --resume | --abort]\n\n"
            "Shows the coordinator's phase, round, connected sites (last seen) and the\n"
            "last round's metrics, from RUN_DIR/status.json.\n\n"
            "  --json     print the status document as is\n"
            "  --pause    finish the open round, then open no new one\n"
            "  --resume   continue after --pause\n"
            "  --abort    stop the run now (the last checkpoint is kept)\n");
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

static int s_show(const char *path, const char *text, size_t len, uint64_t now_ms)
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
    printf("coordinator pid %.0f on %s: %s%s, round %.0f of %.0f (%.0f done), %.0f rejections\n",
           s_num(root, "pid"), s_str(root, "endpoint"), s_str(root, "phase"),
           paused ? " (paused)" : "",
           s_num(root, "round"), s_num(root, "rounds"), s_num(root, "rounds_done"),
           s_num(root, "rejections"));
    if (age > 5)
        printf("  status is %.0f s old: the coordinator may be stopped or hung\n", age);
    const mfl_json_t *sites = mfl_json_get(root, "sites");
    printf("sites (%zu):\n", mfl_json_array_len(sites));
    for (size_t i = 0; i < mfl_json_array_len(sites); i++) {
        const mfl_json_t *s = mfl_json_array_at(sites, i);
        bool connected = false, selected = false;
        mfl_json_bool(mfl_json_get(s, "connected"), &connected);
        mfl_json_bool(mfl_json_get(s, "selected"), &selected);
        double seen = s_num(s, "last_seen_unix_ms");
        printf("  %-24s %-12s last seen %6.1f s ago%s\n", s_str(s, "id"),
               connected ? "connected" : "gone", seen > 0 ? ((double)now_ms - seen) / 1000.0 : -1,
               selected ? "  (in this round)" : "");
    }
    const mfl_json_t *last = mfl_json_get(root, "last_round");
    if (mfl_json_type(last) == MFL_JSON_OBJECT)
        printf("last round %.0f: %.0f/%.0f sites, loss before %.4g -> after %.4g, %.2f s\n",
               s_num(last, "round"), s_num(last, "accepted"), s_num(last, "selected"),
               s_num(last, "loss_before"), s_num(last, "loss_after"), s_num(last, "seconds"));
    else
        printf("no round completed yet\n");
    mfl_json_destroy(&root);
    return 0;
}

int mfl_cmd_status(int argc, char **argv)
{
    const char *config_path = NULL, *run_dir = NULL, *command = NULL;
    bool json = false;
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
        } else if (strcmp(a, "--pause") == 0 || strcmp(a, "--resume") == 0 ||
                   strcmp(a, "--abort") == 0) {
            command = a + 2;
        } else {
            fprintf(stderr, "metafl status: unknown or incomplete option '%s'\n", a);
            return 2;
        }
    }
    if (!config_path == !run_dir) {
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
    if (command) {
        char path[MFL_COORD_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/control", dir);
        if (mfl_file_write_atomic_mode(path, command, strlen(command), 0600, err, sizeof err) <
            0) {
            fprintf(stderr, "metafl status: %s\n", err);
            return 1;
        }
        printf("sent '%s' to the coordinator (acted on within a second)\n", command);
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (mfl_file_read_all(status_path, 1u << 20, &text, &len, err, sizeof err) < 0) {
        fprintf(stderr, "metafl status: %s (is the coordinator running with this run dir?)\n",
                err);
        return 1;
    }
    int rc = 0;
    if (json) {
        fwrite(text, 1, len, stdout);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rc = s_show(status_path, text, len,
                    (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
    }
    free(text);
    return rc;
}
