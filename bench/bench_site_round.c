/* CPU of one site's local round, in pieces (issue 6, goal 2b): the model and
 * data of bench/rounds_engine.sh's "train-1M" rows (MLP 32-28571-2, P =
 * 999,987, 200 training rows of 32 features, two classes, FedAvg, one
 * epoch, batch 32, lr 0.01, one BLAS thread as the agents run) and the
 * per-message work the wire adds around it, each timed as this thread's
 * CPU (CLOCK_THREAD_CPUTIME_ID) and as wall time:
 *
 *   worker_round  mfl_site_worker_round: everything the agent computes for
 *                 a RoundTask (learner reuse, local epoch, Δ, per-tensor
 *                 BLAKE2b of Δ, UpdateHeader, Ed25519 signature)
 *   train         mfl_learner_meta_train alone (the local epoch and Δ)
 *   sgd_step      one fused SGD step on 32 rows (mfl_model_sgd_step; an
 *                 epoch of 200 rows is 7 of them, the last on 8 rows)
 *   loss_pass     forward + loss over the 200 rows (mfl_model_loss_grad, no
 *                 gradient): what FedAvg spent twice per round on its
 *                 loss_before / loss_after until issue 17; now they come
 *                 from the training steps, so this is for comparison
 *   blake2b_4P    crypto_generichash of 4·P bytes (one θ or Δ)
 *   ed25519_sign  a detached signature over a 256-byte header
 *   curve_seal    crypto_box_easy_afternm of one 64 KiB frame, scaled to 4·P
 *                 bytes (what CurveZMQ does per message frame: XSalsa20-
 *                 Poly1305 with the precomputed key)
 *   curve_open    crypto_box_open_easy_afternm of the same, scaled
 *   memcpy_4P     memcpy of 4·P bytes (cold destination each time)
 *
 *   bench_site_round [--quick] [--out FILE]   (default
 *   ${BENCH_RESULTS:-bench/results}/site_round.json)
 *
 * Medians over repeats; pieces alternate rep by rep so load bursts on the
 * shared machine hit all of them alike. CPU time is what counts here: it
 * adds up across processes on 2 cores regardless of scheduling. */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/dataset.h"
#include "meta/learner.h"
#include "meta/task.h"
#include "nn/blas.h"
#include "nn/model.h"
#include "site/site_worker.h"
#include "bench_common.h"

#define S_ROWS 200
#define S_FEATURES 32
#define S_MODEL "mlp:32-28571-2"
#define S_FRAME 65536
#define S_MAX_REPS 64

enum { S_ROUND, S_TRAIN, S_STEP, S_LOSS, S_HASH, S_SIGN, S_SEAL, S_OPEN, S_COPY, S_NPIECES };
static const char *const S_NAMES[S_NPIECES] = {
    "worker_round", "train",      "sgd_step",   "loss_pass", "blake2b_4P",
    "ed25519_sign", "curve_seal", "curve_open", "memcpy_4P"};

static double s_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 200 rows like bench/rounds_engine.sh's tables: label r % 2, features
 * N(0.5·y, 1). */
static mfl_dataset_t *s_data(void)
{
    mfl_dataset_t *d = mfl_dataset_new(S_ROWS, S_FEATURES);
    if (!d)
        return NULL;
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, 7, 1);
    for (size_t i = 0; i < S_ROWS; i++) {
        d->y[i] = (float)(i % 2);
        for (size_t j = 0; j < S_FEATURES; j++)
            d->x[i * S_FEATURES + j] = 0.5f * d->y[i] + mfl_rng_normal(&r);
    }
    return d;
}

static void s_algo(mfl_task_algorithm_t *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "fedavg");
    a->inner_lr = 0.01f;
    a->batch_size = 32;
    a->local_epochs = 1;
    snprintf(a->loss, sizeof a->loss, "softmax_ce");
}

int main(int argc, char **argv)
{
    int quick;
    const char *out_arg;
    if (s_bench_args(argc, argv, "bench_site_round", &quick, &out_arg) != 0)
        return 2;
    char out_buf[1024];
    const char *out = s_bench_out_path(out_arg, out_buf, sizeof out_buf, "site_round.json");
    if (sodium_init() < 0)
        return 1;
    mfl_blas_set_threads(1);
    const int reps = quick ? 5 : 15;
    char err[256];

    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    s_algo(&task.algorithm);
    mfl_learner_config_t cfg;
    if (mfl_task_algorithm_to_learner(&task.algorithm, S_MODEL, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_site_round: %s\n", err);
        return 1;
    }
    mfl_learner_t *learner = mfl_learner_new(&cfg, 512, err, sizeof err);
    mfl_model_t *model = mfl_model_new(S_MODEL, 512, err, sizeof err);
    const mfl_loss_t loss = {MFL_LOSS_SOFTMAX_CE, 1.0f};
    mfl_dataset_t *train = s_data(), *wtrain = s_data();
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    if (reps > S_MAX_REPS || !learner || !model || !train || !wtrain) {
        fprintf(stderr, "bench_site_round: setup failed: %s\n", err);
        return 1;
    }
    mfl_site_worker_t *w = mfl_site_worker_new_from_data("site01", wtrain, NULL, sk, err,
                                                         sizeof err);
    mfl_sampler_t *sampler = mfl_sampler_new_site(train, 0, 0, err, sizeof err);
    if (!w || !sampler) {
        fprintf(stderr, "bench_site_round: setup failed: %s\n", err);
        return 1;
    }
    const size_t P = mfl_learner_n_state(learner), bytes = P * sizeof(float);
    float *theta = malloc(bytes), *delta = malloc(bytes), *theta2 = malloc(bytes);
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    unsigned char *frame = malloc(S_FRAME), *boxed = malloc(S_FRAME + crypto_box_MACBYTES);
    if (!theta || !delta || !theta2 || !src || !dst || !frame || !boxed) {
        fprintf(stderr, "bench_site_round: out of memory\n");
        return 1;
    }
    mfl_learner_init_state(learner, theta, 1);
    memcpy(theta2, theta, bytes);
    memset(src, 0x5a, bytes);
    randombytes_buf(frame, S_FRAME);
    uint8_t bpk[crypto_box_PUBLICKEYBYTES], bsk[crypto_box_SECRETKEYBYTES];
    uint8_t key[crypto_box_BEFORENMBYTES], nonce[crypto_box_NONCEBYTES] = {0};
    crypto_box_keypair(bpk, bsk);
    if (crypto_box_beforenm(key, bpk, bsk) != 0)
        return 1;
    uint8_t header[256], sig[crypto_sign_BYTES], hash[32];
    randombytes_buf(header, sizeof header);
    const double frames = (double)bytes / S_FRAME;
    const int frame_reps = (int)(frames + 0.5);

    task.nonce[0] = 1;
    task.nonce_len = 16;
    snprintf(task.model_spec, sizeof task.model_spec, "%s", S_MODEL);
    task.seed = 1;

    double cpu[S_NPIECES][S_MAX_REPS], wall[S_NPIECES][S_MAX_REPS];
    size_t n_samples = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (first round builds the learner) */
        for (int k = 0; k < S_NPIECES; k++) {
            double c0 = s_cpu_now(), w0 = s_bench_now();
            int rc = 0;
            switch (k) {
            case S_ROUND: {
                mfl_site_round_result_t res;
                task.round = (uint32_t)(r + 2);
                rc = mfl_site_worker_round(w, &task, theta, P, &res, err, sizeof err);
                n_samples = res.metrics.n_samples;
                break;
            }
            case S_TRAIN: {
                mfl_rng_t rng;
                mfl_rng_seed(&rng, 1, (uint64_t)(r + 2));
                mfl_train_metrics_t m;
                rc = mfl_learner_meta_train(learner, theta, sampler, &rng, delta, &m, err,
                                            sizeof err);
                break;
            }
            case S_STEP: /* on a copy of θ that keeps training: realistic values */
                rc = !isfinite(mfl_model_sgd_step(model, theta2, &loss, train->x, train->y, 32,
                                                  0.01f));
                break;
            case S_LOSS:
                rc = !isfinite(mfl_model_loss_grad(model, theta, &loss, train->x, train->y,
                                                   S_ROWS, NULL));
                break;
            case S_HASH:
                crypto_generichash(hash, sizeof hash, src, bytes, NULL, 0);
                break;
            case S_SIGN:
                crypto_sign_detached(sig, NULL, header, sizeof header, sk);
                break;
            case S_SEAL:
                for (int i = 0; i < frame_reps; i++) {
                    nonce[0] = (uint8_t)i;
                    crypto_box_easy_afternm(boxed, frame, S_FRAME, nonce, key);
                }
                break;
            case S_OPEN:
                for (int i = 0; i < frame_reps; i++)
                    rc |= crypto_box_open_easy_afternm(frame, boxed, S_FRAME + crypto_box_MACBYTES,
                                                       nonce, key);
                break;
            case S_COPY:
                memcpy(dst, src, bytes);
                dst[r & 1023] ^= 1; /* keep the copy observable */
                break;
            }
            /* curve_open opens the last sealed frame frame_reps times: the
             * same bytes of work as opening each, and it must verify. */
            if (rc != 0) {
                fprintf(stderr, "bench_site_round: %s failed: %s\n", S_NAMES[k],
                        k == S_OPEN ? "MAC check" : err);
                return 1;
            }
            if (r >= 0) {
                cpu[k][r] = s_cpu_now() - c0;
                wall[k][r] = s_bench_now() - w0;
            }
        }
    }
    FILE *f = s_bench_open_results("bench_site_round", out, "site_round");
    if (!f)
        return 1;
    fprintf(f, "  \"command\": \"build/bench/bench_site_round%s\",\n", quick ? " --quick" : "");
    fprintf(f, "  \"model\": \"%s\",\n  \"params\": %zu,\n  \"train_rows\": %zu,\n", S_MODEL,
            P, n_samples);
    fprintf(f, "  \"how\": \"FedAvg, 1 epoch, batch 32, lr 0.01, 1 BLAS thread; medians of %d "
               "repeats of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID) and wall time; "
               "curve_seal/curve_open: crypto_box_(open_)easy_afternm of 64 KiB frames, "
               "%d of them, scaled to 4*P bytes\",\n",
            reps, frame_reps);
    fprintf(f, "  \"rows\": [\n");
    printf("%-14s %12s %12s\n", "piece", "CPU ms", "wall ms");
    for (int k = 0; k < S_NPIECES; k++) {
        double scale = (k == S_SEAL || k == S_OPEN) ? frames / frame_reps : 1.0;
        double c = s_bench_median(cpu[k], reps) * scale * 1e3;
        double wl = s_bench_median(wall[k], reps) * scale * 1e3;
        printf("%-14s %12.3f %12.3f\n", S_NAMES[k], c, wl);
        fprintf(f, "    {\"piece\": \"%s\", \"cpu_ms\": %.4f, \"wall_ms\": %.4f}%s\n",
                S_NAMES[k], c, wl, k + 1 < S_NPIECES ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", out);
    mfl_sampler_destroy(&sampler);
    mfl_site_worker_destroy(&w);
    mfl_learner_destroy(&learner);
    mfl_model_destroy(&model);
    free(theta2);
    mfl_dataset_destroy(&train);
    free(theta);
    free(delta);
    free(src);
    free(dst);
    free(frame);
    free(boxed);
    return 0;
}
