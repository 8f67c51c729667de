/* Offline evaluation of a published checkpoint. See site_offline.h. */
#include "site/site_offline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "round/run_config.h"
#include "core/log.h"
#include "fed/checkpoint.h"
#include "site/site_worker.h"

static double s_num(double v)
{
    return isfinite(v) ? v : -1.0;
}

int mfl_site_offline_eval(const mfl_site_config_t *cfg, const char *coord_config,
                          const char *checkpoint, FILE *out, char *err, size_t errlen)
{
    mfl_coord_config_t *cc = malloc(sizeof(*cc)); /* large: keep it off the stack */
    if (!cc)
        return mfl_errf(err, errlen, "out of memory"), -1;
    int rc = -1;
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof(ck));
    mfl_site_worker_t *w = NULL;
    if (mfl_coord_config_load(coord_config, cc, err, errlen) < 0)
        goto out_free;
    struct stat st;
    char sub[1024];
    if (stat(checkpoint, &st) == 0 && S_ISDIR(st.st_mode)) {
        int found = mfl_checkpoint_latest(checkpoint, &ck, NULL, 0, sub, sizeof(sub));
        if (found <= 0) {
            mfl_errf(err, errlen, "%s: %s", checkpoint,
                     found == 0 ? "no valid checkpoint in this directory" : sub);
            goto out_free;
        }
    } else if (mfl_checkpoint_load(checkpoint, &ck, err, errlen) < 0) {
        goto out_free;
    }
    w = mfl_site_worker_new(cfg, err, errlen);
    if (!w)
        goto out_free;

    const mfl_learner_config_t *l = &cc->learner;
    Metafl__AlgorithmSpec a = METAFL__ALGORITHM_SPEC__INIT;
    a.name = (char *)mfl_algo_name(l->algo);
    a.inner_steps = (uint32_t)l->inner_steps;
    a.inner_lr = l->inner_lr;
    a.meta_batch = (uint32_t)l->meta_batch;
    a.outer_steps = (uint32_t)l->outer_steps;
    a.outer_lr = l->outer_lr;
    a.batch_size = (uint32_t)l->batch_size;
    a.local_epochs = (uint32_t)l->local_epochs;
    a.n_way = cc->n_way;
    a.k_shot = cc->k_shot;
    a.n_query = cc->n_query;
    a.loss = (char *)mfl_loss_name(l->loss);
    a.pos_weight = l->pos_weight;
    a.relation_spec = (char *)l->relation_spec;
    a.outer_optim = (char *)mfl_optim_name(l->outer_optim);
    /* No live nonce: the eval stream derives from the round and a fixed
     * tag, so the offline result is reproducible. */
    uint8_t nonce[16] = "metafl-offline";
    Metafl__EvalTask task = METAFL__EVAL_TASK__INIT;
    task.round = (uint32_t)ck.round;
    task.nonce.data = nonce;
    task.nonce.len = sizeof(nonce);
    task.model_spec = (char *)l->model_spec; /* protobuf-c fields are not const; never written */
    task.algorithm = &a;
    task.adapt_steps = cc->eval_adapt_steps;
    task.adapt_lr = cc->eval_adapt_lr;
    mfl_site_eval_result_t r;
    if (mfl_site_worker_eval(w, &task, ck.theta, ck.n_params, &r, err, errlen) != 0)
        goto out_free;
    fprintf(out,
            "{\"event\":\"eval\",\"round\":%u,\"site\":\"%s\",\"loss\":%.9g,\"accuracy\":%.9g,"
            "\"auroc\":%.9g,\"sensitivity\":%.9g,\"specificity\":%.9g,\"n\":%zu,"
            "\"loss_before\":%.9g,\"accuracy_before\":%.9g,\"auroc_before\":%.9g,"
            "\"accuracy_local\":%.9g,\"auroc_local\":%.9g,\"n_support\":%zu,"
            "\"source\":\"offline\"}\n",
            task.round, mfl_site_worker_site(w), s_num(r.adapted.loss), s_num(r.adapted.accuracy),
            s_num(r.adapted.auroc), s_num(r.adapted.sensitivity), s_num(r.adapted.specificity),
            r.adapted.n, s_num(r.before.loss), s_num(r.before.accuracy), s_num(r.before.auroc),
            s_num(r.local_only.accuracy), s_num(r.local_only.auroc), r.n_support);
    fflush(out);
    mfl_info("site %s: evaluated %s (round %llu) offline: accuracy %.3f AUROC %.3f | as-is %.3f "
             "/ %.3f | local-only %.3f / %.3f", mfl_site_worker_site(w), checkpoint,
             (unsigned long long)ck.round, r.adapted.accuracy, r.adapted.auroc,
             r.before.accuracy, r.before.auroc, r.local_only.accuracy, r.local_only.auroc);
    rc = 0;
out_free:
    mfl_site_worker_destroy(&w);
    mfl_checkpoint_clear(&ck);
    free(cc);
    return rc;
}
