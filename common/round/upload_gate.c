/* Upload slots and the FIFO of sites waiting for one (see upload_gate.h). */
#include "round/upload_gate.h"

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
    s_site_t *small;       /* small grants: no slot (unordered) */
    size_t n_small, cap_small;
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
    free((*self_p)->small);
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
    return s_find(self->granted, self->n_granted, site) >= 0 ||
           s_find(self->small, self->n_small, site) >= 0;
}

/* Appends `site` (len bytes) to a growable list; -1 on OOM. */
static int s_append(s_site_t **v, size_t *n, size_t *cap, const char *site, size_t len)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        s_site_t *g = realloc(*v, c * sizeof *g);
        if (!g)
            return -1;
        *v = g;
        *cap = c;
    }
    memcpy((*v)[(*n)++].id, site, len + 1);
    return 0;
}

static void s_remove(s_site_t *v, size_t *n, long i)
{
    memmove(&v[i], &v[i + 1], (*n - (size_t)i - 1) * sizeof *v);
    (*n)--;
}

mfl_gate_result_t mfl_upload_gate_request_small(mfl_upload_gate_t *self, const char *site)
{
    size_t len = strlen(site);
    if (len == 0 || len >= MFL_UPLOAD_GATE_SITE_MAX)
        return MFL_GATE_ERROR;
    if (mfl_upload_gate_holds(self, site))
        return MFL_GATE_GRANTED;
    long q = s_find(self->queue, self->n_queue, site);
    if (q >= 0)
        s_remove(self->queue, &self->n_queue, q);
    if (s_append(&self->small, &self->n_small, &self->cap_small, site, len) < 0)
        return MFL_GATE_ERROR;
    return MFL_GATE_GRANTED;
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
    if (s_append(&self->queue, &self->n_queue, &self->cap_queue, site, len) < 0)
        return MFL_GATE_ERROR;
    return MFL_GATE_QUEUED;
}

bool mfl_upload_gate_release(mfl_upload_gate_t *self, const char *site)
{
    long i = s_find(self->granted, self->n_granted, site);
    if (i >= 0) {
        self->granted[i] = self->granted[--self->n_granted];
        return true;
    }
    i = s_find(self->small, self->n_small, site);
    if (i >= 0) {
        self->small[i] = self->small[--self->n_small];
        return false;
    }
    i = s_find(self->queue, self->n_queue, site);
    if (i >= 0)
        s_remove(self->queue, &self->n_queue, i);
    return false;
}

const char *mfl_upload_gate_next(mfl_upload_gate_t *self)
{
    if (self->n_granted >= self->cap || self->n_queue == 0)
        return NULL;
    self->last = self->queue[0];
    s_remove(self->queue, &self->n_queue, 0);
    self->granted[self->n_granted++] = self->last;
    return self->last.id;
}

void mfl_upload_gate_reset(mfl_upload_gate_t *self)
{
    self->n_granted = 0;
    self->n_queue = 0;
    self->n_small = 0;
}

size_t mfl_upload_gate_in_flight(const mfl_upload_gate_t *self) { return self->n_granted; }
size_t mfl_upload_gate_waiting(const mfl_upload_gate_t *self) { return self->n_queue; }
uint32_t mfl_upload_gate_capacity(const mfl_upload_gate_t *self) { return self->cap; }
