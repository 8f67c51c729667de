/* The coordinator's spool of chunked uploads (docs/WIRE.md "Chunked
 * uploads"): per site, the upload begun with a signed header and a list of
 * chunk hashes, its chunks checked one by one as they arrive (in order,
 * each against its signed hash, of the right tensor, size and encoding)
 * and written to an unnamed file in the run directory (O_TMPFILE: page
 * cache, not the process's memory; nothing left on disk after a crash).
 * When the last chunk is in, the round engine reads the update back
 * through mfl_upload_spool_read (round_engine.h,
 * mfl_round_engine_update_read) for its norm check and its fold.
 *
 * Nothing here folds or accepts anything: a chunk that fails a check ends
 * its upload (the caller rejects the update), and later chunks of that
 * upload are dropped quietly (one Reject per upload, not one per chunk).
 *
 * Not thread-safe: the coordinator's thread drives it. */
#ifndef MFL_ROUND_UPLOAD_SPOOL_H
#define MFL_ROUND_UPLOAD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "wire/task.h"

typedef struct mfl_upload_spool mfl_upload_spool_t;

/* An upload as begun: the decoded, signature-checked header and the bytes
 * the site signed with its signature (for the audit record). */
typedef struct {
    char site[MFL_TASK_SITE_MAX + 1];
    mfl_update_header_t header;
    uint8_t *signed_header;
    size_t signed_header_len;
    uint8_t signature[64];
    size_t signature_len;
    uint64_t n_chunks, next;      /* chunks announced, and the next expected */
} mfl_spooled_update_t;

/* Spools into `dir` (the run directory; must exist). NULL + err. */
mfl_upload_spool_t *mfl_upload_spool_new(const char *dir, char *err, size_t errlen);
/* Drops every upload and frees; accepts NULL; nulls the pointer. */
void mfl_upload_spool_destroy(mfl_upload_spool_t **self_p);

/* Begins `site`'s upload (any earlier one of the site is dropped). `h` is
 * the verified header (h->chunk_values == chunk_values > 0), `layout` the
 * model's tensors (names and counts; n_tensors ≤ MFL_UPDATE_MAX_TENSORS),
 * `encoding` the one its chunks must be in, chunk_hashes n_chunks × 32
 * bytes. Checks that n_chunks is what the layout makes at chunk_values
 * (REJECT_CHUNK) and that the hashes, grouped by tensor, give the signed
 * tensor hashes (mfl_chunk_tensor_hash; REJECT_HASH). 0, or -1 with
 * *reason and err (nothing kept). All inputs are borrowed for the call. */
int mfl_upload_spool_begin(mfl_upload_spool_t *self, const char *site,
                           const mfl_update_header_t *h, const uint8_t *signed_header,
                           size_t signed_header_len, const uint8_t *signature,
                           size_t signature_len, const uint8_t *chunk_hashes, size_t n_chunks,
                           const mfl_tensor_t *layout, size_t n_tensors, uint32_t encoding,
                           mfl_reject_t *reason, char *err, size_t errlen);

/* Chunk `index` of `site`'s upload for (round, nonce): `chunk` is the
 * wire-checked view (decoded float32 values; blake2b = BLAKE2b-256 of its
 * bytes as sent, which the wire verified; encoding as sent). Returns 1 when
 * it was the last (the upload is complete), 0 when more are expected,
 * 2 when it belongs to an upload that already failed (drop it, say
 * nothing), or -1 with *reason and err: no upload open (REJECT_CHUNK),
 * another round or nonce (REJECT_CHUNK), a chunk again or out of order
 * (REJECT_CHUNK), wrong tensor, size or encoding (REJECT_CHUNK), bytes
 * that differ from the signed hash (REJECT_HASH), or a write error
 * (REJECT_TOO_LARGE). After -1 the upload has failed; *failed (when not
 * NULL) then points at it until the next call (for the audit record). */
int mfl_upload_spool_chunk(mfl_upload_spool_t *self, const char *site, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, uint64_t index,
                           const mfl_tensor_t *chunk, const mfl_spooled_update_t **failed,
                           mfl_reject_t *reason, char *err, size_t errlen);

/* `site`'s upload (in progress, complete or failed), or NULL. */
const mfl_spooled_update_t *mfl_upload_spool_get(const mfl_upload_spool_t *self,
                                                 const char *site);
bool mfl_upload_spool_failed(const mfl_upload_spool_t *self, const char *site);

/* The reader for the engine (round_engine.h mfl_engine_read_fn): ctx is
 * mfl_upload_spool_reader(self, site), valid until that upload is dropped.
 * Reads values [offset, offset + n) of the flat layout. */
void *mfl_upload_spool_reader(mfl_upload_spool_t *self, const char *site);
int mfl_upload_spool_read(void *ctx, size_t offset, float *out, size_t n, char *err,
                          size_t errlen);

/* Drops `site`'s upload (its file is freed). Returns true if it had one
 * that was neither complete nor failed (an upload cut short). */
bool mfl_upload_spool_drop(mfl_upload_spool_t *self, const char *site);

/* Drops every upload not for (round, nonce) (nonce NULL: every upload),
 * calling cut(ctx, upload) first for each that was in progress. */
typedef void(mfl_upload_spool_cut_fn)(void *ctx, const mfl_spooled_update_t *u);
void mfl_upload_spool_prune(mfl_upload_spool_t *self, uint32_t round, const uint8_t *nonce,
                            size_t nonce_len, mfl_upload_spool_cut_fn *cut, void *ctx);

/* Uploads held, and bytes written to their files (for tests and status). */
size_t mfl_upload_spool_count(const mfl_upload_spool_t *self);
uint64_t mfl_upload_spool_bytes(const mfl_upload_spool_t *self);

#endif
