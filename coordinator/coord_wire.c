/* The coordinator's transport adapter over wire/server.h (see coord_wire.h). */
#include "coord_wire.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/bigmem.h"
#include "core/clock.h"
#include "core/log.h"
#include "fed/quant.h"
#include "wire/keys.h"
#include "round/upload_gate.h"
#include "wire/secagg_codec.h"
#include "wire/server.h"
#include "wire/task_codec.h"

/* A small update granted without a slot costs what one broadcast frame
 * costs per connection: the two sizes are one decision. */
_Static_assert(MFL_UPLOAD_GATE_SMALL_BYTES == MFL_WIRE_BROADCAST_CHUNK_BYTES &&
                   MFL_UPLOAD_GATE_SMALL_BYTES == MFL_WIRE_UNGRANTED_UPDATE_BYTES,
               "small-update threshold and broadcast frame size must agree");

/* θ as sent in one round: one copy per round and the engine's BLAKE2b of
 * each tensor (not one hash per site, nor one of the wire's own), sent to every site without further copies or hashes.
 * Hashing θ again for each site's TensorHeaders cost one 4 MB BLAKE2b per
 * site on the coordinator's thread before that site's send (about 5-15 ms
 * each for 1M parameters here), serialising the broadcast.
 * Reference-counted because ZeroMQ's I/O threads release each send whenever
 * they are done with it, possibly after θ has moved on (a queued send to a
 * slow or dead site). */
typedef struct {
    float *data;
    uint64_t count;
    uint8_t hash[32];     /* of all of θ (the engine's key) */
    uint8_t *tensor_hash; /* n_tensors × MFL_HASH_BYTES, as TensorHeader.blake2b */
    size_t n_tensors;
    atomic_int refs;
} s_snapshot_t;

static void s_snapshot_unref(void *hint)
{
    s_snapshot_t *snap = hint;
    if (snap && atomic_fetch_sub(&snap->refs, 1) == 1) {
        free(snap->tensor_hash);
        free(snap->data);
        free(snap);
    }
}

/* A snapshot being prepared ahead of its first send (copied, hashing on a
 * helper thread); adopted by the first send whose θ equals it. */
typedef struct {
    s_snapshot_t *snap;          /* NULL: nothing pending */
    pthread_t thread;
    int running;
    uint64_t *counts;            /* per tensor, for the helper */
} s_prep_t;

/* The hashes of the last snapshot dropped after its broadcast, so that a
 * send of the same θ later in the round (a late or reconnected site, the
 * final evaluation) copies θ again but does not hash it again. */
typedef struct {
    uint8_t hash[32];     /* θ's key (all zero: nothing kept) */
    uint8_t *tensor_hash; /* n_tensors × MFL_HASH_BYTES */
    size_t n_tensors;
    uint64_t count;
} s_hash_cache_t;

struct mfl_coord_wire {
    s_snapshot_t *snap;          /* the current θ (one reference held here) */
    s_snapshot_t *dsnap;         /* the current compressed broadcast's difference: its
                                    encoded bytes (data is bytes, count the byte count) */
    s_hash_cache_t cache;
    s_prep_t prep;
    mfl_identity_t *identity;
    mfl_server_t *server;
    mfl_msg_t *msg;              /* the current event's message */
    mfl_tensor_t *views;  /* its tensors as engine views */
    mfl_update_header_t header;  /* its UpdateHeader, decoded */
    mfl_eval_report_t report;    /* its EvalReport, decoded */
    size_t cap_views;
    size_t send_cap;             /* mfl_tensor_t scratch for sends */
    mfl_tensor_t *send;
    mfl_secagg_wire_t *secagg;   /* the current event's secure-aggregation message */
    mfl_secagg_env_t *secagg_env; /* scratch for sending one */
    char secagg_err[200];
    mfl_tensor_piece_t secagg_one; /* the masked words when they are one run */
    uint8_t *chunk_hashes;       /* the current UpdateBegin's chunk hashes, contiguous */
    size_t cap_chunk_hashes;
    char chunk_err[160];
    uint64_t log_sec;            /* reject log rate limit: this second, */
    uint64_t log_count, log_quiet; /* lines logged in it, lines held back */
};

#define S_PREP_THREAD_MIN ((uint64_t)1 << 18) /* floats (1 MiB): smaller θ, no helper */
#define S_TRIM_MIN_BYTES ((uint64_t)64 << 20)  /* θ from which the arena is trimmed at a close */

static void *s_prep_main(void *arg)
{
    s_snapshot_t *snap = arg;
    /* counts live after the hashes: see s_prep_start */
    const uint64_t *counts = (const uint64_t *)(void *)(snap->tensor_hash +
                                                        snap->n_tensors * MFL_HASH_BYTES);
    uint64_t off = 0;
    for (size_t i = 0; i < snap->n_tensors; i++) {
        mfl_tensor_hash(snap->data + off, counts[i], snap->tensor_hash + i * MFL_HASH_BYTES);
        off += counts[i];
    }
    return NULL;
}

/* Waits for the helper and drops the pending snapshot (if any). */
static void s_prep_drop(mfl_coord_wire_t *self)
{
    if (self->prep.running)
        pthread_join(self->prep.thread, NULL);
    self->prep.running = 0;
    if (self->prep.snap) {
        free(self->prep.snap->tensor_hash);
        free(self->prep.snap->data);
        free(self->prep.snap);
    }
    self->prep.snap = NULL;
}

void mfl_coord_wire_prepare_theta(mfl_coord_wire_t *self, const mfl_tensor_t *t,
                                  const uint8_t *hashes, size_t n)
{
    s_prep_drop(self);
    /* θ moved on: the old snapshot can serve no later send (they carry the
     * new θ's hash), so it need not live beside the new copy. Sends still
     * queued hold their own references; this only drops the wire's. */
    s_snapshot_unref(self->snap);
    self->snap = NULL;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].count;
    /* A big model: the round's updates arrived in 1 MiB frames that went
     * back to the malloc arena, which keeps them resident (reused by the
     * next round's uploads). Returning them to the kernel before this copy
     * keeps the close's peak at θ, the sums and the copy; the next round
     * faults them in again (a few ms per 400 MB, nothing against such a
     * round; below the threshold the reuse is worth more). */
    if (total * sizeof(float) >= S_TRIM_MIN_BYTES)
        (void)malloc_trim(0);
    s_snapshot_t *snap = calloc(1, sizeof *snap);
    if (!snap)
        return;
    snap->data = malloc((total ? total : 1) * sizeof(float));
    mfl_mem_advise_huge(snap->data, total * sizeof(float));
    /* the hashes, then the per-tensor counts the helper reads */
    snap->tensor_hash = malloc((n ? n : 1) * (MFL_HASH_BYTES + sizeof(uint64_t)));
    if (!snap->data || !snap->tensor_hash) {
        free(snap->data);
        free(snap->tensor_hash);
        free(snap);
        return;
    }
    uint64_t *counts = (uint64_t *)(void *)(snap->tensor_hash + n * MFL_HASH_BYTES);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(snap->data + off, t[i].data, t[i].count * sizeof(float));
        counts[i] = t[i].count;
        off += t[i].count;
    }
    snap->count = total;
    snap->n_tensors = n;
    atomic_init(&snap->refs, 1);
    self->prep.snap = snap;
    if (hashes) { /* the engine's, computed once for the round */
        memcpy(snap->tensor_hash, hashes, n * MFL_HASH_BYTES);
        return;
    }
    /* A small θ is hashed here (tens of µs): on a busy machine a new thread
     * may wait milliseconds for a core, and the round's first send would
     * wait for it (seen: 1.5-2.4 ms at P = 10k, most of the round). */
    self->prep.running = total >= S_PREP_THREAD_MIN &&
                         pthread_create(&self->prep.thread, NULL, s_prep_main, snap) == 0;
    if (!self->prep.running)
        s_prep_main(snap);
}

/* The pending snapshot if it holds exactly θ = `t` (then keyed by `hash`),
 * else NULL; either way nothing is pending afterwards. */
static s_snapshot_t *s_prep_take(mfl_coord_wire_t *self, const uint8_t *hash, size_t hash_len,
                                 const mfl_tensor_t *t, size_t n, uint64_t total)
{
    if (!self->prep.snap)
        return NULL;
    if (self->prep.running)
        pthread_join(self->prep.thread, NULL);
    self->prep.running = 0;
    s_snapshot_t *snap = self->prep.snap;
    bool same = hash_len == 32 && snap->count == total && snap->n_tensors == n;
    uint64_t off = 0;
    /* θ must not have changed since it was copied; comparing (~1 ms for
     * 4 MB) is cheap insurance against broadcasting a stale θ. */
    for (size_t i = 0; same && i < n; i++) {
        same = memcmp(snap->data + off, t[i].data, t[i].count * sizeof(float)) == 0;
        off += t[i].count;
    }
    if (!same) {
        s_prep_drop(self);
        return NULL;
    }
    self->prep.snap = NULL;
    memcpy(snap->hash, hash, 32);
    return snap;
}

/* Once no send holds the snapshot any more (every site it went to has
 * all of θ), it is dropped: during the collection that follows the
 * engine's θ is the only copy (4·P bytes less at the coordinator's peak,
 * docs/PERFORMANCE.md "Large models"). Its hashes are kept for a later
 * send of the same θ. Called on the main thread, the only one that adds
 * references: a count of 1 (ours) cannot grow meanwhile. */
static void s_snapshot_trim(mfl_coord_wire_t *self)
{
    if (self->dsnap && atomic_load(&self->dsnap->refs) == 1) {
        s_snapshot_unref(self->dsnap);
        self->dsnap = NULL;
    }
    s_snapshot_t *snap = self->snap;
    if (!snap || atomic_load(&snap->refs) != 1)
        return;
    uint8_t *h = realloc(self->cache.tensor_hash,
                         (snap->n_tensors ? snap->n_tensors : 1) * MFL_HASH_BYTES);
    if (h) {
        memcpy(h, snap->tensor_hash, snap->n_tensors * MFL_HASH_BYTES);
        memcpy(self->cache.hash, snap->hash, 32);
        self->cache.tensor_hash = h;
        self->cache.n_tensors = snap->n_tensors;
        self->cache.count = snap->count;
    }
    s_snapshot_unref(snap);
    self->snap = NULL;
}

size_t mfl_coord_wire_snapshot_bytes(const mfl_coord_wire_t *self)
{
    size_t b = self->snap ? self->snap->count * sizeof(float) : 0;
    b += self->dsnap ? self->dsnap->count : 0; /* bytes */
    return b + (self->prep.snap ? self->prep.snap->count * sizeof(float) : 0);
}

uint32_t mfl_coord_wire_protocol_version(void) { return MFL_WIRE_PROTOCOL_VERSION; }

#define S_REJECT_LOGS_PER_S 5

static void s_log_reject(mfl_coord_wire_t *self, const char *why)
{
    uint64_t sec = mfl_clock_mono_ms() / 1000;
    if (sec != self->log_sec) {
        if (self->log_quiet)
            mfl_warn("... and %llu more rejected messages in the last second (not logged)",
                     (unsigned long long)self->log_quiet);
        self->log_sec = sec;
        self->log_count = 0;
        self->log_quiet = 0;
    }
    if (self->log_count++ < S_REJECT_LOGS_PER_S)
        mfl_warn("rejected message: %s", why);
    else
        self->log_quiet++;
}

mfl_coord_wire_t *mfl_coord_wire_new(const char *endpoint, const char *key_file,
                                     const char *allow_dir, size_t max_message_bytes,
                                     uint32_t heartbeat_ms, char *err, size_t errlen)
{
    mfl_coord_wire_t *self = calloc(1, sizeof *self);
    if (!self) {
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    self->identity = mfl_identity_load(key_file, err, errlen);
    if (!self->identity)
        goto out_fail;
    mfl_server_opts_t opts;
    mfl_server_opts_default(&opts);
    opts.limits.max_total_bytes = max_message_bytes;
    if (opts.limits.max_frame_bytes > max_message_bytes)
        opts.limits.max_frame_bytes = max_message_bytes;
    (void)heartbeat_ms; /* app-level only now: see mfl_server_opts_t */
    /* Pipelined frames: θ reaches each site encrypted, sent and decrypted
     * frame by frame (see MFL_WIRE_PIPELINE_CHUNK_BYTES), in small frames
     * so N connections hold N small encrypted copies, not N whole θ (see
     * MFL_WIRE_BROADCAST_CHUNK_BYTES). */
    opts.limits.chunk_bytes = MFL_WIRE_BROADCAST_CHUNK_BYTES;
    /* Updates stay in the frames they came in (the engine folds, norms
     * and hashes them run by run): no 4·P contiguous copy per update held
     * (docs/PERFORMANCE.md, "Large models"). */
    opts.limits.pieces = true;
    /* fp16 / int8 updates stay encoded there too: the engine decodes them
     * block by block while it norms and folds (no 4·P float copy per
     * update, nor its page faults: docs/PERFORMANCE.md "Encoded updates
     * folded where they lie"). */
    opts.limits.encoded_runs = true;
    self->server = mfl_server_new(endpoint, self->identity, allow_dir, &opts, err, errlen);
    if (!self->server)
        goto out_fail;
    return self;
out_fail:
    mfl_coord_wire_destroy(&self);
    return NULL;
}

void mfl_coord_wire_destroy(mfl_coord_wire_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_coord_wire_t *self = *self_p;
    mfl_msg_destroy(&self->msg);
    s_prep_drop(self);
    mfl_server_destroy(&self->server); /* releases pending sends first */
    s_snapshot_unref(self->snap);
    s_snapshot_unref(self->dsnap);
    free(self->cache.tensor_hash);
    mfl_identity_destroy(&self->identity);
    free(self->views);
    free(self->send);
    free(self->secagg);
    free(self->secagg_env);
    free(self->chunk_hashes);
    free(self);
    *self_p = NULL;
}

int mfl_coord_wire_reload(mfl_coord_wire_t *self, char *err, size_t errlen)
{
    return mfl_server_reload(self->server, err, errlen);
}

bool mfl_coord_wire_site_allowed(mfl_coord_wire_t *self, const char *site)
{
    return mfl_server_site_allowed(self->server, site);
}

int mfl_coord_wire_drop_site(mfl_coord_wire_t *self, const char *site, const char *why)
{
    return mfl_server_drop_site(self->server, site, why);
}

const char *mfl_coord_wire_endpoint(const mfl_coord_wire_t *self)
{
    return mfl_server_endpoint(self->server);
}

const char *mfl_coord_wire_name(const mfl_coord_wire_t *self)
{
    return mfl_identity_name(self->identity);
}

const uint8_t *mfl_coord_wire_sign_sk(const mfl_coord_wire_t *self)
{
    return mfl_identity_sign_sk(self->identity);
}

uint64_t mfl_coord_wire_last_seen(const mfl_coord_wire_t *self, const char *site)
{
    return mfl_server_last_seen(self->server, site);
}

void mfl_coord_wire_release(mfl_coord_wire_t *self) { mfl_msg_destroy(&self->msg); }

void mfl_coord_wire_release_tensors(mfl_coord_wire_t *self) { mfl_msg_release_tensors(self->msg); }

static const char *s_str(const char *s) { return s ? s : ""; }

/* An UpdateBegin's chunk hashes into one contiguous buffer (bounded:
 * MFL_CHUNKS_MAX entries of exactly 32 bytes), or ev->text saying why not. */
static void s_chunk_hashes(mfl_coord_wire_t *self, const Metafl__UpdateBegin *ub,
                           mfl_wire_event_t *ev)
{
    size_t n = ub->n_chunk_hashes;
    if (n > MFL_CHUNKS_MAX) {
        snprintf(self->chunk_err, sizeof self->chunk_err, "%zu chunk hashes (at most %u)", n,
                 MFL_CHUNKS_MAX);
        ev->text = self->chunk_err;
        return;
    }
    if (n > self->cap_chunk_hashes) {
        uint8_t *b = realloc(self->chunk_hashes, n * MFL_HASH_BYTES);
        if (!b) {
            snprintf(self->chunk_err, sizeof self->chunk_err, "out of memory");
            ev->text = self->chunk_err;
            return;
        }
        self->chunk_hashes = b;
        self->cap_chunk_hashes = n;
    }
    for (size_t i = 0; i < n; i++) {
        if (ub->chunk_hashes[i].len != MFL_HASH_BYTES) {
            snprintf(self->chunk_err, sizeof self->chunk_err,
                     "chunk hash %zu is %zu bytes, not %d", i, ub->chunk_hashes[i].len,
                     MFL_HASH_BYTES);
            ev->text = self->chunk_err;
            return;
        }
        memcpy(self->chunk_hashes + i * MFL_HASH_BYTES, ub->chunk_hashes[i].data,
               MFL_HASH_BYTES);
    }
    ev->chunk_hashes = n ? self->chunk_hashes : (const uint8_t *)"";
    ev->n_chunk_hashes = n;
}

/* The envelope's body as the event's plain fields (the codec decodes the
 * update header and eval report into the adapter's own copies). */
static void s_event_body(mfl_coord_wire_t *self, const Metafl__Envelope *env,
                         mfl_wire_event_t *ev)
{
    char derr[160];
    ev->kind = (mfl_msg_kind_t)env->kind;
    switch (env->body_case) {
    case METAFL__ENVELOPE__BODY_HELLO:
        ev->hello.software_version = s_str(env->hello->software_version);
        ev->hello.n_train = env->hello->n_train;
        ev->hello.schema_hash = env->hello->schema_hash.data;
        ev->hello.schema_hash_len = env->hello->schema_hash.len;
        ev->hello.schema_text = (const char *)env->hello->schema_text.data;
        ev->hello.schema_text_len = env->hello->schema_text.len;
        ev->hello.n_features = env->hello->n_features;
        ev->hello.n_classes = env->hello->n_classes;
        ev->hello.class_counts = env->hello->class_counts;
        ev->hello.n_class_counts = env->hello->n_class_counts;
        ev->hello.encodings = 1u << MFL_QUANT_FP32; /* lossy encodings only as offered */
        for (size_t i = 0; i < env->hello->n_capabilities; i++) {
            const char *cap = env->hello->capabilities[i];
            if (cap && strcmp(cap, "compress:fp16") == 0)
                ev->hello.encodings |= 1u << MFL_QUANT_FP16;
            else if (cap && strcmp(cap, "compress:int8") == 0)
                ev->hello.encodings |= 1u << MFL_QUANT_INT8;
            else if (cap && strcmp(cap, "secagg") == 0)
                ev->hello.secagg = true;
            else if (cap && strcmp(cap, "broadcast:fp16") == 0)
                ev->hello.broadcasts |= 1u << MFL_QUANT_FP16;
            else if (cap && strcmp(cap, "broadcast:int8") == 0)
                ev->hello.broadcasts |= 1u << MFL_QUANT_INT8;
        }
        ev->hello.broadcasts |= 1u << MFL_QUANT_FP32;
        ev->hello.broadcast_base = env->hello->broadcast_base.len == MFL_HASH_BYTES
                                       ? env->hello->broadcast_base.data
                                       : NULL;
        break;
    case METAFL__ENVELOPE__BODY_UPDATE: {
        const Metafl__UpdateHeader *uh = mfl_msg_update_header(self->msg);
        if (uh && mfl_update_header_from_msg(uh, &self->header, derr, sizeof derr) == 0)
            ev->update_header = &self->header;
        else if (uh)
            mfl_warn("site %s: update header: %s", mfl_msg_site(self->msg), derr);
        ev->signed_header = env->update->header.data;
        ev->signed_header_len = env->update->header.len;
        ev->signature = env->update->signature.data;
        ev->signature_len = env->update->signature.len;
        break;
    }
    case METAFL__ENVELOPE__BODY_UPDATE_BEGIN: {
        const Metafl__UpdateHeader *uh = mfl_msg_update_header(self->msg);
        const Metafl__UpdateBegin *ub = env->update_begin;
        if (uh && mfl_update_header_from_msg(uh, &self->header, derr, sizeof derr) == 0)
            ev->update_header = &self->header;
        else if (uh)
            mfl_warn("site %s: update header: %s", mfl_msg_site(self->msg), derr);
        ev->signed_header = ub->update->header.data;
        ev->signed_header_len = ub->update->header.len;
        ev->signature = ub->update->signature.data;
        ev->signature_len = ub->update->signature.len;
        s_chunk_hashes(self, ub, ev);
        break;
    }
    case METAFL__ENVELOPE__BODY_UPDATE_CHUNK:
        ev->chunk.round = env->update_chunk->round;
        ev->chunk.nonce = env->update_chunk->nonce.data;
        ev->chunk.nonce_len = env->update_chunk->nonce.len;
        ev->chunk.index = env->update_chunk->index;
        break;
    case METAFL__ENVELOPE__BODY_UPLOAD_READY:
        ev->upload_ready.round = env->upload_ready->round;
        ev->upload_ready.nonce = env->upload_ready->nonce.data;
        ev->upload_ready.nonce_len = env->upload_ready->nonce.len;
        ev->upload_ready.update_bytes = env->upload_ready->update_bytes;
        break;
    case METAFL__ENVELOPE__BODY_EVAL_REPORT:
        if (mfl_eval_report_from_msg(env->eval_report, &self->report, derr, sizeof derr) == 0)
            ev->eval_report = &self->report;
        else
            mfl_warn("site %s: eval report: %s", mfl_msg_site(self->msg), derr);
        break;
    case METAFL__ENVELOPE__BODY_SITE_FAILURE:
        ev->site_failure.round = env->site_failure->round;
        ev->site_failure.nonce = env->site_failure->nonce.data;
        ev->site_failure.nonce_len = env->site_failure->nonce.len;
        ev->site_failure.evaluation = env->site_failure->evaluation;
        ev->site_failure.reason = s_str(env->site_failure->reason);
        ev->site_failure.need_model = env->site_failure->need_model;
        break;
    case METAFL__ENVELOPE__BODY_BYE:
        ev->text = s_str(env->bye->reason);
        break;
    case METAFL__ENVELOPE__BODY_SECAGG_KEYS:
    case METAFL__ENVELOPE__BODY_SECAGG_SHARES:
    case METAFL__ENVELOPE__BODY_SECAGG_MASKED:
    case METAFL__ENVELOPE__BODY_SECAGG_SIGNOFF:
    case METAFL__ENVELOPE__BODY_SECAGG_REVEALS: {
        mfl_reject_t why;
        if (!self->secagg)
            self->secagg = malloc(sizeof *self->secagg);
        if (!self->secagg) {
            snprintf(self->secagg_err, sizeof self->secagg_err, "out of memory");
            ev->text = self->secagg_err;
        } else if (mfl_secagg_wire_from_envelope(env, self->secagg, &why, self->secagg_err,
                                                 sizeof self->secagg_err) < 0) {
            ev->text = self->secagg_err;
        } else {
            ev->secagg = self->secagg;
            uint64_t count = 0;
            const mfl_tensor_t *t = mfl_msg_tensor(self->msg, 0);
            /* left in their frames (limits.pieces): folded from there */
            ev->secagg_runs = mfl_msg_word_runs(self->msg, 0, &self->secagg_one,
                                                &ev->secagg_n_runs, &ev->secagg_word_bits, &count);
            /* verified on receipt: the engine records it without hashing again */
            ev->secagg_hash = ev->secagg_runs && t ? t->blake2b : NULL;
        }
        break;
    }
    case METAFL__ENVELOPE__BODY_REJECT:
        ev->text = s_str(env->reject->text);
        break;
    default:
        break;
    }
}

int mfl_coord_wire_recv(mfl_coord_wire_t *self, int timeout_ms, mfl_wire_event_t *ev,
                        char *err, size_t errlen)
{
    mfl_msg_destroy(&self->msg);
    s_snapshot_trim(self);
    memset(ev, 0, sizeof *ev);
    int reason = 0;
    char why[512] = "";
    mfl_recv_result_t rc = mfl_server_recv(self->server, timeout_ms, &self->msg, &reason, why,
                                           sizeof why);
    if (rc == MFL_RECV_TIMEOUT)
        return 0;
    if (rc == MFL_RECV_REJECTED) {
        /* The server already answered with a Reject (rate-limited); the
         * log names the peer and the reason (the text starts with "site X:
         * REASON"), at most S_REJECT_LOGS_PER_S lines a second so a
         * hostile site cannot fill the disk through our log. */
        s_log_reject(self, why);
        return 0;
    }
    if (rc != MFL_RECV_OK) {
        mfl_errf(err, errlen, "%s", why);
        return -1;
    }
    size_t n = mfl_msg_tensor_count(self->msg);
    if (n > self->cap_views) {
        mfl_tensor_t *v = realloc(self->views, n * sizeof *v);
        if (!v) {
            mfl_msg_destroy(&self->msg);
            mfl_errf(err, errlen, "out of memory");
            return -1;
        }
        self->views = v;
        self->cap_views = n;
    }
    for (size_t i = 0; i < n; i++)
        self->views[i] = *mfl_msg_tensor(self->msg, i);
    ev->site = mfl_msg_site(self->msg);
    s_event_body(self, mfl_msg_envelope(self->msg), ev);
    ev->tensors = self->views;
    ev->n_tensors = n;
    return 1;
}

/* The snapshot for θ with BLAKE2b `hash` given as `t`: the current one if
 * the hash matches, else a fresh copy (the old one lives on while sends
 * still hold it). NULL on OOM. */
static s_snapshot_t *s_snapshot(mfl_coord_wire_t *self, const uint8_t *hash, size_t hash_len,
                                const mfl_tensor_t *t, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += t[i].count;
    if (self->snap && hash_len == 32 && self->snap->count == total &&
        self->snap->n_tensors == n && memcmp(self->snap->hash, hash, 32) == 0)
        return self->snap;
    s_snapshot_t *ready = s_prep_take(self, hash, hash_len, t, n, total);
    if (ready) {
        s_snapshot_unref(self->snap);
        self->snap = ready;
        return ready;
    }
    s_snapshot_t *snap = calloc(1, sizeof *snap);
    if (!snap)
        return NULL;
    snap->data = malloc((total ? total : 1) * sizeof(float));
    mfl_mem_advise_huge(snap->data, total * sizeof(float));
    snap->tensor_hash = malloc((n ? n : 1) * MFL_HASH_BYTES);
    if (!snap->data || !snap->tensor_hash) {
        free(snap->data);
        free(snap->tensor_hash);
        free(snap);
        return NULL;
    }
    /* θ sent earlier in the round and dropped after that broadcast
     * (s_snapshot_trim): its tensor hashes are still known. */
    bool cached = hash_len == 32 && self->cache.tensor_hash && self->cache.n_tensors == n &&
                  self->cache.count == total && memcmp(self->cache.hash, hash, 32) == 0;
    /* the engine hashed every tensor already (a compressed broadcast's θ̂) */
    bool given = n > 0;
    for (size_t i = 0; i < n; i++)
        given = given && t[i].blake2b;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(snap->data + off, t[i].data, t[i].count * sizeof(float));
        if (given)
            memcpy(snap->tensor_hash + i * MFL_HASH_BYTES, t[i].blake2b, MFL_HASH_BYTES);
        else if (!cached)
            mfl_tensor_hash(snap->data + off, t[i].count,
                            snap->tensor_hash + i * MFL_HASH_BYTES);
        off += t[i].count;
    }
    if (cached && !given)
        memcpy(snap->tensor_hash, self->cache.tensor_hash, n * MFL_HASH_BYTES);
    snap->n_tensors = n;
    snap->count = total;
    if (hash_len == 32)
        memcpy(snap->hash, hash, 32);
    atomic_init(&snap->refs, 1);
    s_snapshot_unref(self->snap);
    self->snap = snap;
    return snap;
}

/* θ's views for sending: each the engine's view (name, ndim and shape as
 * they are: mfl_msg_send refuses a tensor it cannot describe rather than
 * sending a cut shape) with data pointing into `base` (consecutive tensors)
 * or left as is; `hashes` (n × MFL_HASH_BYTES, may be NULL) are the
 * tensors' BLAKE2b, so the wire does not hash them again. */
static mfl_tensor_t *s_tensors(mfl_coord_wire_t *self, const mfl_tensor_t *t, size_t n,
                               const float *base, const uint8_t *hashes)
{
    if (n > self->send_cap) {
        mfl_tensor_t *s = realloc(self->send, n * sizeof *s);
        if (!s)
            return NULL;
        self->send = s;
        self->send_cap = n;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        mfl_tensor_t *w = &self->send[i];
        *w = t[i];
        w->data = base ? base + off : t[i].data;
        w->blake2b = hashes ? hashes + i * MFL_HASH_BYTES : NULL;
        off += t[i].count;
    }
    return self->send;
}

/* A compressed broadcast's difference (tensors encoded, each with its
 * hash, fed/bcast.h): one copy of its bytes per round, keyed by the model
 * hash, shared by every site's send like θ's snapshot. NULL on OOM. */
static s_snapshot_t *s_snapshot_encoded(mfl_coord_wire_t *self, const ProtobufCBinaryData *hash,
                                        const mfl_tensor_t *t, size_t n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += mfl_quant_bytes((mfl_quant_kind_t)t[i].encoding, t[i].count);
    if (self->dsnap && hash->len == 32 && self->dsnap->count == bytes &&
        self->dsnap->n_tensors == n && memcmp(self->dsnap->hash, hash->data, 32) == 0)
        return self->dsnap;
    s_snapshot_t *snap = calloc(1, sizeof *snap);
    if (!snap)
        return NULL;
    snap->data = malloc(((bytes + 3) / 4 ? (bytes + 3) / 4 : 1) * sizeof(float));
    mfl_mem_advise_huge(snap->data, bytes);
    snap->tensor_hash = malloc((n ? n : 1) * MFL_HASH_BYTES);
    if (!snap->data || !snap->tensor_hash) {
        free(snap->data);
        free(snap->tensor_hash);
        free(snap);
        return NULL;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b = mfl_quant_bytes((mfl_quant_kind_t)t[i].encoding, t[i].count);
        memcpy((uint8_t *)snap->data + off, t[i].data, b);
        memcpy(snap->tensor_hash + i * MFL_HASH_BYTES, t[i].blake2b, MFL_HASH_BYTES);
        off += b;
    }
    snap->count = bytes;
    snap->n_tensors = n;
    if (hash->len == 32)
        memcpy(snap->hash, hash->data, 32);
    atomic_init(&snap->refs, 1);
    s_snapshot_unref(self->dsnap);
    self->dsnap = snap;
    return snap;
}

/* Sends env + the difference's tensors zero-copy from its snapshot. */
static int s_send_encoded(mfl_coord_wire_t *self, const char *site, Metafl__Envelope *env,
                          const ProtobufCBinaryData *hash, const mfl_tensor_t *tensors,
                          size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (!tensors[i].blake2b || tensors[i].encoding == MFL_QUANT_FP32 ||
            !mfl_quant_bytes((mfl_quant_kind_t)tensors[i].encoding, 1)) {
            mfl_errf(err, errlen, "broadcast tensor %zu: not an encoded difference", i);
            return -1;
        }
    s_snapshot_t *snap = s_snapshot_encoded(self, hash, tensors, n);
    mfl_tensor_t *t = snap ? s_tensors(self, tensors, n, NULL, snap->tensor_hash) : NULL;
    if (!t) {
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].data = (const float *)(const void *)((const uint8_t *)snap->data + off);
        off += mfl_quant_bytes((mfl_quant_kind_t)tensors[i].encoding, tensors[i].count);
    }
    atomic_fetch_add(&snap->refs, 1); /* released exactly once by the transport */
    return mfl_server_send(self->server, site, env, t, n, s_snapshot_unref, snap, err, errlen);
}

/* Sends env + θ tensors zero-copy from the round's snapshot. */
static int s_send_theta(mfl_coord_wire_t *self, const char *site, Metafl__Envelope *env,
                        const ProtobufCBinaryData *hash, const mfl_tensor_t *tensors,
                        size_t n, char *err, size_t errlen)
{
    env->protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    if (n && tensors[0].encoding != MFL_QUANT_FP32)
        return s_send_encoded(self, site, env, hash, tensors, n, err, errlen);
    s_snapshot_t *snap = s_snapshot(self, hash->data, hash->len, tensors, n);
    mfl_tensor_t *t = snap ? s_tensors(self, tensors, n, snap->data, snap->tensor_hash) : NULL;
    if (!t) {
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    atomic_fetch_add(&snap->refs, 1); /* released exactly once by the transport */
    return mfl_server_send(self->server, site, env, t, n, s_snapshot_unref, snap, err, errlen);
}

static int s_send(mfl_coord_wire_t *self, const char *site, Metafl__Envelope *env, char *err,
                  size_t errlen)
{
    env->protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    return mfl_server_send(self->server, site, env, NULL, 0, NULL, NULL, err, errlen);
}

int mfl_coord_wire_send_round_task(mfl_coord_wire_t *self, const char *site,
                                   const mfl_round_task_t *task,
                                   const mfl_tensor_t *tensors, size_t n_tensors,
                                   char *err, size_t errlen)
{
    mfl_round_task_msg_t m;
    mfl_round_task_to_msg(task, &m);
    Metafl__Envelope env;
    metafl__envelope__init(&env);
    env.kind = METAFL__MESSAGE_KIND__ROUND_TASK;
    env.body_case = METAFL__ENVELOPE__BODY_ROUND_TASK;
    env.round_task = &m.msg;
    return s_send_theta(self, site, &env, &m.msg.model_hash, tensors, n_tensors, err, errlen);
}

int mfl_coord_wire_send_eval_task(mfl_coord_wire_t *self, const char *site,
                                  const mfl_eval_task_t *task,
                                  const mfl_tensor_t *tensors, size_t n_tensors,
                                  char *err, size_t errlen)
{
    mfl_eval_task_msg_t m;
    mfl_eval_task_to_msg(task, &m);
    Metafl__Envelope env;
    metafl__envelope__init(&env);
    env.kind = METAFL__MESSAGE_KIND__EVAL_TASK;
    env.body_case = METAFL__ENVELOPE__BODY_EVAL_TASK;
    env.eval_task = &m.msg;
    return s_send_theta(self, site, &env, &m.msg.model_hash, tensors, n_tensors, err, errlen);
}

int mfl_coord_wire_send_reject(mfl_coord_wire_t *self, const char *site, mfl_reject_t reason, uint32_t round, const char *text,
                               char *err, size_t errlen)
{
    Metafl__Envelope env;
    Metafl__Reject r;
    metafl__envelope__init(&env);
    metafl__reject__init(&r);
    r.reason = (Metafl__RejectReason)reason;
    r.round = round;
    r.text = (char *)text;
    env.kind = METAFL__MESSAGE_KIND__REJECT;
    env.body_case = METAFL__ENVELOPE__BODY_REJECT;
    env.reject = &r;
    return s_send(self, site, &env, err, errlen);
}

int mfl_coord_wire_send_welcome(mfl_coord_wire_t *self, const char *site, uint32_t round,
                                uint32_t heartbeat_ms, const char *run_id, char *err,
                                size_t errlen)
{
    Metafl__Envelope env;
    Metafl__Welcome w;
    metafl__envelope__init(&env);
    metafl__welcome__init(&w);
    w.coordinator = (char *)mfl_identity_name(self->identity);
    w.current_round = round;
    w.heartbeat_ms = heartbeat_ms;
    w.run_id = (char *)run_id;
    env.kind = METAFL__MESSAGE_KIND__WELCOME;
    env.body_case = METAFL__ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    return s_send(self, site, &env, err, errlen);
}

int mfl_coord_wire_send_grant(mfl_coord_wire_t *self, const char *site, uint32_t round,
                              const uint8_t *nonce, size_t nonce_len, char *err, size_t errlen)
{
    Metafl__Envelope env;
    Metafl__UploadGrant g;
    metafl__envelope__init(&env);
    metafl__upload_grant__init(&g);
    g.round = round;
    g.nonce.data = (uint8_t *)nonce;
    g.nonce.len = nonce_len;
    env.kind = METAFL__MESSAGE_KIND__UPLOAD_GRANT;
    env.body_case = METAFL__ENVELOPE__BODY_UPLOAD_GRANT;
    env.upload_grant = &g;
    return s_send(self, site, &env, err, errlen);
}

int mfl_coord_wire_send_secagg(mfl_coord_wire_t *self, const char *site,
                               const mfl_secagg_wire_t *msg, char *err, size_t errlen)
{
    if (!self->secagg_env)
        self->secagg_env = malloc(sizeof *self->secagg_env);
    if (!self->secagg_env)
        return mfl_errf(err, errlen, "out of memory"), -1;
    if (mfl_secagg_wire_to_envelope(msg, self->secagg_env, err, errlen) < 0)
        return -1;
    return s_send(self, site, &self->secagg_env->env, err, errlen);
}

int mfl_coord_wire_site_key(mfl_coord_wire_t *self, const char *site, uint8_t pk[32])
{
    return mfl_server_site_key(self->server, site, pk);
}

int mfl_coord_wire_send_bye(mfl_coord_wire_t *self, const char *site, const char *reason,
                            char *err, size_t errlen)
{
    Metafl__Envelope env;
    Metafl__Bye b;
    metafl__envelope__init(&env);
    metafl__bye__init(&b);
    b.reason = (char *)reason;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &b;
    return s_send(self, site, &env, err, errlen);
}

void mfl_coord_wire_counters(const mfl_coord_wire_t *self, mfl_prom_wire_t *out)
{
    mfl_server_stats_t st = mfl_server_stats(self->server);
    memset(out, 0, sizeof *out);
    out->bytes_in = st.bytes_in;
    out->bytes_out = st.bytes_out;
    for (size_t i = 0; i < MFL_SERVER_REASONS && i < MFL_PROM_REASONS; i++)
        out->rejected_by_reason[i] = st.rejected_by_reason[i];
}
