/* metafl-site-agent --check: the agent's start-up, minus the socket. */
#include "site_check.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "site/site_worker.h"
#include <stdint.h>
#include "wire/keys.h"

#define S_PUB_MAGIC "metafl-public-key v1"
#define S_SEC_MAGIC "metafl-secret-key v1"

void mfl_site_check_prefix(const mfl_site_config_t *cfg, char *err, size_t errlen)
{
    size_t n = strlen(cfg->file);
    if (!err || errlen == 0 || (n && strncmp(err, cfg->file, n) == 0))
        return;
    char *copy = strdup(err);
    if (!copy)
        return;
    snprintf(err, errlen, "%s: %s", cfg->file, copy);
    free(copy);
}

/* First line of `path` into line (without newline); -1 with errno set. */
static int s_first_line(const char *path, char *line, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    line[0] = '\0';
    if (!fgets(line, (int)len, f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    return 0;
}

/* tcp://HOST:PORT → host, port; the config loader checked only "tcp://". */
static int s_split_endpoint(const mfl_site_config_t *c, char *host, size_t hostlen, char *port,
                            size_t portlen, char *err, size_t errlen)
{
    const char *hp = c->endpoint + 6;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= hostlen || !colon[1])
        return mfl_errf(err, errlen, "%s: coordinator.endpoint: '%s' must be tcp://HOST:PORT",
                        c->file, c->endpoint), -1;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!end || *end || p < 1 || p > 65535)
        return mfl_errf(err, errlen, "%s: coordinator.endpoint: port '%s' is not a number in "
                        "1..65535", c->file, colon + 1), -1;
    const char *h = hp;
    size_t hl = (size_t)(colon - hp);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [IPv6] */
        h++;
        hl -= 2;
    }
    snprintf(host, hostlen, "%.*s", (int)hl, h);
    snprintf(port, portlen, "%s", colon + 1);
    return 0;
}

int mfl_site_check_files(const mfl_site_config_t *c, char *err, size_t errlen)
{
    char line[64];
    if (s_first_line(c->key_file, line, sizeof line) < 0) {
        if (errno == ENOENT)
            return mfl_errf(err, errlen, "%s: site.key_file: %s: no such file; make the "
                            "site's key on this host with `metafl keygen %s --dir DIR` (relative "
                            "paths are resolved against the config file's directory)",
                            c->file, c->key_file, c->site_id), -1;
        return mfl_errf(err, errlen, "%s: site.key_file: %s: %s (the agent's user must be able "
                        "to read its own secret key)", c->file, c->key_file, strerror(errno)), -1;
    }
    if (strcmp(line, S_PUB_MAGIC) == 0)
        return mfl_errf(err, errlen, "%s: site.key_file: %s is a PUBLIC key; site.key_file "
                        "needs the secret half (%s.key, made by `metafl keygen`)", c->file,
                        c->key_file, c->site_id), -1;
    if (s_first_line(c->coordinator_key, line, sizeof line) < 0) {
        if (errno == ENOENT)
            return mfl_errf(err, errlen, "%s: coordinator.public_key: %s: no such file; ask the "
                            "consortium operator for the coordinator's .pub file (relative "
                            "paths are resolved against the config file's directory)", c->file,
                            c->coordinator_key), -1;
        return mfl_errf(err, errlen, "%s: coordinator.public_key: %s: %s", c->file,
                        c->coordinator_key, strerror(errno)), -1;
    }
    if (strcmp(line, S_SEC_MAGIC) == 0)
        return mfl_errf(err, errlen, "%s: coordinator.public_key: %s is a SECRET key; this key "
                        "needs the coordinator's public NAME.pub (and a secret key must never "
                        "be copied off its owner's host: delete this copy)", c->file,
                        c->coordinator_key), -1;
    if (access(c->data_path, R_OK) != 0)
        return mfl_errf(err, errlen, "%s: data.path: %s: %s%s", c->file, c->data_path,
                        strerror(errno),
                        errno == ENOENT ? " (relative paths are resolved against the config "
                                          "file's directory)"
                                        : " (the agent's user must be able to read it)"), -1;
    char host[256], port[16];
    return s_split_endpoint(c, host, sizeof host, port, sizeof port, err, errlen);
}

/* The audit log must be creatable or appendable by this user. */
static int s_check_audit(const mfl_site_config_t *c, char *err, size_t errlen)
{
    if (!c->audit_log[0])
        return 0;
    if (access(c->audit_log, F_OK) == 0) {
        if (access(c->audit_log, W_OK) != 0)
            return mfl_errf(err, errlen, "%s: audit.log: %s: %s (the agent appends every "
                            "update to it before sending)", c->file, c->audit_log,
                            strerror(errno)), -1;
        return 0;
    }
    /* Not there yet: the agent creates it and any missing directories, so
     * the nearest existing ancestor must be writable. */
    char dir[MFL_SITE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", c->audit_log);
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
            break;
        }
        if (slash == dir) {
            dir[1] = '\0';
            break;
        }
        *slash = '\0';
        if (access(dir, F_OK) == 0)
            break;
    }
    if (access(dir, W_OK) != 0)
        return mfl_errf(err, errlen, "%s: audit.log: cannot create %s: directory %s is not "
                        "writable by this user (%s)", c->file, c->audit_log, dir,
                        strerror(errno)), -1;
    return 0;
}

/* Rows dropped / imputed per column, and what episodes the training rows
 * can form (the coordinator refuses a site that cannot form its task). */
static void s_print_data(const mfl_site_worker_t *w, const mfl_site_config_t *c, FILE *out)
{
    const char *report = mfl_site_worker_data_report(w);
    if (report)
        fprintf(out, "  missing      %s\n", report);
    fprintf(out, "  schema       %s%s\n",
            c->schema_file[0] ? c->schema_file
            : c->data_kind == MFL_SITE_DATA_CSV ? "inline data.schema"
                                                : mfl_site_data_kind_name(c->data_kind),
            c->schema_file[0] || c->data_kind == MFL_SITE_DATA_CSV ? "" : " source's own");
    size_t nc = mfl_site_worker_n_classes(w);
    uint64_t counts[64];
    size_t n = mfl_site_worker_class_counts(w, counts, 64);
    if (nc == 0) {
        fprintf(out, "  label        continuous (regression)\n");
        return;
    }
    fprintf(out, "  classes      %zu; training rows per class:", nc);
    /* The smallest class the site holds: a class with no row is one the
     * site does not have (an image site keeps data.classes of the label
     * file's), not a class too small for an episode. */
    uint64_t min = UINT64_MAX;
    size_t held = 0;
    for (size_t k = 0; k < n; k++) {
        fprintf(out, " %zu=%llu", k, (unsigned long long)counts[k]);
        if (counts[k] > 0) {
            held++;
            if (counts[k] < min)
                min = counts[k];
        }
    }
    fprintf(out, "%s\n", n < nc ? " (more than 64 classes: not listed)" : "");
    if (n == nc && (held < 2 || min < 2))
        fprintf(out, "  warning: class counts this small cannot form N-way K-shot episodes "
                     "(each needs k_shot + n_query rows per class): the coordinator refuses "
                     "this site for protonet, matching and relation runs\n");
    else if (n == nc && held == nc)
        fprintf(out, "  episodes     every class has at least %llu training rows: %zu-way "
                     "episodes with k_shot + n_query <= %llu\n",
                (unsigned long long)min, nc, (unsigned long long)min);
    else if (n == nc)
        fprintf(out, "  episodes     each of the %zu classes it holds has at least %llu "
                     "training rows: up to %zu-way episodes with k_shot + n_query <= %llu\n",
                held, (unsigned long long)min, held, (unsigned long long)min);
}

int mfl_site_check(const mfl_site_config_t *c, FILE *out, char *err, size_t errlen)
{
    if (mfl_site_check_files(c, err, errlen) < 0)
        return -1;
    char sub[1024];
    mfl_identity_t *id = mfl_identity_load(c->key_file, sub, sizeof sub);
    if (!id)
        return mfl_errf(err, errlen, "%s: site.key_file: %s", c->file, sub), -1;
    if (strcmp(mfl_identity_name(id), c->site_id) != 0) {
        mfl_errf(err, errlen, "%s: site.id is '%s' but the key %s belongs to '%s'; the "
                 "coordinator admits a site by its key name, so they must match", c->file,
                 c->site_id, c->key_file, mfl_identity_name(id));
        mfl_identity_destroy(&id);
        return -1;
    }
    mfl_identity_destroy(&id);
    mfl_public_key_t coord;
    if (mfl_public_key_load(c->coordinator_key, &coord, sub, sizeof sub) < 0)
        return mfl_errf(err, errlen, "%s: coordinator.public_key: %s", c->file, sub), -1;
    char host[256], port[16];
    if (s_split_endpoint(c, host, sizeof host, port, sizeof port, err, errlen) < 0)
        return -1;
    if (s_check_audit(c, err, errlen) < 0)
        return -1;
    mfl_site_worker_t *w = mfl_site_worker_new(c, err, errlen);
    if (!w) {
        mfl_site_check_prefix(c, err, errlen);
        return -1;
    }
    if (out) {
        fprintf(out, "  site         %s (secret key %s)\n", c->site_id, c->key_file);
        fprintf(out, "  data         %s (%s): %zu training rows, %zu held-out, %zu features\n",
                c->data_path, mfl_site_data_kind_name(c->data_kind),
                mfl_site_worker_n_train(w), mfl_site_worker_n_heldout(w),
                mfl_site_worker_n_features(w));
        s_print_data(w, c, out);
        fprintf(out, "  coordinator  %s, pinned key '%s' from %s\n", c->endpoint, coord.name,
                c->coordinator_key);
        fprintf(out, "               its signing key: ");
        for (int i = 0; i < 32; i++)
            fprintf(out, "%02x", coord.sign_pk[i]);
        fprintf(out, "\n               (compare with the operator by phone before the first "
                     "run)\n");
        fprintf(out, "  audit log    %s\n", c->audit_log[0] ? c->audit_log
                                                          : "none (updates are not logged)");
    }
    mfl_site_worker_destroy(&w);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        if (out)
            fprintf(out, "  warning: cannot resolve '%s' (%s): check coordinator.endpoint and "
                         "this host's DNS; the agent would keep retrying\n",
                    host, gai_strerror(gai));
    } else {
        freeaddrinfo(res);
    }
    if (out)
        fprintf(out, "  nothing was sent: --check opens no connection\n");
    return 0;
}
