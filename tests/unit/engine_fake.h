/* A fake round-engine sink for the coordinator's unit tests: every call
 * the engine makes (round task, eval task, reject, grant, close, eval
 * report, finish) is recorded as an event, so a test can assert what the
 * engine sent to whom. Header-only (static inline) because each unit test
 * is one .c file; include it after cmocka.h and round_engine.h. */
#ifndef MFL_TEST_ENGINE_FAKE_H
#define MFL_TEST_ENGINE_FAKE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ENGINE_FAKE_MAX_EVENTS 512

typedef struct {
    char site[80];
    int kind; /* 'T' round task, 'E' eval task, 'R' reject, 'G' upload grant */
    uint32_t round;
    uint8_t nonce[16];
    uint64_t seed; /* 'T' only */
    uint64_t deadline_unix_ms; /* 'T' only */
    uint8_t model_hash[32]; /* 'T' only: RoundTask.model_hash (θ's digest) */
    uint32_t update_encoding; /* 'T' only */
    uint64_t upload_chunk_values; /* 'T' only */
    int has_base;                 /* 'T' only: a compressed broadcast's difference */
    uint8_t base[32];             /* 'T' only: RoundTask.broadcast_base */
    uint32_t tensor_encoding;     /* 'T' only: the first tensor's encoding */
    int reason;    /* 'R' only */
} event_t;

typedef struct {
    event_t ev[ENGINE_FAKE_MAX_EVENTS];
    size_t n;
    size_t closed;            /* rounds closed */
    mfl_round_summary_t last; /* the last close's summary */
    int finished;             /* finish calls */
    size_t evals;             /* eval summaries */
    int grant_fails;          /* the next grants to fail (site unreachable) */
} fake_t;

/* Records one sink call (zeroed event, site, kind, round). A full log
 * fails the test rather than drop what the engine did. */
static inline event_t *s_push(fake_t *f, const char *site, int kind, uint32_t round)
{
    if (f->n == ENGINE_FAKE_MAX_EVENTS)
        fail_msg("fake sink: more than %d events", ENGINE_FAKE_MAX_EVENTS);
    event_t *e = &f->ev[f->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->site, sizeof e->site, "%s", site);
    e->kind = kind;
    e->round = round;
    return e;
}

static inline int s_task(void *ctx, const char *site, const mfl_round_task_t *task,
                         const mfl_tensor_t *t, size_t nt)
{
    event_t *e = s_push(ctx, site, 'T', task->round);
    e->has_base = task->has_broadcast_base;
    if (task->has_broadcast_base)
        memcpy(e->base, task->broadcast_base, 32);
    e->tensor_encoding = nt && t ? t[0].encoding : 0;
    memcpy(e->nonce, task->nonce, 16);
    e->seed = task->seed;
    e->upload_chunk_values = task->upload_chunk_values;
    e->deadline_unix_ms = task->deadline_unix_ms;
    if (task->model_hash_len == 32)
        memcpy(e->model_hash, task->model_hash, 32);
    e->update_encoding = task->update_encoding;
    return 0;
}

static inline int s_eval(void *ctx, const char *site, const mfl_eval_task_t *task,
                         const mfl_tensor_t *t, size_t nt)
{
    (void)t;
    (void)nt;
    memcpy(s_push(ctx, site, 'E', task->round)->nonce, task->nonce, 16);
    return 0;
}

static inline void s_reject(void *ctx, const char *site, mfl_reject_t reason,
                            uint32_t round, const char *text)
{
    (void)text;
    s_push(ctx, site, 'R', round)->reason = (int)reason;
}

static inline void s_closed(void *ctx, const mfl_round_summary_t *m)
{
    fake_t *f = ctx;
    f->closed++;
    f->last = *m;
}

static inline void s_eval_report(void *ctx, const mfl_eval_summary_t *s)
{
    (void)s;
    ((fake_t *)ctx)->evals++;
}

static inline void s_finished(void *ctx) { ((fake_t *)ctx)->finished++; }

/* The upload-grant callback (mfl_round_engine_flow_control): fails while
 * grant_fails > 0, as for a site that cannot be reached. */
static inline int s_grant(void *ctx, const char *site, uint32_t round, const uint8_t *nonce,
                          size_t nonce_len)
{
    fake_t *f = ctx;
    assert_int_equal(nonce_len, 16);
    if (f->grant_fails > 0) {
        f->grant_fails--;
        return -1;
    }
    memcpy(s_push(f, site, 'G', round)->nonce, nonce, 16);
    return 0;
}

/* The engine tests' base config: the defaults, Reptile on mlp:3-4-1 with
 * BCE, `rounds` rounds closing with at least `min_sites` updates, the first
 * waiting for `wait_for` sites, a round deadline of `deadline_ms`, no site
 * timeout. The caller points the run's files somewhere and sets the rest. */
static inline void engine_fake_config(mfl_coord_config_t *c, uint32_t rounds, uint32_t min_sites,
                                      uint32_t wait_for, uint32_t deadline_ms)
{
    mfl_coord_config_defaults(c);
    mfl_learner_config_defaults(&c->learner, MFL_ALGO_REPTILE);
    snprintf(c->learner.model_spec, sizeof c->learner.model_spec, "mlp:3-4-1");
    c->learner.loss = MFL_LOSS_BCE;
    c->rounds = rounds;
    c->min_sites = min_sites;
    c->wait_for_sites = wait_for;
    c->deadline_ms = deadline_ms;
    c->site_timeout_ms = 0;
}

#endif
