/* Fuzzes the round engine's update checks with arbitrary (decoded)
 * UpdateHeaders and tensor contents, against a live engine with a round
 * open for three sites. Properties: never crashes; an update is either
 * accepted or rejected through the sink with a reason (never both, never
 * neither); θ stays finite.
 *
 * Input: byte 0 = flags (bit 0: use the open round's nonce, bit 1: its
 * round number, bit 2: claim the peer's own site, bit 3: shape the tensors
 * exactly as the learner's, bits 4-5: which peer, bit 6: the second engine,
 * which clips to the norm bound, caps weights and aggregates by the
 * coordinate-wise median), bytes 1-2 = header length L (LE), then L bytes
 * of serialized UpdateHeader, then floats. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "round/run_config.h"
#include "core/log.h"
#include "meta/learner.h"
#include "round/round_engine.h"
#include "wire/task_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mfl_round_engine_t *s_engines[2]; /* mean + reject; median + clip + weight cap */
static mfl_round_engine_t *s_engine;     /* the one this input drives */
static mfl_learner_t *s_learner; /* the engine's layout, to shape tensors */
static uint64_t s_now = 1000;
static int s_rejects;
static const char *const s_sites[4] = {"site-a", "site-b", "site-c", "site-z"};

static void s_reject(void *ctx, const char *site, mfl_reject_t reason, uint32_t round,
                     const char *text)
{
    (void)ctx, (void)site, (void)round;
    if ((int)reason <= 0 || !text)
        abort();
    s_rejects++;
}

static char s_dir[64];

/* The engine checkpoints every closed round: remove them at exit. */
static void s_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_coord_update: could not remove %s\n", s_dir);
}

static void s_setup(void)
{
    static mfl_coord_config_t c;
    char *dir = s_dir;
    mfl_log_set_level(MFL_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/fuzz_coord_update.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    atexit(s_cleanup);
    mfl_coord_config_defaults(&c);
    mfl_learner_config_defaults(&c.learner, MFL_ALGO_REPTILE);
    snprintf(c.learner.model_spec, sizeof c.learner.model_spec, "mlp:3-4-1");
    c.learner.loss = MFL_LOSS_BCE;
    c.rounds = 1000000;
    c.min_sites = 2;
    c.wait_for_sites = 3;
    c.norm_bound = 50;
    c.site_timeout_ms = 0;
    mfl_engine_sink_t sink = {NULL, NULL, NULL, s_reject, NULL, NULL, NULL};
    char err[256];
    for (int e = 0; e < 2; e++) {
        snprintf(c.checkpoint_dir, sizeof c.checkpoint_dir, "%s/ckpt%d", dir, e);
        if (e == 1) {
            c.aggregator = MFL_AGG_MEDIAN;
            c.norm_clip = true;
            c.max_weight = 100;
        }
        s_engines[e] = mfl_round_engine_new(&c, &sink, NULL, NULL, err, sizeof err);
        if (!s_engines[e]) {
            fprintf(stderr, "fuzz_coord_update: %s\n", err);
            abort();
        }
    }
    s_learner = mfl_learner_new(&c.learner, 1, err, sizeof err);
    if (!s_learner || mfl_learner_n_tensors(s_learner) > 16)
        abort();
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 3; i++)
            mfl_round_engine_site_hello(s_engines[e], s_sites[i], 10, s_now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_engines[0])
        s_setup();
    if (size < 3)
        return 0;
    s_engine = s_engines[(data[0] >> 6) & 1];
    mfl_round_engine_tick(s_engine, ++s_now);
    uint8_t flags = data[0];
    size_t hlen = (size_t)data[1] | (size_t)data[2] << 8;
    if (hlen > size - 3)
        return 0;
    /* The header as the coordinator's transport hands it over: protobuf
     * bytes decoded, then through the task codec into plain C. */
    Metafl__UpdateHeader *m = metafl__update_header__unpack(NULL, hlen, data + 3);
    if (!m)
        return 0;
    mfl_update_header_t hdr, *h = &hdr;
    char cerr[160];
    int decoded = mfl_update_header_from_msg(m, h, cerr, sizeof cerr);
    metafl__update_header__free_unpacked(m, NULL);
    if (decoded != 0)
        return 0;
    const char *peer = s_sites[(flags >> 4) & 3];
    const uint8_t *nonce = mfl_round_engine_nonce(s_engine);
    if ((flags & 1) && nonce) {
        memcpy(h->nonce, nonce, MFL_ENGINE_NONCE_BYTES);
        h->nonce_len = MFL_ENGINE_NONCE_BYTES;
    }
    if (flags & 2)
        h->round = mfl_round_engine_round(s_engine);
    if (flags & 4)
        snprintf(h->site, sizeof h->site, "%s", peer);

    /* Tensors: the learner's layout (flag 8) or one flat vector. */
    const uint8_t *rest = data + 3 + hlen;
    size_t n_floats = (size - 3 - hlen) / sizeof(float);
    size_t n_state = mfl_round_engine_n_state(s_engine);
    float *vals = calloc(n_state > n_floats ? n_state : (n_floats ? n_floats : 1), sizeof(float));
    if (!vals)
        abort();
    memcpy(vals, rest, n_floats * sizeof(float));
    mfl_tensor_t t[16];
    size_t nt;
    if (flags & 8) {
        for (nt = 0; nt < mfl_learner_n_tensors(s_learner); nt++) {
            const mfl_tensor_info_t *ti = mfl_learner_tensor(s_learner, nt);
            t[nt] = mfl_tensor_info_view(ti, vals);
        }
    } else {
        t[0] = mfl_tensor_vec("theta", vals, n_floats);
        nt = 1;
    }
    int before = s_rejects;
    int rc = mfl_round_engine_update(s_engine, peer, h, t, nt, NULL, 0, NULL, 0, ++s_now);
    if ((rc == 0) != (s_rejects == before))
        abort(); /* accepted and rejected, or neither */
    const float *theta = mfl_round_engine_theta(s_engine);
    for (size_t i = 0; i < n_state; i++) {
        if (!isfinite(theta[i]))
            abort();
    }
    free(vals);
    return 0;
}
