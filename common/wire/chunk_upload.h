/* The site's side of a chunked upload (docs/WIRE.md "Chunked uploads"):
 * an UpdateBegin (the signed update and its chunk hashes), then each
 * tensor's bytes as UpdateChunk messages of chunk_values values, at most
 * MFL_CHUNK_WINDOW of them queued in ZeroMQ at a time. Each chunk is sent
 * zero-copy from the caller's bytes (ZeroMQ reads them until it has
 * encrypted the chunk), so the update is never copied and the site holds
 * no send buffer.
 *
 * The caller drives it: start, then pump from its loop until it says
 * done. The tensors' bytes must stay valid and unchanged while any chunk
 * is in flight (mfl_chunk_upload_in_flight), which lasts past done and
 * stop: a caller that needs the buffer before then hands it over with
 * mfl_chunk_upload_adopt and uses a fresh one. Not thread-safe: the
 * agent's thread (the release of a chunk runs on ZeroMQ's). */
#ifndef MFL_WIRE_CHUNK_UPLOAD_H
#define MFL_WIRE_CHUNK_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"
#include "wire/client.h"

/* Chunks queued in ZeroMQ at once: bytes of the caller's buffer, not
 * copies, so the window only bounds ZeroMQ's queue (its send high-water
 * mark is 1000 messages) and how often the caller must pump. */
#define MFL_CHUNK_WINDOW 64

/* TESTS ONLY (tests/hostile/chunk_fault_site.c): how to misbehave. */
typedef enum {
    MFL_CHUNK_FAULT_NONE = 0,
    MFL_CHUNK_FAULT_REORDER,   /* send chunk 2 before chunk 1 */
    MFL_CHUNK_FAULT_DUPLICATE, /* send chunk 0 twice */
    MFL_CHUNK_FAULT_BAD_HASH,  /* chunk 1's bytes changed (its header hash matches them) */
    MFL_CHUNK_FAULT_SKIP,      /* never send chunk 1 */
    MFL_CHUNK_FAULT_OVERSIZE,  /* chunk 0 one value longer than announced */
    MFL_CHUNK_FAULT_BAD_LIST,  /* one chunk hash in the UpdateBegin list changed */
    MFL_CHUNK_FAULT_STALL,     /* stop after half the chunks (stay connected) */
} mfl_chunk_fault_t;

typedef struct mfl_chunk_upload mfl_chunk_upload_t;

mfl_chunk_upload_t *mfl_chunk_upload_new(void);
/* Frees (and any adopted buffer); destroy the client first (its release
 * callbacks touch this object until every queued chunk is gone). Accepts
 * NULL. */
void mfl_chunk_upload_destroy(mfl_chunk_upload_t **self_p);

/* Sends the UpdateBegin for the signed update (header, signature) of
 * (round, nonce) and prepares the chunks: tensors[i] gives name, count,
 * encoding, scale and `data` = the bytes as they travel (float32 or
 * encoded); chunk_hashes are the n_chunks hashes the header commits to.
 * Everything is borrowed; tensors' bytes until done or stop. 0, or -1
 * with err (nothing in flight then). */
int mfl_chunk_upload_start(mfl_chunk_upload_t *self, mfl_client_t *client, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, const uint8_t *header,
                           size_t header_len, const uint8_t *signature, size_t signature_len,
                           const mfl_tensor_t *tensors, size_t n_tensors, uint64_t chunk_values,
                           const uint8_t *chunk_hashes, size_t n_chunks,
                           mfl_chunk_fault_t fault, char *err, size_t errlen);

/* Queues chunks while fewer than MFL_CHUNK_WINDOW are in flight. Returns
 * 1 when the last chunk was queued (the upload is done), 0 when more
 * remain (call again soon), -1 on a send failure (err; the upload is
 * stopped). Not active: 0. */
int mfl_chunk_upload_pump(mfl_chunk_upload_t *self, mfl_client_t *client, char *err,
                          size_t errlen);

bool mfl_chunk_upload_active(const mfl_chunk_upload_t *self);
/* The round of the upload (active or last). */
uint32_t mfl_chunk_upload_round(const mfl_chunk_upload_t *self);
/* Stops sending (chunks already queued still go, reading the bytes). */
void mfl_chunk_upload_stop(mfl_chunk_upload_t *self);

/* Chunks ZeroMQ has not released yet (they still read the bytes given to
 * start); 0 for NULL. Any thread. */
int mfl_chunk_upload_in_flight(const mfl_chunk_upload_t *self);

/* Takes buf (malloc'd; NULL is ignored) that chunks in flight may still
 * read: freed once none is in flight (at once if none is), or by destroy.
 * 0, or -1 out of memory (buf still the caller's). */
int mfl_chunk_upload_adopt(mfl_chunk_upload_t *self, void *buf);

#endif
