/* `metafl sites`: the operator's view of the consortium's sites, and
 * revocation of one (issue 10 item 8).
 *
 *   metafl sites --config coordinator.yaml [--json]
 *       every site the allow-list admits or the running coordinator knows:
 *       admitted (key in allow_dir), state (connected, gone, revoked, never
 *       seen), last seen, failures and the last one's words. From
 *       allow_dir and RUN_DIR/status.json (rewritten every second).
 *   metafl sites revoke NAME --config coordinator.yaml
 *       moves ALLOW_DIR/NAME.pub to ALLOW_DIR/revoked/NAME.pub (the
 *       allow-list reads only *.pub files directly in allow_dir), then
 *       writes "reload" to RUN_DIR/control: the running coordinator
 *       re-reads the allow-list within a second (as on SIGHUP), ends the
 *       site's session and its place in the open round, and appends a
 *       site_revoked audit record. Undo: move the file back and send
 *       SIGHUP (or run with a fresh start). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/fileio.h"
#include "core/json.h"
#include "round/run_config.h"
#include "wire/keys.h"

int mfl_cmd_sites(int argc, char **argv);

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: metafl sites --config COORDINATOR.yaml [--json]\n"
            "       metafl sites revoke NAME --config COORDINATOR.yaml\n"
            "\n"
            "List the consortium's sites: whether the allow-list admits them, their state\n"
            "(connected, gone, revoked, never seen), when the coordinator last heard from\n"
            "them, and their failures (the last one's words), from coordinator.allow_dir and\n"
            "RUN_DIR/status.json.\n"
            "\n"
            "revoke NAME: moves ALLOW_DIR/NAME.pub to ALLOW_DIR/revoked/NAME.pub and asks the\n"
            "running coordinator to reload its allow-list (RUN_DIR/control, read within a\n"
            "second; the same as SIGHUP). The coordinator then closes the site's connections,\n"
            "stops waiting for it in the open round, records site_revoked in its audit log and\n"
            "refuses its reconnections. To re-admit: move the file back into allow_dir and\n"
            "send the coordinator SIGHUP.\n"
            "\n"
            "  --config FILE   the coordinator's config (allow_dir, run_dir)\n"
            "  --json          the list as JSON\n");
}

/* 1 if the coordinator that wrote status.json runs on this host now. */
static int s_alive(const mfl_json_t *root)
{
    double pid = 0;
    if (mfl_json_number(mfl_json_get(root, "pid"), &pid) < 0 || !(pid > 1) || pid > 4194304.0)
        return -1;
    const char *host = mfl_json_string(mfl_json_get(root, "host"));
    char here[128] = "";
    if (!host || gethostname(here, sizeof here - 1) != 0 || strncmp(host, here, 127) != 0)
        return -1;
    if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
        return 1;
    return errno == ESRCH ? 0 : -1;
}

static mfl_json_t *s_status(const mfl_coord_config_t *c)
{
    char *text = NULL, err[512];
    size_t len = 0;
    if (mfl_file_read_all(c->status_file, 1u << 20, &text, &len, err, sizeof err) < 0)
        return NULL;
    mfl_json_t *root = mfl_json_parse(text, len, err, sizeof err);
    free(text);
    return root;
}

static const mfl_json_t *s_site_in(const mfl_json_t *status, const char *name)
{
    const mfl_json_t *sites = status ? mfl_json_get(status, "sites") : NULL;
    for (size_t i = 0; sites && i < mfl_json_array_len(sites); i++) {
        const mfl_json_t *s = mfl_json_array_at(sites, i);
        const char *id = mfl_json_string(mfl_json_get(s, "id"));
        if (id && strcmp(id, name) == 0)
            return s;
    }
    return NULL;
}

static bool s_bool(const mfl_json_t *o, const char *key)
{
    bool b = false;
    return o && mfl_json_bool(mfl_json_get(o, key), &b) == 0 && b;
}

static double s_num(const mfl_json_t *o, const char *key)
{
    double v = 0;
    return o && mfl_json_number(mfl_json_get(o, key), &v) == 0 ? v : 0;
}

/* JSON string body: the texts here are printable ASCII without quotes
 * (status.json already replaced the rest), names are key names. */
static void s_row(bool json, bool first, const char *name, bool admitted, const mfl_json_t *s,
                  uint64_t now_ms)
{
    const char *state = !s                        ? "never seen"
                        : s_bool(s, "revoked")     ? "revoked"
                        : s_bool(s, "connected")   ? "connected"
                                                   : "gone";
    double seen = s_num(s, "last_seen_unix_ms");
    double failures = s_num(s, "failures");
    const char *last = s ? mfl_json_string(mfl_json_get(s, "last_failure")) : NULL;
    if (json) {
        printf("%s{\"site\":\"%s\",\"admitted\":%s,\"state\":\"%s\",\"last_seen_unix_ms\":%.0f,"
               "\"failures\":%.0f,\"last_failure\":\"%s\"}",
               first ? "" : ",", name, admitted ? "true" : "false", state, seen, failures,
               last ? last : "");
        return;
    }
    char ago[32] = "-";
    if (seen > 0)
        snprintf(ago, sizeof ago, "%.0f s ago",
                 (double)now_ms > seen ? ((double)now_ms - seen) / 1000.0 : 0.0);
    printf("%-20s %-8s %-10s %-12s %8.0f  %s\n", name, admitted ? "yes" : "no", state, ago,
           failures, last && *last ? last : "-");
}

static int s_list(const mfl_coord_config_t *c, bool json)
{
    char err[512];
    mfl_allow_list_t *allow = mfl_allow_list_load(c->allow_dir, err, sizeof err);
    if (!allow) {
        fprintf(stderr, "metafl sites: %s\n", err);
        return 1;
    }
    mfl_json_t *status = s_status(c);
    if (!status && !json)
        fprintf(stderr, "metafl sites: no readable %s (coordinator not started?): showing the "
                "allow-list only\n", c->status_file);
    uint64_t now = mfl_clock_wall_ms();
    if (json)
        printf("{\"allow_dir\":\"%s\",\"sites\":[", c->allow_dir);
    else
        printf("%-20s %-8s %-10s %-12s %8s  %s\n", "SITE", "ADMITTED", "STATE", "LAST SEEN",
               "FAILURES", "LAST FAILURE");
    bool first = true;
    for (size_t i = 0; i < mfl_allow_list_size(allow); i++) {
        const char *name = mfl_allow_list_at(allow, i)->name;
        s_row(json, first, name, true, s_site_in(status, name), now);
        first = false;
    }
    const mfl_json_t *sites = status ? mfl_json_get(status, "sites") : NULL;
    for (size_t i = 0; sites && i < mfl_json_array_len(sites); i++) {
        const mfl_json_t *s = mfl_json_array_at(sites, i);
        const char *id = mfl_json_string(mfl_json_get(s, "id"));
        if (id && !mfl_allow_list_find_name(allow, id)) {
            s_row(json, first, id, false, s, now);
            first = false;
        }
    }
    if (json)
        printf("]}\n");
    mfl_json_destroy(&status);
    mfl_allow_list_destroy(&allow);
    return 0;
}

static int s_revoke(const mfl_coord_config_t *c, const char *name)
{
    char err[512], from[MFL_COORD_PATH_MAX + 80], dir[MFL_COORD_PATH_MAX + 16],
        to[MFL_COORD_PATH_MAX + 100];
    if (mfl_key_name_check(name, err, sizeof err) < 0) {
        fprintf(stderr, "metafl sites revoke: '%s': %s\n", name, err);
        return 2;
    }
    snprintf(from, sizeof from, "%s/%s.pub", c->allow_dir, name);
    snprintf(dir, sizeof dir, "%s/revoked", c->allow_dir);
    snprintf(to, sizeof to, "%s/%s.pub", dir, name);
    if (access(from, F_OK) != 0) {
        fprintf(stderr, "metafl sites revoke: %s: %s; the allow-list (%s) does not admit '%s'\n",
                from, strerror(errno), c->allow_dir, name);
        return 1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "metafl sites revoke: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (access(to, F_OK) == 0) { /* revoked before: keep the older file */
        snprintf(to, sizeof to, "%s/%s.pub.%llu", dir, name,
                 (unsigned long long)(mfl_clock_wall_ms() / 1000));
    }
    if (rename(from, to) != 0) {
        fprintf(stderr, "metafl sites revoke: cannot move %s to %s: %s\n", from, to,
                strerror(errno));
        return 1;
    }
    printf("revoked %s: its key moved to %s\n", name, to);
    mfl_json_t *status = s_status(c);
    int alive = status ? s_alive(status) : 0;
    mfl_json_destroy(&status);
    if (alive == 0) {
        printf("no coordinator is running with %s: it will not admit %s when it starts\n",
               c->run_dir, name);
        return 0;
    }
    char control[MFL_COORD_PATH_MAX + 16];
    snprintf(control, sizeof control, "%s/control", c->run_dir);
    /* Do not overwrite a command the coordinator has not read yet. */
    uint64_t deadline = mfl_clock_wall_ms() + 5000;
    while (access(control, F_OK) == 0 && mfl_clock_wall_ms() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (access(control, F_OK) == 0 ||
        mfl_file_write_atomic_mode(control, "reload", 6, 0600, err, sizeof err) < 0) {
        fprintf(stderr, "metafl sites revoke: could not ask the coordinator to reload (%s); "
                "send it SIGHUP to end %s's session now\n",
                access(control, F_OK) == 0 ? "its control file stays unread" : err, name);
        return 1;
    }
    deadline = mfl_clock_wall_ms() + 5000;
    while (access(control, F_OK) == 0 && mfl_clock_wall_ms() < deadline) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (access(control, F_OK) == 0) {
        unlink(control);
        fprintf(stderr, "metafl sites revoke: the coordinator did not read %s within 5 s; "
                "send it SIGHUP to end %s's session now\n", control, name);
        return 1;
    }
    printf("the coordinator reloaded its allow-list: %s's session is ended (see its log and "
           "`metafl sites`)\n", name);
    return 0;
}

int mfl_cmd_sites(int argc, char **argv)
{
    const char *config_path = NULL, *revoke = NULL;
    bool json = false;
    int i = 1;
    if (i < argc && strcmp(argv[i], "revoke") == 0) {
        if (i + 1 >= argc || argv[i + 1][0] == '-') {
            fprintf(stderr, "metafl sites revoke: NAME is required\n");
            s_usage(stderr);
            return 2;
        }
        revoke = argv[i + 1];
        i += 2;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0 && !revoke) {
            json = true;
        } else {
            fprintf(stderr, "metafl sites: unknown or incomplete argument '%s'\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "metafl sites: --config COORDINATOR.yaml is required\n");
        s_usage(stderr);
        return 2;
    }
    static mfl_coord_config_t c;
    char err[1024];
    if (mfl_coord_config_load(config_path, &c, err, sizeof err) < 0) {
        fprintf(stderr, "metafl sites: %s\n", err);
        return 1;
    }
    if (!c.allow_dir[0]) {
        fprintf(stderr, "metafl sites: %s: coordinator.allow_dir is not set\n", config_path);
        return 1;
    }
    return revoke ? s_revoke(&c, revoke) : s_list(&c, json);
}
