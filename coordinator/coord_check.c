/* Start-up checks of metafl-coordinator (see coord_check.h). */
#include "coord_check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/yaml_doc.h"
#include "core/log.h"
#include "wire/keys.h"

/* The daemon needs an explicit coordinator.listen (simulate and status
 * read the same file without one): "FILE:LINE: missing required key ..."
 * naming the coordinator section's line. */
static int s_check_listen(const mfl_coord_config_t *c, char *err, size_t errlen)
{
    mfl_yaml_doc_t *doc = mfl_yaml_load(c->file, err, errlen);
    if (!doc)
        return -1;
    int rc = 0;
    if (!mfl_yaml_has(doc, "coordinator.listen")) {
        (void)mfl_yaml_require_string(doc, "coordinator.listen");
        char why[512] = "";
        mfl_yaml_error(doc, why, sizeof why);
        mfl_errf(err, errlen, "%s (the daemon's endpoint, e.g. listen: tcp://0.0.0.0:7000)",
                 why);
        rc = -1;
    }
    mfl_yaml_destroy(&doc);
    return rc;
}

int mfl_coord_check_start(const mfl_coord_config_t *c, char *err, size_t errlen)
{
    if (s_check_listen(c, err, errlen) < 0)
        return -1;
    if (!c->key_file[0] || !c->allow_dir[0])
        return mfl_errf(err, errlen, "%s: coordinator.key and coordinator.allow_dir are "
                        "required to run the daemon", c->file), -1;
    FILE *f = fopen(c->key_file, "r");
    if (!f)
        return mfl_errf(err, errlen, "%s: coordinator.key: %s: %s%s", c->file, c->key_file,
                        strerror(errno),
                        errno == ENOENT ? " (make it with `metafl keygen coordinator --dir "
                                          "DIR`; relative paths are resolved against the "
                                          "config file's directory)"
                                        : ""), -1;
    char line[64] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "metafl-public-key v1") == 0)
        return mfl_errf(err, errlen, "%s: coordinator.key: %s is a PUBLIC key; this key needs "
                        "the secret half (NAME.key, made by `metafl keygen`); the .pub goes to "
                        "the sites", c->file, c->key_file), -1;
    struct stat st;
    if (stat(c->allow_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mfl_errf(err, errlen, "%s: coordinator.allow_dir: %s: %s; create it and put "
                        "one SITE.pub per admitted hospital in it", c->file, c->allow_dir,
                        stat(c->allow_dir, &st) != 0 ? strerror(errno) : "not a directory"),
               -1;
    char sub[1024];
    mfl_allow_list_t *allow = mfl_allow_list_load(c->allow_dir, sub, sizeof sub);
    if (!allow)
        return mfl_errf(err, errlen, "%s: coordinator.allow_dir: %s", c->file, sub), -1;
    size_t n = mfl_allow_list_size(allow);
    if (n == 0) {
        mfl_warn("%s: coordinator.allow_dir %s holds no SITE.pub: no site can connect until "
                 "one is added (and the coordinator restarted)", c->file, c->allow_dir);
    } else {
        char names[768] = "";
        size_t used = 0;
        for (size_t i = 0; i < n && used + 4 < sizeof names; i++) {
            int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                             mfl_allow_list_at(allow, i)->name);
            if (w < 0 || (size_t)w >= sizeof names - used) {
                snprintf(names + sizeof names - 4, 4, "...");
                break;
            }
            used += (size_t)w;
        }
        mfl_info("allow-list %s: %zu site(s): %s", c->allow_dir, n, names);
    }
    mfl_allow_list_destroy(&allow);
    return 0;
}

void mfl_coord_check_explain(const mfl_coord_config_t *c, char *err, size_t errlen)
{
    if (!err || errlen == 0)
        return;
    char *copy = strdup(err);
    if (!copy)
        return;
    size_t n = strlen(c->file);
    bool named = n && strncmp(copy, c->file, n) == 0;
    bool in_use = strstr(copy, "Address already in use") != NULL;
    snprintf(err, errlen, "%s%s%s%s", named ? "" : c->file, named ? "" : ": ", copy,
             in_use ? " (another coordinator on this port? `metafl status` shows a running "
                      "one; or change coordinator.listen)"
                    : "");
    free(copy);
}
