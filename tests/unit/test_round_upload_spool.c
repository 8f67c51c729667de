/* The coordinator's spool of chunked uploads (round/upload_spool.h): the
 * begin's checks against the signed hashes, every refusal of a chunk
 * (unannounced, other round, out of order, duplicate, wrong size, bytes
 * that differ from the signed hash), the quiet drop of a failed upload's
 * later chunks, reading a complete upload back, and pruning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "round/upload_spool.h"

#define CV 1024
#define NW 2500 /* chunks of 1024, 1024, 452 */
#define NB 10   /* one chunk */
#define NCH 4

static float s_w[NW], s_b[NB];
static uint8_t s_hashes[NCH][32];
static mfl_update_header_t s_h;
static mfl_tensor_t s_layout[2];
static char s_dir[64];

static void s_setup_update(void)
{
    for (int i = 0; i < NW; i++)
        s_w[i] = (float)i * 0.001f - 1.0f;
    for (int i = 0; i < NB; i++)
        s_b[i] = (float)i;
    crypto_generichash(s_hashes[0], 32, (const uint8_t *)s_w, CV * 4, NULL, 0);
    crypto_generichash(s_hashes[1], 32, (const uint8_t *)(s_w + CV), CV * 4, NULL, 0);
    crypto_generichash(s_hashes[2], 32, (const uint8_t *)(s_w + 2 * CV), (NW - 2 * CV) * 4,
                       NULL, 0);
    crypto_generichash(s_hashes[3], 32, (const uint8_t *)s_b, NB * 4, NULL, 0);
    uint8_t th[2][32];
    mfl_chunk_tensor_hash(s_hashes[0], 3, th[0]);
    mfl_chunk_tensor_hash(s_hashes[3], 1, th[1]);
    memset(&s_h, 0, sizeof s_h);
    s_h.round = 3;
    s_h.nonce_len = 16;
    memset(s_h.nonce, 7, 16);
    snprintf(s_h.site, sizeof s_h.site, "site-a");
    s_h.n_tensor_hashes = 2;
    mfl_update_digest(th[0], 2, s_h.digest);
    s_h.chunk_values = CV;
    s_layout[0] = mfl_tensor_vec("w", NULL, NW);
    s_layout[1] = mfl_tensor_vec("b", NULL, NB);
    snprintf(s_dir, sizeof s_dir, "/tmp/mfl-spool-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
}

static mfl_upload_spool_t *s_begun(void)
{
    char err[256];
    mfl_reject_t why = 0;
    mfl_upload_spool_t *sp = mfl_upload_spool_new(s_dir, err, sizeof err);
    assert_non_null(sp);
    uint8_t sig[64] = {1};
    assert_int_equal(mfl_upload_spool_begin(sp, "site-a", &s_h, (const uint8_t *)"hdr", 3, sig,
                                            64, s_hashes[0], NCH, s_layout, 2, 0, &why, err,
                                            sizeof err), 0);
    return sp;
}

/* Chunk i as the wire hands it: its values, and the hash of its bytes. */
static mfl_tensor_t s_chunk(int i, uint8_t hash[32])
{
    const float *v = i < 3 ? s_w + (size_t)i * CV : s_b;
    size_t n = i < 2 ? CV : i == 2 ? NW - 2 * CV : NB;
    mfl_tensor_t t = mfl_tensor_vec(i < 3 ? "w" : "b", v, n);
    crypto_generichash(hash, 32, (const uint8_t *)v, n * 4, NULL, 0);
    t.blake2b = hash;
    return t;
}

static int s_send(mfl_upload_spool_t *sp, int i, mfl_reject_t *why, char *err)
{
    uint8_t hash[32];
    mfl_tensor_t t = s_chunk(i, hash);
    return mfl_upload_spool_chunk(sp, "site-a", 3, s_h.nonce, 16, (uint64_t)i, &t, NULL, why,
                                  err, 256);
}

static void test_a_whole_upload_reads_back(void **state)
{
    (void)state;
    s_setup_update();
    mfl_upload_spool_t *sp = s_begun();
    char err[256];
    mfl_reject_t why = 0;
    for (int i = 0; i < NCH; i++)
        assert_int_equal(s_send(sp, i, &why, err), i == NCH - 1 ? 1 : 0);
    assert_int_equal(mfl_upload_spool_bytes(sp), (NW + NB) * 4);
    void *rd = mfl_upload_spool_reader(sp, "site-a");
    assert_non_null(rd);
    static float back[NW + NB];
    assert_int_equal(mfl_upload_spool_read(rd, 0, back, NW + NB, err, sizeof err), 0);
    assert_memory_equal(back, s_w, sizeof s_w);
    assert_memory_equal(back + NW, s_b, sizeof s_b);
    assert_int_equal(mfl_upload_spool_read(rd, 5, back, NW + NB, err, sizeof err), -1);
    /* a chunk after the last */
    assert_int_equal(s_send(sp, 0, &why, err), -1);
    assert_int_equal(why, MFL_REJECT_CHUNK);
    assert_false(mfl_upload_spool_drop(sp, "site-a")); /* complete: not cut short */
    assert_int_equal(mfl_upload_spool_count(sp), 0);
    mfl_upload_spool_destroy(&sp);
    rmdir(s_dir);
}

static void test_begin_checks_the_list_against_the_signature(void **state)
{
    (void)state;
    s_setup_update();
    char err[256];
    mfl_reject_t why = 0;
    mfl_upload_spool_t *sp = mfl_upload_spool_new(s_dir, err, sizeof err);
    uint8_t sig[64] = {0};
    /* one chunk hash short */
    assert_int_equal(mfl_upload_spool_begin(sp, "site-a", &s_h, NULL, 0, sig, 64, s_hashes[0],
                                            NCH - 1, s_layout, 2, 0, &why, err, sizeof err),
                     -1);
    assert_int_equal(why, MFL_REJECT_CHUNK);
    assert_non_null(strstr(err, "3 chunk hashes announced"));
    /* one hash changed */
    static uint8_t bad[NCH][32];
    memcpy(bad, s_hashes, sizeof bad);
    bad[2][5] ^= 1;
    assert_int_equal(mfl_upload_spool_begin(sp, "site-a", &s_h, NULL, 0, sig, 64, bad[0], NCH,
                                            s_layout, 2, 0, &why, err, sizeof err), -1);
    assert_int_equal(why, MFL_REJECT_HASH);
    assert_non_null(strstr(err, "do not give the signed tensor hashes"));
    assert_int_equal(mfl_upload_spool_count(sp), 0);
    /* a chunk without a begin */
    assert_int_equal(s_send(sp, 0, &why, err), -1);
    assert_int_equal(why, MFL_REJECT_CHUNK);
    assert_non_null(strstr(err, "no chunked upload is open"));
    mfl_upload_spool_destroy(&sp);
    rmdir(s_dir);
}

/* One refusal: the upload fails, its later chunks are dropped quietly. */
static void s_refused(mfl_upload_spool_t *sp, int rc, mfl_reject_t why, mfl_reject_t want,
                      const char *err, const char *text)
{
    assert_int_equal(rc, -1);
    assert_int_equal(why, want);
    if (!strstr(err, text))
        fail_msg("'%s' does not say '%s'", err, text);
    assert_true(mfl_upload_spool_failed(sp, "site-a"));
    char e2[256];
    mfl_reject_t w2;
    assert_int_equal(s_send(sp, 3, &w2, e2), 2);
}

static void test_every_bad_chunk_is_refused(void **state)
{
    (void)state;
    s_setup_update();
    char err[256];
    mfl_reject_t why = 0;
    uint8_t hash[32];

    mfl_upload_spool_t *sp = s_begun(); /* out of order: 0, 2 */
    assert_int_equal(s_send(sp, 0, &why, err), 0);
    int rc = s_send(sp, 2, &why, err);
    s_refused(sp, rc, why, MFL_REJECT_CHUNK, err, "chunk 2 out of order (chunk 1 expected)");
    mfl_upload_spool_destroy(&sp);

    sp = s_begun(); /* duplicate: 0, 0 */
    assert_int_equal(s_send(sp, 0, &why, err), 0);
    rc = s_send(sp, 0, &why, err);
    s_refused(sp, rc, why, MFL_REJECT_CHUNK, err, "chunk 0 again (a duplicate; 1 taken)");
    mfl_upload_spool_destroy(&sp);

    sp = s_begun(); /* bytes that differ from the signed hash */
    static float w2[CV];
    memcpy(w2, s_w, sizeof w2);
    w2[9] += 1.0f;
    mfl_tensor_t t = mfl_tensor_vec("w", w2, CV);
    crypto_generichash(hash, 32, (const uint8_t *)w2, sizeof w2, NULL, 0);
    t.blake2b = hash;
    const mfl_spooled_update_t *failed = NULL;
    rc = mfl_upload_spool_chunk(sp, "site-a", 3, s_h.nonce, 16, 0, &t, &failed, &why, err,
                                    sizeof err);
    assert_non_null(failed);
    assert_string_equal(failed->site, "site-a");
    s_refused(sp, rc, why, MFL_REJECT_HASH, err, "chunk 0 ('w') differs from its signed hash");
    mfl_upload_spool_destroy(&sp);

    sp = s_begun(); /* a chunk of the wrong size */
    t = mfl_tensor_vec("w", s_w, CV + 1);
    t.blake2b = hash;
    rc = mfl_upload_spool_chunk(sp, "site-a", 3, s_h.nonce, 16, 0, &t, NULL, &why, err,
                                sizeof err);
    s_refused(sp, rc, why, MFL_REJECT_CHUNK, err, "1025 values, encoding 0; expected 'w', 1024");
    mfl_upload_spool_destroy(&sp);

    sp = s_begun(); /* another round */
    t = s_chunk(0, hash);
    assert_int_equal(mfl_upload_spool_chunk(sp, "site-a", 4, s_h.nonce, 16, 0, &t, NULL, &why,
                                            err, sizeof err), -1);
    assert_int_equal(why, MFL_REJECT_CHUNK);
    assert_non_null(strstr(err, "round 4 or another attempt"));
    mfl_upload_spool_destroy(&sp);
    rmdir(s_dir);
}

static int s_cuts;
static void s_on_cut(void *ctx, const mfl_spooled_update_t *u)
{
    (void)ctx;
    assert_int_equal(u->next, 2);
    assert_int_equal(u->n_chunks, NCH);
    s_cuts++;
}

static void test_prune_cuts_uploads_of_other_attempts(void **state)
{
    (void)state;
    s_setup_update();
    char err[256];
    mfl_reject_t why = 0;
    mfl_upload_spool_t *sp = s_begun();
    assert_int_equal(s_send(sp, 0, &why, err), 0);
    assert_int_equal(s_send(sp, 1, &why, err), 0);
    s_cuts = 0;
    mfl_upload_spool_prune(sp, 3, s_h.nonce, 16, s_on_cut, NULL); /* same attempt: kept */
    assert_int_equal(mfl_upload_spool_count(sp), 1);
    mfl_upload_spool_prune(sp, 3, NULL, 0, s_on_cut, NULL); /* no round open: cut */
    assert_int_equal(s_cuts, 1);
    assert_int_equal(mfl_upload_spool_count(sp), 0);
    mfl_upload_spool_destroy(&sp);
    rmdir(s_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_whole_upload_reads_back),
        cmocka_unit_test(test_begin_checks_the_list_against_the_signature),
        cmocka_unit_test(test_every_bad_chunk_is_refused),
        cmocka_unit_test(test_prune_cuts_uploads_of_other_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
