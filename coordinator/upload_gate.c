/* Upload slots and the FIFO of sites waiting for one (see upload_gate.h). */
#include "upload_gate.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char id[MFL_UPLOAD_GATE_SITE_MAX];
} s_site_t;

struct mfl_upload_gate {
    uint32_t cap;          /* slots */
    s_site_t *granted;     /* cap entries, n_granted used (unordered) */
    size_t n_granted;
    s_site_t *queue;       /* waiting, oldest first */
    size_t n_queue, cap_queue;
    s_site_t last;         /* what mfl_upload_gate_next returned */
};

mfl_upload_gate_t *mfl_upload_gate_new(uint32_t max_in_flight)
{
    if (max_in_flight == 0)
        return NULL;
    mfl_upload_gate_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = max_in_flight;
    self->granted = calloc(max_in_flight, sizeof *self->granted);
    if (!self->granted) {
        free(self);
        return NULL;
    }
    return self;
}

void mfl_upload_gate_destroy(mfl_upload_gate_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->granted);
    free((*self_p)->queue);
    free(*self_p);
    *self_p = NULL;
}

static long s_find(const s_site_t *v, size_t n, const char *site)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, site) == 0)
            return (long)i;
    return -1;
}

bool mfl_upload_gate_holds(const mfl_upload_gate_t *self, const char *site)
{
    return s_find(self->granted, self->n_granted, site) >= 0;
}

mfl_gate_result_t mfl_upload_gate_request(mfl_upload_gate_t *self, const char *site)
{
    size_t len = strlen(site);
    if (len == 0 || len >= MFL_UPLOAD_GATE_SITE_MAX)
        return MFL_GATE_ERROR;
    if (mfl_upload_gate_holds(self, site))
        return MFL_GATE_GRANTED;
    if (s_find(self->queue, self->n_queue, site) >= 0)
        return MFL_GATE_QUEUED;
    /* Nobody waits while a slot is free (next() runs after every release),
     * so a free slot here may go to this site without jumping the queue. */
    if (self->n_granted < self->cap && self->n_queue == 0) {
        memcpy(self->granted[self->n_granted++].id, site, len + 1);
        return MFL_GATE_GRANTED;
    }
    if (self->n_queue == self->cap_queue) {
        size_t cap = self->cap_queue ? 2 * self->cap_queue : 16;
        s_site_t *q = realloc(self->queue, cap * sizeof *q);
        if (!q)
            return MFL_GATE_ERROR;
        self->queue = q;
        self->cap_queue = cap;
    }
    memcpy(self->queue[self->n_queue++].id, site, len + 1);
    return MFL_GATE_QUEUED;
}

bool mfl_upload_gate_release(mfl_upload_gate_t *self, const char *site)
{
    long i = s_find(self->granted, self->n_granted, site);
    if (i >= 0) {
        self->granted[i] = self->granted[--self->n_granted];
        return true;
    }
    i = s_find(self->queue, self->n_queue, site);
    if (i >= 0) {
        memmove(&self->queue[i], &self->queue[i + 1],
                (self->n_queue - (size_t)i - 1) * sizeof *self->queue);
        self->n_queue--;
    }
    return false;
}

const char *mfl_upload_gate_next(mfl_upload_gate_t *self)
{
    if (self->n_granted >= self->cap || self->n_queue == 0)
        return NULL;
    self->last = self->queue[0];
    memmove(&self->queue[0], &self->queue[1], (self->n_queue - 1) * sizeof *self->queue);
    self->n_queue--;
    self->granted[self->n_granted++] = self->last;
    return self->last.id;
}

void mfl_upload_gate_reset(mfl_upload_gate_t *self)
{
    self->n_granted = 0;
    self->n_queue = 0;
}

size_t mfl_upload_gate_in_flight(const mfl_upload_gate_t *self) { return self->n_granted; }
size_t mfl_upload_gate_waiting(const mfl_upload_gate_t *self) { return self->n_queue; }
uint32_t mfl_upload_gate_capacity(const mfl_upload_gate_t *self) { return self->cap; }
