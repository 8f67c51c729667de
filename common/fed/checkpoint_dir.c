/* The checkpoint directory: "round-%08llu.ckpt" names, finding the newest
 * file that loads cleanly, pruning old ones. The file format itself is in
 * checkpoint.c. */
#include "fed/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"

int mfl_checkpoint_path(const char *dir, uint64_t round, char *buf, size_t buflen)
{
    int n = snprintf(buf, buflen, "%s/round-%08" PRIu64 ".ckpt", dir, round);
    return (n < 0 || (size_t)n >= buflen) ? -1 : 0;
}

static int s_save_dir(const char *dir, const mfl_checkpoint_t *ck, int durable, char *path_out,
                      size_t path_len, char *err, size_t errlen)
{
    char path[4096];
    if (mfl_checkpoint_path(dir, ck->round, path, sizeof path) != 0) {
        mfl_errf(err, errlen, "%s: checkpoint directory path too long", dir);
        return -1;
    }
    if (mfl_mkdir_p(dir, 0755, err, errlen) != 0)
        return -1;
    if ((durable ? mfl_checkpoint_save(path, ck, err, errlen)
                 : mfl_checkpoint_save_nosync(path, ck, err, errlen)) != 0)
        return -1;
    if (path_out && path_len) {
        if ((size_t)snprintf(path_out, path_len, "%s", path) >= path_len) {
            mfl_errf(err, errlen, "%s: path does not fit the caller's buffer", path);
            return -1;
        }
    }
    return 0;
}

int mfl_checkpoint_save_dir(const char *dir, const mfl_checkpoint_t *ck, char *path_out,
                            size_t path_len, char *err, size_t errlen)
{
    return s_save_dir(dir, ck, 1, path_out, path_len, err, errlen);
}

int mfl_checkpoint_save_dir_nosync(const char *dir, const mfl_checkpoint_t *ck, char *path_out,
                                   size_t path_len, char *err, size_t errlen)
{
    return s_save_dir(dir, ck, 0, path_out, path_len, err, errlen);
}

/* Parses exactly "round-<digits>.ckpt"; 0 with *round, or -1 (temp files,
 * anything else). */
static int s_parse_name(const char *name, uint64_t *round)
{
    if (strncmp(name, "round-", 6) != 0)
        return -1;
    const char *p = name + 6;
    uint64_t v = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits >= 19)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0 || strcmp(p, ".ckpt") != 0)
        return -1;
    *round = v;
    return 0;
}

typedef struct {
    uint64_t round;
    char name[256];
} s_entry_t;

static int s_entry_cmp_desc(const void *a, const void *b)
{
    uint64_t x = ((const s_entry_t *)a)->round, y = ((const s_entry_t *)b)->round;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Lists checkpoint files of `dir`, newest first. 0 with *out (caller frees),
 * 1 if dir does not exist, -1 on error. */
static int s_list(const char *dir, s_entry_t **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 1;
        mfl_errf(err, errlen, "%s: cannot open checkpoint directory: %s", dir, strerror(errno));
        return -1;
    }
    s_entry_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t round;
        size_t name_len = strlen(e->d_name);
        if (s_parse_name(e->d_name, &round) != 0 || name_len >= sizeof v->name)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            s_entry_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                mfl_errf(err, errlen, "%s: out of memory listing checkpoints", dir);
                return -1;
            }
            v = nv;
            cap = ncap;
        }
        v[n].round = round;
        memcpy(v[n].name, e->d_name, name_len + 1);
        n++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, s_entry_cmp_desc);
    *out = v;
    *count = n;
    return 0;
}

int mfl_checkpoint_latest(const char *dir, mfl_checkpoint_t *ck, char *path_out, size_t path_len,
                          char *err, size_t errlen)
{
    memset(ck, 0, sizeof *ck);
    s_entry_t *v;
    size_t n;
    int rc = s_list(dir, &v, &n, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        char path[4096], why[512];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, v[i].name) >= sizeof path)
            continue;
        if (mfl_checkpoint_load(path, ck, why, sizeof why) != 0) {
            mfl_warn("skipping checkpoint %s", why);
            continue;
        }
        if (ck->round != v[i].round) {
            mfl_warn("skipping checkpoint %s: holds round %" PRIu64 ", name says %" PRIu64, path,
                     ck->round, v[i].round);
            mfl_checkpoint_clear(ck);
            continue;
        }
        if (path_out && path_len)
            snprintf(path_out, path_len, "%s", path);
        found = 1;
    }
    free(v);
    return found;
}

long mfl_checkpoint_files(const char *dir, char *names, size_t len)
{
    s_entry_t *v;
    size_t n;
    char err[256];
    int rc = s_list(dir, &v, &n, err, sizeof err);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    if (names && len) {
        size_t used = 0;
        names[0] = '\0';
        for (size_t i = 0; i < n; i++) {
            int w = snprintf(names + used, len - used, "%s%s", i ? ", " : "", v[i].name);
            if (w < 0 || (size_t)w >= len - used) {
                if (len > 4)
                    snprintf(names + (used < len - 4 ? used : len - 4), 4, "...");
                break;
            }
            used += (size_t)w;
        }
    }
    free(v);
    return (long)n;
}

int mfl_checkpoint_prune(const char *dir, size_t keep, char *err, size_t errlen)
{
    if (keep == 0) {
        mfl_errf(err, errlen, "%s: refusing to prune every checkpoint (keep must be ≥ 1)", dir);
        return -1;
    }
    s_entry_t *v;
    size_t n;
    int rc = s_list(dir, &v, &n, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    int ret = 0;
    for (size_t i = keep; i < n; i++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, v[i].name) >= sizeof path)
            continue;
        if (unlink(path) != 0 && errno != ENOENT) {
            mfl_errf(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
            ret = -1;
        }
    }
    free(v);
    /* No fsync of the directory: a removal that a power loss undoes only
     * leaves an older checkpoint behind (the newest valid one still wins,
     * and the next prune removes it again). It cost one more disk flush per
     * round on the coordinator. */
    return ret;
}
