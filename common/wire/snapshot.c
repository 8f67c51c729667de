/* Reference-counted tensor snapshots for zero-copy broadcast. */
#include "wire/snapshot.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

struct mfl_wire_snapshot_t {
    atomic_size_t refs;
    size_t n;
    mfl_tensor_t *tensors;
    char **names;
    float **data;
    uint8_t *hashes;
};

static void s_free(mfl_wire_snapshot_t *self)
{
    for (size_t i = 0; i < self->n; i++) {
        free(self->names[i]);
        free(self->data[i]);
    }
    free(self->names);
    free(self->data);
    free(self->tensors);
    free(self->hashes);
    free(self);
}

mfl_wire_snapshot_t *mfl_wire_snapshot_new(const mfl_tensor_t *tensors, size_t n, char *err,
                                           size_t errlen)
{
    mfl_wire_snapshot_t *self = calloc(1, sizeof *self);
    if (!self)
        goto out_oom;
    size_t m = n ? n : 1;
    self->tensors = calloc(m, sizeof *self->tensors);
    self->names = calloc(m, sizeof *self->names);
    self->data = calloc(m, sizeof *self->data);
    self->hashes = malloc(m * MFL_HASH_BYTES);
    if (!self->tensors || !self->names || !self->data || !self->hashes)
        goto out_oom;
    self->n = n;
    for (size_t i = 0; i < n; i++) {
        const mfl_tensor_t *t = &tensors[i];
        self->names[i] = strdup(t->name ? t->name : "");
        self->data[i] = malloc(t->count ? t->count * sizeof(float) : 1);
        if (!self->names[i] || !self->data[i])
            goto out_oom;
        if (t->count)
            memcpy(self->data[i], t->data, t->count * sizeof(float));
        uint8_t *h = self->hashes + i * MFL_HASH_BYTES;
        mfl_tensor_hash(self->data[i], t->count, h);
        self->tensors[i] = *t;
        self->tensors[i].name = self->names[i];
        self->tensors[i].data = self->data[i];
        self->tensors[i].blake2b = h;
    }
    atomic_init(&self->refs, 1);
    return self;
out_oom:
    mfl_errf(err, errlen, "out of memory copying %zu tensors", n);
    if (self)
        s_free(self);
    return NULL;
}

const mfl_tensor_t *mfl_wire_snapshot_tensors(const mfl_wire_snapshot_t *self, size_t *n)
{
    if (n)
        *n = self->n;
    return self->tensors;
}

mfl_wire_snapshot_t *mfl_wire_snapshot_ref(mfl_wire_snapshot_t *self)
{
    atomic_fetch_add(&self->refs, 1);
    return self;
}

void mfl_wire_snapshot_release(void *snapshot)
{
    mfl_wire_snapshot_t *self = snapshot;
    if (self && atomic_fetch_sub(&self->refs, 1) == 1)
        s_free(self);
}
