/* Secure aggregation's codec (secagg_codec.h): plain messages <->
 * Envelope bodies, every size checked before a copy. */
#include "wire/secagg_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "wire/message.h"

bool mfl_secagg_wire_kind(int kind)
{
    return kind >= MFL_MSG_SECAGG_KEYS && kind <= MFL_MSG_SECAGG_END;
}

mfl_reject_t mfl_secagg_wire_reject(mfl_secagg_status_t st)
{
    switch (st) {
    case MFL_SECAGG_OK: return MFL_REJECT_UNSPECIFIED;
    case MFL_SECAGG_E_PHASE: return MFL_REJECT_SECAGG_PHASE;
    case MFL_SECAGG_E_SIGNATURE: return MFL_REJECT_SIGNATURE;
    case MFL_SECAGG_E_LENGTH: return MFL_REJECT_SECAGG_LENGTH;
    case MFL_SECAGG_E_DUPLICATE: return MFL_REJECT_DUPLICATE;
    case MFL_SECAGG_E_MALFORMED: return MFL_REJECT_SECAGG_MALFORMED;
    case MFL_SECAGG_E_SHARES: return MFL_REJECT_SECAGG_SHARES;
    case MFL_SECAGG_E_REFUSED: return MFL_REJECT_SECAGG_REFUSED;
    }
    return MFL_REJECT_SECAGG_MALFORMED;
}

static ProtobufCBinaryData s_bin(const uint8_t *data, size_t len)
{
    ProtobufCBinaryData b = {len, (uint8_t *)data}; /* protobuf-c's field is not const; never written */
    return b;
}

/* ---- encode ---------------------------------------------------------- */

static int s_cap(const char *what, size_t n, char *err, size_t errlen)
{
    if (n > MFL_SECAGG_MAX_SITES)
        return mfl_errf(err, errlen, "secagg %s: %zu entries (at most %d)", what, n,
                        MFL_SECAGG_MAX_SITES), -1;
    return 0;
}

static void s_signoff_to(const mfl_secagg_signoff_t *s, uint32_t round, const uint8_t *nonce,
                         Metafl__SecAggSignoff *out)
{
    metafl__sec_agg_signoff__init(out);
    out->round = round;
    if (nonce)
        out->nonce = s_bin(nonce, MFL_SECAGG_NONCE_BYTES);
    out->index = s->index;
    out->signature = s_bin(s->sig, MFL_SECAGG_SIG_BYTES);
}

int mfl_secagg_wire_to_envelope(const mfl_secagg_wire_t *m, mfl_secagg_env_t *o, char *err,
                                size_t errlen)
{
    if (!mfl_secagg_wire_kind(m->kind))
        return mfl_errf(err, errlen, "message kind %d is not secure aggregation's", m->kind), -1;
    if (s_cap("adverts", m->n_adverts, err, errlen) || s_cap("boxes", m->n_boxes, err, errlen) ||
        s_cap("survivors", m->n_survivors, err, errlen) ||
        s_cap("signoffs", m->n_signoffs, err, errlen) ||
        s_cap("dropped", m->n_dropped, err, errlen) || s_cap("reveals", m->n_reveals, err, errlen))
        return -1;
    metafl__envelope__init(&o->env);
    o->env.kind = (Metafl__MessageKind)m->kind;
    ProtobufCBinaryData nonce = s_bin(m->nonce, MFL_SECAGG_NONCE_BYTES);
    switch (m->kind) {
    case MFL_MSG_SECAGG_KEYS:
        metafl__sec_agg_keys__init(&o->keys);
        o->keys.round = m->round;
        o->keys.nonce = nonce;
        for (size_t i = 0; i < m->n_adverts; i++) {
            const mfl_secagg_advert_t *a = &m->adverts[i];
            Metafl__SecAggAdvert *x = &o->advert[i];
            metafl__sec_agg_advert__init(x);
            x->index = a->index;
            x->c_pk = s_bin(a->c_pk, MFL_SECAGG_KEY_BYTES);
            x->s_pk = s_bin(a->s_pk, MFL_SECAGG_KEY_BYTES);
            x->seed_commit = s_bin(a->seed_commit, MFL_SECAGG_KEY_BYTES);
            x->signature = s_bin(a->sig, MFL_SECAGG_SIG_BYTES);
            o->advert_p[i] = x;
        }
        o->keys.n_adverts = m->n_adverts;
        o->keys.adverts = o->advert_p;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_KEYS;
        o->env.secagg_keys = &o->keys;
        break;
    case MFL_MSG_SECAGG_SHARES:
        metafl__sec_agg_shares__init(&o->shares);
        o->shares.round = m->round;
        o->shares.nonce = nonce;
        for (size_t i = 0; i < m->n_boxes; i++) {
            Metafl__SecAggBox *x = &o->box[i];
            metafl__sec_agg_box__init(x);
            x->from = m->boxes[i].from;
            x->to = m->boxes[i].to;
            x->box = s_bin(m->boxes[i].box, MFL_SECAGG_BOX_BYTES);
            o->box_p[i] = x;
        }
        o->shares.n_boxes = m->n_boxes;
        o->shares.boxes = o->box_p;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_SHARES;
        o->env.secagg_shares = &o->shares;
        break;
    case MFL_MSG_SECAGG_MASKED:
        metafl__sec_agg_masked__init(&o->masked);
        o->masked.round = m->round;
        o->masked.nonce = nonce;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_MASKED;
        o->env.secagg_masked = &o->masked;
        break;
    case MFL_MSG_SECAGG_SURVIVORS:
        metafl__sec_agg_survivors__init(&o->survivors);
        o->survivors.round = m->round;
        o->survivors.nonce = nonce;
        memcpy(o->survivors_copy, m->survivors, m->n_survivors * sizeof *m->survivors);
        o->survivors.n_survivors = m->n_survivors;
        o->survivors.survivors = o->survivors_copy;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_SURVIVORS;
        o->env.secagg_survivors = &o->survivors;
        break;
    case MFL_MSG_SECAGG_SIGNOFF:
        if (m->n_signoffs != 1)
            return mfl_errf(err, errlen, "secagg signoff: %zu signatures, not 1", m->n_signoffs),
                   -1;
        s_signoff_to(&m->signoffs[0], m->round, m->nonce, &o->signoff);
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_SIGNOFF;
        o->env.secagg_signoff = &o->signoff;
        break;
    case MFL_MSG_SECAGG_UNMASK:
        metafl__sec_agg_unmask__init(&o->unmask);
        o->unmask.round = m->round;
        o->unmask.nonce = nonce;
        memcpy(o->survivors_copy, m->survivors, m->n_survivors * sizeof *m->survivors);
        o->unmask.n_survivors = m->n_survivors;
        o->unmask.survivors = o->survivors_copy;
        memcpy(o->dropped_copy, m->dropped, m->n_dropped * sizeof *m->dropped);
        o->unmask.n_dropped = m->n_dropped;
        o->unmask.dropped = o->dropped_copy;
        for (size_t i = 0; i < m->n_signoffs; i++) {
            s_signoff_to(&m->signoffs[i], 0, NULL, &o->signoffs[i]);
            o->signoff_p[i] = &o->signoffs[i];
        }
        o->unmask.n_signoffs = m->n_signoffs;
        o->unmask.signoffs = o->signoff_p;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_UNMASK;
        o->env.secagg_unmask = &o->unmask;
        break;
    case MFL_MSG_SECAGG_REVEALS:
        metafl__sec_agg_reveals__init(&o->reveals);
        o->reveals.round = m->round;
        o->reveals.nonce = nonce;
        for (size_t i = 0; i < m->n_reveals; i++) {
            Metafl__SecAggReveal *x = &o->reveal[i];
            metafl__sec_agg_reveal__init(x);
            x->peer = m->reveals[i].peer;
            x->kind = m->reveals[i].kind;
            x->share = s_bin(m->reveals[i].share, MFL_SECAGG_SHARE_BYTES);
            o->reveal_p[i] = x;
        }
        o->reveals.n_reveals = m->n_reveals;
        o->reveals.reveals = o->reveal_p;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_REVEALS;
        o->env.secagg_reveals = &o->reveals;
        break;
    case MFL_MSG_SECAGG_END:
        metafl__sec_agg_end__init(&o->end);
        o->end.round = m->round;
        o->end.nonce = nonce;
        o->end.abandoned = m->abandoned;
        o->end.reason = (char *)m->reason;
        o->env.body_case = METAFL__ENVELOPE__BODY_SECAGG_END;
        o->env.secagg_end = &o->end;
        break;
    default:
        return mfl_errf(err, errlen, "message kind %d is not secure aggregation's", m->kind), -1;
    }
    return 0;
}

/* ---- decode ---------------------------------------------------------- */

static int s_bad(mfl_reject_t *reason, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int s_bad(mfl_reject_t *reason, char *err, size_t errlen, const char *fmt, ...)
{
    if (reason)
        *reason = MFL_REJECT_BAD_MESSAGE;
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Copies exactly `len` bytes of `src` into dst, or refuses naming the field. */
static int s_exact(const char *field, const ProtobufCBinaryData *src, uint8_t *dst, size_t len,
                   mfl_reject_t *reason, char *err, size_t errlen)
{
    if (src->len != len)
        return s_bad(reason, err, errlen, "secagg %s: %zu bytes, not %zu", field, src->len, len);
    memcpy(dst, src->data, len);
    return 0;
}

static int s_index(const char *field, uint32_t v, mfl_reject_t *reason, char *err,
                   size_t errlen)
{
    if (v < 1 || v > MFL_SECAGG_MAX_SITES)
        return s_bad(reason, err, errlen, "secagg %s: index %u (1..%d)", field, v,
                     MFL_SECAGG_MAX_SITES);
    return 0;
}

static int s_list(const char *field, const uint32_t *src, size_t n, uint32_t *dst,
                  size_t *n_out, mfl_reject_t *reason, char *err, size_t errlen)
{
    if (n > MFL_SECAGG_MAX_SITES)
        return s_bad(reason, err, errlen, "secagg %s: %zu entries (at most %d)", field, n,
                     MFL_SECAGG_MAX_SITES);
    for (size_t i = 0; i < n; i++)
        if (s_index(field, src[i], reason, err, errlen))
            return -1;
    if (n)
        memcpy(dst, src, n * sizeof *dst);
    *n_out = n;
    return 0;
}

static int s_count(const char *field, size_t n, mfl_reject_t *reason, char *err, size_t errlen)
{
    if (n > MFL_SECAGG_MAX_SITES)
        return s_bad(reason, err, errlen, "secagg %s: %zu entries (at most %d)", field, n,
                     MFL_SECAGG_MAX_SITES);
    return 0;
}

static int s_signoff_from(const Metafl__SecAggSignoff *s, mfl_secagg_signoff_t *out,
                          mfl_reject_t *reason, char *err, size_t errlen)
{
    if (!s)
        return s_bad(reason, err, errlen, "secagg signoff: missing");
    out->index = s->index;
    return s_index("signoff", s->index, reason, err, errlen) ||
                   s_exact("signoff signature", &s->signature, out->sig, MFL_SECAGG_SIG_BYTES,
                           reason, err, errlen)
               ? -1
               : 0;
}

/* The round and nonce every body starts with. */
static int s_head(uint32_t round, const ProtobufCBinaryData *nonce, mfl_secagg_wire_t *out,
                  mfl_reject_t *reason, char *err, size_t errlen)
{
    out->round = round;
    return s_exact("nonce", nonce, out->nonce, MFL_SECAGG_NONCE_BYTES, reason, err, errlen);
}

static int s_keys(const Metafl__SecAggKeys *b, mfl_secagg_wire_t *out, mfl_reject_t *reason,
                  char *err, size_t errlen)
{
    if (s_head(b->round, &b->nonce, out, reason, err, errlen) ||
        s_count("adverts", b->n_adverts, reason, err, errlen))
        return -1;
    for (size_t i = 0; i < b->n_adverts; i++) {
        const Metafl__SecAggAdvert *x = b->adverts[i];
        mfl_secagg_advert_t *a = &out->adverts[i];
        if (!x)
            return s_bad(reason, err, errlen, "secagg advert %zu: missing", i);
        a->index = x->index;
        if (s_index("advert", x->index, reason, err, errlen) ||
            s_exact("advert c_pk", &x->c_pk, a->c_pk, MFL_SECAGG_KEY_BYTES, reason, err,
                    errlen) ||
            s_exact("advert s_pk", &x->s_pk, a->s_pk, MFL_SECAGG_KEY_BYTES, reason, err,
                    errlen) ||
            s_exact("advert seed_commit", &x->seed_commit, a->seed_commit,
                    MFL_SECAGG_KEY_BYTES, reason, err, errlen) ||
            s_exact("advert signature", &x->signature, a->sig, MFL_SECAGG_SIG_BYTES, reason,
                    err, errlen))
            return -1;
    }
    out->n_adverts = b->n_adverts;
    return 0;
}

static int s_shares(const Metafl__SecAggShares *b, mfl_secagg_wire_t *out, mfl_reject_t *reason,
                    char *err, size_t errlen)
{
    if (s_head(b->round, &b->nonce, out, reason, err, errlen) ||
        s_count("boxes", b->n_boxes, reason, err, errlen))
        return -1;
    for (size_t i = 0; i < b->n_boxes; i++) {
        const Metafl__SecAggBox *x = b->boxes[i];
        mfl_secagg_share_ct_t *c = &out->boxes[i];
        if (!x)
            return s_bad(reason, err, errlen, "secagg box %zu: missing", i);
        c->from = x->from;
        c->to = x->to;
        if (s_index("box from", x->from, reason, err, errlen) ||
            s_index("box to", x->to, reason, err, errlen) ||
            s_exact("box", &x->box, c->box, MFL_SECAGG_BOX_BYTES, reason, err, errlen))
            return -1;
    }
    out->n_boxes = b->n_boxes;
    return 0;
}

static int s_unmask(const Metafl__SecAggUnmask *b, mfl_secagg_wire_t *out, mfl_reject_t *reason,
                    char *err, size_t errlen)
{
    if (s_head(b->round, &b->nonce, out, reason, err, errlen) ||
        s_list("survivors", b->survivors, b->n_survivors, out->survivors, &out->n_survivors,
               reason, err, errlen) ||
        s_list("dropped", b->dropped, b->n_dropped, out->dropped, &out->n_dropped, reason, err,
               errlen) ||
        s_count("signoffs", b->n_signoffs, reason, err, errlen))
        return -1;
    for (size_t i = 0; i < b->n_signoffs; i++)
        if (s_signoff_from(b->signoffs[i], &out->signoffs[i], reason, err, errlen))
            return -1;
    out->n_signoffs = b->n_signoffs;
    return 0;
}

static int s_reveals(const Metafl__SecAggReveals *b, mfl_secagg_wire_t *out,
                     mfl_reject_t *reason, char *err, size_t errlen)
{
    if (s_head(b->round, &b->nonce, out, reason, err, errlen) ||
        s_count("reveals", b->n_reveals, reason, err, errlen))
        return -1;
    for (size_t i = 0; i < b->n_reveals; i++) {
        const Metafl__SecAggReveal *x = b->reveals[i];
        mfl_secagg_reveal_t *r = &out->reveals[i];
        if (!x)
            return s_bad(reason, err, errlen, "secagg reveal %zu: missing", i);
        if (x->kind != MFL_SECAGG_SHARE_SEED && x->kind != MFL_SECAGG_SHARE_KEY)
            return s_bad(reason, err, errlen, "secagg reveal %zu: kind %u (1 seed, 2 key)", i,
                         x->kind);
        r->peer = x->peer;
        r->kind = (uint8_t)x->kind;
        if (s_index("reveal peer", x->peer, reason, err, errlen) ||
            s_exact("reveal share", &x->share, r->share, MFL_SECAGG_SHARE_BYTES, reason, err,
                    errlen))
            return -1;
    }
    out->n_reveals = b->n_reveals;
    return 0;
}

int mfl_secagg_wire_from_envelope(const Metafl__Envelope *env, mfl_secagg_wire_t *out,
                                  mfl_reject_t *reason, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int kind = (int)env->kind;
    if (!mfl_secagg_wire_kind(kind) || (int)env->body_case != kind + 8)
        return s_bad(reason, err, errlen, "message kind %d with body %d is not secure "
                     "aggregation's", kind, (int)env->body_case);
    out->kind = (mfl_msg_kind_t)kind;
    if (kind != MFL_MSG_SECAGG_MASKED && env->n_tensors != 0)
        return s_bad(reason, err, errlen, "secagg message kind %d carries %zu tensors", kind,
                     env->n_tensors);
    switch (kind) {
    case MFL_MSG_SECAGG_KEYS:
        return s_keys(env->secagg_keys, out, reason, err, errlen);
    case MFL_MSG_SECAGG_SHARES:
        return s_shares(env->secagg_shares, out, reason, err, errlen);
    case MFL_MSG_SECAGG_MASKED:
        if (env->n_tensors != 1 || !env->tensors[0] ||
            (env->tensors[0]->encoding != MFL_WIRE_ENCODING_U64 &&
             env->tensors[0]->encoding != MFL_WIRE_ENCODING_U32))
            return s_bad(reason, err, errlen,
                         "secagg masked input: %zu tensors, needs one of uint64 or uint32 words",
                         env->n_tensors);
        return s_head(env->secagg_masked->round, &env->secagg_masked->nonce, out, reason, err,
                      errlen);
    case MFL_MSG_SECAGG_SURVIVORS:
        return s_head(env->secagg_survivors->round, &env->secagg_survivors->nonce, out, reason,
                      err, errlen) ||
                       s_list("survivors", env->secagg_survivors->survivors,
                              env->secagg_survivors->n_survivors, out->survivors,
                              &out->n_survivors, reason, err, errlen)
                   ? -1
                   : 0;
    case MFL_MSG_SECAGG_SIGNOFF:
        out->n_signoffs = 1;
        return s_head(env->secagg_signoff->round, &env->secagg_signoff->nonce, out, reason, err,
                      errlen) ||
                       s_signoff_from(env->secagg_signoff, &out->signoffs[0], reason, err,
                                      errlen)
                   ? -1
                   : 0;
    case MFL_MSG_SECAGG_UNMASK:
        return s_unmask(env->secagg_unmask, out, reason, err, errlen);
    case MFL_MSG_SECAGG_REVEALS:
        return s_reveals(env->secagg_reveals, out, reason, err, errlen);
    case MFL_MSG_SECAGG_END: {
        const char *r = env->secagg_end->reason ? env->secagg_end->reason : "";
        snprintf(out->reason, sizeof out->reason, "%s", r); /* kept cut: display only */
        out->abandoned = env->secagg_end->abandoned;
        return s_head(env->secagg_end->round, &env->secagg_end->nonce, out, reason, err, errlen);
    }
    }
    return s_bad(reason, err, errlen, "message kind %d is not secure aggregation's", kind);
}
