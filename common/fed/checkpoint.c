/* Coordinator checkpoints: a fixed little-endian header, raw floats and a
 * BLAKE2b-256 trailer, written atomically (see checkpoint.h). */
#include "fed/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "nn/optim.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes floats as raw bytes and needs a little-endian host"
#endif

#define S_MAGIC "MFLCKPT1"
#define S_VERSION 1u
#define S_HEADER_BYTES 192u
#define S_SUM_BYTES 32u

static void s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t s_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int s_run_id_check(const char *id, size_t n)
{
    if (n == 0 || n > MFL_CHECKPOINT_RUN_ID_MAX || id[0] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return -1;
    }
    return 0;
}

static int s_first_nonfinite(const float *v, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            *at = i;
            return 1;
        }
    return 0;
}

int mfl_checkpoint_save(const char *path, const mfl_checkpoint_t *ck, char *err, size_t errlen)
{
    size_t id_len = strnlen(ck->run_id, sizeof ck->run_id);
    if (s_run_id_check(ck->run_id, id_len) != 0) {
        mfl_errf(err, errlen, "%s: run_id '%.*s' must be 1..%d characters of [A-Za-z0-9._-]",
                 path, (int)id_len, ck->run_id, MFL_CHECKPOINT_RUN_ID_MAX);
        return -1;
    }
    if (ck->n_params == 0 || ck->n_params > MFL_CHECKPOINT_MAX_PARAMS || !ck->theta) {
        mfl_errf(err, errlen, "%s: n_params %zu out of range 1..%llu", path, ck->n_params,
                 (unsigned long long)MFL_CHECKPOINT_MAX_PARAMS);
        return -1;
    }
    if (ck->n_optim_state > 2 * ck->n_params || (ck->n_optim_state && !ck->optim_state)) {
        mfl_errf(err, errlen, "%s: n_optim_state %zu is more than 2 × n_params", path,
                 ck->n_optim_state);
        return -1;
    }
    if (ck->optim_kind > MFL_OPTIM_ADAGRAD) {
        mfl_errf(err, errlen, "%s: unknown optim_kind %u", path, ck->optim_kind);
        return -1;
    }
    size_t bad;
    if (s_first_nonfinite(ck->theta, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: theta[%zu] is not finite; refusing to save", path, bad);
        return -1;
    }
    size_t total = S_HEADER_BYTES + 4 * (ck->n_params + ck->n_optim_state) + S_SUM_BYTES;
    uint8_t *buf = calloc(1, total);
    if (!buf) {
        mfl_errf(err, errlen, "%s: out of memory for %zu bytes", path, total);
        return -1;
    }
    uint8_t *p = buf;
    memcpy(p, S_MAGIC, 8);
    s_put32(p + 8, S_VERSION);
    s_put32(p + 12, S_HEADER_BYTES);
    memcpy(p + 16, ck->run_id, id_len); /* rest of the 64 bytes stays 0 */
    s_put64(p + 80, ck->round);
    s_put64(p + 88, ck->seed);
    for (int i = 0; i < 4; i++)
        s_put64(p + 96 + 8 * i, ck->rng.s[i]);
    s_put32(p + 128, ck->optim_kind);
    s_put32(p + 132, 0);
    s_put64(p + 136, ck->optim_steps);
    s_put64(p + 144, ck->n_params);
    s_put64(p + 152, ck->n_optim_state);
    memcpy(p + 160, ck->model_hash, 32);
    p += S_HEADER_BYTES;
    memcpy(p, ck->theta, 4 * ck->n_params);
    p += 4 * ck->n_params;
    if (ck->n_optim_state)
        memcpy(p, ck->optim_state, 4 * ck->n_optim_state);
    p += 4 * ck->n_optim_state;
    crypto_generichash(p, S_SUM_BYTES, buf, (size_t)(p - buf), NULL, 0);
    int rc = mfl_file_write_atomic(path, buf, total, err, errlen);
    free(buf);
    return rc;
}

void mfl_checkpoint_clear(mfl_checkpoint_t *ck)
{
    free(ck->theta);
    free(ck->optim_state);
    memset(ck, 0, sizeof *ck);
}

int mfl_checkpoint_parse(const uint8_t *b, size_t len, const char *path, mfl_checkpoint_t *ck,
                         char *err, size_t errlen)
{
    memset(ck, 0, sizeof *ck);
    if (len < S_HEADER_BYTES + S_SUM_BYTES) {
        mfl_errf(err, errlen, "%s: %zu bytes, too short for a checkpoint (torn write?)", path,
                 len);
        return -1;
    }
    if (memcmp(b, S_MAGIC, 8) != 0) {
        mfl_errf(err, errlen, "%s: magic: not a metafl checkpoint", path);
        return -1;
    }
    if (s_get32(b + 8) != S_VERSION) {
        mfl_errf(err, errlen, "%s: version: %" PRIu32 " is not supported (expected %u)", path,
                 s_get32(b + 8), S_VERSION);
        return -1;
    }
    if (s_get32(b + 12) != S_HEADER_BYTES) {
        mfl_errf(err, errlen, "%s: header_bytes: %" PRIu32 ", expected %u", path,
                 s_get32(b + 12), S_HEADER_BYTES);
        return -1;
    }
    uint64_t n_params = s_get64(b + 144), n_state = s_get64(b + 152);
    if (n_params == 0 || n_params > MFL_CHECKPOINT_MAX_PARAMS) {
        mfl_errf(err, errlen, "%s: n_params: %" PRIu64 " out of range 1..%llu", path, n_params,
                 (unsigned long long)MFL_CHECKPOINT_MAX_PARAMS);
        return -1;
    }
    if (n_state > 2 * n_params) {
        mfl_errf(err, errlen, "%s: n_optim_state: %" PRIu64 " is more than 2 × n_params", path,
                 n_state);
        return -1;
    }
    size_t want = S_HEADER_BYTES + 4 * (size_t)(n_params + n_state) + S_SUM_BYTES;
    if (len != want) {
        mfl_errf(err, errlen, "%s: size: %zu bytes, header says %zu (truncated or padded)", path,
                 len, want);
        return -1;
    }
    uint8_t sum[S_SUM_BYTES];
    crypto_generichash(sum, sizeof sum, b, len - S_SUM_BYTES, NULL, 0);
    if (sodium_memcmp(sum, b + len - S_SUM_BYTES, S_SUM_BYTES) != 0) {
        mfl_errf(err, errlen, "%s: checksum: BLAKE2b mismatch (file corrupted)", path);
        return -1;
    }
    const char *id = (const char *)b + 16;
    size_t id_len = strnlen(id, 64);
    if (s_run_id_check(id, id_len) != 0) {
        mfl_errf(err, errlen, "%s: run_id: not 1..%d characters of [A-Za-z0-9._-]", path,
                 MFL_CHECKPOINT_RUN_ID_MAX);
        return -1;
    }
    for (size_t i = id_len; i < 64; i++)
        if (id[i] != '\0') {
            mfl_errf(err, errlen, "%s: run_id: padding is not zero", path);
            return -1;
        }
    uint32_t kind = s_get32(b + 128);
    if (kind > MFL_OPTIM_ADAGRAD || s_get32(b + 132) != 0) {
        mfl_errf(err, errlen, "%s: optim_kind: %" PRIu32 " unknown (or reserved not 0)", path,
                 kind);
        return -1;
    }
    memcpy(ck->run_id, id, id_len);
    ck->run_id[id_len] = '\0';
    ck->round = s_get64(b + 80);
    ck->seed = s_get64(b + 88);
    for (int i = 0; i < 4; i++)
        ck->rng.s[i] = s_get64(b + 96 + 8 * i);
    ck->optim_kind = kind;
    ck->optim_steps = s_get64(b + 136);
    memcpy(ck->model_hash, b + 160, 32);
    ck->n_params = (size_t)n_params;
    ck->n_optim_state = (size_t)n_state;
    ck->theta = malloc(4 * ck->n_params);
    if (n_state)
        ck->optim_state = malloc(4 * ck->n_optim_state);
    if (!ck->theta || (n_state && !ck->optim_state)) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_clear;
    }
    memcpy(ck->theta, b + S_HEADER_BYTES, 4 * ck->n_params);
    if (n_state)
        memcpy(ck->optim_state, b + S_HEADER_BYTES + 4 * ck->n_params, 4 * ck->n_optim_state);
    size_t bad;
    if (s_first_nonfinite(ck->theta, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: theta: element %zu is not finite", path, bad);
        goto out_clear;
    }
    if (n_state && s_first_nonfinite(ck->optim_state, ck->n_optim_state, &bad)) {
        mfl_errf(err, errlen, "%s: optim_state: element %zu is not finite", path, bad);
        goto out_clear;
    }
    return 0;

out_clear:
    mfl_checkpoint_clear(ck);
    return -1;
}

int mfl_checkpoint_load(const char *path, mfl_checkpoint_t *ck, char *err, size_t errlen)
{
    memset(ck, 0, sizeof *ck);
    const size_t cap = S_HEADER_BYTES + 12 * (size_t)MFL_CHECKPOINT_MAX_PARAMS + S_SUM_BYTES;
    char *data;
    size_t len;
    if (mfl_file_read_all(path, cap, &data, &len, err, errlen) != 0)
        return -1;
    int rc = mfl_checkpoint_parse((const uint8_t *)data, len, path, ck, err, errlen);
    free(data);
    return rc;
}

int mfl_checkpoint_path(const char *dir, uint64_t round, char *buf, size_t buflen)
{
    int n = snprintf(buf, buflen, "%s/round-%08" PRIu64 ".ckpt", dir, round);
    return (n < 0 || (size_t)n >= buflen) ? -1 : 0;
}

int mfl_checkpoint_save_dir(const char *dir, const mfl_checkpoint_t *ck, char *path_out,
                            size_t path_len, char *err, size_t errlen)
{
    char path[4096];
    if (mfl_checkpoint_path(dir, ck->round, path, sizeof path) != 0) {
        mfl_errf(err, errlen, "%s: checkpoint directory path too long", dir);
        return -1;
    }
    if (mfl_mkdir_p(dir, 0755, err, errlen) != 0)
        return -1;
    if (mfl_checkpoint_save(path, ck, err, errlen) != 0)
        return -1;
    if (path_out && path_len) {
        if ((size_t)snprintf(path_out, path_len, "%s", path) >= path_len) {
            mfl_errf(err, errlen, "%s: path does not fit the caller's buffer", path);
            return -1;
        }
    }
    return 0;
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
    if (ret == 0 && n > keep)
        ret = mfl_fsync_dir(dir, err, errlen);
    return ret;
}
