/* The site agent daemon object: the site worker behind a dial-out CURVE
 * DEALER. See agent.h. */
#include "agent.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "audit/audit.h"
#include "privacy/ledger.h"
#include "core/clock.h"
#include "core/log.h"
#include "data/csv_canon.h"
#include "site/site_worker.h"
#include "wire/chunk_upload.h"
#include "wire/client.h"
#include "wire/keys.h"
#include "fed/quant.h"
#include "wire/task_codec.h"
#include "wire/secagg_codec.h"
#include "site/site_broadcast.h"
#include "site/site_secagg.h"

struct mfl_site_agent {
    const mfl_site_config_t *cfg;
    mfl_site_agent_opts_t opts;
    mfl_identity_t *identity;
    mfl_public_key_t coord_key;
    uint64_t peer_head_seq;   /* the coordinator's head last recorded */
    mfl_site_worker_t *worker;
    mfl_audit_t *audit;
    mfl_client_t *client;
    int need_hello;         /* set by the handshake hook, served by step */
    uint32_t task_round;    /* the round task in hand and its nonce (0 bytes: */
    uint8_t task_nonce[64]; /* none, or its failure already reported) */
    size_t task_nonce_len;
    unsigned handshakes;
    float *theta;           /* the last received θ, concatenated */
    size_t theta_cap;
    /* Compressed broadcast (site/site_broadcast.h): theta is the model of
     * the last RoundTask, of this hash (base_valid), and the next task may
     * be a difference to it; an evaluation's θ goes to eval_theta instead
     * (freed after), so the model is kept. */
    bool base_valid;
    uint8_t base_hash[32];
    float *eval_theta;
    size_t eval_cap;
    /* Δ as handed to ZeroMQ (zero-copy): a warm buffer of our own, so a send
     * is one memcpy instead of a fresh allocation per frame (page faults)
     * plus the copy; busy until ZeroMQ releases it (then a send copies). */
    float *send_buf;
    size_t send_cap;
    atomic_int send_busy;
    uint64_t updates_sent, reports_sent, hellos_sent;
    /* A trained update waiting for the coordinator's UploadGrant (protocol
     * 2): the signed header, signature and Δ stay owned by the worker
     * (valid until its next round) or in send_buf. */
    struct {
        bool ready;
        uint32_t round;
        uint8_t nonce[32];
        size_t nonce_len;
        mfl_site_round_result_t r;
        const float *delta;      /* send_buf (zero-copy) or r.delta */
        bool zero_copy;
        char algo[32];
        uint64_t t0_ms;
    } pending;
    /* A chunked upload in progress (docs/WIRE.md "Chunked uploads"): sent
     * zero-copy from the worker's Δ, which ZeroMQ reads until every chunk
     * is released (mfl_chunk_upload_in_flight); the warm send buffer is not
     * used for it. pump_tensors: its views. drop_update: every chunk is
     * queued, Δ's pages go back to the kernel once ZeroMQ has released
     * them all (s_settle_update). */
    mfl_chunk_upload_t *chunks;
    bool drop_update;
    mfl_tensor_t *pump_tensors;
    size_t n_pump_tensors;
    /* Secure aggregation (docs/SECAGG.md): the consortium's keys as this
     * site was provisioned with them (secure_aggregation.roster), the
     * attempt in hand, and message buffers (about 100 KB each). */
    mfl_allow_list_t *roster;
    mfl_site_secagg_t *secagg;
    mfl_secagg_wire_t *sa_in, *sa_out;
    mfl_secagg_env_t *sa_env;
    mfl_site_secagg_spare_t *sa_spare; /* buffers kept from one attempt to the next */
    /* The masked input waiting for its UploadGrant (the setup's
     * masked_grant): its words stay in the attempt until then. */
    struct {
        bool ready;
        uint32_t round;
        uint8_t nonce[MFL_SECAGG_NONCE_BYTES];
        size_t n_words;
        uint8_t hash[32];
    } sa_pending;
    int warned_unconnected; /* one "still trying" warning per outage */
    uint64_t unconnected_since_ms;
};

static void s_on_connect(mfl_client_t *client, unsigned n, void *arg)
{
    (void)client;
    mfl_site_agent_t *self = arg;
    self->handshakes = n;
    self->need_hello = 1;
}

/* The budget already spent, from the site's own signed audit log
 * (privacy/ledger.h). Whatever goes wrong, the worker is told the ledger
 * is unknown (it then declines every DP task, saying why and how to
 * recover) rather than start from zero. -1 only on an audit write error. */
static int s_open_ledger(mfl_site_agent_t *self, char *err, size_t errlen)
{
    const mfl_site_config_t *cfg = self->cfg;
    const mfl_privacy_policy_t *pol = mfl_site_worker_policy(self->worker);
    char why[1400], sub[700];
    if (!self->audit) {
        mfl_site_worker_set_ledger(self->worker, NULL, "audit.log is not set: the budget spent "
                                   "is read back from the site's signed audit log");
        return 0;
    }
    mfl_privacy_accountant_t spent;
    mfl_privacy_accountant_init(&spent, NULL, 0, NULL, 0);
    mfl_privacy_ledger_info_t info;
    const uint8_t *pk = mfl_identity_public(self->identity)->sign_pk;
    /* The log also holds the coordinator's signed chain heads (peer_head). */
    if (mfl_privacy_ledger_read(cfg->audit_log, cfg->site_id, pk, self->coord_key.name,
                                self->coord_key.sign_pk, &spent, &info, sub, sizeof sub)) {
        snprintf(why, sizeof why, "the audit log does not verify (%s): restore it from a "
                 "backup; this site runs no DP task rather than count its budget from zero",
                 sub);
        if (pol->mode != MFL_PRIVACY_MODE_NONE)
            mfl_warn("site %s: privacy ledger unavailable: %s", cfg->site_id, why);
        else
            mfl_info("site %s: no privacy ledger (DP tasks will be declined): %s",
                     cfg->site_id, why);
        mfl_site_worker_set_ledger(self->worker, NULL, why);
        return 0;
    }
    if (!info.started && self->opts.new_privacy_ledger) {
        mfl_audit_record_t *rec = calloc(1, sizeof *rec);
        if (!rec)
            return mfl_errf(err, errlen, "out of memory"), -1;
        mfl_audit_record_init(rec, MFL_AUDIT_LEDGER_STARTED, 0, cfg->site_id);
        snprintf(rec->reason, sizeof rec->reason, "privacy ledger started from zero by the "
                 "operator (--new-privacy-ledger); %zu DP releases found before it",
                 info.n_releases);
        int rc = mfl_audit_append(self->audit, rec, NULL, sub, sizeof sub);
        free(rec);
        if (rc)
            return mfl_errf(err, errlen, "%s: audit.log: %s", cfg->file, sub), -1;
        info.started = true;
        mfl_info("site %s: privacy ledger started in %s", cfg->site_id, cfg->audit_log);
    } else if (info.started && self->opts.new_privacy_ledger) {
        mfl_warn("site %s: --new-privacy-ledger ignored: %s already holds a privacy ledger, "
                 "which is kept", cfg->site_id, cfg->audit_log);
    }
    if (!info.started) {
        snprintf(why, sizeof why, "%.600s holds no privacy ledger (a new or re-created log); "
                 "restore the site's audit log from a backup, or, to count the budget from "
                 "zero knowingly, restart the agent once with --new-privacy-ledger "
                 "(docs/PRIVACY.md)", cfg->audit_log);
        if (pol->mode != MFL_PRIVACY_MODE_NONE)
            mfl_warn("site %s: %s", cfg->site_id, why);
        mfl_site_worker_set_ledger(self->worker, NULL, why);
        return 0;
    }
    mfl_site_worker_set_ledger(self->worker, &spent, NULL);
    mfl_info("site %s: privacy ledger: %zu DP releases, epsilon spent %.6g at delta %g "
             "(policy: mode %s, budget %g)", cfg->site_id, info.n_releases,
             mfl_site_worker_epsilon_spent(self->worker), pol->delta,
             mfl_privacy_mode_name(pol->mode), pol->epsilon_budget);
    return 0;
}

mfl_site_agent_t *mfl_site_agent_new(const mfl_site_config_t *cfg,
                                     const mfl_site_agent_opts_t *opts, char *err,
                                     size_t errlen)
{
    mfl_site_agent_t *self = calloc(1, sizeof(*self));
    if (!self)
        return mfl_errf(err, errlen, "out of memory"), NULL;
    self->cfg = cfg;
    if (opts)
        self->opts = *opts;
    char sub[1024];
    self->identity = mfl_identity_load(cfg->key_file, sub, sizeof(sub));
    if (!self->identity) {
        mfl_errf(err, errlen, "%s: site.key_file: %s", cfg->file, sub);
        goto out_fail;
    }
    if (strcmp(mfl_identity_name(self->identity), cfg->site_id) != 0) {
        mfl_errf(err, errlen, "%s: site.id is '%s' but the key %s belongs to '%s'; the "
                 "coordinator admits a site by its key name, so they must match", cfg->file,
                 cfg->site_id, cfg->key_file, mfl_identity_name(self->identity));
        goto out_fail;
    }
    if (mfl_public_key_load(cfg->coordinator_key, &self->coord_key, sub, sizeof(sub))) {
        mfl_errf(err, errlen, "%s: coordinator.public_key: %s", cfg->file, sub);
        goto out_fail;
    }
    self->worker = mfl_site_worker_new(cfg, err, errlen);
    if (!self->worker)
        goto out_fail;
    if (mfl_site_worker_set_signing_key(self->worker, mfl_identity_sign_sk(self->identity))) {
        mfl_errf(err, errlen, "out of secure memory for the signing key");
        goto out_fail;
    }
    if (!cfg->audit_log[0] && !cfg->audit_disabled) {
        /* The hospital's own record of what left it, and its half of the
         * truncation check (docs/AUDIT.md): never off by omission. */
        mfl_errf(err, errlen, "%s: audit.log is not set: the site agent keeps a signed audit "
                 "log of every update it sends; set audit.log (e.g. audit/%s.audit), or "
                 "audit.disabled: true to run without one (not recommended)", cfg->file,
                 cfg->site_id);
        goto out_fail;
    }
    if (!cfg->audit_log[0])
        mfl_warn("site %s: running WITHOUT an audit log (audit.disabled: true)", cfg->site_id);
    if (cfg->audit_log[0]) {
        self->audit = mfl_audit_open(cfg->audit_log, cfg->site_id,
                                     mfl_identity_sign_sk(self->identity), sub, sizeof(sub));
        if (!self->audit) {
            mfl_errf(err, errlen, "%s: audit.log: %s", cfg->file, sub);
            goto out_fail;
        }
    }
    if (s_open_ledger(self, err, errlen))
        goto out_fail;
    if (cfg->secagg_roster[0]) {
        self->roster = mfl_allow_list_load(cfg->secagg_roster, sub, sizeof sub);
        if (!self->roster) {
            mfl_errf(err, errlen, "%s: secure_aggregation.roster: %s", cfg->file, sub);
            goto out_fail;
        }
    }
    self->sa_in = malloc(sizeof *self->sa_in);
    self->sa_out = malloc(sizeof *self->sa_out);
    self->sa_env = malloc(sizeof *self->sa_env);
    if (!self->sa_in || !self->sa_out || !self->sa_env) {
        mfl_errf(err, errlen, "out of memory");
        goto out_fail;
    }
    mfl_client_opts_t co;
    mfl_client_opts_default(&co);
    co.limits.max_total_bytes = cfg->max_message_bytes;
    if (co.limits.max_frame_bytes > cfg->max_message_bytes)
        co.limits.max_frame_bytes = cfg->max_message_bytes;
    co.heartbeat_ms = cfg->heartbeat_ms;
    /* Pipelined frames: Δ is encrypted, sent and decrypted frame by frame
     * (see MFL_WIRE_PIPELINE_CHUNK_BYTES). */
    co.limits.chunk_bytes = MFL_WIRE_PIPELINE_CHUNK_BYTES;
    /* θ stays in the 64 KiB frames it came in: s_gather_theta copies it
     * from there into self->theta, with no contiguous copy in between
     * (4·P bytes less at the site's peak). */
    co.limits.pieces = true;
    /* a compressed broadcast's difference stays encoded there too: it is
     * decoded block by block into the held model (site_broadcast.c), with
     * no 4·P float copy per round */
    co.limits.encoded_runs = true;
    co.io_threads = 1; /* one connection: the training threads need the cores */
    self->client = mfl_client_new(cfg->endpoint, self->identity, &self->coord_key, &co, sub,
                                  sizeof(sub));
    if (!self->client) {
        mfl_errf(err, errlen, "%s: coordinator.endpoint: %s", cfg->file, sub);
        goto out_fail;
    }
    mfl_client_on_connect(self->client, s_on_connect, self);
    self->chunks = mfl_chunk_upload_new();
    if (!self->chunks) {
        mfl_errf(err, errlen, "out of memory");
        goto out_fail;
    }
    self->unconnected_since_ms = mfl_clock_mono_ms();
    mfl_info("site %s: %zu training rows, %zu held-out, %zu features; dialing %s "
             "(coordinator key %s)", cfg->site_id, mfl_site_worker_n_train(self->worker),
             mfl_site_worker_n_heldout(self->worker), mfl_site_worker_n_features(self->worker),
             cfg->endpoint, self->coord_key.name);
    return self;
out_fail:
    mfl_site_agent_destroy(&self);
    return NULL;
}

static void s_send_bye(mfl_site_agent_t *self, const char *reason)
{
    if (!self->client || !mfl_client_connected(self->client))
        return;
    Metafl__Bye bye = METAFL__BYE__INIT;
    bye.reason = (char *)reason;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__BYE;
    env.body_case = METAFL__ENVELOPE__BODY_BYE;
    env.bye = &bye;
    (void)mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, NULL, 0);
}

void mfl_site_agent_destroy(mfl_site_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_site_agent_t *self = *self_p;
    s_send_bye(self, "site agent stopping");
    mfl_client_destroy(&self->client);
    mfl_audit_destroy(&self->audit);
    mfl_site_worker_destroy(&self->worker);
    mfl_identity_destroy(&self->identity);
    mfl_site_secagg_destroy(&self->secagg);
    mfl_site_secagg_spare_destroy(&self->sa_spare); /* after the client: no send holds one */
    mfl_allow_list_destroy(&self->roster);
    free(self->sa_in);
    free(self->sa_out);
    free(self->sa_env);
    free(self->theta);
    free(self->eval_theta);
    free(self->send_buf); /* the client is gone: ZeroMQ released it */
    mfl_chunk_upload_destroy(&self->chunks); /* every chunk released: frees what it adopted */
    free(self->pump_tensors);
    free(self);
    *self_p = NULL;
}

static void s_send_buf_release(void *hint)
{
    atomic_store(&((mfl_site_agent_t *)hint)->send_busy, 0);
}

/* Δ in the agent's own send buffer, or NULL if that buffer is still queued
 * in ZeroMQ (or cannot grow): the caller then sends with a copy. */
static const float *s_send_copy(mfl_site_agent_t *self, const float *delta, size_t n)
{
    if (atomic_load(&self->send_busy))
        return NULL;
    if (n > self->send_cap) {
        float *b = realloc(self->send_buf, n * sizeof(float));
        if (!b)
            return NULL;
        self->send_buf = b;
        self->send_cap = n;
    }
    memcpy(self->send_buf, delta, n * sizeof(float));
    return self->send_buf;
}

uint64_t mfl_site_agent_updates_sent(const mfl_site_agent_t *self)
{
    return self->updates_sent;
}

uint64_t mfl_site_agent_reports_sent(const mfl_site_agent_t *self)
{
    return self->reports_sent;
}

uint64_t mfl_site_agent_hellos_sent(const mfl_site_agent_t *self)
{
    return self->hellos_sent;
}

static const char *const s_capabilities[] = {
    "algo:fedavg",   "algo:reptile",  "algo:fomaml", "algo:maml",     "algo:meta_sgd",
    "algo:protonet", "algo:matching", "algo:relation", "dp:gaussian", "eval:local_only",
    "compress:fp16", "compress:int8", "secagg",   "broadcast:fp16", "broadcast:int8",
};
#define S_N_CAPS (sizeof(s_capabilities) / sizeof(s_capabilities[0]))

/* Training rows per class travel in the Hello up to this many classes. */
#define S_MAX_CLASS_COUNTS 4096

static int s_send_hello(mfl_site_agent_t *self, char *err, size_t errlen)
{
    Metafl__Hello hello = METAFL__HELLO__INIT;
    hello.site = (char *)self->cfg->site_id; /* protobuf-c fields are not const; never written */
    hello.software_version = (char *)MFL_VERSION;
    /* The site's size is an unnoised statistic too (privacy/policy.h). */
    const mfl_privacy_policy_t *pol = mfl_site_worker_policy(self->worker);
    hello.n_train = pol->mode != MFL_PRIVACY_MODE_NONE && !pol->allow_unnoised_stats
                        ? 0
                        : mfl_site_worker_n_train(self->worker);
    hello.schema_hash.data = (uint8_t *)mfl_site_worker_schema_hash(self->worker);
    hello.schema_hash.len = MFL_SITE_HASH_BYTES;
    /* What the data is, so a refusal can say what differs (docs/DATA.md). */
    const char *schema_text = mfl_site_worker_schema_text(self->worker);
    if (schema_text && strlen(schema_text) <= MFL_SCHEMA_TEXT_MAX) {
        hello.schema_text.data = (uint8_t *)schema_text;
        hello.schema_text.len = strlen(schema_text);
    }
    hello.n_features = (uint32_t)mfl_site_worker_n_features(self->worker);
    hello.n_classes = (uint32_t)mfl_site_worker_n_classes(self->worker);
    uint64_t counts[S_MAX_CLASS_COUNTS];
    hello.n_class_counts = mfl_site_worker_class_counts(self->worker, counts, S_MAX_CLASS_COUNTS);
    hello.class_counts = counts;
    /* the fixed ones, then the update encodings upload.encodings offers */
    const char *caps[S_N_CAPS];
    size_t nc = 0;
    uint32_t enc = mfl_site_worker_encodings(self->worker);
    for (size_t i = 0; i < S_N_CAPS; i++) {
        if (strcmp(s_capabilities[i], "compress:fp16") == 0 && !(enc & (1u << MFL_QUANT_FP16)))
            continue;
        if (strcmp(s_capabilities[i], "compress:int8") == 0 && !(enc & (1u << MFL_QUANT_INT8)))
            continue;
        /* secure aggregation only with a roster to check peers against */
        if (strcmp(s_capabilities[i], "secagg") == 0 && !self->roster)
            continue;
        caps[nc++] = s_capabilities[i];
    }
    hello.n_capabilities = nc;
    hello.capabilities = (char **)caps;
    /* the model we hold: the next task may be a difference to it */
    if (self->base_valid) {
        hello.broadcast_base.data = self->base_hash;
        hello.broadcast_base.len = sizeof self->base_hash;
    }
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__HELLO;
    env.body_case = METAFL__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    if (mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, err, errlen))
        return -1;
    self->hellos_sent++;
    return 0;
}

/* Concatenates the message's tensors, from the frames they came in, into
 * *buf (capacity *cap floats, grown as needed: self->theta, or eval_theta;
 * the coordinator sends θ as the learner's tensors in layout order). */
static int s_gather_into(mfl_site_agent_t *self, mfl_msg_t *msg, float **buf, size_t *cap,
                         size_t *n, char *err, size_t errlen)
{
    size_t total = 0, nt = mfl_msg_tensor_count(msg);
    for (size_t i = 0; i < nt; i++) {
        uint64_t c = mfl_msg_tensor(msg, i)->count;
        if (c > self->cfg->max_params || total + c > self->cfg->max_params)
            return mfl_errf(err, errlen, "θ is larger than limits.max_params (%zu floats)",
                            self->cfg->max_params), -1;
        total += (size_t)c;
    }
    if (total == 0)
        return mfl_errf(err, errlen, "task carries no θ tensors"), -1;
    if (total > *cap) {
        float *t = realloc(*buf, total * sizeof(float));
        if (!t)
            return mfl_errf(err, errlen, "out of memory for θ (%zu floats)", total), -1;
        *buf = t;
        *cap = total;
    }
    size_t off = 0;
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_t *t = mfl_msg_tensor(msg, i);
        if (!t->data && t->encoding != MFL_QUANT_FP32) { /* codes left in their frames */
            if (mfl_quant_decode_view(t, 0, (size_t)t->count, *buf + off) < 0)
                return mfl_errf(err, errlen, "tensor '%s': cannot decode its %s values",
                                t->name, mfl_quant_name((mfl_quant_kind_t)t->encoding)), -1;
            off += (size_t)t->count;
            continue;
        }
        mfl_tensor_piece_t one;
        size_t nr;
        const mfl_tensor_piece_t *r = mfl_tensor_pieces(t, &one, &nr);
        for (size_t k = 0; k < nr; k++) {
            memcpy(*buf + off, r[k].data, (size_t)r[k].count * sizeof(float));
            off += (size_t)r[k].count;
        }
    }
    /* θ's frames are copied: give them back now, not after the training
     * or evaluation this message starts (4·P bytes less at the peak) */
    mfl_msg_release_tensors(msg);
    *n = total;
    return 0;
}

static int s_gather_theta(mfl_site_agent_t *self, mfl_msg_t *msg, size_t *n, char *err,
                          size_t errlen)
{
    return s_gather_into(self, msg, &self->theta, &self->theta_cap, n, err, errlen);
}

/* The audit record goes to disk (fsync) BEFORE the update leaves: if the
 * record cannot be written, nothing is sent, so the log never misses an
 * update that left the hospital. */
static int s_audit_update(mfl_site_agent_t *self, const mfl_round_task_t *task,
                          const mfl_site_round_result_t *r, char *err, size_t errlen)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t *rec = malloc(sizeof(*rec));
    if (!rec)
        return mfl_errf(err, errlen, "out of memory"), -1;
    if (r->signature_len != 64) {
        free(rec);
        return mfl_errf(err, errlen, "update is not signed"), -1;
    }
    /* Built from the signed header itself, so the record and what the
     * coordinator logs describe exactly the bytes that were signed. */
    if (mfl_audit_record_from_update(rec, MFL_AUDIT_UPDATE_SENT, r->header, r->header_len,
                                     r->signature, err, errlen)) {
        free(rec);
        return -1;
    }
    if (rec->has_privacy && rec->privacy.delta == 0) /* a header without its δ */
        rec->privacy.delta = task->privacy.target_delta;
    /* A model selection round trained on the training rows minus a
     * validation part: the log says which (docs/SELECTION.md). */
    if (task->selection.candidate)
        snprintf(rec->reason, sizeof rec->reason, "model selection candidate %u: trained "
                 "without the validation rows (fraction %.6g, seed %llu, stratified)",
                 task->selection.candidate, task->selection.validation_fraction,
                 (unsigned long long)task->selection.validation_seed);
    int rc = mfl_audit_append(self->audit, rec, NULL, err, errlen);
    free(rec);
    return rc;
}

/* The coordinator's signed audit log head from a RoundTask, checked
 * against its key and kept as a peer_head record (once per head: a task
 * sent again carries the same one), so that a coordinator log cut short
 * later shows against ours (`metafl audit verify --peer`). A head that
 * does not verify is not recorded (logged). */
static void s_record_peer_head(mfl_site_agent_t *self, const Metafl__RoundTask *task)
{
    if (!self->audit || task->audit_head.len != 32 || task->audit_head_sig.len != 64 ||
        !task->audit_writer || !task->audit_writer[0] || task->audit_seq == 0 ||
        task->audit_seq == self->peer_head_seq)
        return;
    if (mfl_audit_head_verify(self->coord_key.sign_pk, task->audit_seq, task->audit_head.data,
                              task->audit_head_sig.data) != 0) {
        mfl_warn("site %s: round %u: the coordinator's audit head does not verify under its "
                 "key; not recorded", self->cfg->site_id, task->round);
        return;
    }
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    if (!rec)
        return;
    mfl_audit_record_init(rec, MFL_AUDIT_PEER_HEAD, task->round, task->audit_writer);
    rec->n = task->audit_seq;
    rec->has_delta_hash = true;
    memcpy(rec->delta_hash, task->audit_head.data, 32);
    rec->has_update_sig = true;
    memcpy(rec->update_sig, task->audit_head_sig.data, 64);
    snprintf(rec->reason, sizeof rec->reason, "the coordinator's audit log head (signed)");
    char err[300];
    /* Lazy (not synced on its own): this round's update_sent record is
     * synced before the update leaves, and that one sync makes this record
     * durable with it (one fdatasync per round instead of two on the way
     * from θ's arrival to Δ's departure; docs/AUDIT.md, "Crashes"). */
    if (mfl_audit_append_lazy(self->audit, rec, NULL, err, sizeof err) == 0)
        self->peer_head_seq = task->audit_seq;
    else
        mfl_warn("site %s: audit log: %s", self->cfg->site_id, err);
    free(rec);
}

/* The update_sent record on a helper thread (see s_round). */
typedef struct {
    mfl_site_agent_t *agent;
    const mfl_round_task_t *task;
    const mfl_site_round_result_t *result;
    int rc;
    char err[1024];
} s_audit_job_t;

static void *s_audit_main(void *arg)
{
    s_audit_job_t *j = arg;
    j->rc = s_audit_update(j->agent, j->task, j->result, j->err, sizeof j->err);
    return NULL;
}

/* Below this Δ size the copy into the send buffer takes microseconds: a
 * thread to overlap it with the audit fsync would cost more. */
#define S_AUDIT_THREAD_MIN ((size_t)1 << 18) /* floats: 1 MiB */

/* Before the worker runs again (it rewrites Δ) or Δ's pages are dropped:
 * chunks still in flight read the worker's Δ, so those buffers are handed
 * to the chunk sender (freed when the last chunk is released) and the
 * worker takes fresh ones; with nothing in flight a sent update's pages
 * go back to the kernel (mfl_site_worker_release_update). 0, or -1 out of
 * memory (the worker must not run: the chunks would read its writes). */
static int s_settle_update(mfl_site_agent_t *self)
{
    if (self->chunks && mfl_chunk_upload_in_flight(self->chunks) > 0) {
        float *delta;
        uint8_t *encoded;
        mfl_site_worker_take_update(self->worker, &delta, &encoded);
        if (mfl_chunk_upload_adopt(self->chunks, delta) != 0 ||
            mfl_chunk_upload_adopt(self->chunks, encoded) != 0)
            return -1; /* not freed: a chunk may still read it (leaked, out of memory) */
        self->drop_update = false;
        return 0;
    }
    if (self->drop_update) {
        mfl_site_worker_release_update(self->worker);
        self->drop_update = false;
    }
    return 0;
}

/* From this θ size, the freed frames θ came in go back to the kernel once
 * θ is copied out (as the coordinator does before its broadcast copy). */
#define S_TRIM_MIN_BYTES ((size_t)64 << 20)

/* θ is gathered: its 64 KiB frames went back to the malloc arena of
 * ZeroMQ's I/O thread, which keeps them resident until the next θ arrives.
 * For a big model that is 4·P beside θ and Δ through the training or the
 * evaluation (3 × 4P, over the site's budget at 100M), so they are given
 * back now; the next θ faults them in again (a few ms per 100 MB, nothing
 * against the round of such a model; below the threshold the reuse is
 * worth more). */
static void s_trim_after_theta(size_t n)
{
    if (n * sizeof(float) >= S_TRIM_MIN_BYTES)
        (void)malloc_trim(0);
}

/* Gives up the update waiting for a grant (a new task replaces it, or the
 * session it was announced on is gone); frees the send buffer if it held
 * Δ and was never handed to ZeroMQ. */
static void s_drop_pending(mfl_site_agent_t *self)
{
    if (self->chunks)
        mfl_chunk_upload_stop(self->chunks); /* a new task: its round is over */
    if (self->pending.ready && self->pending.zero_copy)
        atomic_store(&self->send_busy, 0);
    self->pending.ready = false;
    self->pending.zero_copy = false;
}

/* Sends UploadReady{round, nonce, bytes}: this site has `what` for the
 * round and waits for an UploadGrant. A send that fails is only logged:
 * the coordinator re-sends the task after a reconnect, and the site asks
 * again then. */
static void s_send_upload_ready(mfl_site_agent_t *self, uint32_t round, uint8_t *nonce,
                                size_t nonce_len, uint64_t bytes, const char *what)
{
    Metafl__UploadReady ur = METAFL__UPLOAD_READY__INIT;
    ur.round = round;
    ur.nonce.data = nonce;
    ur.nonce.len = nonce_len;
    ur.update_bytes = bytes;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__UPLOAD_READY;
    env.body_case = METAFL__ENVELOPE__BODY_UPLOAD_READY;
    env.upload_ready = &ur;
    char err[512];
    if (mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, err, sizeof err))
        mfl_warn("site %s: round %u: upload request for the %s not delivered: %s (asked again "
                 "when the coordinator re-sends the task)", self->cfg->site_id, round, what, err);
    else
        mfl_debug("site %s: round %u: %s ready, waiting for an upload grant", self->cfg->site_id,
                  round, what);
}

/* UploadReady for the pending update. */
static void s_send_ready(mfl_site_agent_t *self)
{
    const mfl_site_round_result_t *r = &self->pending.r;
    uint64_t bytes = r->encoding ? mfl_quant_bytes((mfl_quant_kind_t)r->encoding, r->n_delta)
                                 : (uint64_t)r->n_delta * sizeof(float);
    s_send_upload_ready(self, self->pending.round, self->pending.nonce, self->pending.nonce_len,
                        bytes, "update");
}

static mfl_agent_status_t s_upload(mfl_site_agent_t *self, const Metafl__UploadGrant *g);

/* Tells the coordinator this task failed here and why (SiteFailure), so
 * the round stops waiting for us instead of running to its deadline
 * (issue 10 item 11). Best effort: the log already says it. */
static void s_send_failure_as(mfl_site_agent_t *self, uint32_t round,
                              const ProtobufCBinaryData *nonce, bool evaluation, const char *why,
                              bool need_model)
{
    Metafl__SiteFailure f = METAFL__SITE_FAILURE__INIT;
    f.need_model = need_model;
    char reason[256];
    snprintf(reason, sizeof reason, "%s", why);
    f.site = (char *)self->cfg->site_id;
    f.round = round;
    f.nonce = *nonce;
    f.evaluation = evaluation;
    f.reason = reason;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__SITE_FAILURE;
    env.body_case = METAFL__ENVELOPE__BODY_SITE_FAILURE;
    env.site_failure = &f;
    char err[256];
    if (mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, err, sizeof err))
        mfl_warn("site %s: could not tell the coordinator: %s", self->cfg->site_id, err);
}

static void s_send_failure(mfl_site_agent_t *self, uint32_t round, const ProtobufCBinaryData *nonce,
                           bool evaluation, const char *why)
{
    s_send_failure_as(self, round, nonce, evaluation, why, false);
}

/* The model of a RoundTask: the tensors themselves (then held, with the
 * digest of their verified hashes if it is the task's model_hash), or a
 * compressed broadcast's difference to the model held (site_broadcast.h).
 * 0 with *n; -1 with err when the task cannot be taken (a difference
 * that does not apply: *need_model, the model is no longer held). */
static int s_round_model(mfl_site_agent_t *self, mfl_msg_t *msg, const mfl_round_task_t *plain,
                         size_t *n, bool *need_model, char *err, size_t errlen)
{
    *need_model = false;
    size_t nt = mfl_msg_tensor_count(msg);
    mfl_tensor_t *views = malloc((nt ? nt : 1) * sizeof *views);
    if (!views)
        return mfl_errf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < nt; i++)
        views[i] = *mfl_msg_tensor(msg, i);
    uint32_t views_enc = nt ? views[0].encoding : 0;
    if (self->opts.site_fault == MFL_SITE_FAULT_CORRUPT_HELD && plain->round == 3 &&
        self->base_valid && self->theta_cap) {
        uint32_t bits;
        memcpy(&bits, self->theta, sizeof bits);
        bits ^= 1u; /* the last bit of the first value: the digest no longer matches */
        memcpy(self->theta, &bits, sizeof bits);
        mfl_warn("site %s: TEST FAULT: one bit of the held model flipped", self->cfg->site_id);
    }
    if (plain->has_broadcast_base) {
        int rc = mfl_site_broadcast_apply(self->theta, self->base_valid ? self->theta_cap : 0,
                                          self->base_hash, self->base_valid, plain, views, nt,
                                          err, errlen);
        free(views);
        mfl_msg_release_tensors(msg);
        if (rc < 0) {
            *need_model = true;
            self->base_valid = false; /* asked for in full, so held no more */
            return -1;
        }
        memcpy(self->base_hash, plain->model_hash, sizeof self->base_hash);
        *n = self->theta_cap;
        mfl_info("site %s: round %u: model sent as a %s difference", self->cfg->site_id,
                 plain->round, nt ? mfl_quant_name((mfl_quant_kind_t)views_enc) : "?");
        return 0;
    }
    uint8_t digest[32];
    bool named = plain->model_hash_len == sizeof digest &&
                 mfl_site_broadcast_digest(views, nt, digest) == 0 &&
                 memcmp(digest, plain->model_hash, sizeof digest) == 0;
    free(views);
    self->base_valid = false;
    if (s_gather_theta(self, msg, n, err, errlen))
        return -1;
    /* held exactly (theta_cap floats): a later difference applies to it */
    self->base_valid = named && *n == self->theta_cap;
    memcpy(self->base_hash, digest, sizeof self->base_hash);
    mfl_debug("site %s: round %u: model sent in full", self->cfg->site_id, plain->round);
    return 0;
}

/* A model_refused record: the task's model did not check (why), so
 * nothing was trained from it. Best effort: the refusal stands either way
 * (the log says it when the record cannot be written). */
static void s_audit_model_refused(mfl_site_agent_t *self, const mfl_round_task_t *task,
                                  const char *why)
{
    if (!self->audit)
        return;
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    if (!rec)
        return;
    mfl_audit_record_init(rec, MFL_AUDIT_MODEL_REFUSED, task->round, self->cfg->site_id);
    size_t nl = task->nonce_len < sizeof rec->nonce ? task->nonce_len : sizeof rec->nonce;
    memcpy(rec->nonce, task->nonce, nl);
    rec->nonce_len = nl;
    if (task->model_hash_len == sizeof rec->delta_hash) {
        rec->has_delta_hash = true;
        memcpy(rec->delta_hash, task->model_hash, sizeof rec->delta_hash);
    }
    /* the digests' "…" as "..." (a record's reason is printable ASCII) */
    size_t o = 0;
    for (const char *c = why; *c && o + 4 < sizeof rec->reason; c++) {
        const unsigned char *u = (const unsigned char *)c;
        if (u[0] == 0xe2 && u[1] == 0x80 && u[2] == 0xa6) { /* stops at the NUL */
            memcpy(rec->reason + o, "...", 3);
            o += 3;
            c += 2;
        } else {
            rec->reason[o++] = *c;
        }
    }
    rec->reason[o] = '\0';
    char err[512];
    if (mfl_audit_append(self->audit, rec, NULL, err, sizeof err))
        mfl_warn("site %s: round %u: the refused model is not on the audit log %s: %s",
                 self->cfg->site_id, (unsigned)task->round, self->cfg->audit_log, err);
    free(rec);
}

/* The round task in hand (for a SiteFailure after a refused update). */
static void s_note_task(mfl_site_agent_t *self, uint32_t round, const ProtobufCBinaryData *nonce)
{
    self->task_round = round;
    self->task_nonce_len = nonce->len <= sizeof self->task_nonce ? nonce->len : 0;
    memcpy(self->task_nonce, nonce->data, self->task_nonce_len);
}

/* The coordinator refused our update for the round in hand for a reason
 * that resending the same update cannot fix (shape, NaN, norm, hash,
 * signature, size): say so with a SiteFailure, so the round stops waiting
 * for us (issue 10 item 11). */
static void s_on_update_refused(mfl_site_agent_t *self, const Metafl__Reject *rj, int reason,
                                const char *text)
{
    switch (reason) {
    case METAFL__REJECT_REASON__REJECT_SHAPE:
    case METAFL__REJECT_REASON__REJECT_NONFINITE:
    case METAFL__REJECT_REASON__REJECT_NORM:
    case METAFL__REJECT_REASON__REJECT_SIGNATURE:
    case METAFL__REJECT_REASON__REJECT_HASH:
    case METAFL__REJECT_REASON__REJECT_TOO_LARGE:
    case METAFL__REJECT_REASON__REJECT_CHUNK:
        break;
    default:
        return;
    }
    if (rj && mfl_chunk_upload_active(self->chunks) &&
        rj->round == mfl_chunk_upload_round(self->chunks))
        mfl_chunk_upload_stop(self->chunks); /* the rest would only be dropped */
    if (!rj || !self->task_nonce_len || rj->round != self->task_round)
        return;
    char why[256];
    snprintf(why, sizeof why, "update refused: %s: %s", mfl_reject_reason_name(reason), text);
    ProtobufCBinaryData nonce = {self->task_nonce_len, self->task_nonce};
    s_send_failure(self, self->task_round, &nonce, false, why);
    self->task_nonce_len = 0; /* once per task */
}

/* A task_declined record for a refused round (reason = "privacy.RULE:
 * why"); 0, or -1 with ferr when the audit log cannot take it. */
static int s_audit_declined(mfl_site_agent_t *self, const mfl_round_task_t *task,
                            const char *why, char *ferr, size_t ferrlen)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    if (!rec)
        return mfl_errf(ferr, ferrlen, "out of memory"), -1;
    mfl_audit_record_init(rec, MFL_AUDIT_TASK_DECLINED, task->round, self->cfg->site_id);
    size_t nl = task->nonce_len < sizeof rec->nonce ? task->nonce_len : sizeof rec->nonce;
    memcpy(rec->nonce, task->nonce, nl);
    rec->nonce_len = nl;
    snprintf(rec->reason, sizeof rec->reason, "%.*s", (int)(sizeof rec->reason - 1), why);
    char err[512];
    int rc = mfl_audit_append(self->audit, rec, NULL, err, sizeof err);
    free(rec);
    if (rc)
        mfl_errf(ferr, ferrlen, "audit log %s: %s", self->cfg->audit_log, err);
    return rc;
}

/* ---- secure aggregation (docs/SECAGG.md) ------------------------------ */

static void s_free_words(void *hint)
{
    free(hint);
}

/* A masked words' buffer ZeroMQ is done with, back to the spare. */
typedef struct {
    mfl_site_secagg_spare_t *spare;
    void *words;
} s_words_back_t;

static void s_return_words(void *hint)
{
    s_words_back_t *b = hint;
    mfl_site_secagg_spare_return(b->spare, b->words);
    free(b);
}

/* Sends one of secure aggregation's messages (with the masked words as
 * its one uint64 or uint32 tensor when given, `hash` their BLAKE2b-256 if
 * known: not computed again). `owned` (the words' buffer, or NULL: the
 * wire copies them) is sent zero-copy and freed when ZeroMQ is done with
 * it, whatever happens. 0 or -1 (logged). */
static int s_secagg_send(mfl_site_agent_t *self, const mfl_secagg_wire_t *m, const void *words,
                         size_t n_words, const uint8_t *hash, void *owned)
{
    char err[256];
    if (mfl_secagg_wire_to_envelope(m, self->sa_env, err, sizeof err) < 0) {
        mfl_warn("site %s: secure aggregation message not built: %s", self->cfg->site_id, err);
        free(owned);
        return -1;
    }
    self->sa_env->env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    mfl_tensor_t t = mfl_tensor_vec("masked", (const float *)words, n_words);
    t.encoding = self->secagg && mfl_site_secagg_word_bits(self->secagg) == 32
                     ? MFL_WIRE_ENCODING_U32
                     : MFL_WIRE_ENCODING_U64;
    t.blake2b = hash;
    /* an owned buffer goes back to the spare once sent, else is freed */
    s_words_back_t *back = owned && self->sa_spare ? malloc(sizeof *back) : NULL;
    if (back)
        *back = (s_words_back_t){self->sa_spare, owned};
    if (mfl_client_send(self->client, &self->sa_env->env, words ? &t : NULL, words ? 1 : 0,
                        back ? s_return_words : owned ? s_free_words : NULL,
                        back ? (void *)back : owned, err, sizeof err)) {
        mfl_warn("site %s: round %u: secure aggregation message not delivered: %s",
                 self->cfg->site_id, m->round, err);
        return -1;
    }
    return 0;
}

/* The task asks for secure aggregation: the attempt from its setup and our
 * own roster, and our key advertisement sent before training (so the
 * coordinator's key phase does not wait for the slowest site's training). */
static int s_secagg_start(mfl_site_agent_t *self, const mfl_round_task_t *task, size_t n_params,
                          char *err, size_t errlen)
{
    if (!self->sa_spare) /* NULL (out of memory): every attempt allocates afresh */
        self->sa_spare = mfl_site_secagg_spare_new();
    self->secagg = mfl_site_secagg_new_spare(task, self->cfg->site_id,
                                             mfl_identity_sign_sk(self->identity), self->roster,
                                             n_params, self->sa_spare, err, errlen);
    if (!self->secagg)
        return -1;
    /* Its weight is its training rows: with 32-bit words a weight above
     * the bound could not be encoded after training. Refused now, before
     * any key leaves (docs/SECAGG.md "Word width"). */
    size_t rows = mfl_site_worker_n_train(self->worker);
    if ((double)rows > mfl_site_secagg_max_weight(self->secagg)) {
        mfl_errf(err, errlen, "%zu training rows: above %g, the largest weight the "
                 "coordinator's secure_aggregation.word_bits %u carries for %d sites",
                 rows, mfl_site_secagg_max_weight(self->secagg),
                 mfl_site_secagg_word_bits(self->secagg), MFL_SECAGG_NARROW_MAX_SITES);
        mfl_site_secagg_destroy(&self->secagg);
        return -1;
    }
    int rc = mfl_site_secagg_advertise(self->secagg, self->sa_out, err, errlen);
    if (rc == 0 && s_secagg_send(self, self->sa_out, NULL, 0, NULL, NULL) < 0) {
        mfl_errf(err, errlen, "key advertisement not sent");
        rc = -1;
    }
    if (rc < 0)
        mfl_site_secagg_destroy(&self->secagg);
    return rc;
    return 0;
}

/* The trained update into the attempt, weighted by the sample count the
 * site signed (what the coordinator would weight a plain update by): 1
 * when the count is not sent (DP with the statistics withheld), as the
 * coordinator and `metafl simulate` weight such a site; a weight of 0 would
 * be refused by the quantiser. */
static int s_secagg_input(mfl_site_agent_t *self, const mfl_site_round_result_t *r, char *err,
                          size_t errlen)
{
    mfl_update_header_t h;
    if (mfl_update_header_decode(r->header, r->header_len, &h, err, errlen) < 0)
        return -1;
    double weight = h.not_sent & MFL_STAT_N_SAMPLES ? 1.0 : (double)h.n_samples;
    return mfl_site_secagg_set_input(self->secagg, r->delta, weight, err, errlen);
}

/* The site's record of its masked input (secagg_masked: the words' hash),
 * written before the words leave, as for an update. */
static int s_secagg_audit(mfl_site_agent_t *self, const mfl_secagg_wire_t *m,
                          const uint8_t hash[32], size_t n_words, char *err, size_t errlen)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t *rec = malloc(sizeof *rec);
    if (!rec)
        return mfl_errf(err, errlen, "out of memory"), -1;
    mfl_audit_record_init(rec, MFL_AUDIT_SECAGG_MASKED, m->round, self->cfg->site_id);
    memcpy(rec->nonce, m->nonce, MFL_SECAGG_NONCE_BYTES);
    rec->nonce_len = MFL_SECAGG_NONCE_BYTES;
    rec->has_delta_hash = true;
    memcpy(rec->delta_hash, hash, 32);
    rec->n = n_words;
    int rc = mfl_audit_append(self->audit, rec, NULL, err, errlen);
    free(rec);
    return rc;
}

/* Records and sends the masked input (words/n_words, their hash) as `m`
 * (its head), zero-copy (except for the test fault that sends it twice).
 * MFL_AGENT_CONTINUE, DONE (max_rounds), or FATAL (audit). */
static mfl_agent_status_t s_secagg_send_masked(mfl_site_agent_t *self, const mfl_secagg_wire_t *m,
                                               const void *words, size_t n_words,
                                               const uint8_t hash[32],
                                               mfl_site_agent_secagg_fault_t fault, char *ferr,
                                               size_t ferrlen)
{
    char err[512] = "";
    if (s_secagg_audit(self, m, hash, n_words, err, sizeof err) < 0) {
        mfl_errf(ferr, ferrlen, "audit log %s: %s; no masked input is sent without its record",
                 self->cfg->audit_log, err);
        return MFL_AGENT_FATAL;
    }
    /* the tensor header carries the hash already computed (the short
     * fault's words are not what it hashed: recomputed) */
    const uint8_t *known = fault == MFL_SECAGG_FAULT_SHORT_MASKED ? NULL : hash;
    /* Zero-copy: the masked words' buffer goes to ZeroMQ and is freed when
     * sent (not for the test fault that sends it twice). */
    void *owned = fault != MFL_SECAGG_FAULT_TWICE_MASKED
                      ? mfl_site_secagg_detach_words(self->secagg)
                      : NULL;
    if (s_secagg_send(self, m, words, n_words, known, owned) == 0) {
        self->updates_sent++;
        mfl_info("site %s: round %u: masked update sent (%zu words of %u bits)",
                 self->cfg->site_id, m->round, n_words, mfl_site_secagg_word_bits(self->secagg));
        if (fault == MFL_SECAGG_FAULT_TWICE_MASKED)
            (void)s_secagg_send(self, m, words, n_words, known, NULL);
    }
    return MFL_AGENT_CONTINUE;
}

/* UploadReady for the masked input waiting in sa_pending. */
static void s_secagg_send_ready(mfl_site_agent_t *self)
{
    uint64_t bytes = (uint64_t)self->sa_pending.n_words *
                     (self->secagg ? mfl_site_secagg_word_bits(self->secagg) / 8 : 8);
    s_send_upload_ready(self, self->sa_pending.round, self->sa_pending.nonce,
                        MFL_SECAGG_NONCE_BYTES, bytes, "masked input");
}

/* The UploadGrant `g` for the masked input in sa_pending, if it is: sends
 * it. 1 (handled: *st says how it went), 0 (not for it). */
static int s_secagg_granted(mfl_site_agent_t *self, const Metafl__UploadGrant *g,
                            mfl_agent_status_t *st, char *ferr, size_t ferrlen)
{
    if (!g || !self->sa_pending.ready || !self->secagg || g->round != self->sa_pending.round ||
        g->nonce.len != MFL_SECAGG_NONCE_BYTES ||
        memcmp(g->nonce.data, self->sa_pending.nonce, MFL_SECAGG_NONCE_BYTES) != 0)
        return 0;
    self->sa_pending.ready = false;
    mfl_secagg_wire_t *m = self->sa_out;
    memset(m, 0, sizeof *m);
    m->kind = MFL_MSG_SECAGG_MASKED;
    m->round = self->sa_pending.round;
    memcpy(m->nonce, self->sa_pending.nonce, MFL_SECAGG_NONCE_BYTES);
    const void *words = mfl_site_secagg_masked_words(self->secagg);
    if (!words) {
        mfl_warn("site %s: round %u: upload grant, but the masked input is gone; ignored",
                 self->cfg->site_id, m->round);
        *st = MFL_AGENT_CONTINUE;
        return 1;
    }
    *st = s_secagg_send_masked(self, m, words, self->sa_pending.n_words, self->sa_pending.hash,
                               MFL_SECAGG_FAULT_NONE, ferr, ferrlen);
    if (*st == MFL_AGENT_CONTINUE && self->opts.max_rounds &&
        self->updates_sent >= self->opts.max_rounds)
        *st = MFL_AGENT_DONE;
    return 1;
}

static mfl_agent_status_t s_secagg_msg(mfl_site_agent_t *self, const mfl_msg_t *msg, char *ferr,
                                       size_t ferrlen)
{
    char err[512] = "";
    mfl_reject_t why = MFL_REJECT_BAD_MESSAGE;
    if (mfl_secagg_wire_from_envelope(mfl_msg_envelope(msg), self->sa_in, &why, err,
                                      sizeof err) < 0) {
        mfl_warn("site %s: secure aggregation message refused: %s", self->cfg->site_id, err);
        return MFL_AGENT_CONTINUE;
    }
    const mfl_secagg_wire_t *in = self->sa_in;
    if (!self->secagg || !mfl_site_secagg_is(self->secagg, in->round, in->nonce)) {
        mfl_debug("site %s: secure aggregation message for round %u, not the attempt in hand; "
                  "ignored", self->cfg->site_id, in->round);
        return MFL_AGENT_CONTINUE;
    }
    if (in->kind == MFL_MSG_SECAGG_END) {
        if (in->abandoned)
            mfl_warn("site %s: round %u: secure aggregation abandoned: %s", self->cfg->site_id,
                     in->round, in->reason);
        else
            mfl_info("site %s: round %u: secure aggregation done (%s)", self->cfg->site_id,
                     in->round, in->reason);
        mfl_site_secagg_destroy(&self->secagg);
        self->sa_pending.ready = false;
        return MFL_AGENT_CONTINUE;
    }
    const void *words;
    size_t n_words;
    uint8_t hash[32];
    int rc = mfl_site_secagg_on_msg(self->secagg, in, self->sa_out, &words, &n_words, hash, &why,
                                    err, sizeof err);
    if (rc < 0) {
        /* e.g. a coordinator asking for both shares of one peer: refused,
         * nothing revealed, and it is told why */
        mfl_warn("site %s: round %u: secure aggregation: refused: %s: %s", self->cfg->site_id,
                 in->round, mfl_reject_reason_name(why), err);
        char serr[256];
        Metafl__Reject rj = METAFL__REJECT__INIT;
        rj.reason = (Metafl__RejectReason)why;
        rj.text = err;
        rj.round = in->round;
        Metafl__Envelope env = METAFL__ENVELOPE__INIT;
        env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
        env.kind = METAFL__MESSAGE_KIND__REJECT;
        env.body_case = METAFL__ENVELOPE__BODY_REJECT;
        env.reject = &rj;
        (void)mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, serr, sizeof serr);
        return MFL_AGENT_CONTINUE;
    }
    if (rc == 0)
        return MFL_AGENT_CONTINUE;
    mfl_site_agent_secagg_fault_t fault = self->opts.secagg_fault;
    if (words && fault == MFL_SECAGG_FAULT_SHORT_MASKED)
        n_words--; /* tests only: the coordinator must refuse it */
    if (words && fault == MFL_SECAGG_FAULT_HOLD_MASKED && self->opts.secagg_hold_file) {
        /* tests only: the masked vector leaves when the test says so */
        mfl_warn("site %s: round %u: holding the masked input until %s exists (test fault)",
                 self->cfg->site_id, in->round, self->opts.secagg_hold_file);
        for (int i = 0; i < 1200 && access(self->opts.secagg_hold_file, F_OK) != 0; i++)
            usleep(50000);
    }
    /* Flow control (the setup's masked_grant): announce the words, send
     * them on the grant (s_upload). The test faults send at once. */
    if (words && fault == MFL_SECAGG_FAULT_NONE && mfl_site_secagg_masked_grant(self->secagg)) {
        self->sa_pending.ready = true;
        self->sa_pending.round = in->round;
        memcpy(self->sa_pending.nonce, in->nonce, MFL_SECAGG_NONCE_BYTES);
        self->sa_pending.n_words = n_words;
        memcpy(self->sa_pending.hash, hash, 32);
        s_secagg_send_ready(self);
        return MFL_AGENT_CONTINUE;
    }
    if (words) {
        mfl_agent_status_t st = s_secagg_send_masked(self, self->sa_out, words, n_words, hash,
                                                     fault, ferr, ferrlen);
        if (st != MFL_AGENT_CONTINUE)
            return st;
    } else {
        (void)s_secagg_send(self, self->sa_out, NULL, 0, NULL, NULL);
    }
    if (in->kind == MFL_MSG_SECAGG_KEYS && fault == MFL_SECAGG_FAULT_EXIT_AFTER_SHARE) {
        mfl_warn("site %s: round %u: leaving after sharing keys (test fault)",
                 self->cfg->site_id, in->round);
        return MFL_AGENT_DONE;
    }
    if (self->opts.max_rounds && self->updates_sent >= self->opts.max_rounds)
        return MFL_AGENT_DONE;
    return MFL_AGENT_CONTINUE;
}

static mfl_agent_status_t s_round(mfl_site_agent_t *self, mfl_msg_t *msg, char *ferr,
                                  size_t ferrlen)
{
    const Metafl__RoundTask *task = mfl_msg_envelope(msg)->round_task;
    char err[1024];
    size_t n = 0;
    if (!task) {
        mfl_warn("site %s: RoundTask without a body; ignored", self->cfg->site_id);
        return MFL_AGENT_CONTINUE;
    }
    /* The same attempt again (the coordinator re-sends the task when we say
     * hello after a reconnect): the update is already trained and on our
     * audit log; ask to send it instead of training again. */
    if (self->pending.ready && task->round == self->pending.round &&
        task->nonce.len == self->pending.nonce_len &&
        memcmp(task->nonce.data, self->pending.nonce, task->nonce.len) == 0) {
        s_send_ready(self);
        return MFL_AGENT_CONTINUE;
    }
    /* The same securely aggregated attempt again (sent after our Hello on
     * a reconnect): keep the attempt in hand (its keys are on record with
     * the coordinator); starting over would make us a dropout. */
    if (self->secagg && task->nonce.len == MFL_SECAGG_NONCE_BYTES &&
        mfl_site_secagg_is(self->secagg, task->round, task->nonce.data)) {
        mfl_info("site %s: round %u: task sent again; secure aggregation goes on",
                 self->cfg->site_id, task->round);
        if (self->sa_pending.ready) /* a grant was for the old connection: ask again */
            s_secagg_send_ready(self);
        return MFL_AGENT_CONTINUE;
    }
    s_drop_pending(self);
    s_note_task(self, task->round, &task->nonce);
    if (s_settle_update(self) < 0) {
        mfl_warn("site %s: round %u refused: out of memory", self->cfg->site_id, task->round);
        s_send_failure(self, task->round, &task->nonce, false, "out of memory");
        return MFL_AGENT_CONTINUE;
    }
    mfl_round_task_t plain;
    int wrc = mfl_round_task_from_msg(task, &plain, err, sizeof err);
    bool need_model = false;
    if (wrc == 0 && s_round_model(self, msg, &plain, &n, &need_model, err, sizeof err)) {
        mfl_warn("site %s: round %u refused: %s%s", self->cfg->site_id, task->round, err,
                 need_model ? "; asking for the model in full" : "");
        if (need_model)
            s_audit_model_refused(self, &plain, err);
        s_send_failure_as(self, task->round, &task->nonce, false, err, need_model);
        return MFL_AGENT_CONTINUE;
    }
    s_trim_after_theta(n);
    if (self->opts.site_fault == MFL_SITE_FAULT_HOG_GRANT) { /* TESTS ONLY */
        mfl_warn("site %s: TEST FAULT: asking to upload round %u, never sending",
                 self->cfg->site_id, task->round);
        s_send_upload_ready(self, task->round, task->nonce.data, task->nonce.len,
                            (uint64_t)n * sizeof(float), "update (never sent)");
        return MFL_AGENT_CONTINUE;
    }
    s_record_peer_head(self, task);
    if (self->audit) {
        /* Our head goes into the header we sign: the coordinator keeps it.
         * The head as written, with the lazy peer_head record above: the
         * header leaves only after the update_sent record's sync, which
         * makes every record up to this head durable first. */
        uint8_t head[32];
        mfl_audit_head(self->audit, head);
        mfl_site_worker_set_audit_head(self->worker, mfl_audit_count(self->audit), head);
    }
    uint64_t t0 = mfl_clock_mono_ms();
    mfl_site_round_result_t r;
    mfl_site_secagg_destroy(&self->secagg); /* a new task ends any attempt in hand */
    self->sa_pending.ready = false;
    if (wrc == 0 && plain.has_secagg && s_secagg_start(self, &plain, n, err, sizeof err) < 0) {
        mfl_warn("site %s: round %u: cannot take part in secure aggregation: %s",
                 self->cfg->site_id, task->round, err);
        s_send_failure(self, task->round, &task->nonce, false, err);
        return MFL_AGENT_CONTINUE;
    }
    if (wrc == 0)
        wrc = mfl_site_worker_round(self->worker, &plain, self->theta, n, &r, err, sizeof(err));
    if (wrc == MFL_SITE_ROUND_DECLINED) {
        /* The hospital's privacy policy refused the task: on the audit log
         * first (a log that cannot take it is fatal, as for an update),
         * then to the coordinator as a SiteFailure naming the rule. */
        mfl_warn("site %s: round %u declined by the site's privacy policy: %s",
                 self->cfg->site_id, task->round, err);
        if (s_audit_declined(self, &plain, err, ferr, ferrlen))
            return MFL_AGENT_FATAL;
        s_send_failure(self, task->round, &task->nonce, false, err);
        return MFL_AGENT_CONTINUE;
    }
    if (wrc == 0 && self->secagg)
        wrc = s_secagg_input(self, &r, err, sizeof err);
    if (wrc) {
        mfl_warn("site %s: round %u failed: %s", self->cfg->site_id, task->round, err);
        mfl_site_secagg_destroy(&self->secagg);
        s_send_failure(self, task->round, &task->nonce, false, err);
        return MFL_AGENT_CONTINUE;
    }
    if (self->secagg) { /* Δ leaves only masked, when the shares are in (s_secagg_msg) */
        /* The release on our own record all the same (update_sent: the
         * signed header with its privacy record, which the privacy ledger
         * counts); what travels is recorded as secagg_masked. */
        if (s_audit_update(self, &plain, &r, err, sizeof err)) {
            mfl_site_secagg_destroy(&self->secagg);
            mfl_errf(ferr, ferrlen, "audit log %s: %s; no update is sent without its record",
                     self->cfg->audit_log, err);
            return MFL_AGENT_FATAL;
        }
        mfl_info("site %s: round %u: %s on %zu rows, loss %.4f -> %.4f, |Δ| %.4g, %llu ms; "
                 "waiting for secure aggregation", self->cfg->site_id, task->round,
                 plain.algorithm.name[0] ? plain.algorithm.name : "?",
                 (size_t)r.metrics.n_samples, r.metrics.loss_before, r.metrics.loss_after,
                 r.delta_norm, (unsigned long long)(mfl_clock_mono_ms() - t0));
        return MFL_AGENT_CONTINUE;
    }
    /* The record is written and fsync'd before anything is sent; for a big
     * Δ the fsync runs on a helper while this thread copies Δ into the send
     * buffer (the copy does not depend on the record; the send waits). */
    s_audit_job_t job = {self, &plain, &r, 0, ""};
    pthread_t audit_thread;
    bool auditing = self->audit && r.n_delta >= S_AUDIT_THREAD_MIN &&
                    pthread_create(&audit_thread, NULL, s_audit_main, &job) == 0;
    if (!auditing)
        s_audit_main(&job);
    /* what travels: Δ's floats, or its encoded bytes (a whole number of
     * floats' room: the worker's buffer has the slack) */
    size_t wire_bytes = r.encoding ? mfl_quant_bytes((mfl_quant_kind_t)r.encoding, r.n_delta)
                                   : r.n_delta * sizeof(float);
    const float *src = r.encoding ? (const float *)(const void *)r.encoded : r.delta;
    /* a chunked upload goes zero-copy from the worker's Δ: no warm
     * θ-sized send buffer for it (and the one a smaller model used is
     * given back) */
    const float *zc = NULL;
    if (!r.chunk_values)
        zc = s_send_copy(self, src, (wire_bytes + 3) / 4); /* job.rc: after the join */
    else if (!atomic_load(&self->send_busy)) {
        free(self->send_buf);
        self->send_buf = NULL;
        self->send_cap = 0;
    }
    if (auditing)
        pthread_join(audit_thread, NULL);
    if (job.rc) {
        mfl_errf(ferr, ferrlen, "audit log %s: %s; no update is sent without its record",
                 self->cfg->audit_log, job.err);
        return MFL_AGENT_FATAL;
    }
    /* Flow control: announce the update and send it when granted (s_upload).
     * The record above is already on disk, so whatever leaves has one. */
    self->pending.ready = true;
    self->pending.round = task->round;
    self->pending.nonce_len = task->nonce.len < sizeof self->pending.nonce
                                  ? task->nonce.len
                                  : sizeof self->pending.nonce;
    memcpy(self->pending.nonce, task->nonce.data, self->pending.nonce_len);
    self->pending.r = r;
    self->pending.delta = zc ? zc : src;
    self->pending.zero_copy = zc != NULL;
    if (zc)
        atomic_store(&self->send_busy, 1); /* ours until ZeroMQ releases the send */
    snprintf(self->pending.algo, sizeof self->pending.algo, "%.31s",
             plain.algorithm.name[0] ? plain.algorithm.name : "?");
    self->pending.t0_ms = t0;
    /* A small update goes at once (MFL_WIRE_UNGRANTED_UPDATE_BYTES says
     * why); a bigger one waits for the coordinator's grant. */
    if ((uint64_t)wire_bytes <= MFL_WIRE_UNGRANTED_UPDATE_BYTES)
        return s_upload(self, NULL);
    s_send_ready(self);
    return MFL_AGENT_CONTINUE;
}

/* The log line for an update that left, and the max_rounds exit. */
static mfl_agent_status_t s_update_left(mfl_site_agent_t *self, const char *how)
{
    const mfl_site_round_result_t *r = &self->pending.r;
    self->updates_sent++;
    char loss[64] = "loss not computed (DP-SGD)";
    if (isfinite(r->metrics.loss_before) && isfinite(r->metrics.loss_after))
        snprintf(loss, sizeof loss, "loss %.4f -> %.4f", r->metrics.loss_before,
                 r->metrics.loss_after);
    mfl_info("site %s: round %u: %s on %zu rows, %s, |Δ| %.4g, %llu ms, "
             "update sent%s%s%s", self->cfg->site_id, self->pending.round, self->pending.algo,
             (size_t)r->metrics.n_samples, loss, r->delta_norm,
             (unsigned long long)(mfl_clock_mono_ms() - self->pending.t0_ms),
             r->encoding ? " as " : "",
             r->encoding ? mfl_quant_name((mfl_quant_kind_t)r->encoding) : "", how);
    if (self->opts.max_rounds && self->updates_sent >= self->opts.max_rounds)
        return MFL_AGENT_DONE;
    return MFL_AGENT_CONTINUE;
}

/* Queues the next chunks of an upload in progress (from step). */
static mfl_agent_status_t s_pump(mfl_site_agent_t *self)
{
    char err[512];
    int rc = mfl_chunk_upload_pump(self->chunks, self->client, err, sizeof err);
    if (rc < 0) {
        mfl_warn("site %s: round %u: chunked upload not delivered: %s (the coordinator "
                 "re-sends the task after we reconnect)", self->cfg->site_id,
                 mfl_chunk_upload_round(self->chunks), err);
        return MFL_AGENT_CONTINUE;
    }
    if (rc == 1) {
        /* every chunk is queued: Δ's pages can go once ZeroMQ has released
         * them (s_settle_update; a task sent again after this trains anew,
         * pending.ready being false) */
        self->drop_update = true;
        char how[64];
        snprintf(how, sizeof how, " (%zu chunks)", self->pending.r.n_chunks);
        return s_update_left(self, how);
    }
    return MFL_AGENT_CONTINUE;
}

/* The pending update as a chunked upload (its task asked for chunks):
 * UpdateBegin now, the chunks from s_pump. */
static mfl_agent_status_t s_upload_chunked(mfl_site_agent_t *self, size_t nt)
{
    const mfl_site_round_result_t *r = &self->pending.r;
    char err[512];
    if (nt > self->n_pump_tensors) {
        mfl_tensor_t *t = realloc(self->pump_tensors, nt * sizeof *t);
        if (!t) {
            mfl_warn("site %s: out of memory sending round %u", self->cfg->site_id,
                     self->pending.round);
            return MFL_AGENT_CONTINUE;
        }
        self->pump_tensors = t;
        self->n_pump_tensors = nt;
    }
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_site_worker_tensor(self->worker, i);
        mfl_tensor_t *t = &self->pump_tensors[i];
        memset(t, 0, sizeof *t);
        t->name = ti->name;
        t->ndim = 1;
        t->shape[0] = ti->count;
        t->count = ti->count;
        if (r->encoding) {
            mfl_quant_kind_t k = (mfl_quant_kind_t)r->encoding;
            t->data = (const float *)(const void *)(r->encoded + mfl_quant_bytes(k, ti->offset));
            t->encoding = r->encoding;
            t->scale = r->scales[i];
        } else {
            t->data = r->delta + ti->offset;
        }
    }
    self->pending.ready = false;
    if (mfl_chunk_upload_start(self->chunks, self->client, self->pending.round,
                               self->pending.nonce, self->pending.nonce_len, r->header,
                               r->header_len, r->signature, r->signature_len, self->pump_tensors,
                               nt, r->chunk_values, r->chunk_hashes, r->n_chunks,
                               (mfl_chunk_fault_t)self->opts.chunk_fault, err, sizeof err) < 0) {
        mfl_warn("site %s: round %u: update not delivered: %s (the coordinator re-sends the "
                 "task after we reconnect)", self->cfg->site_id, self->pending.round, err);
        return MFL_AGENT_CONTINUE;
    }
    return s_pump(self);
}

/* Sends the pending update: on the UploadGrant `g` if it is for it, or at
 * once (g NULL) for a small update. */
static mfl_agent_status_t s_upload(mfl_site_agent_t *self, const Metafl__UploadGrant *g)
{
    if (g && (!self->pending.ready || g->round != self->pending.round ||
              g->nonce.len != self->pending.nonce_len ||
              memcmp(g->nonce.data, self->pending.nonce, g->nonce.len) != 0)) {
        mfl_warn("site %s: upload grant for round %u does not match an update we hold; "
                 "ignored", self->cfg->site_id, g ? g->round : 0);
        return MFL_AGENT_CONTINUE;
    }
    const mfl_site_round_result_t *r = &self->pending.r;
    char err[1024];
    size_t nt = mfl_site_worker_n_tensors(self->worker);
    if (r->chunk_values)
        return s_upload_chunked(self, nt);
    mfl_tensor_t *tensors = calloc(nt ? nt : 1, sizeof(*tensors));
    if (!tensors) {
        mfl_warn("site %s: out of memory sending round %u", self->cfg->site_id,
                 self->pending.round);
        return MFL_AGENT_CONTINUE;
    }
    for (size_t i = 0; i < nt; i++) {
        const mfl_tensor_info_t *ti = mfl_site_worker_tensor(self->worker, i);
        tensors[i].name = ti->name;
        tensors[i].ndim = ti->ndim;
        for (size_t d = 0; d < ti->ndim; d++)
            tensors[i].shape[d] = ti->shape[d];
        tensors[i].count = ti->count;
        if (r->encoding) { /* the encoded bytes, at their byte offset */
            mfl_quant_kind_t k = (mfl_quant_kind_t)r->encoding;
            tensors[i].data = (const float *)(const void *)((const uint8_t *)self->pending.delta +
                                                            mfl_quant_bytes(k, ti->offset));
            tensors[i].encoding = r->encoding;
            tensors[i].scale = r->scales[i];
        } else {
            tensors[i].data = self->pending.delta + ti->offset;
        }
        /* The hashes the worker signed: hashing Δ again in the send cost
         * one more 4 MB BLAKE2b per round for 1M parameters. */
        tensors[i].blake2b = r->tensor_hashes ? r->tensor_hashes + MFL_SITE_HASH_BYTES * i : NULL;
    }
    Metafl__Update upd = METAFL__UPDATE__INIT;
    upd.header.data = (uint8_t *)r->header;
    upd.header.len = r->header_len;
    upd.signature.data = (uint8_t *)r->signature;
    upd.signature.len = r->signature_len;
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__UPDATE;
    env.body_case = METAFL__ENVELOPE__BODY_UPDATE;
    env.update = &upd;
    /* Zero-copy from our send buffer (released by ZeroMQ), or, while that
     * was still queued when Δ was ready, release == NULL: the wire copies.
     * Either way the worker may reuse Δ. */
    bool zc = self->pending.zero_copy;
    self->pending.ready = false;
    self->pending.zero_copy = false;
    int rc = mfl_client_send(self->client, &env, tensors, nt, zc ? s_send_buf_release : NULL,
                             zc ? self : NULL, err, sizeof(err));
    free(tensors);
    if (rc) {
        mfl_warn("site %s: round %u: update not delivered: %s (the coordinator re-sends the "
                 "task after we reconnect)", self->cfg->site_id, self->pending.round, err);
        return MFL_AGENT_CONTINUE;
    }
    return s_update_left(self, "");
}

/* Federated standardisation: a `scaling` record of the moments about to
 * leave (n = fit rows, delta_hash = mfl_task_moments_digest, the digest
 * the coordinator's record carries too). 0, or -1 + err. */
static int s_audit_moments(mfl_site_agent_t *self, const mfl_eval_task_t *task,
                           const mfl_eval_report_t *report, char *err, size_t errlen)
{
    if (!self->audit)
        return 0;
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    if (!rec)
        return mfl_errf(err, errlen, "out of memory"), -1;
    mfl_audit_record_init(rec, MFL_AUDIT_SCALING, task->round, self->cfg->site_id);
    size_t nl = task->nonce_len < sizeof rec->nonce ? task->nonce_len : sizeof rec->nonce;
    memcpy(rec->nonce, task->nonce, nl);
    rec->nonce_len = nl;
    rec->n = report->moments_n;
    rec->has_delta_hash = true;
    mfl_task_moments_digest(report, rec->delta_hash);
    snprintf(rec->reason, sizeof rec->reason, "sent the moments of %llu fit rows, %u features: "
             "per-feature sums and sums of squares (BLAKE2b-256 in delta_hash); validation "
             "fraction %.6g, seed %llu; test rows untouched",
             (unsigned long long)report->moments_n, report->n_moments,
             task->selection.validation_fraction,
             (unsigned long long)task->selection.validation_seed);
    char aerr[512];
    int rc = mfl_audit_append(self->audit, rec, NULL, aerr, sizeof aerr);
    free(rec);
    if (rc)
        mfl_errf(err, errlen, "audit log %s: %s", self->cfg->audit_log, aerr);
    return rc;
}

static mfl_agent_status_t s_eval(mfl_site_agent_t *self, mfl_msg_t *msg)
{
    const Metafl__EvalTask *task = mfl_msg_envelope(msg)->eval_task;
    char err[1024];
    size_t n = 0;
    if (!task) {
        mfl_warn("site %s: EvalTask without a body; ignored", self->cfg->site_id);
        return MFL_AGENT_CONTINUE;
    }
    /* The evaluation comes after the round closed: an update still waiting
     * or in flight is moot, and the worker gives its Δ's pages back. */
    s_drop_pending(self);
    if (s_settle_update(self) < 0) {
        mfl_warn("site %s: evaluation %u refused: out of memory", self->cfg->site_id,
                 task->round);
        s_send_failure(self, task->round, &task->nonce, true, "out of memory");
        return MFL_AGENT_CONTINUE;
    }
    /* the round's model stays held for the next task's difference: the
     * evaluation's θ goes beside it (freed below) */
    bool keep = self->base_valid;
    float **buf = keep ? &self->eval_theta : &self->theta;
    size_t *cap = keep ? &self->eval_cap : &self->theta_cap;
    if (s_gather_into(self, msg, buf, cap, &n, err, sizeof(err))) {
        mfl_warn("site %s: evaluation %u refused: %s", self->cfg->site_id, task->round, err);
        s_send_failure(self, task->round, &task->nonce, true, err);
        return MFL_AGENT_CONTINUE;
    }
    s_trim_after_theta(n);
    mfl_eval_task_t plain;
    mfl_site_eval_result_t r;
    int erc = mfl_eval_task_from_msg(task, &plain, err, sizeof err) ||
              mfl_site_worker_eval(self->worker, &plain, *buf, n, &r, err, sizeof(err));
    if (keep) {
        free(self->eval_theta);
        self->eval_theta = NULL;
        self->eval_cap = 0;
    }
    if (erc) {
        mfl_warn("site %s: evaluation %u failed: %s", self->cfg->site_id, task->round, err);
        s_send_failure(self, task->round, &task->nonce, true, err);
        return MFL_AGENT_CONTINUE;
    }
    mfl_eval_report_t report;
    mfl_site_worker_fill_report(self->worker, &plain, &r, &report);
    if (plain.moments && self->opts.site_fault == MFL_SITE_FAULT_MOMENTS_BEYOND_FLOATS &&
        report.n_moments) {
        report.moments_sum[0] = (double)report.moments_n * 1e42;
        report.moments_sum_sq[0] = (double)report.moments_n * 1e84;
    } else if (plain.moments && self->opts.site_fault == MFL_SITE_FAULT_MOMENTS_MORE_ROWS) {
        report.moments_n *= 100;
        for (uint32_t j = 0; j < report.n_moments; j++) {
            report.moments_sum[j] *= 100;
            report.moments_sum_sq[j] *= 100;
        }
    }
    /* The moments are recorded before they leave, as an update is: a
     * record that cannot be written means nothing is sent. */
    if (plain.moments && s_audit_moments(self, &plain, &report, err, sizeof err) < 0) {
        mfl_warn("site %s: moments not sent: %s", self->cfg->site_id, err);
        s_send_failure(self, task->round, &task->nonce, true, err);
        return MFL_AGENT_CONTINUE;
    }
    Metafl__EvalReport rep;
    mfl_eval_report_to_msg(&report, &rep);
    Metafl__Envelope env = METAFL__ENVELOPE__INIT;
    env.protocol_version = MFL_WIRE_PROTOCOL_VERSION;
    env.kind = METAFL__MESSAGE_KIND__EVAL_REPORT;
    env.body_case = METAFL__ENVELOPE__BODY_EVAL_REPORT;
    env.eval_report = &rep;
    if (mfl_client_send(self->client, &env, NULL, 0, NULL, NULL, err, sizeof(err))) {
        mfl_warn("site %s: evaluation %u: report not delivered: %s", self->cfg->site_id,
                 task->round, err);
        return MFL_AGENT_CONTINUE;
    }
    if (plain.moments) {
        /* Federated standardisation's setup: not the run's evaluation. */
        mfl_info("site %s: fit rows' moments sent (%llu rows, %u features)",
                 self->cfg->site_id, (unsigned long long)report.moments_n, report.n_moments);
        return MFL_AGENT_CONTINUE;
    }
    if (plain.selection.candidate) {
        /* Model selection's scoring of a candidate: not the run's
         * evaluation (--exit-after-eval waits for that one). */
        mfl_info("site %s: model selection candidate %u scored on %zu validation rows "
                 "(adapted on %zu training rows): accuracy %.3f AUROC %.3f",
                 self->cfg->site_id, plain.selection.candidate, r.adapted.n, r.n_support,
                 r.adapted.accuracy, r.adapted.auroc);
        return MFL_AGENT_CONTINUE;
    }
    self->reports_sent++;
    mfl_info("site %s: evaluation after round %u on %zu held-out rows (adapted on %zu): "
             "accuracy %.3f AUROC %.3f | global as received %.3f / %.3f | local-only "
             "%.3f / %.3f", self->cfg->site_id, task->round, r.adapted.n, r.n_support,
             r.adapted.accuracy, r.adapted.auroc, r.before.accuracy, r.before.auroc,
             r.local_only.accuracy, r.local_only.auroc);
    return self->opts.exit_after_eval ? MFL_AGENT_DONE : MFL_AGENT_CONTINUE;
}

static mfl_agent_status_t s_handle(mfl_site_agent_t *self, mfl_msg_t *msg, char *err,
                                   size_t errlen)
{
    const Metafl__Envelope *env = mfl_msg_envelope(msg);
    switch (mfl_msg_kind(msg)) {
    case METAFL__MESSAGE_KIND__WELCOME:
        if (env->welcome)
            mfl_info("site %s: welcomed by coordinator %s (run %s, round %u)",
                     self->cfg->site_id, env->welcome->coordinator ? env->welcome->coordinator : "?",
                     env->welcome->run_id ? env->welcome->run_id : "?",
                     env->welcome->current_round);
        return MFL_AGENT_CONTINUE;
    case METAFL__MESSAGE_KIND__ROUND_TASK:
        return s_round(self, msg, err, errlen);
    case METAFL__MESSAGE_KIND__EVAL_TASK:
        return s_eval(self, msg);
    case METAFL__MESSAGE_KIND__UPLOAD_GRANT: {
        mfl_agent_status_t st;
        if (s_secagg_granted(self, env->upload_grant, &st, err, errlen))
            return st;
        return s_upload(self, env->upload_grant);
    }
    case METAFL__MESSAGE_KIND__SECAGG_KEYS:
    case METAFL__MESSAGE_KIND__SECAGG_SHARES:
    case METAFL__MESSAGE_KIND__SECAGG_SURVIVORS:
    case METAFL__MESSAGE_KIND__SECAGG_UNMASK:
    case METAFL__MESSAGE_KIND__SECAGG_END:
        return s_secagg_msg(self, msg, err, errlen);
    case METAFL__MESSAGE_KIND__HEARTBEAT:
        return MFL_AGENT_CONTINUE;
    case METAFL__MESSAGE_KIND__REJECT: {
        const Metafl__Reject *rj = env->reject;
        int reason = rj ? (int)rj->reason : 0;
        const char *text = rj && rj->text ? rj->text : "";
        if (reason == METAFL__REJECT_REASON__REJECT_SCHEMA ||
            reason == METAFL__REJECT_REASON__REJECT_DATA ||
            reason == METAFL__REJECT_REASON__REJECT_VERSION ||
            reason == METAFL__REJECT_REASON__REJECT_WRONG_SITE) {
            /* Retrying cannot help: the hospital's config or software must change. */
            mfl_errf(err, errlen, "coordinator refused this site: %s: %s",
                     mfl_reject_reason_name(reason), text);
            return MFL_AGENT_FATAL;
        }
        mfl_warn("site %s: coordinator rejected our message (round %u): %s: %s",
                 self->cfg->site_id, rj ? rj->round : 0, mfl_reject_reason_name(reason), text);
        s_on_update_refused(self, rj, reason, text);
        return MFL_AGENT_CONTINUE;
    }
    case METAFL__MESSAGE_KIND__BYE:
        /* The coordinator is going away (restart, end of run). Stay up: ZeroMQ
         * keeps redialling and the next handshake re-announces us. */
        mfl_info("site %s: coordinator said bye (%s); waiting for it to come back",
                 self->cfg->site_id, env->bye && env->bye->reason ? env->bye->reason : "");
        return MFL_AGENT_CONTINUE;
    default:
        mfl_warn("site %s: unexpected message kind %d from the coordinator; ignored",
                 self->cfg->site_id, (int)mfl_msg_kind(msg));
        return MFL_AGENT_CONTINUE;
    }
}

mfl_agent_status_t mfl_site_agent_step(mfl_site_agent_t *self, int timeout_ms, char *err,
                                       size_t errlen)
{
    if (self->need_hello && mfl_client_connected(self->client)) {
        char why[512];
        if (s_send_hello(self, why, sizeof(why)) == 0) {
            self->need_hello = 0;
            self->warned_unconnected = 0;
            mfl_info("site %s: connected to %s (handshake %u), hello sent", self->cfg->site_id,
                     self->cfg->endpoint, self->handshakes);
        } else {
            mfl_warn("site %s: hello not sent: %s; retrying", self->cfg->site_id, why);
        }
    }
    if (mfl_chunk_upload_active(self->chunks)) {
        /* a chunked upload in progress: queue what the window allows, and
         * come back soon for the rest (heartbeats still go from recv) */
        mfl_agent_status_t st = s_pump(self);
        if (st != MFL_AGENT_CONTINUE)
            return st;
        if (mfl_chunk_upload_active(self->chunks) && timeout_ms > 1)
            timeout_ms = 1;
    }
    if (self->drop_update) { /* a sent update: drop Δ once ZeroMQ is done with it */
        if (mfl_chunk_upload_in_flight(self->chunks) == 0)
            (void)s_settle_update(self);
        else if (timeout_ms > 5)
            timeout_ms = 5;
    }
    mfl_msg_t *msg = NULL;
    int reason = 0;
    char why[512] = "";
    mfl_recv_result_t rr = mfl_client_recv(self->client, timeout_ms, &msg, &reason, why,
                                           sizeof(why));
    if (!mfl_client_connected(self->client)) {
        uint64_t now = mfl_clock_mono_ms();
        if (!self->warned_unconnected && self->unconnected_since_ms == 0)
            self->unconnected_since_ms = now;
        if (!self->warned_unconnected &&
            now - self->unconnected_since_ms >= self->cfg->connect_timeout_ms) {
            const char *le = mfl_client_last_error(self->client);
            mfl_warn("site %s: no connection to %s for %u s%s%s; still trying",
                     self->cfg->site_id, self->cfg->endpoint,
                     self->cfg->connect_timeout_ms / 1000, *le ? ": " : "", le);
            self->warned_unconnected = 1;
        }
    } else {
        self->unconnected_since_ms = 0;
    }
    switch (rr) {
    case MFL_RECV_TIMEOUT:
        return MFL_AGENT_CONTINUE;
    case MFL_RECV_REJECTED:
        mfl_warn("site %s: dropped a malformed message from the coordinator: %s: %s",
                 self->cfg->site_id, mfl_reject_reason_name(reason), why);
        return MFL_AGENT_CONTINUE;
    case MFL_RECV_ERROR:
        mfl_errf(err, errlen, "transport failed: %s", why);
        return MFL_AGENT_FATAL;
    case MFL_RECV_OK:
        break;
    }
    mfl_agent_status_t st = s_handle(self, msg, err, errlen);
    mfl_msg_destroy(&msg);
    return st;
}

int mfl_site_agent_run(mfl_site_agent_t *self, volatile sig_atomic_t *stop)
{
    char err[1024];
    while (!stop || !*stop) {
        mfl_agent_status_t st = mfl_site_agent_step(self, 200, err, sizeof(err));
        if (st == MFL_AGENT_DONE)
            return 0;
        if (st == MFL_AGENT_FATAL) {
            mfl_error("site %s: %s", self->cfg->site_id, err);
            return 1;
        }
    }
    mfl_info("site %s: stopping (%llu updates, %llu evaluation reports sent)",
             self->cfg->site_id, (unsigned long long)self->updates_sent,
             (unsigned long long)self->reports_sent);
    return 0;
}
