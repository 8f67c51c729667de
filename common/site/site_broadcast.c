/* A site applies a compressed broadcast's difference (see site_broadcast.h). */
#include "site/site_broadcast.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "fed/bcast.h"
#include "fed/quant.h"

/* Values decoded per block from a difference left encoded (16 KiB). */
#define S_DECODE_BLOCK 4096

int mfl_site_broadcast_digest(const mfl_tensor_t *t, size_t nt, uint8_t out[32])
{
    uint8_t *h = malloc((nt ? nt : 1) * 32);
    if (!h)
        return -1;
    for (size_t i = 0; i < nt; i++) {
        if (!t[i].blake2b) {
            free(h);
            return -1;
        }
        memcpy(h + 32 * i, t[i].blake2b, 32);
    }
    mfl_audit_update_digest(h, nt, out);
    free(h);
    return 0;
}

static void s_hex8(const uint8_t *b, char out[17])
{
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int mfl_site_broadcast_apply(float *held, size_t n_held, const uint8_t held_hash[32],
                             bool have_held, const mfl_round_task_t *task,
                             const mfl_tensor_t *t, size_t nt, char *err, size_t errlen)
{
    char want[17], have[17];
    if (!task->has_broadcast_base)
        return mfl_errf(err, errlen, "broadcast: the task names no base model"), -1;
    s_hex8(task->broadcast_base, want);
    if (!have_held || !held)
        return mfl_errf(err, errlen, "broadcast: the task is a difference to model %s…, and this "
                        "site holds no model", want), -1;
    if (sodium_memcmp(held_hash, task->broadcast_base, 32) != 0) {
        s_hex8(held_hash, have);
        return mfl_errf(err, errlen, "broadcast: the task is a difference to model %s…; this "
                        "site holds %s…", want, have), -1;
    }
    if (task->model_hash_len != 32)
        return mfl_errf(err, errlen, "broadcast: the task has no model hash"), -1;
    uint64_t total = 0;
    for (size_t i = 0; i < nt; i++) {
        if (t[i].count > n_held || total + t[i].count > n_held)
            return mfl_errf(err, errlen, "broadcast: tensor '%s' goes past the held model's %zu "
                            "values", t[i].name ? t[i].name : "?", n_held), -1;
        total += t[i].count;
    }
    if (total != n_held || nt == 0)
        return mfl_errf(err, errlen, "broadcast: the difference has %llu values; the held model "
                        "%zu", (unsigned long long)total, n_held), -1;
    uint8_t *h = malloc(nt * 32);
    if (!h)
        return mfl_errf(err, errlen, "broadcast: out of memory"), -1;
    size_t off = 0;
    float dec[S_DECODE_BLOCK];
    for (size_t i = 0; i < nt; i++) {
        size_t start = off;
        if (!t[i].data && t[i].encoding != MFL_QUANT_FP32) {
            /* codes left in their frames (wire encoded_runs): decoded a
             * block at a time, the same values and adds as the whole */
            for (uint64_t at = 0; at < t[i].count; at += S_DECODE_BLOCK) {
                size_t m = t[i].count - at < S_DECODE_BLOCK ? (size_t)(t[i].count - at)
                                                            : S_DECODE_BLOCK;
                if (mfl_quant_decode_view(&t[i], at, m, dec) < 0) {
                    free(h);
                    return mfl_errf(err, errlen, "broadcast: tensor '%s' does not decode",
                                    t[i].name ? t[i].name : "?"), -2;
                }
                mfl_bcast_apply(held + off, dec, m);
                off += m;
            }
        } else {
            mfl_tensor_piece_t one;
            size_t nr;
            const mfl_tensor_piece_t *r = mfl_tensor_pieces(&t[i], &one, &nr);
            for (size_t k = 0; k < nr; k++) {
                mfl_bcast_apply(held + off, r[k].data, (size_t)r[k].count);
                off += (size_t)r[k].count;
            }
        }
        crypto_generichash(h + 32 * i, 32, (const unsigned char *)(held + start),
                           (unsigned long long)(off - start) * sizeof(float), NULL, 0);
    }
    uint8_t digest[32];
    mfl_audit_update_digest(h, nt, digest);
    free(h);
    if (sodium_memcmp(digest, task->model_hash, 32) != 0) {
        s_hex8(task->model_hash, want);
        s_hex8(digest, have);
        return mfl_errf(err, errlen, "broadcast: the held model plus the difference hashes to "
                        "%s…, the task names %s…", have, want), -2;
    }
    return 0;
}
