/* A site's chunked upload. See chunk_upload.h. */
#include "wire/chunk_upload.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fed/quant.h"
#include "wire/message.h"
#include "wire/task.h"

struct mfl_chunk_upload {
    bool active;
    uint32_t round;
    uint8_t nonce[MFL_TASK_NONCE_MAX];
    size_t nonce_len;
    const mfl_tensor_t *tensors;
    size_t n_tensors;
    uint64_t chunk_values;
    const uint8_t *hashes;
    size_t n_chunks;
    size_t next, sent;       /* next chunk index to send; chunks sent so far */
    mfl_chunk_fault_t fault;
    atomic_int in_flight;    /* chunks ZeroMQ still reads */
    /* Buffers handed over (mfl_chunk_upload_adopt) while chunks still read
     * them: freed by whichever thread sees in_flight reach 0. */
    pthread_mutex_t lock;
    struct s_kept *kept;
};

struct s_kept {
    struct s_kept *next;
    void *buf;
};

/* Frees the adopted buffers (any thread; called when nothing is in flight). */
static void s_free_kept(mfl_chunk_upload_t *self)
{
    pthread_mutex_lock(&self->lock);
    struct s_kept *k = self->kept;
    self->kept = NULL;
    pthread_mutex_unlock(&self->lock);
    while (k) {
        struct s_kept *next = k->next;
        free(k->buf);
        free(k);
        k = next;
    }
}

/* ZeroMQ no longer reads one chunk (any thread, usually its I/O thread). */
static void s_release(void *hint)
{
    mfl_chunk_upload_t *self = hint;
    if (atomic_fetch_sub(&self->in_flight, 1) == 1)
        s_free_kept(self);
}

/* A chunk the test faults change: a copy, freed by s_release_copy. */
typedef struct {
    mfl_chunk_upload_t *owner;
    _Alignas(16) unsigned char bytes[];
} s_copy_t;

static void s_release_copy(void *hint)
{
    s_copy_t *c = hint;
    mfl_chunk_upload_t *owner = c->owner;
    free(c);
    s_release(owner);
}

mfl_chunk_upload_t *mfl_chunk_upload_new(void)
{
    mfl_chunk_upload_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    atomic_init(&self->in_flight, 0);
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

void mfl_chunk_upload_destroy(mfl_chunk_upload_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_chunk_upload_t *self = *self_p;
    s_free_kept(self); /* the client is gone: nothing reads them */
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

int mfl_chunk_upload_in_flight(const mfl_chunk_upload_t *self)
{
    return self ? atomic_load(&((mfl_chunk_upload_t *)self)->in_flight) : 0;
}

int mfl_chunk_upload_adopt(mfl_chunk_upload_t *self, void *buf)
{
    if (!buf)
        return 0;
    struct s_kept *k = malloc(sizeof *k);
    if (!k)
        return -1;
    k->buf = buf;
    pthread_mutex_lock(&self->lock);
    k->next = self->kept;
    self->kept = k;
    pthread_mutex_unlock(&self->lock);
    /* the last chunk may have gone before the buffer was in the list */
    if (atomic_load(&self->in_flight) == 0)
        s_free_kept(self);
    return 0;
}

bool mfl_chunk_upload_active(const mfl_chunk_upload_t *self) { return self && self->active; }
uint32_t mfl_chunk_upload_round(const mfl_chunk_upload_t *self) { return self->round; }
void mfl_chunk_upload_stop(mfl_chunk_upload_t *self) { self->active = false; }

static size_t s_elem(uint32_t encoding)
{
    return encoding ? mfl_quant_bytes((mfl_quant_kind_t)encoding, 1) : sizeof(float);
}

int mfl_chunk_upload_start(mfl_chunk_upload_t *self, mfl_client_t *client, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, const uint8_t *header,
                           size_t header_len, const uint8_t *signature, size_t signature_len,
                           const mfl_tensor_t *tensors, size_t n_tensors, uint64_t chunk_values,
                           const uint8_t *chunk_hashes, size_t n_chunks,
                           mfl_chunk_fault_t fault, char *err, size_t errlen)
{
    self->active = false;
    if (nonce_len > sizeof self->nonce || !chunk_values || n_chunks > MFL_CHUNKS_MAX)
        return mfl_errf(err, errlen, "bad chunked upload (nonce %zu bytes, %zu chunks)",
                        nonce_len, n_chunks), -1;
    ProtobufCBinaryData *list = calloc(n_chunks ? n_chunks : 1, sizeof *list);
    uint8_t *bad = NULL;
    if (!list)
        return mfl_errf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < n_chunks; i++)
        list[i] = (ProtobufCBinaryData){MFL_HASH_BYTES, (uint8_t *)chunk_hashes + 32 * i};
    if (fault == MFL_CHUNK_FAULT_BAD_LIST && n_chunks && (bad = malloc(32))) {
        memcpy(bad, chunk_hashes, 32);
        bad[0] ^= 1;
        list[0].data = bad;
    }
    Metafl__Update upd = METAFL__UPDATE__INIT;
    upd.header = (ProtobufCBinaryData){header_len, (uint8_t *)header};
    upd.signature = (ProtobufCBinaryData){signature_len, (uint8_t *)signature};
    Metafl__UpdateBegin ub = METAFL__UPDATE_BEGIN__INIT;
    ub.update = &upd;
    ub.n_chunk_hashes = n_chunks;
    ub.chunk_hashes = list;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__UPDATE_BEGIN;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE_BEGIN;
    env.update_begin = &ub;
    int rc = mfl_client_send(client, &env, NULL, 0, NULL, NULL, err, errlen);
    free(list);
    free(bad);
    if (rc)
        return -1;
    self->round = round;
    memcpy(self->nonce, nonce, nonce_len);
    self->nonce_len = nonce_len;
    self->tensors = tensors;
    self->n_tensors = n_tensors;
    self->chunk_values = chunk_values;
    self->hashes = chunk_hashes;
    self->n_chunks = n_chunks;
    self->next = 0;
    self->sent = 0;
    self->fault = fault;
    self->active = true;
    return 0;
}

/* Chunk `index`: its tensor, first value and value count. */
static void s_locate(const mfl_chunk_upload_t *self, size_t index, size_t *t, uint64_t *off,
                     uint64_t *n)
{
    size_t at = 0;
    for (size_t i = 0; i < self->n_tensors; i++) {
        uint64_t k = mfl_chunk_count(self->tensors[i].count, self->chunk_values);
        if (index < at + k) {
            *t = i;
            *off = (index - at) * self->chunk_values;
            uint64_t left = self->tensors[i].count - *off;
            *n = left < self->chunk_values ? left : self->chunk_values;
            return;
        }
        at += (size_t)k;
    }
    *t = self->n_tensors;
    *off = *n = 0;
}

/* Sends chunk `index`: zero-copy from the caller's bytes (ZeroMQ reads
 * them until s_release), or a changed copy for the test faults. 0 or -1
 * (err). */
static int s_send_chunk(mfl_chunk_upload_t *self, mfl_client_t *client, size_t index,
                        char *err, size_t errlen)
{
    size_t t;
    uint64_t off, n;
    s_locate(self, index, &t, &off, &n);
    if (t >= self->n_tensors)
        return mfl_errf(err, errlen, "chunk %zu is past the update", index), -1;
    const mfl_tensor_t *src = &self->tensors[t];
    size_t elem = s_elem(src->encoding);
    const uint8_t *from = (const uint8_t *)(const void *)src->data + (size_t)off * elem;
    uint64_t values = n;
    /* (tests only) one value more than announced, read past this chunk:
     * the next tensor's first value when this one ends here */
    if (self->fault == MFL_CHUNK_FAULT_OVERSIZE && index == 0)
        values++;
    bool tamper = self->fault == MFL_CHUNK_FAULT_BAD_HASH && index == 1;
    const unsigned char *bytes_out = from;
    mfl_release_fn *release = s_release;
    void *hint = self;
    if (tamper || values != n) { /* (tests only) bytes that differ from Δ: a copy */
        size_t bytes = (size_t)values * elem;
        s_copy_t *c = malloc(sizeof *c + (bytes ? bytes : 1));
        if (!c)
            return mfl_errf(err, errlen, "out of memory for a chunk"), -1;
        c->owner = self;
        memcpy(c->bytes, from, (size_t)n * elem);
        if (values > n) { /* the oversize fault's extra value */
            const mfl_tensor_t *nx = t + 1 < self->n_tensors ? &self->tensors[t + 1] : src;
            memcpy(c->bytes + (size_t)n * elem, nx->data, elem);
        }
        if (tamper && bytes) /* still finite: flip the lowest bit of the first value */
            c->bytes[0] ^= 1;
        bytes_out = c->bytes;
        release = s_release_copy;
        hint = c;
    }
    Metafl__UpdateChunk uc = METAFL__UPDATE_CHUNK__INIT;
    uc.round = self->round;
    uc.nonce = (ProtobufCBinaryData){self->nonce_len, self->nonce};
    uc.index = (uint32_t)index;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__UPDATE_CHUNK;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE_CHUNK;
    env.update_chunk = &uc;
    mfl_tensor_t view = mfl_tensor_vec(src->name, (const float *)(const void *)bytes_out, values);
    view.encoding = src->encoding;
    view.scale = src->scale;
    /* the hash the header commits to (the wire checks it against the bytes
     * on arrival); the faults that change the bytes or size let the wire
     * hash what is sent, so only the signed list can catch them */
    view.blake2b = tamper || values != n ? NULL : self->hashes + 32 * index;
    atomic_fetch_add(&self->in_flight, 1);
    /* release runs even when the send fails (mfl_msg_send) */
    return mfl_client_send(client, &env, &view, 1, release, hint, err, errlen);
}

int mfl_chunk_upload_pump(mfl_chunk_upload_t *self, mfl_client_t *client, char *err,
                          size_t errlen)
{
    if (!self->active)
        return 0;
    for (;;) {
        if (self->fault == MFL_CHUNK_FAULT_SKIP && self->next == 1 && self->n_chunks > 2)
            self->next = 2;
        if (self->fault == MFL_CHUNK_FAULT_STALL && self->next >= self->n_chunks / 2 &&
            self->n_chunks > 1)
            return 0; /* (tests only) hold the rest back for ever */
        if (self->next >= self->n_chunks) {
            self->active = false;
            return 1;
        }
        if (atomic_load(&self->in_flight) >= MFL_CHUNK_WINDOW)
            return 0;
        size_t index = self->next;
        if (self->fault == MFL_CHUNK_FAULT_REORDER && self->n_chunks > 2 && (index == 1 || index == 2))
            index = 3 - index; /* 0, 2, 1, 3, ... */
        if (self->fault == MFL_CHUNK_FAULT_DUPLICATE && self->next == 1 && self->sent == 1)
            index = 0; /* 0, 0, ... */
        else
            self->next++;
        if (s_send_chunk(self, client, index, err, errlen) < 0) {
            self->active = false;
            return -1;
        }
        self->sent++;
    }
}
