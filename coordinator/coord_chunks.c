/* Chunked uploads at the coordinator daemon. See coord_chunks.h. */
#include "coord_chunks.h"

#include <stdio.h>

#include "core/log.h"

void mfl_coord_chunks_begin(mfl_round_engine_t *engine, mfl_upload_spool_t *spool,
                            const mfl_wire_event_t *ev, uint64_t now_ms)
{
    const mfl_update_header_t *h = ev->update_header;
    if (!h || !ev->chunk_hashes) {
        char text[256];
        snprintf(text, sizeof text, "UpdateBegin: %s",
                 !h ? "signed update header does not decode" : ev->text ? ev->text : "");
        mfl_round_engine_update_refused(engine, ev->site, h, MFL_REJECT_BAD_MESSAGE, text, ev->signed_header, ev->signed_header_len,
                                        ev->signature, ev->signature_len);
        return;
    }
    /* a new begin replaces any upload of this site (a site restarting its
     * upload after a reconnect starts over) */
    mfl_upload_spool_drop(spool, ev->site);
    uint32_t encoding = 0;
    uint64_t cv = 0;
    if (mfl_round_engine_update_begin(engine, ev->site, h, ev->signed_header,
                                      ev->signed_header_len, ev->signature, ev->signature_len,
                                      &encoding, &cv, now_ms) < 0)
        return;
    size_t nt = 0;
    const mfl_tensor_t *layout = mfl_round_engine_layout(engine, &nt);
    mfl_reject_t reason = MFL_REJECT_CHUNK;
    char err[256];
    if (mfl_upload_spool_begin(spool, ev->site, h, ev->signed_header, ev->signed_header_len,
                               ev->signature, ev->signature_len, ev->chunk_hashes,
                               ev->n_chunk_hashes, layout, nt, encoding, &reason, err,
                               sizeof err) < 0) {
        mfl_round_engine_update_refused(engine, ev->site, h, reason, err, ev->signed_header,
                                        ev->signed_header_len, ev->signature,
                                        ev->signature_len);
        return;
    }
    mfl_debug("site %s: round %u: chunked upload begun (%zu chunks of %llu values)", ev->site,
              h->round, ev->n_chunk_hashes, (unsigned long long)cv);
}

void mfl_coord_chunks_chunk(mfl_round_engine_t *engine, mfl_upload_spool_t *spool,
                            const mfl_wire_event_t *ev, uint64_t now_ms)
{
    mfl_round_engine_site_seen(engine, ev->site, now_ms);
    mfl_reject_t reason = MFL_REJECT_CHUNK;
    char err[256];
    const mfl_spooled_update_t *failed = NULL;
    int rc = ev->n_tensors == 1
                 ? mfl_upload_spool_chunk(spool, ev->site, ev->chunk.round, ev->chunk.nonce,
                                          ev->chunk.nonce_len, ev->chunk.index, &ev->tensors[0],
                                          &failed, &reason, err, sizeof err)
                 : (snprintf(err, sizeof err, "an UpdateChunk carries one tensor"), -1);
    if (rc == 0) { /* more to come: the upload is moving (its slot's clock restarts) */
        mfl_round_engine_upload_progress(engine, ev->site, now_ms);
        return;
    }
    if (rc == 2) /* a failed upload's leftovers: dropped */
        return;
    if (rc < 0) {
        if (failed)
            mfl_round_engine_update_refused(engine, ev->site, &failed->header, reason, err,
                                            failed->signed_header, failed->signed_header_len,
                                            failed->signature, failed->signature_len);
        else
            mfl_round_engine_update_refused(engine, ev->site, NULL, reason, err, NULL, 0, NULL,
                                            0);
        return;
    }
    const mfl_spooled_update_t *u = mfl_upload_spool_get(spool, ev->site);
    (void)mfl_round_engine_update_read(engine, ev->site, &u->header, mfl_upload_spool_read,
                                       mfl_upload_spool_reader(spool, ev->site),
                                       u->signed_header, u->signed_header_len, u->signature,
                                       u->signature_len, now_ms);
    mfl_upload_spool_drop(spool, ev->site);
}

int mfl_coord_chunks_refuse_whole(mfl_round_engine_t *engine, const mfl_wire_event_t *ev)
{
    if (!ev->update_header || !ev->update_header->chunk_values)
        return 0;
    mfl_round_engine_update_refused(engine, ev->site, ev->update_header, MFL_REJECT_CHUNK,
                                    "an update signed for chunks must travel as UpdateBegin "
                                    "and UpdateChunk messages",
                                    ev->signed_header, ev->signed_header_len, ev->signature,
                                    ev->signature_len);
    return 1;
}

static void s_cut(void *ctx, const mfl_spooled_update_t *u)
{
    (void)ctx;
    mfl_warn("site %s: chunked upload for round %u cut short at %llu of %llu chunks (the "
             "round attempt ended); not taken", u->site, u->header.round,
             (unsigned long long)u->next, (unsigned long long)u->n_chunks);
}

void mfl_coord_chunks_prune(mfl_round_engine_t *engine, mfl_upload_spool_t *spool)
{
    if (!mfl_upload_spool_count(spool))
        return;
    const uint8_t *nonce = mfl_round_engine_nonce(engine);
    mfl_upload_spool_prune(spool, mfl_round_engine_round(engine), nonce, nonce ? 16 : 0, s_cut,
                           NULL);
}
