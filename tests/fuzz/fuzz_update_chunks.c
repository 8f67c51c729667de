/* Fuzzes the coordinator's chunked-upload state machine (round/
 * upload_spool.h) with arbitrary sequences of begins and chunks. Input:
 * byte 0 = begin flags (bit 0: announce one chunk too few, bit 1: change
 * one chunk hash, bit 2: no begin at all), then groups of 4 bytes, one
 * chunk each: index, value-count delta (signed, around the right size),
 * flags (bit 0: another round, bit 1: change a byte of the values, bit 2:
 * name it as the other tensor, bit 3: prune the spool first), spare.
 * Properties: never crashes; every return is one of the documented ones
 * with a reason on refusal; an upload reported complete reads back exactly
 * the update's values (only chunks matching the signed hashes get in). */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "round/upload_spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CV 1024
#define NW 2500
#define NB 10
#define NCH 4

static float s_vals[NW + NB + 64]; /* w then b, with room to read past */
static uint8_t s_hashes[NCH][32];
static mfl_update_header_t s_h;
static mfl_tensor_t s_layout[2];
static char s_dir[64];

static void s_cleanup(void) { rmdir(s_dir); }

static void s_setup(void)
{
    mfl_log_set_level(MFL_LOG_ERROR);
    snprintf(s_dir, sizeof s_dir, "/tmp/fuzz_update_chunks.XXXXXX");
    if (!mkdtemp(s_dir))
        abort();
    atexit(s_cleanup);
    for (size_t i = 0; i < sizeof s_vals / sizeof s_vals[0]; i++)
        s_vals[i] = (float)i * 0.25f - 3.0f;
    size_t at[NCH] = {0, CV, 2 * CV, NW}, n[NCH] = {CV, CV, NW - 2 * CV, NB};
    for (int i = 0; i < NCH; i++)
        crypto_generichash(s_hashes[i], 32, (const uint8_t *)(s_vals + at[i]), n[i] * 4, NULL,
                           0);
    uint8_t th[2][32];
    mfl_chunk_tensor_hash(s_hashes[0], 3, th[0]);
    mfl_chunk_tensor_hash(s_hashes[3], 1, th[1]);
    s_h.round = 5;
    s_h.nonce_len = 16;
    memset(s_h.nonce, 9, 16);
    snprintf(s_h.site, sizeof s_h.site, "site-a");
    s_h.n_tensor_hashes = 2;
    mfl_update_digest(th[0], 2, s_h.digest);
    s_h.chunk_values = CV;
    s_layout[0] = mfl_tensor_vec("w", NULL, NW);
    s_layout[1] = mfl_tensor_vec("b", NULL, NB);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        s_setup();
        ready = 1;
    }
    if (size == 0)
        return 0;
    char err[256];
    mfl_reject_t why;
    mfl_upload_spool_t *sp = mfl_upload_spool_new(s_dir, err, sizeof err);
    if (!sp)
        abort();
    uint8_t list[NCH][32];
    memcpy(list, s_hashes, sizeof list);
    if (data[0] & 2)
        list[data[0] >> 6][data[0] & 31] ^= 1;
    if (!(data[0] & 4)) {
        uint8_t sig[64] = {0};
        int rc = mfl_upload_spool_begin(sp, "site-a", &s_h, (const uint8_t *)"h", 1, sig, 64,
                                        list[0], (data[0] & 1) ? NCH - 1 : NCH, s_layout, 2, 0,
                                        &why, err, sizeof err);
        if (rc != 0 && (rc != -1 || (why != MFL_REJECT_CHUNK && why != MFL_REJECT_HASH)))
            abort();
    }
    static const size_t at[NCH] = {0, CV, 2 * CV, NW}, nat[NCH] = {CV, CV, NW - 2 * CV, NB};
    static float buf[CV + 64];
    for (size_t p = 1; p + 4 <= size; p += 4) {
        size_t idx = data[p] % 6;
        int delta = (int)(int8_t)data[p + 1] % 8;
        uint8_t fl = data[p + 2];
        if (fl & 8)
            mfl_upload_spool_prune(sp, 5, (fl & 16) ? NULL : s_h.nonce, 16, NULL, NULL);
        size_t i = idx < NCH ? idx : 0;
        long n = (long)nat[i] + delta;
        if (n < 0)
            n = 0;
        memcpy(buf, s_vals + at[i], (size_t)n * sizeof(float));
        if ((fl & 2) && n)
            buf[data[p + 3] % (size_t)n] += 1.0f;
        uint8_t hash[32]; /* the wire checked the bytes against this */
        crypto_generichash(hash, 32, (const uint8_t *)buf, (size_t)n * 4, NULL, 0);
        mfl_tensor_t t = mfl_tensor_vec(((i < 3) ^ !!(fl & 4)) ? "w" : "b", buf, (uint64_t)n);
        t.blake2b = hash;
        const mfl_spooled_update_t *failed = NULL;
        int rc = mfl_upload_spool_chunk(sp, "site-a", (fl & 1) ? 6 : 5, s_h.nonce, 16, idx, &t,
                                        &failed, &why, err, sizeof err);
        if (rc < -1 || rc > 2)
            abort();
        if (rc == -1 && why != MFL_REJECT_CHUNK && why != MFL_REJECT_HASH &&
            why != MFL_REJECT_TOO_LARGE)
            abort();
        if (rc == 1) { /* complete: exactly the signed values */
            static float back[NW + NB];
            void *rd = mfl_upload_spool_reader(sp, "site-a");
            if (!rd || mfl_upload_spool_read(rd, 0, back, NW + NB, err, sizeof err) != 0 ||
                memcmp(back, s_vals, sizeof back) != 0)
                abort();
            mfl_upload_spool_drop(sp, "site-a");
        }
    }
    mfl_upload_spool_destroy(&sp);
    return 0;
}
