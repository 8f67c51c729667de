/* Chunked uploads spooled to unnamed files. See upload_spool.h. */
#include "round/upload_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define S_MAX_UPLOADS 256 /* sites uploading at once: far above any grant window */

typedef struct {
    mfl_spooled_update_t u;
    bool used, complete, failed;
    int fd;
    uint8_t *hashes;            /* n_chunks × 32 */
    uint64_t chunk_values;
    uint32_t encoding;
    size_t n_tensors;
    char (*names)[256];         /* the layout's names, counts and flat offsets */
    uint64_t *counts, *offsets;
    size_t cur_tensor;          /* where chunk `next` starts */
    uint64_t cur_off;
    uint64_t n_values;
    uint64_t written;
} s_upload_t;

struct mfl_upload_spool {
    char dir[4096];
    s_upload_t up[S_MAX_UPLOADS];
};

mfl_upload_spool_t *mfl_upload_spool_new(const char *dir, char *err, size_t errlen)
{
    if (strlen(dir) >= sizeof((mfl_upload_spool_t *)0)->dir) {
        mfl_errf(err, errlen, "%s: spool directory path too long", dir);
        return NULL;
    }
    mfl_upload_spool_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    for (size_t i = 0; i < S_MAX_UPLOADS; i++)
        self->up[i].fd = -1;
    return self;
}

static void s_free(s_upload_t *u)
{
    if (u->fd >= 0)
        close(u->fd);
    free(u->u.signed_header);
    free(u->hashes);
    free(u->names);
    free(u->counts);
    free(u->offsets);
    memset(u, 0, sizeof *u);
    u->fd = -1;
}

void mfl_upload_spool_destroy(mfl_upload_spool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    for (size_t i = 0; i < S_MAX_UPLOADS; i++)
        if ((*self_p)->up[i].used)
            s_free(&(*self_p)->up[i]);
    free(*self_p);
    *self_p = NULL;
}

static s_upload_t *s_find(const mfl_upload_spool_t *self, const char *site)
{
    for (size_t i = 0; i < S_MAX_UPLOADS; i++)
        if (self->up[i].used && strcmp(self->up[i].u.site, site) == 0)
            return (s_upload_t *)&self->up[i];
    return NULL;
}

/* An unnamed file in the spool directory (O_TMPFILE), or, where the file
 * system lacks it, a named one unlinked at once. */
static int s_open_file(const mfl_upload_spool_t *self, char *err, size_t errlen)
{
    int fd = open(self->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[4200];
    snprintf(path, sizeof path, "%s/.upload-XXXXXX", self->dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot create an upload spool file: %s", self->dir,
                 strerror(errno));
        return -1;
    }
    unlink(path);
    return fd;
}

static int s_fail(mfl_reject_t *reason, mfl_reject_t why)
{
    if (reason)
        *reason = why;
    return -1;
}

int mfl_upload_spool_begin(mfl_upload_spool_t *self, const char *site,
                           const mfl_update_header_t *h, const uint8_t *signed_header,
                           size_t signed_header_len, const uint8_t *signature,
                           size_t signature_len, const uint8_t *chunk_hashes, size_t n_chunks,
                           const mfl_tensor_t *layout, size_t n_tensors, uint32_t encoding,
                           mfl_reject_t *reason, char *err, size_t errlen)
{
    mfl_upload_spool_drop(self, site);
    uint64_t cv = h->chunk_values;
    if (strlen(site) > MFL_TASK_SITE_MAX || signature_len > 64)
        return mfl_errf(err, errlen, "bad site or signature"), s_fail(reason, MFL_REJECT_BAD_MESSAGE);
    if (cv < MFL_CHUNK_VALUES_MIN || cv > MFL_CHUNK_VALUES_MAX)
        return mfl_errf(err, errlen, "chunks of %llu values (allowed %u to %u)",
                        (unsigned long long)cv, MFL_CHUNK_VALUES_MIN, MFL_CHUNK_VALUES_MAX),
               s_fail(reason, MFL_REJECT_CHUNK);
    if (n_tensors > MFL_UPDATE_MAX_TENSORS || h->n_tensor_hashes != n_tensors ||
        h->digest_error[0])
        return mfl_errf(err, errlen, "the header signs %zu tensor hashes, the model has %zu",
                        h->n_tensor_hashes, n_tensors),
               s_fail(reason, MFL_REJECT_HASH);
    uint64_t want = 0;
    for (size_t i = 0; i < n_tensors; i++)
        want += mfl_chunk_count(layout[i].count, cv);
    if (want != n_chunks)
        return mfl_errf(err, errlen, "%zu chunk hashes announced; the model in chunks of %llu "
                        "values makes %llu", n_chunks, (unsigned long long)cv,
                        (unsigned long long)want),
               s_fail(reason, MFL_REJECT_CHUNK);
    /* The chunk hashes against the signature: grouped by tensor, each
     * group hashes to the signed tensor hash, and those to the signed
     * digest (the plain header keeps the digest, task.h). */
    uint8_t *tensor_hashes = malloc((n_tensors ? n_tensors : 1) * MFL_TASK_HASH_BYTES);
    if (!tensor_hashes)
        return mfl_errf(err, errlen, "out of memory"), s_fail(reason, MFL_REJECT_TOO_LARGE);
    size_t at = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        size_t k = (size_t)mfl_chunk_count(layout[i].count, cv);
        mfl_chunk_tensor_hash(chunk_hashes + at * MFL_TASK_HASH_BYTES, k,
                              tensor_hashes + i * MFL_TASK_HASH_BYTES);
        at += k;
    }
    uint8_t digest[MFL_TASK_HASH_BYTES];
    mfl_update_digest(tensor_hashes, n_tensors, digest);
    free(tensor_hashes);
    if (sodium_memcmp(digest, h->digest, sizeof digest) != 0)
        return mfl_errf(err, errlen, "the %zu chunk hashes do not give the signed tensor hashes",
                        n_chunks),
               s_fail(reason, MFL_REJECT_HASH);
    s_upload_t *u = NULL;
    for (size_t i = 0; i < S_MAX_UPLOADS && !u; i++)
        if (!self->up[i].used)
            u = &self->up[i];
    if (!u)
        return mfl_errf(err, errlen, "%d uploads in progress already", S_MAX_UPLOADS),
               s_fail(reason, MFL_REJECT_TOO_LARGE);
    memset(u, 0, sizeof *u);
    u->fd = -1;
    u->hashes = malloc(n_chunks ? n_chunks * MFL_TASK_HASH_BYTES : 1);
    u->u.signed_header = malloc(signed_header_len ? signed_header_len : 1);
    u->names = calloc(n_tensors ? n_tensors : 1, sizeof *u->names);
    u->counts = calloc(n_tensors ? n_tensors : 1, sizeof *u->counts);
    u->offsets = calloc(n_tensors ? n_tensors : 1, sizeof *u->offsets);
    if (!u->hashes || !u->u.signed_header || !u->names || !u->counts || !u->offsets) {
        s_free(u);
        return mfl_errf(err, errlen, "out of memory"), s_fail(reason, MFL_REJECT_TOO_LARGE);
    }
    u->fd = s_open_file(self, err, errlen);
    if (u->fd < 0) {
        s_free(u);
        return s_fail(reason, MFL_REJECT_TOO_LARGE);
    }
    u->used = true;
    snprintf(u->u.site, sizeof u->u.site, "%s", site);
    u->u.header = *h;
    memcpy(u->u.signed_header, signed_header, signed_header_len);
    u->u.signed_header_len = signed_header_len;
    memcpy(u->u.signature, signature, signature_len);
    u->u.signature_len = signature_len;
    u->u.n_chunks = n_chunks;
    memcpy(u->hashes, chunk_hashes, n_chunks * MFL_TASK_HASH_BYTES);
    u->chunk_values = cv;
    u->encoding = encoding;
    u->n_tensors = n_tensors;
    uint64_t off = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        snprintf(u->names[i], sizeof u->names[i], "%s", layout[i].name ? layout[i].name : "");
        u->counts[i] = layout[i].count;
        u->offsets[i] = off;
        off += layout[i].count;
    }
    u->n_values = off;
    /* chunk 0 starts at the first non-empty tensor */
    while (u->cur_tensor < n_tensors && u->counts[u->cur_tensor] == 0)
        u->cur_tensor++;
    u->complete = n_chunks == 0;
    return 0;
}

static int s_chunk_fail(s_upload_t *u, const mfl_spooled_update_t **failed, mfl_reject_t *reason,
                        mfl_reject_t why)
{
    u->failed = true;
    if (u->fd >= 0) { /* give the disk back now; the record needs only the header */
        close(u->fd);
        u->fd = -1;
    }
    if (failed)
        *failed = &u->u;
    return s_fail(reason, why);
}

/* Writes n floats at flat offset `at`. 0 or -1 (err). */
static int s_write(s_upload_t *u, uint64_t at, const float *v, size_t n, char *err,
                   size_t errlen)
{
    const uint8_t *p = (const uint8_t *)v;
    size_t left = n * sizeof(float);
    off_t pos = (off_t)(at * sizeof(float));
    while (left) {
        ssize_t w = pwrite(u->fd, p, left, pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            mfl_errf(err, errlen, "writing the upload spool: %s",
                     w < 0 ? strerror(errno) : "no progress");
            return -1;
        }
        p += w;
        pos += w;
        left -= (size_t)w;
    }
    u->written += n * sizeof(float);
    return 0;
}

int mfl_upload_spool_chunk(mfl_upload_spool_t *self, const char *site, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, uint64_t index,
                           const mfl_tensor_t *chunk, const mfl_spooled_update_t **failed,
                           mfl_reject_t *reason, char *err, size_t errlen)
{
    if (failed)
        *failed = NULL;
    s_upload_t *u = s_find(self, site);
    if (!u)
        return mfl_errf(err, errlen, "chunk %llu: no chunked upload is open (send UpdateBegin "
                        "first)", (unsigned long long)index),
               s_fail(reason, MFL_REJECT_CHUNK);
    const mfl_update_header_t *h = &u->u.header;
    bool same = round == h->round && nonce_len == h->nonce_len &&
                sodium_memcmp(nonce, h->nonce, nonce_len) == 0;
    if (u->failed && same)
        return 2;
    if (!same)
        return mfl_errf(err, errlen, "chunk %llu is for round %u or another attempt; the "
                        "upload open is for round %u", (unsigned long long)index, round,
                        h->round),
               s_fail(reason, MFL_REJECT_CHUNK);
    if (u->complete || u->failed)
        return mfl_errf(err, errlen, "chunk %llu after the upload's %llu chunks were all in",
                        (unsigned long long)index, (unsigned long long)u->u.n_chunks),
               s_fail(reason, MFL_REJECT_CHUNK);
    if (index != u->u.next) {
        mfl_errf(err, errlen, index < u->u.next ? "chunk %llu again (a duplicate; %llu taken)"
                                                : "chunk %llu out of order (chunk %llu expected)",
                 (unsigned long long)index, (unsigned long long)u->u.next);
        return s_chunk_fail(u, failed, reason, MFL_REJECT_CHUNK);
    }
    size_t t = u->cur_tensor;
    uint64_t n = u->counts[t] - u->cur_off;
    if (n > u->chunk_values)
        n = u->chunk_values;
    const char *name = chunk->name ? chunk->name : "";
    if (strcmp(name, u->names[t]) != 0 || chunk->count != n || chunk->ndim != 1 ||
        chunk->encoding != u->encoding) {
        mfl_errf(err, errlen, "chunk %llu is '%s', %llu values, encoding %u; expected '%s', "
                 "%llu values, encoding %u", (unsigned long long)index, name,
                 (unsigned long long)chunk->count, chunk->encoding, u->names[t],
                 (unsigned long long)n, u->encoding);
        return s_chunk_fail(u, failed, reason, MFL_REJECT_CHUNK);
    }
    if (!chunk->blake2b ||
        sodium_memcmp(chunk->blake2b, u->hashes + index * MFL_TASK_HASH_BYTES,
                      MFL_TASK_HASH_BYTES) != 0) {
        mfl_errf(err, errlen, "chunk %llu ('%s') differs from its signed hash",
                 (unsigned long long)index, name);
        return s_chunk_fail(u, failed, reason, MFL_REJECT_HASH);
    }
    mfl_tensor_piece_t one;
    size_t nr;
    const mfl_tensor_piece_t *r = mfl_tensor_pieces(chunk, &one, &nr);
    uint64_t at = u->offsets[t] + u->cur_off;
    for (size_t k = 0; k < nr; at += r[k].count, k++)
        if (s_write(u, at, r[k].data, (size_t)r[k].count, err, errlen) < 0)
            return s_chunk_fail(u, failed, reason, MFL_REJECT_TOO_LARGE);
    u->u.next++;
    u->cur_off += n;
    while (u->cur_tensor < u->n_tensors && u->cur_off >= u->counts[u->cur_tensor]) {
        u->cur_tensor++;
        u->cur_off = 0;
    }
    if (u->u.next == u->u.n_chunks) {
        u->complete = true;
        return 1;
    }
    return 0;
}

const mfl_spooled_update_t *mfl_upload_spool_get(const mfl_upload_spool_t *self,
                                                 const char *site)
{
    s_upload_t *u = s_find(self, site);
    return u ? &u->u : NULL;
}

bool mfl_upload_spool_failed(const mfl_upload_spool_t *self, const char *site)
{
    s_upload_t *u = s_find(self, site);
    return u && u->failed;
}

void *mfl_upload_spool_reader(mfl_upload_spool_t *self, const char *site)
{
    s_upload_t *u = s_find(self, site);
    return u && u->complete ? u : NULL;
}

int mfl_upload_spool_read(void *ctx, size_t offset, float *out, size_t n, char *err,
                          size_t errlen)
{
    s_upload_t *u = ctx;
    if (!u || u->fd < 0 || offset > u->n_values || n > u->n_values - offset) {
        mfl_errf(err, errlen, "read of values [%zu, +%zu) outside the spooled update", offset,
                 n);
        return -1;
    }
    uint8_t *p = (uint8_t *)out;
    size_t left = n * sizeof(float);
    off_t pos = (off_t)(offset * sizeof(float));
    while (left) {
        ssize_t r = pread(u->fd, p, left, pos);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            mfl_errf(err, errlen, "reading the upload spool: %s",
                     r < 0 ? strerror(errno) : "short file");
            return -1;
        }
        p += r;
        pos += r;
        left -= (size_t)r;
    }
    return 0;
}

bool mfl_upload_spool_drop(mfl_upload_spool_t *self, const char *site)
{
    s_upload_t *u = s_find(self, site);
    if (!u)
        return false;
    bool cut = !u->complete && !u->failed;
    s_free(u);
    return cut;
}

void mfl_upload_spool_prune(mfl_upload_spool_t *self, uint32_t round, const uint8_t *nonce,
                            size_t nonce_len, mfl_upload_spool_cut_fn *cut, void *ctx)
{
    for (size_t i = 0; i < S_MAX_UPLOADS; i++) {
        s_upload_t *u = &self->up[i];
        if (!u->used)
            continue;
        const mfl_update_header_t *h = &u->u.header;
        bool keep = nonce && round == h->round && nonce_len == h->nonce_len &&
                    sodium_memcmp(nonce, h->nonce, nonce_len) == 0;
        if (keep)
            continue;
        if (cut && !u->complete && !u->failed)
            cut(ctx, &u->u);
        s_free(u);
    }
}

size_t mfl_upload_spool_count(const mfl_upload_spool_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < S_MAX_UPLOADS; i++)
        n += self->up[i].used;
    return n;
}

uint64_t mfl_upload_spool_bytes(const mfl_upload_spool_t *self)
{
    uint64_t n = 0;
    for (size_t i = 0; i < S_MAX_UPLOADS; i++)
        if (self->up[i].used)
            n += self->up[i].written;
    return n;
}
