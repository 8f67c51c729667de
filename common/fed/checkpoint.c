/* Coordinator checkpoints: a fixed little-endian header, raw floats and a
 * BLAKE2b-256 trailer, written atomically (see checkpoint.h). */
#include "fed/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "fed/vec.h"
#include "nn/optim.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes floats as raw bytes and needs a little-endian host"
#endif

#define S_MAGIC "MFLCKPT1"
#define S_VERSION 1u
#define S_VERSION_BCAST 2u /* version 1 + θ̂ after the optimiser state */
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

/* 1 and *at = the index if v has a NaN or ±Inf (vectorised: fed/vec.h). */
static int s_first_nonfinite(const float *v, size_t n, size_t *at)
{
    *at = mfl_vec_first_nonfinite(v, n);
    return *at < n;
}

/* Checks `ck` against what the loader accepts; "PATH: reason" on -1. */
static int s_check(const char *path, const mfl_checkpoint_t *ck, size_t *id_len, char *err,
                   size_t errlen)
{
    *id_len = strnlen(ck->run_id, sizeof ck->run_id);
    if (s_run_id_check(ck->run_id, *id_len) != 0) {
        mfl_errf(err, errlen, "%s: run_id '%.*s' must be 1..%d characters of [A-Za-z0-9._-]",
                 path, (int)*id_len, ck->run_id, MFL_CHECKPOINT_RUN_ID_MAX);
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
    if (ck->optim_kind > MFL_OPTIM_LAST) {
        mfl_errf(err, errlen, "%s: unknown optim_kind %u", path, ck->optim_kind);
        return -1;
    }
    size_t bad;
    if (s_first_nonfinite(ck->theta, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: theta[%zu] is not finite; refusing to save", path, bad);
        return -1;
    }
    if (ck->broadcast && s_first_nonfinite(ck->broadcast, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: broadcast[%zu] is not finite; refusing to save", path, bad);
        return -1;
    }
    return 0;
}

/* Writes `ck` to a new temp file next to `path` (a name directory scans
 * skip), fsync'd if `durable`, straight from the caller's arrays: the
 * checksum is hashed piece by piece, so θ is not staged in a copy. */
static int s_stage(const char *path, const mfl_checkpoint_t *ck, int durable,
                   char tmp[MFL_CHECKPOINT_PATH_MAX], char *err, size_t errlen)
{
    size_t id_len;
    if (s_check(path, ck, &id_len, err, errlen) < 0)
        return -1;
    uint8_t hdr[S_HEADER_BYTES], sum[S_SUM_BYTES];
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, S_MAGIC, 8);
    s_put32(hdr + 8, ck->broadcast ? S_VERSION_BCAST : S_VERSION);
    s_put32(hdr + 12, S_HEADER_BYTES);
    memcpy(hdr + 16, ck->run_id, id_len); /* rest of the 64 bytes stays 0 */
    s_put64(hdr + 80, ck->round);
    s_put64(hdr + 88, ck->seed);
    for (int i = 0; i < 4; i++)
        s_put64(hdr + 96 + 8 * i, ck->rng.s[i]);
    s_put32(hdr + 128, ck->optim_kind);
    s_put32(hdr + 132, 0);
    s_put64(hdr + 136, ck->optim_steps);
    s_put64(hdr + 144, ck->n_params);
    s_put64(hdr + 152, ck->n_optim_state);
    memcpy(hdr + 160, ck->model_hash, 32);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, S_SUM_BYTES);
    crypto_generichash_update(&h, hdr, sizeof hdr);
    crypto_generichash_update(&h, (const unsigned char *)ck->theta, 4 * ck->n_params);
    if (ck->n_optim_state)
        crypto_generichash_update(&h, (const unsigned char *)ck->optim_state,
                                  4 * ck->n_optim_state);
    if (ck->broadcast)
        crypto_generichash_update(&h, (const unsigned char *)ck->broadcast, 4 * ck->n_params);
    crypto_generichash_final(&h, sum, sizeof sum);

    int n = snprintf(tmp, MFL_CHECKPOINT_PATH_MAX, "%s" MFL_FILE_TMP_INFIX "XXXXXX", path);
    if (n < 0 || n >= MFL_CHECKPOINT_PATH_MAX) {
        mfl_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot create temp file: %s", path, strerror(errno));
        return -1;
    }
    const char *what = "chmod";
    if (fchmod(fd, 0644) != 0)
        goto out_fail;
    what = "write";
    if (mfl_file_write_full(fd, hdr, sizeof hdr) != 0 ||
        mfl_file_write_full(fd, ck->theta, 4 * ck->n_params) != 0 ||
        (ck->n_optim_state &&
         mfl_file_write_full(fd, ck->optim_state, 4 * ck->n_optim_state) != 0) ||
        (ck->broadcast && mfl_file_write_full(fd, ck->broadcast, 4 * ck->n_params) != 0) ||
        mfl_file_write_full(fd, sum, sizeof sum) != 0)
        goto out_fail;
    what = "fsync";
    if (durable && fsync(fd) != 0)
        goto out_fail;
    what = "close";
    int rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto out_fail;
    return 0;
out_fail:
    mfl_errf(err, errlen, "%s: %s failed: %s", tmp, what, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

static int s_rename(const char *tmp, const char *path, char *err, size_t errlen)
{
    if (rename(tmp, path) != 0) {
        mfl_errf(err, errlen, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int mfl_checkpoint_save(const char *path, const mfl_checkpoint_t *ck, char *err, size_t errlen)
{
    char tmp[MFL_CHECKPOINT_PATH_MAX];
    if (s_stage(path, ck, 1, tmp, err, errlen) < 0 || s_rename(tmp, path, err, errlen) < 0)
        return -1;
    return mfl_fsync_parent(path, err, errlen);
}

int mfl_checkpoint_save_nosync(const char *path, const mfl_checkpoint_t *ck, char *err,
                               size_t errlen)
{
    char tmp[MFL_CHECKPOINT_PATH_MAX];
    if (s_stage(path, ck, 0, tmp, err, errlen) < 0)
        return -1;
    return s_rename(tmp, path, err, errlen);
}

int mfl_checkpoint_stage(const char *path, const mfl_checkpoint_t *ck,
                         mfl_checkpoint_staged_t *st, char *err, size_t errlen)
{
    st->tmp[0] = '\0';
    if ((size_t)snprintf(st->path, sizeof st->path, "%s", path) >= sizeof st->path) {
        mfl_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    return s_stage(path, ck, 0, st->tmp, err, errlen);
}

int mfl_checkpoint_publish(mfl_checkpoint_staged_t *st, char *err, size_t errlen)
{
    if (!st->tmp[0]) {
        mfl_errf(err, errlen, "%s: nothing staged", st->path);
        return -1;
    }
    int rc = s_rename(st->tmp, st->path, err, errlen);
    st->tmp[0] = '\0';
    return rc;
}

void mfl_checkpoint_discard(mfl_checkpoint_staged_t *st)
{
    if (st->tmp[0])
        unlink(st->tmp);
    st->tmp[0] = '\0';
}

int mfl_checkpoint_sync(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot open to fsync: %s", path, strerror(errno));
        return -1;
    }
    if (fsync(fd) != 0) {
        mfl_errf(err, errlen, "%s: fsync: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return mfl_fsync_parent(path, err, errlen);
}

void mfl_checkpoint_clear(mfl_checkpoint_t *ck)
{
    free(ck->theta);
    free(ck->optim_state);
    free(ck->broadcast);
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
    uint32_t version = s_get32(b + 8);
    if (version != S_VERSION && version != S_VERSION_BCAST) {
        mfl_errf(err, errlen, "%s: version: %" PRIu32 " is not supported (expected %u or %u)",
                 path, version, S_VERSION, S_VERSION_BCAST);
        return -1;
    }
    bool bcast = version == S_VERSION_BCAST;
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
    size_t want = S_HEADER_BYTES + 4 * (size_t)(n_params + n_state) +
                  (bcast ? 4 * (size_t)n_params : 0) + S_SUM_BYTES;
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
    if (kind > MFL_OPTIM_LAST || s_get32(b + 132) != 0) {
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
    if (bcast)
        ck->broadcast = malloc(4 * ck->n_params);
    if (!ck->theta || (n_state && !ck->optim_state) || (bcast && !ck->broadcast)) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_clear;
    }
    memcpy(ck->theta, b + S_HEADER_BYTES, 4 * ck->n_params);
    if (n_state)
        memcpy(ck->optim_state, b + S_HEADER_BYTES + 4 * ck->n_params, 4 * ck->n_optim_state);
    if (bcast)
        memcpy(ck->broadcast, b + S_HEADER_BYTES + 4 * (ck->n_params + ck->n_optim_state),
               4 * ck->n_params);
    size_t bad;
    if (s_first_nonfinite(ck->theta, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: theta: element %zu is not finite", path, bad);
        goto out_clear;
    }
    if (n_state && s_first_nonfinite(ck->optim_state, ck->n_optim_state, &bad)) {
        mfl_errf(err, errlen, "%s: optim_state: element %zu is not finite", path, bad);
        goto out_clear;
    }
    if (bcast && s_first_nonfinite(ck->broadcast, ck->n_params, &bad)) {
        mfl_errf(err, errlen, "%s: broadcast: element %zu is not finite", path, bad);
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
    const size_t cap = S_HEADER_BYTES + 16 * (size_t)MFL_CHECKPOINT_MAX_PARAMS + S_SUM_BYTES;
    char *data;
    size_t len;
    if (mfl_file_read_all(path, cap, &data, &len, err, errlen) != 0)
        return -1;
    int rc = mfl_checkpoint_parse((const uint8_t *)data, len, path, ck, err, errlen);
    free(data);
    return rc;
}
