/* Tasks and task samplers for meta-learning.
 *
 * A task is a support set (to adapt on) and a query set (to score the
 * adapted parameters on). Samplers draw tasks with a caller's rng, so a
 * round is reproducible from (seed, round, site). Kinds:
 *   - episodes: N-way K-shot from a labelled set; classes relabelled 0..N-1
 *     per episode (a class filter keeps meta-train and meta-test disjoint);
 *   - site-as-task: support and query batches drawn from one site's rows;
 *   - group-as-task: one group's rows (a patient's windows) per task;
 *   - sinusoid: the MAML regression family y = A sin(x − φ), A ∈ [0.1, 5],
 *     φ ∈ [0, π], x ∈ [−5, 5], generated on the fly. */
#ifndef MFL_META_TASK_H
#define MFL_META_TASK_H

#include <stddef.h>

#include "core/rng.h"
#include "data/dataset.h"

typedef struct {
    mfl_dataset_t *support; /* owned by the task */
    mfl_dataset_t *query;   /* owned by the task */
    size_t n_way;           /* classes in this task (0 for regression) */
} mfl_task_t;

/* Frees both sets; leaves the struct zeroed. Accepts a zeroed task. */
void mfl_task_clear(mfl_task_t *task);

typedef struct mfl_sampler mfl_sampler_t;

/* N-way K-shot episodes with `q_query` query rows per class, from the rows
 * of `data` whose class is in classes[0..n_classes) (borrowed: keep `data`
 * alive). NULL + err if fewer than n_way classes have k_shot + q_query rows. */
mfl_sampler_t *mfl_sampler_new_episodes(const mfl_dataset_t *data, const size_t *classes,
                                        size_t n_classes, size_t n_way, size_t k_shot,
                                        size_t q_query, char *err, size_t errlen);

/* The site is the task: support and query batches of the given sizes drawn
 * without replacement from `data` (borrowed). A size of 0 means all rows. */
mfl_sampler_t *mfl_sampler_new_site(const mfl_dataset_t *data, size_t support_size,
                                    size_t query_size, char *err, size_t errlen);

/* A group is the task (e.g. a patient's windows): each task is one group
 * of rows drawn uniformly among the groups with at least 2 rows; its rows
 * are shuffled and split in half, support first (each half capped at
 * `batch` rows; 0 = no cap). `data` (borrowed) must have data->group.
 * NULL + err if no group has 2 rows. */
mfl_sampler_t *mfl_sampler_new_groups(const mfl_dataset_t *data, size_t batch, char *err,
                                      size_t errlen);

/* Every class of `data` (borrowed) split in two by each task: a fresh
 * shuffle of the class's rows, the first ceil(m/2) to the support set and
 * the rest to the query set (a class with one row: support only, so it is
 * still a class to tell apart); labels and n_classes kept. Episodes from
 * one small labelled set alone (a site's local-only metric model). NULL +
 * err unless at least 2 classes have rows and one of them has 2. */
mfl_sampler_t *mfl_sampler_new_class_split(const mfl_dataset_t *data, char *err,
                                           size_t errlen);

/* Sinusoid regression tasks with k_shot support and q_query query points. */
mfl_sampler_t *mfl_sampler_new_sinusoid(size_t k_shot, size_t q_query);

/* Draws the next task into *task (cleared first). Returns 0, -1 on OOM. */
int mfl_sampler_next(mfl_sampler_t *self, mfl_rng_t *rng, mfl_task_t *task);

/* The data set the sampler draws from (borrowed), or NULL for sinusoid
 * tasks. FedAvg trains on these rows directly; its size is the site's
 * aggregation weight. */
const mfl_dataset_t *mfl_sampler_data(const mfl_sampler_t *self);

/* Frees the sampler and nulls the caller's pointer; accepts NULL. */
void mfl_sampler_destroy(mfl_sampler_t **self_p);

#endif
