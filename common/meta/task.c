/* Task samplers: N-way K-shot episodes, site-as-task batches, sinusoids,
 * groups, and class splits of one small set.
 *
 * Every draw consumes only the caller's rng, so a task stream is a pure
 * function of (seed, stream). Task buffers are reused when the next task
 * has the same shape, so a training loop does not malloc per task. */
#include "meta/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

typedef enum { S_EPISODES, S_SITE, S_SINUSOID, S_GROUPS, S_CLASS_SPLIT } s_kind_t;

struct mfl_sampler {
    s_kind_t kind;
    const mfl_dataset_t *data; /* borrowed */
    /* episodes */
    size_t n_way, k_shot, q_query;
    size_t n_eligible;      /* classes with at least k_shot + q_query rows */
    size_t *eligible;       /* [n_eligible] original class ids */
    size_t **rows;          /* [n_eligible][count] row indices per class */
    size_t *counts;         /* [n_eligible] */
    size_t *pick;           /* [n_eligible] scratch for choosing classes */
    size_t *scratch;        /* [largest class] scratch copy of one class's rows */
    /* site */
    size_t support_size, query_size;
    size_t *perm;           /* [data->n] */
    /* groups: rows of each eligible group in `eligible`/`rows`/`counts` above */
    size_t batch;
};

void mfl_task_clear(mfl_task_t *task)
{
    if (!task)
        return;
    mfl_dataset_destroy(&task->support);
    mfl_dataset_destroy(&task->query);
    task->n_way = 0;
}

/* Makes *ds an n × f data set, reusing it when the shape already matches
 * (the contract's "cleared first" holds: every row is overwritten). */
static int s_shape(mfl_dataset_t **ds, size_t n, size_t f)
{
    if (*ds && (*ds)->n == n && (*ds)->n_features == f)
        return 0;
    mfl_dataset_destroy(ds);
    *ds = mfl_dataset_new(n, f);
    return *ds ? 0 : -1;
}

static void s_copy_meta(mfl_dataset_t *dst, const mfl_dataset_t *src, size_t n_classes)
{
    dst->channels = src->channels;
    dst->height = src->height;
    dst->width = src->width;
    dst->n_classes = n_classes;
}

static void s_copy_row(mfl_dataset_t *dst, size_t i, const mfl_dataset_t *src, size_t r, float y)
{
    memcpy(dst->x + i * dst->n_features, src->x + r * src->n_features,
           src->n_features * sizeof(float));
    dst->y[i] = y;
}

static mfl_sampler_t *s_alloc(s_kind_t kind)
{
    mfl_sampler_t *self = calloc(1, sizeof(*self));
    if (self)
        self->kind = kind;
    return self;
}

mfl_sampler_t *mfl_sampler_new_episodes(const mfl_dataset_t *data, const size_t *classes,
                                        size_t n_classes, size_t n_way, size_t k_shot,
                                        size_t q_query, char *err, size_t errlen)
{
    if (!data || data->n == 0 || data->n_classes < 2) {
        mfl_errf(err, errlen, "episodes: need a labelled classification data set");
        return NULL;
    }
    if (n_way < 2 || k_shot < 1 || q_query < 1) {
        mfl_errf(err, errlen, "episodes: n_way must be >= 2, k_shot and q_query >= 1 "
                 "(got %zu, %zu, %zu)", n_way, k_shot, q_query);
        return NULL;
    }
    mfl_sampler_t *self = s_alloc(S_EPISODES);
    if (!self)
        goto out_oom;
    self->data = data;
    self->n_way = n_way;
    self->k_shot = k_shot;
    self->q_query = q_query;
    size_t nc = data->n_classes;
    size_t *count = calloc(nc, sizeof(size_t));
    unsigned char *wanted = calloc(nc, 1);
    self->eligible = calloc(nc, sizeof(size_t));
    self->rows = calloc(nc, sizeof(size_t *));
    self->counts = calloc(nc, sizeof(size_t));
    self->pick = calloc(nc, sizeof(size_t));
    if (!count || !wanted || !self->eligible || !self->rows || !self->counts || !self->pick) {
        free(count);
        free(wanted);
        goto out_oom;
    }
    for (size_t i = 0; i < n_classes; i++) {
        if (classes[i] >= nc) {
            mfl_errf(err, errlen, "episodes: class %zu out of range (data set has %zu classes)",
                     classes[i], nc);
            free(count);
            free(wanted);
            mfl_sampler_destroy(&self);
            return NULL;
        }
        wanted[classes[i]] = 1;
    }
    for (size_t r = 0; r < data->n; r++) {
        float y = data->y[r];
        if (y >= 0 && y < (float)nc && y == floorf(y))
            count[(size_t)y]++;
    }
    /* Eligible classes in ascending id order, so the episode stream does
     * not depend on the order the caller listed them in. */
    for (size_t c = 0; c < nc; c++) {
        if (!wanted[c] || count[c] < k_shot + q_query)
            continue;
        size_t e = self->n_eligible++;
        self->eligible[e] = c;
        self->rows[e] = malloc((count[c] + 1) * sizeof(size_t)); /* +1: never malloc(0) */
        if (!self->rows[e]) {
            free(count);
            free(wanted);
            goto out_oom;
        }
    }
    for (size_t r = 0; r < data->n; r++) {
        float y = data->y[r];
        if (!(y >= 0 && y < (float)nc && y == floorf(y)))
            continue;
        for (size_t e = 0; e < self->n_eligible; e++) {
            if (self->eligible[e] == (size_t)y) {
                self->rows[e][self->counts[e]++] = r;
                break;
            }
        }
    }
    free(count);
    free(wanted);
    size_t largest = 1;
    for (size_t e = 0; e < self->n_eligible; e++)
        largest = self->counts[e] > largest ? self->counts[e] : largest;
    self->scratch = malloc(largest * sizeof(size_t));
    if (!self->scratch)
        goto out_oom;
    if (self->n_eligible < n_way) {
        mfl_errf(err, errlen, "episodes: only %zu of the %zu allowed classes have %zu rows "
                 "(k_shot + q_query); %zu-way needs %zu", self->n_eligible, n_classes,
                 k_shot + q_query, n_way, n_way);
        mfl_sampler_destroy(&self);
        return NULL;
    }
    return self;
out_oom:
    mfl_errf(err, errlen, "episodes: out of memory");
    mfl_sampler_destroy(&self);
    return NULL;
}

mfl_sampler_t *mfl_sampler_new_site(const mfl_dataset_t *data, size_t support_size,
                                    size_t query_size, char *err, size_t errlen)
{
    if (!data || data->n == 0) {
        mfl_errf(err, errlen, "site sampler: the data set is empty");
        return NULL;
    }
    mfl_sampler_t *self = s_alloc(S_SITE);
    if (!self || !(self->perm = malloc(data->n * sizeof(size_t)))) {
        mfl_errf(err, errlen, "site sampler: out of memory");
        mfl_sampler_destroy(&self);
        return NULL;
    }
    self->data = data;
    self->support_size = support_size == 0 || support_size > data->n ? data->n : support_size;
    self->query_size = query_size == 0 || query_size > data->n ? data->n : query_size;
    return self;
}

/* Row lists of the groups with at least 2 rows, in group order. */
static int s_group_rows(mfl_sampler_t *self, const mfl_dataset_t *data)
{
    size_t ng = 0;
    for (size_t r = 0; r < data->n; r++)
        if (data->group[r] + 1 > ng)
            ng = data->group[r] + 1;
    size_t *count = calloc(ng ? ng : 1, sizeof *count);
    if (!count)
        return -1;
    for (size_t r = 0; r < data->n; r++)
        count[data->group[r]]++;
    self->eligible = malloc((ng ? ng : 1) * sizeof(size_t));
    self->rows = calloc(ng ? ng : 1, sizeof(size_t *));
    self->counts = calloc(ng ? ng : 1, sizeof(size_t));
    if (!self->eligible || !self->rows || !self->counts)
        goto out_oom;
    for (size_t g = 0; g < ng; g++) {
        if (count[g] < 2)
            continue;
        size_t e = self->n_eligible++;
        self->eligible[e] = g;
        if (!(self->rows[e] = malloc(count[g] * sizeof(size_t))))
            goto out_oom;
        for (size_t r = 0; r < data->n; r++)
            if (data->group[r] == g)
                self->rows[e][self->counts[e]++] = r;
    }
    free(count);
    return 0;
out_oom:
    free(count);
    return -1;
}

mfl_sampler_t *mfl_sampler_new_groups(const mfl_dataset_t *data, size_t batch, char *err,
                                      size_t errlen)
{
    if (!data || data->n == 0 || !data->group) {
        mfl_errf(err, errlen, "group sampler: the data set is empty or has no groups");
        return NULL;
    }
    mfl_sampler_t *self = s_alloc(S_GROUPS);
    if (!self || !(self->perm = malloc(data->n * sizeof(size_t))) ||
        s_group_rows(self, data) < 0) {
        mfl_errf(err, errlen, "group sampler: out of memory");
        mfl_sampler_destroy(&self);
        return NULL;
    }
    if (self->n_eligible == 0) {
        mfl_errf(err, errlen, "group sampler: no group (patient) has 2 rows to split into "
                 "support and query");
        mfl_sampler_destroy(&self);
        return NULL;
    }
    self->data = data;
    self->batch = batch;
    return self;
}

static int s_next_group(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    const mfl_dataset_t *d = self->data;
    size_t e = (size_t)mfl_rng_below(rng, self->n_eligible), m = self->counts[e];
    memcpy(self->perm, self->rows[e], m * sizeof(size_t));
    mfl_rng_shuffle(rng, self->perm, m);
    size_t s = m / 2, q = m - s;
    if (self->batch && s > self->batch)
        s = self->batch;
    if (self->batch && q > self->batch)
        q = self->batch;
    if (s_shape(&task->support, s, d->n_features) || s_shape(&task->query, q, d->n_features))
        return -1;
    s_copy_meta(task->support, d, d->n_classes);
    s_copy_meta(task->query, d, d->n_classes);
    task->n_way = d->n_classes;
    for (size_t i = 0; i < s; i++)
        s_copy_row(task->support, i, d, self->perm[i], d->y[self->perm[i]]);
    for (size_t i = 0; i < q; i++)
        s_copy_row(task->query, i, d, self->perm[m / 2 + i], d->y[self->perm[m / 2 + i]]);
    return 0;
}

mfl_sampler_t *mfl_sampler_new_class_split(const mfl_dataset_t *data, char *err,
                                           size_t errlen)
{
    if (!data || data->n == 0 || data->n_classes < 2) {
        mfl_errf(err, errlen, "class split: need a labelled classification data set");
        return NULL;
    }
    mfl_sampler_t *self = s_alloc(S_CLASS_SPLIT);
    size_t nc = data->n_classes;
    if (!self || !(self->eligible = calloc(nc, sizeof(size_t))) ||
        !(self->rows = calloc(nc, sizeof(size_t *))) ||
        !(self->counts = calloc(nc, sizeof(size_t))) ||
        !(self->scratch = malloc(data->n * sizeof(size_t))))
        goto out_oom;
    self->data = data;
    size_t largest = 0;
    for (size_t c = 0; c < nc; c++) {
        size_t m = 0;
        for (size_t r = 0; r < data->n; r++)
            m += data->y[r] == (float)c;
        if (m == 0)
            continue;
        size_t e = self->n_eligible++;
        self->eligible[e] = c;
        if (!(self->rows[e] = malloc(m * sizeof(size_t))))
            goto out_oom;
        for (size_t r = 0; r < data->n; r++)
            if (data->y[r] == (float)c)
                self->rows[e][self->counts[e]++] = r;
        largest = m > largest ? m : largest;
        self->support_size += (m + 1) / 2;
        self->query_size += m / 2;
    }
    if (self->n_eligible < 2 || largest < 2) {
        mfl_errf(err, errlen, "class split: %zu class(es) with rows, the largest with %zu; "
                 "need 2 classes and one with 2 rows", self->n_eligible, largest);
        mfl_sampler_destroy(&self);
        return NULL;
    }
    return self;
out_oom:
    mfl_errf(err, errlen, "class split: out of memory");
    mfl_sampler_destroy(&self);
    return NULL;
}

static int s_next_class_split(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    const mfl_dataset_t *d = self->data;
    if (s_shape(&task->support, self->support_size, d->n_features) ||
        s_shape(&task->query, self->query_size, d->n_features))
        return -1;
    s_copy_meta(task->support, d, d->n_classes);
    s_copy_meta(task->query, d, d->n_classes);
    task->n_way = d->n_classes;
    size_t is = 0, iq = 0;
    for (size_t e = 0; e < self->n_eligible; e++) {
        size_t m = self->counts[e], *rows = self->scratch;
        float y = (float)self->eligible[e];
        memcpy(rows, self->rows[e], m * sizeof(size_t));
        mfl_rng_shuffle(rng, rows, m);
        for (size_t i = 0; i < m; i++) {
            if (i < (m + 1) / 2)
                s_copy_row(task->support, is++, d, rows[i], y);
            else
                s_copy_row(task->query, iq++, d, rows[i], y);
        }
    }
    return 0;
}

mfl_sampler_t *mfl_sampler_new_sinusoid(size_t k_shot, size_t q_query)
{
    if (k_shot == 0 || q_query == 0)
        return NULL;
    mfl_sampler_t *self = s_alloc(S_SINUSOID);
    if (self) {
        self->k_shot = k_shot;
        self->q_query = q_query;
    }
    return self;
}

const mfl_dataset_t *mfl_sampler_data(const mfl_sampler_t *self)
{
    return self ? self->data : NULL;
}

/* The first k entries of a partial Fisher-Yates shuffle of v[0..n). */
static void s_partial_shuffle(mfl_rng_t *rng, size_t *v, size_t n, size_t k)
{
    for (size_t i = 0; i < k && i + 1 < n; i++) {
        size_t j = i + (size_t)mfl_rng_below(rng, n - i);
        size_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static int s_next_episode(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    const mfl_dataset_t *d = self->data;
    size_t nw = self->n_way, k = self->k_shot, q = self->q_query;
    if (s_shape(&task->support, nw * k, d->n_features) ||
        s_shape(&task->query, nw * q, d->n_features))
        return -1;
    s_copy_meta(task->support, d, nw);
    s_copy_meta(task->query, d, nw);
    task->n_way = nw;
    for (size_t e = 0; e < self->n_eligible; e++)
        self->pick[e] = e;
    s_partial_shuffle(rng, self->pick, self->n_eligible, nw);
    /* Class j of the episode is pick[j]; rows interleaved by class so a
     * prefix of the support set still covers every class. Rows are drawn
     * from a fresh copy of the class's list, so a task depends only on the
     * rng state, never on the tasks drawn before it. */
    for (size_t j = 0; j < nw; j++) {
        size_t e = self->pick[j];
        size_t *rows = self->scratch;
        memcpy(rows, self->rows[e], self->counts[e] * sizeof(size_t));
        s_partial_shuffle(rng, rows, self->counts[e], k + q);
        for (size_t i = 0; i < k; i++)
            s_copy_row(task->support, i * nw + j, d, rows[i], (float)j);
        for (size_t i = 0; i < q; i++)
            s_copy_row(task->query, i * nw + j, d, rows[k + i], (float)j);
    }
    return 0;
}

static int s_next_site(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    const mfl_dataset_t *d = self->data;
    size_t n = d->n, s = self->support_size, q = self->query_size;
    if (s_shape(&task->support, s, d->n_features) || s_shape(&task->query, q, d->n_features))
        return -1;
    s_copy_meta(task->support, d, d->n_classes);
    s_copy_meta(task->query, d, d->n_classes);
    task->n_way = d->n_classes;
    for (size_t i = 0; i < n; i++)
        self->perm[i] = i;
    if (s + q <= n) {
        /* Disjoint support and query. */
        s_partial_shuffle(rng, self->perm, n, s + q);
        for (size_t i = 0; i < s; i++)
            s_copy_row(task->support, i, d, self->perm[i], d->y[self->perm[i]]);
        for (size_t i = 0; i < q; i++)
            s_copy_row(task->query, i, d, self->perm[s + i], d->y[self->perm[s + i]]);
        return 0;
    }
    /* Too few rows for both: each set drawn without replacement on its own. */
    s_partial_shuffle(rng, self->perm, n, s);
    for (size_t i = 0; i < s; i++)
        s_copy_row(task->support, i, d, self->perm[i], d->y[self->perm[i]]);
    s_partial_shuffle(rng, self->perm, n, q);
    for (size_t i = 0; i < q; i++)
        s_copy_row(task->query, i, d, self->perm[i], d->y[self->perm[i]]);
    return 0;
}

static void s_fill_sinusoid(mfl_dataset_t *ds, mfl_rng_t *rng, float amp, float phase)
{
    for (size_t i = 0; i < ds->n; i++) {
        float x = mfl_rng_range(rng, -5.0f, 5.0f);
        ds->x[i] = x;
        ds->y[i] = amp * sinf(x - phase);
    }
}

static int s_next_sinusoid(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    if (s_shape(&task->support, self->k_shot, 1) || s_shape(&task->query, self->q_query, 1))
        return -1;
    task->support->n_classes = task->query->n_classes = 0;
    task->n_way = 0;
    float amp = mfl_rng_range(rng, 0.1f, 5.0f);
    float phase = mfl_rng_range(rng, 0.0f, (float)M_PI);
    s_fill_sinusoid(task->support, rng, amp, phase);
    s_fill_sinusoid(task->query, rng, amp, phase);
    return 0;
}

int mfl_sampler_next(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task)
{
    int rc = -1;
    switch (self->kind) {
    case S_EPISODES: rc = s_next_episode(self, rng, task); break;
    case S_SITE: rc = s_next_site(self, rng, task); break;
    case S_SINUSOID: rc = s_next_sinusoid(self, rng, task); break;
    case S_GROUPS: rc = s_next_group(self, rng, task); break;
    case S_CLASS_SPLIT: rc = s_next_class_split(self, rng, task); break;
    }
    if (rc)
        mfl_task_clear(task);
    return rc;
}

void mfl_sampler_destroy(mfl_sampler_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_sampler_t *self = *self_p;
    if (self->rows)
        for (size_t e = 0; e < self->n_eligible; e++)
            free(self->rows[e]);
    free(self->rows);
    free(self->eligible);
    free(self->counts);
    free(self->pick);
    free(self->scratch);
    free(self->perm);
    free(self);
    *self_p = NULL;
}
