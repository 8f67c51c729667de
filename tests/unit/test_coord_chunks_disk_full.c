/* A chunked upload the coordinator cannot spool (docs/WIRE.md "Chunked
 * uploads"): the disk fills in the middle of one (a real write failure
 * without privileges: the file size limit, EFBIG, as a full volume gives
 * ENOSPC), after its first chunk was written. The upload is refused with the errno's text, nothing of it is
 * folded, and the round goes on: the site sends again once there is room
 * and θ ends bit-identical to a round that never saw the failed upload.
 * Real engine, spool and daemon glue (coordinator/coord_chunks.c); a fake
 * sink records what would go to the sites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/coord_chunks.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "round/run_config.h"
#include "engine_fake.h"

static char s_text[512]; /* the last reject's text */

static void s_reject_rec(void *ctx, const char *site, mfl_reject_t reason, uint32_t round,
                         const char *text)
{
    snprintf(s_text, sizeof s_text, "%s", text ? text : "");
    s_reject(ctx, site, reason, round, text);
}

typedef struct {
    char dir[64];
    mfl_coord_config_t cfg;
    fake_t fake;
    mfl_engine_sink_t sink;
    mfl_learner_t *learner;
    size_t n_state, nt;
    mfl_upload_spool_t *spool;
} fx_t;

static const char *const s_sites[3] = {"site-a", "site-b", "site-c"};

static void s_fsize_limit(rlim_t limit)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static mfl_round_engine_t *s_engine(fx_t *fx, fake_t *fake, const char *sub)
{
    memset(fake, 0, sizeof *fake);
    fx->sink = (mfl_engine_sink_t){fake, s_task, NULL, s_reject_rec, s_closed, NULL, NULL};
    char dir[128], err[512] = "";
    snprintf(dir, sizeof dir, "%s/%s", fx->dir, sub);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(fx->cfg.checkpoint_dir, sizeof fx->cfg.checkpoint_dir, "%s/ckpt", dir);
    snprintf(fx->cfg.metrics_file, sizeof fx->cfg.metrics_file, "%s/metrics.jsonl", dir);
    mfl_round_engine_t *e = mfl_round_engine_new(&fx->cfg, &fx->sink, NULL, NULL, err,
                                                 sizeof err);
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(mfl_round_engine_flow_control(e, s_grant, fake, 0), 0);
    for (int i = 0; i < 3; i++)
        mfl_round_engine_site_hello(e, s_sites[i], 10, 0);
    mfl_round_engine_tick(e, 0);
    assert_int_equal(mfl_round_engine_phase(e), MFL_ENGINE_ROUND);
    return e;
}

/* `site` announces Δ = `value` everywhere (scaled per tensor), is granted,
 * begins a chunked upload and sends its chunks (one per tensor: this
 * model's tensors are below a chunk) through the daemon's glue. */
static void s_upload(fx_t *fx, fake_t *fake, mfl_round_engine_t *e, const char *site,
                     float value, uint64_t now)
{
    const event_t *t = NULL;
    for (size_t i = fake->n; i-- > 0 && !t;)
        if (fake->ev[i].kind == 'T' && strcmp(fake->ev[i].site, site) == 0)
            t = &fake->ev[i];
    assert_non_null(t);
    assert_int_equal(t->upload_chunk_values, 1024);
    assert_int_equal(mfl_round_engine_upload_ready(e, site, t->round, t->nonce, 16,
                                                   fx->n_state * sizeof(float), now), 0);
    float *d = malloc(fx->n_state * sizeof(float));
    assert_non_null(d);
    uint8_t(*ch)[32] = malloc(fx->nt * 32), (*th)[32] = malloc(fx->nt * 32);
    assert_non_null(ch);
    assert_non_null(th);
    mfl_tensor_t tv[8];
    assert_true(fx->nt <= 8);
    for (size_t i = 0; i < fx->nt; i++) {
        const mfl_tensor_info_t *ti = mfl_learner_tensor(fx->learner, i);
        for (size_t k = 0; k < ti->count; k++)
            d[ti->offset + k] = value * (float)(k % 3 + 1) / 4.0f;
        tv[i] = mfl_tensor_vec(ti->name, d + ti->offset, ti->count);
        crypto_generichash(ch[i], 32, (const uint8_t *)tv[i].data, ti->count * 4, NULL, 0);
        tv[i].blake2b = ch[i];
        mfl_chunk_tensor_hash(ch[i], 1, th[i]);
    }
    mfl_update_header_t h;
    memset(&h, 0, sizeof h);
    memcpy(h.nonce, t->nonce, 16);
    h.nonce_len = 16;
    h.round = t->round;
    snprintf(h.site, sizeof h.site, "%s", site);
    h.n_samples = 10;
    h.chunk_values = 1024;
    h.n_tensor_hashes = fx->nt;
    mfl_update_digest(th[0], fx->nt, h.digest);
    mfl_wire_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.site = site;
    ev.kind = MFL_MSG_UPDATE_BEGIN;
    ev.update_header = &h;
    static const uint8_t sig[64] = {1};
    ev.signed_header = (const uint8_t *)"hdr"; /* what the audit record would keep */
    ev.signed_header_len = 3;
    ev.signature = sig;
    ev.signature_len = sizeof sig;
    ev.chunk_hashes = ch[0];
    ev.n_chunk_hashes = fx->nt;
    mfl_coord_chunks_begin(e, fx->spool, &ev, now);
    for (size_t i = 0; i < fx->nt; i++) {
        memset(&ev, 0, sizeof ev);
        ev.site = site;
        ev.kind = MFL_MSG_UPDATE_CHUNK;
        ev.chunk.round = t->round;
        ev.chunk.nonce = t->nonce;
        ev.chunk.nonce_len = 16;
        ev.chunk.index = i;
        ev.tensors = &tv[i];
        ev.n_tensors = 1;
        mfl_coord_chunks_chunk(e, fx->spool, &ev, now);
    }
    free(d);
    free(ch);
    free(th);
}

static void test_spool_write_failure_refuses_folds_nothing_and_round_recovers(void **state)
{
    (void)state;
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/mfl-spoolfull-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    engine_fake_config(&fx->cfg, 1, 2, 3, 100000);
    fx->cfg.max_concurrent_uploads = 2;
    fx->cfg.chunked_upload_bytes = 16; /* this model's Δ is 84 bytes */
    fx->cfg.upload_chunk_bytes = 4096;
    char err[512] = "";
    fx->learner = mfl_learner_new(&fx->cfg.learner, 1, err, sizeof err);
    assert_non_null(fx->learner);
    fx->n_state = mfl_learner_n_state(fx->learner);
    fx->nt = mfl_learner_n_tensors(fx->learner);
    fx->spool = mfl_upload_spool_new(fx->dir, err, sizeof err);
    if (!fx->spool)
        fail_msg("%s", err);
    signal(SIGXFSZ, SIG_IGN);

    /* The run: site-a's upload meets a full disk at its first chunk. */
    fake_t *fake = calloc(1, sizeof *fake);
    assert_non_null(fake);
    mfl_round_engine_t *e = s_engine(fx, fake, "run");
    s_upload(fx, fake, e, "site-b", 0.5f, 10);
    s_text[0] = '\0';
    /* room for the first chunk only: the second one's write fails */
    s_fsize_limit((rlim_t)(mfl_learner_tensor(fx->learner, 0)->count * sizeof(float)));
    s_upload(fx, fake, e, "site-a", 1000.0f, 20); /* a Δ that would show if folded */
    s_fsize_limit(RLIM_INFINITY);
    /* failed at its second chunk; the rest were dropped without a word */
    const mfl_spooled_update_t *fu = mfl_upload_spool_get(fx->spool, "site-a");
    assert_non_null(fu);
    assert_int_equal(fu->next, 1);
    assert_true(mfl_upload_spool_failed(fx->spool, "site-a"));
    const event_t *r = NULL;
    for (size_t i = fake->n; i-- > 0 && !r;)
        if (fake->ev[i].kind == 'R' && strcmp(fake->ev[i].site, "site-a") == 0)
            r = &fake->ev[i];
    assert_non_null(r);
    assert_int_equal(r->reason, MFL_REJECT_TOO_LARGE);
    if (!strstr(s_text, "writing the upload spool: File too large"))
        fail_msg("reject text '%s' does not give the write error", s_text);
    assert_int_equal(mfl_round_engine_uploads_in_flight(e), 0); /* its slot is free */
    assert_int_equal(fake->closed, 0);
    /* room again: site-a sends again, site-c too, and the round closes */
    s_upload(fx, fake, e, "site-a", 0.25f, 30);
    s_upload(fx, fake, e, "site-c", -0.5f, 40);
    assert_int_equal(fake->closed, 1);
    assert_int_equal(fake->last.n_accepted, 3);
    float *theta = malloc(fx->n_state * sizeof(float));
    assert_non_null(theta);
    memcpy(theta, mfl_round_engine_theta(e), fx->n_state * sizeof(float));
    assert_int_equal(mfl_upload_spool_count(fx->spool), 0);
    mfl_round_engine_destroy(&e);

    /* The same round without the failed upload: the same θ, bit for bit. */
    fake_t *ctl = calloc(1, sizeof *ctl);
    assert_non_null(ctl);
    e = s_engine(fx, ctl, "control");
    s_upload(fx, ctl, e, "site-b", 0.5f, 10);
    s_upload(fx, ctl, e, "site-a", 0.25f, 30);
    s_upload(fx, ctl, e, "site-c", -0.5f, 40);
    assert_int_equal(ctl->closed, 1);
    assert_int_equal(ctl->last.n_accepted, 3);
    assert_memory_equal(theta, mfl_round_engine_theta(e), fx->n_state * sizeof(float));
    mfl_round_engine_destroy(&e);

    free(theta);
    free(fake);
    free(ctl);
    mfl_upload_spool_destroy(&fx->spool);
    mfl_learner_destroy(&fx->learner);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spool_write_failure_refuses_folds_nothing_and_round_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
