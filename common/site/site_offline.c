/* Offline evaluation of a published checkpoint. See site_offline.h. */
#include "site/site_offline.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "round/run_config.h"
#include "round/scaling_record.h"
#include "core/log.h"
#include "fed/checkpoint.h"
#include "site/site_worker.h"

static double s_num(double v)
{
    return isfinite(v) ? v : -1.0;
}

/* A run with federated scaling: the pooled scaling on record beside its
 * checkpoints goes with the task (as the live EvalTask carries it); a site
 * with standardize: fixed must have exactly those constants (e.g. from
 * data.scaling_from) and then scales its rows itself. Returns 0 / -1. */
static int s_pooled_scaling(const mfl_site_config_t *cfg, const char *checkpoint, bool is_dir,
                            mfl_task_scaling_t *out, char *err, size_t errlen)
{
    char path[2200], rerr[1024];
    const char *slash = strrchr(checkpoint, '/');
    if (is_dir)
        snprintf(path, sizeof path, "%s/" MFL_SCALING_STATE_FILE, checkpoint);
    else
        snprintf(path, sizeof path, "%.*s/" MFL_SCALING_STATE_FILE,
                 slash ? (int)(slash - checkpoint) : 1, slash ? checkpoint : ".");
    static mfl_task_scaling_t sc; /* 2 KiB: off the stack */
    if (mfl_scaling_state_read(path, &sc, NULL, rerr, sizeof rerr) < 0)
        return mfl_errf(err, errlen, "the coordinator's config says the run trained with "
                        "federated scaling, but its pooled scaling cannot be read: %s", rerr),
               -1;
    if (cfg->standardize != MFL_SITE_STD_FIXED) {
        *out = sc; /* a site that is not federated refuses it, saying why */
        return 0;
    }
    if (cfg->n_fixed != sc.n || memcmp(cfg->fixed_center, sc.mean, sc.n * sizeof(float)) != 0 ||
        memcmp(cfg->fixed_scale, sc.scale, sc.n * sizeof(float)) != 0)
        return mfl_errf(err, errlen, "%s: data.standardize: fixed with constants that are not "
                        "the run's pooled scaling (%s): the model would see differently scaled "
                        "rows; take them from the export (data.scaling_from) or use "
                        "standardize: federated", cfg->file, path), -1;
    out->n = 0;
    return 0;
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
    if (mfl_coord_config_load(coord_config, cc, err, errlen) < 0 ||
        mfl_coord_config_apply_selection(cc, err, errlen) < 0) /* the model it trained */
        goto out_free;
    struct stat st;
    char sub[1024];
    bool is_dir = stat(checkpoint, &st) == 0 && S_ISDIR(st.st_mode);
    if (is_dir) {
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
    mfl_eval_task_t task;
    memset(&task, 0, sizeof task);
    mfl_task_algorithm_from_learner(l, cc->n_way, cc->k_shot, cc->n_query, &task.algorithm);
    /* No live nonce: the eval stream derives from the round and a fixed
     * tag, so the offline result is reproducible. */
    memcpy(task.nonce, "metafl-offline\0\0", 16);
    task.nonce_len = 16;
    task.round = (uint32_t)ck.round;
    snprintf(task.model_spec, sizeof task.model_spec, "%s", l->model_spec);
    task.adapt_steps = cc->eval_adapt_steps;
    task.adapt_lr = cc->eval_adapt_lr;
    if (cc->federated_scaling &&
        s_pooled_scaling(cfg, checkpoint, is_dir, &task.scaling, err, errlen) < 0)
        goto out_free;
    mfl_site_eval_result_t r;
    if (mfl_site_worker_eval(w, &task, ck.theta, ck.n_params, &r, err, errlen) != 0)
        goto out_free;
    fprintf(out,
            "{\"event\":\"eval\",\"round\":%u,\"site\":\"%s\",\"loss\":%.9g,\"accuracy\":%.9g,"
            "\"auroc\":%.9g,\"sensitivity\":%.9g,\"specificity\":%.9g,\"n\":%zu,"
            "\"loss_before\":%.9g,\"accuracy_before\":%.9g,\"auroc_before\":%.9g,"
            "\"accuracy_local\":%.9g,\"auroc_local\":%.9g,\"n_support\":%zu,"
            "\"sens_at_spec90\":%.9g,\"sens_at_spec90_local\":%.9g,\"source\":\"offline\"}\n",
            task.round, mfl_site_worker_site(w), s_num(r.adapted.loss), s_num(r.adapted.accuracy),
            s_num(r.adapted.auroc), s_num(r.adapted.sensitivity), s_num(r.adapted.specificity),
            r.adapted.n, s_num(r.before.loss), s_num(r.before.accuracy), s_num(r.before.auroc),
            s_num(r.local_only.accuracy), s_num(r.local_only.auroc), r.n_support,
            s_num(r.adapted.sens_at_spec90), s_num(r.local_only.sens_at_spec90));
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
