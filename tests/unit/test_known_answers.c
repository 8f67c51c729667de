/* Known answers (libsodium's .exp style): bits that runs, resumes and audits
 * depend on, written down as literal constants computed once (2026-12-06)
 * from the code of that day. The other tests check these formats only for
 * self-consistency (save then load, sign then verify), which a change on
 * both sides would pass while breaking every old checkpoint, audit log and
 * bit-for-bit replay. A mismatch here means a format or stream changed:
 * that needs a new version number and a note in the docs, never a new
 * constant pasted in. On a mismatch the test prints what it got.
 *
 * Secure aggregation's streams are pinned beside its code, in
 * test_secagg_crypto.c: the mask expansion against RFC 8439's ChaCha20
 * keystream, X25519 against RFC 7748, and the derived pair keys, pair
 * masks, self mask and Shamir shares as literal words (one place per
 * stream, so a change cannot be "fixed" in one copy only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit/audit.h"
#include "audit/audit_internal.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "fed/checkpoint.h"
#include "metafl.pb-c.h"
#include "nn/model.h"
#include "round/round_engine.h"
#include "site/site_worker.h"
#include "wire/keys.h"
#include "wire/task.h"
#include "wire/update_sign.h"

#include "tmpdir.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    return s_tmpdir_make(s_dir, sizeof s_dir, "ka");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

/* Compares bytes with an expected lowercase hex string; prints both on a
 * mismatch so the failing value is visible. */
static void s_expect_hex(const char *what, const void *bytes, size_t len, const char *expected)
{
    char got[2 * 4096 + 1];
    assert_true(len <= 4096);
    sodium_bin2hex(got, sizeof got, bytes, len);
    if (strcmp(got, expected) != 0) {
        print_error("%s:\n  got      %s\n  expected %s\n", what, got, expected);
        fail();
    }
}

static void s_expect_u64s(const char *what, const uint64_t *got, const uint64_t *expected,
                          size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= got[i] != expected[i];
    if (bad) {
        print_error("%s: got\n", what);
        for (size_t i = 0; i < n; i++)
            print_error("    0x%016llxull,\n", (unsigned long long)got[i]);
        fail();
    }
}

static void s_blake2b(const void *data, size_t len, uint8_t out[32])
{
    crypto_generichash(out, 32, data, len, NULL, 0);
}

/* ---- the training PRNG ------------------------------------------------ */

static void test_rng_u64_stream(void **state)
{
    (void)state;
    static const uint64_t expect_42_7[8] = {
        0xca826c975faefda3ull, 0x0ec26f53a468f17cull, 0x4293f3061a587ea5ull,
        0xeae3bf54eaf1dc33ull, 0xf4c3f2885d058792ull, 0xddf3d7293cb61d1eull,
        0xf8a8dcd089c574e5ull, 0x297e239820c8b36bull,
    };
    static const uint64_t expect_0_0[4] = {
        0xff73d0ed7d9fce26ull, 0x2aebd5d6fe969244ull, 0x87a5ef76138322f2ull,
        0x666183d968e8fb25ull,
    };
    mfl_rng_t r;
    uint64_t got[8];
    mfl_rng_seed(&r, 42, 7);
    for (int i = 0; i < 8; i++)
        got[i] = mfl_rng_u64(&r);
    s_expect_u64s("mfl_rng_u64 after seed(42, 7)", got, expect_42_7, 8);
    mfl_rng_seed(&r, 0, 0);
    for (int i = 0; i < 4; i++)
        got[i] = mfl_rng_u64(&r);
    s_expect_u64s("mfl_rng_u64 after seed(0, 0)", got, expect_0_0, 4);
}

/* The float and integer draws the engine uses (model init: range; task
 * sampling: below, shuffle, range; selection: shuffle), as bit patterns. */
static void test_rng_draws(void **state)
{
    (void)state;
    mfl_rng_t r;
    mfl_rng_seed(&r, 2026, 12);
    float f[12];
    for (int i = 0; i < 4; i++)
        f[i] = mfl_rng_uniform(&r);
    for (int i = 4; i < 8; i++)
        f[i] = mfl_rng_range(&r, -5.0f, 5.0f);
    for (int i = 8; i < 12; i++)
        f[i] = mfl_rng_normal(&r);
    s_expect_hex("uniform x4, range(-5,5) x4, normal x4 (f32 LE)", f, sizeof f,
                 "263d743fc04cba3d4c65643e8093e53b58719ebf3404d13fd8d07a408cfd6dc0"
                 "6aa6ddbdfa0d88bfe5644dbf36e59fbf");

    double d[3];
    for (int i = 0; i < 3; i++)
        d[i] = mfl_rng_uniform_double(&r);
    s_expect_hex("uniform_double x3 (f64 LE)", d, sizeof d,
                 "1929c2110e00ea3fac0d27d45ef3c23fd5af158649a3e03f");

    uint64_t below[8];
    for (int i = 0; i < 8; i++)
        below[i] = mfl_rng_below(&r, 7 + (uint64_t)i * 1000);
    static const uint64_t expect_below[8] = {0, 878, 224, 1026, 3406, 862, 5246, 899};
    s_expect_u64s("below(7 + 1000 i)", below, expect_below, 8);

    size_t perm[10];
    for (size_t i = 0; i < 10; i++)
        perm[i] = i;
    mfl_rng_shuffle(&r, perm, 10);
    uint64_t perm64[10], expect_perm[10] = {2, 6, 9, 5, 8, 3, 0, 7, 1, 4};
    for (size_t i = 0; i < 10; i++)
        perm64[i] = perm[i];
    s_expect_u64s("shuffle of 0..9", perm64, expect_perm, 10);
}

/* θ₀ of a small model from a fixed seed: He-uniform init draws. */
static void test_model_init(void **state)
{
    (void)state;
    char err[256];
    mfl_model_t *m = mfl_model_new("mlp:5-4-3", 1, err, sizeof err);
    assert_non_null(m);
    size_t n = mfl_model_n_params(m);
    assert_int_equal(n, 5 * 4 + 4 + 4 * 3 + 3);
    float theta[64];
    mfl_rng_t r;
    mfl_rng_seed(&r, 7, 0x6d657461);
    mfl_model_init_params(m, theta, &r);
    uint8_t h[32];
    s_blake2b(theta, n * sizeof(float), h);
    s_expect_hex("BLAKE2b of mlp:5-4-3 θ₀ (seed 7)", h, 32,
                 "12be36b4b88b8a9f583e2ab8c0266dd232d32df21ae04b0a488fd47bb121e514");
    mfl_model_destroy(&m);
}

/* ---- seeds of rounds and sites ---------------------------------------- */

static void test_round_and_site_seeds(void **state)
{
    (void)state;
    static const uint32_t rounds[4] = {0, 1, 2, 1000};
    uint64_t got[8];
    for (int i = 0; i < 4; i++)
        got[i] = mfl_round_seed(12345, rounds[i]);
    got[4] = mfl_site_worker_stream("site-a", 1);
    got[5] = mfl_site_worker_stream("site-b", 1);
    got[6] = mfl_site_worker_stream("site-a", 2);
    got[7] = mfl_site_worker_stream("", 0);
    static const uint64_t expect[8] = {
        0xee006ae4e57bba3aull, 0x5651e3334e14a5b6ull, 0xc7071da59970431aull,
        0x89cf476473203595ull, 0x3cc4a4615c562236ull, 0xcc704b0c2139cc31ull,
        0xc90eda58f1bf5c6full, 0x552d3fb62b3c344full,
    };
    s_expect_u64s("round seeds (12345; 0,1,2,1000), site streams", got, expect, 8);
}

/* ---- a checkpoint's bytes --------------------------------------------- */

static void test_checkpoint_bytes(void **state)
{
    (void)state;
    float theta[5] = {0.5f, -1.25f, 3.0f, 0.0f, 1e-3f};
    float optim[2] = {0.25f, -0.125f};
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    strcpy(ck.run_id, "known-answer.run_1");
    ck.round = 7;
    ck.seed = 0x1234567890abcdefull;
    mfl_rng_seed(&ck.rng, 99, 3);
    ck.optim_kind = 2;
    ck.optim_steps = 6;
    for (int i = 0; i < 32; i++)
        ck.model_hash[i] = (uint8_t)(i * 7 + 1);
    ck.n_params = 5;
    ck.theta = theta;
    ck.n_optim_state = 2;
    ck.optim_state = optim;

    char path[512], err[256];
    snprintf(path, sizeof path, "%s/ka.ckpt", s_dir);
    assert_int_equal(mfl_checkpoint_save(path, &ck, err, sizeof err), 0);
    char *bytes = NULL;
    size_t len = 0;
    assert_int_equal(mfl_file_read_all(path, 1 << 20, &bytes, &len, err, sizeof err), 0);
    /* 192 header + 7 floats + 32 checksum */
    assert_int_equal(len, 192 + 7 * 4 + 32);
    s_expect_hex("checkpoint header (192 bytes)", bytes, 192,
                 "4d464c434b50543101000000c00000006b6e6f776e2d616e737765722e72756e"
                 "5f31000000000000000000000000000000000000000000000000000000000000"
                 "000000000000000000000000000000000700000000000000efcdab9078563412"
                 "392da16ed375c73346655389756a2a86e76c5ad12d65bbcd587c4e60d942999c"
                 "0200000000000000060000000000000005000000000000000200000000000000"
                 "01080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccd3da");
    uint8_t h[32];
    s_blake2b(bytes, len, h);
    s_expect_hex("BLAKE2b of the whole checkpoint file", h, 32,
                 "208905e31ac0ed41ffda9a99713dd1f8180ebdac8cb5f0c6e78e127fbde0ee56");
    free(bytes);
}

/* ---- the update digest and a signed update ----------------------------- */

static void test_update_digest(void **state)
{
    (void)state;
    const float d1[4] = {1.0f, -2.0f, 0.5f, 0.25f};
    const float d2[3] = {-0.75f, 4.0f, 1e-6f};
    uint8_t hashes[64], dig[32];
    mfl_audit_delta_hash(d1, 4, hashes);
    mfl_audit_delta_hash(d2, 3, hashes + 32);
    s_expect_hex("BLAKE2b of Δ tensor 1", hashes, 32,
                 "230cf867e0594083908258a916e9212533107eca68cbc370ee573a99e0dbe093");
    mfl_audit_update_digest(hashes, 1, dig);
    assert_memory_equal(dig, hashes, 32); /* k = 1: the tensor's own hash */
    mfl_audit_update_digest(hashes, 2, dig);
    s_expect_hex("update digest of 2 tensors", dig, 32,
                 "826a859f4540f0d3bb2fbcbe09aa3181f09a0a7e1c9fc8058267418cf5b2e859");
    mfl_audit_update_digest(NULL, 0, dig);
    s_expect_hex("update digest of 0 tensors", dig, 32,
                 "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

/* A site key file with a fixed seed (the key file format is pinned too). */
static mfl_identity_t *s_fixed_identity(const char *name, uint8_t seed_byte)
{
    char path[512], text[512], hex[65], err[256];
    uint8_t seed[32];
    memset(seed, seed_byte, sizeof seed);
    sodium_bin2hex(hex, sizeof hex, seed, 32);
    snprintf(path, sizeof path, "%s/%s.key", s_dir, name);
    int n = snprintf(text, sizeof text, "metafl-secret-key v1\nname: %s\nseed: %s\n", name, hex);
    assert_int_equal(mfl_file_write_atomic_mode(path, text, (size_t)n, 0600, err, sizeof err), 0);
    mfl_identity_t *id = mfl_identity_load(path, err, sizeof err);
    if (!id)
        print_error("%s\n", err);
    assert_non_null(id);
    return id;
}

static void s_fixed_header(Metafl__UpdateHeader *hdr, Metafl__UpdateMetrics *met,
                           Metafl__PrivacyRecord *priv, uint8_t nonce[16])
{
    for (int i = 0; i < 16; i++)
        nonce[i] = (uint8_t)(0xa0 + i);
    metafl__update_header__init(hdr);
    metafl__update_metrics__init(met);
    metafl__privacy_record__init(priv);
    hdr->round = 3;
    hdr->nonce.data = nonce;
    hdr->nonce.len = 16;
    hdr->site = "site-a";
    hdr->n_samples = 120;
    met->loss_before = 0.75;
    met->loss_after = 0.5;
    met->n_tasks = 4;
    hdr->metrics = met;
    priv->applied = 1;
    priv->clip_norm = 1.0;
    priv->noise_multiplier = 1.1;
    priv->pre_clip_norm = 2.5;
    priv->epsilon_spent = 0.8;
    hdr->privacy = priv;
    hdr->delta_norm = 2.25;
}

static void test_signed_update(void **state)
{
    (void)state;
    mfl_identity_t *id = s_fixed_identity("site-a", 0x11);
    s_expect_hex("site-a Ed25519 public key", mfl_identity_public(id)->sign_pk, 32,
                 "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737");

    const float d1[4] = {1.0f, -2.0f, 0.5f, 0.25f};
    const float d2[3] = {-0.75f, 4.0f, 1e-6f};
    mfl_tensor_t t[2] = {mfl_tensor_vec("w", d1, 4), mfl_tensor_vec("b", d2, 3)};
    Metafl__UpdateHeader hdr;
    Metafl__UpdateMetrics met;
    Metafl__PrivacyRecord priv;
    uint8_t nonce[16];
    s_fixed_header(&hdr, &met, &priv, nonce);
    mfl_signed_update_t su;
    char err[256];
    assert_int_equal(mfl_update_sign(id, &hdr, t, 2, &su, err, sizeof err), 0);
    s_expect_hex("serialized UpdateHeader", su.header, su.header_len,
                 "08031210a0a1a2a3a4a5a6a7a8a9aaabacadaeaf1a06736974652d6120782a20"
                 "230cf867e0594083908258a916e9212533107eca68cbc370ee573a99e0dbe093"
                 "2a207ae462b7b4d8314faa3c607ecb1006d34ca6b56ae0c3d810472b22519fba"
                 "86f1321409000000000000e83f11000000000000e03f18043a26080111000000"
                 "000000f03f199a9999999999f13f210000000000000440299a9999999999e93f"
                 "410000000000000240");
    s_expect_hex("site-a signature over it", su.signature, 64,
                 "a43fb26e4105b9fe9c4cf8618ddd19f638020b56eb6de230c142ecc1d0bd67a5"
                 "711ca85a7798a98e0e8f98f53f386cd07481998cbe8ea4a6858da3d1545c8a07");

    /* The site worker's encoder (the task codec) writes the same bytes for
     * the same header, and its decoder reads back the same digest. */
    mfl_update_header_t plain;
    memset(&plain, 0, sizeof plain);
    plain.round = 3;
    memcpy(plain.nonce, nonce, 16);
    plain.nonce_len = 16;
    strcpy(plain.site, "site-a");
    plain.n_samples = 120;
    plain.has_metrics = true;
    plain.metrics.loss_before = 0.75;
    plain.metrics.loss_after = 0.5;
    plain.metrics.n_tasks = 4;
    plain.has_privacy = true;
    plain.privacy.applied = true;
    plain.privacy.clip_norm = 1.0;
    plain.privacy.noise_multiplier = 1.1;
    plain.privacy.pre_clip_norm = 2.5;
    plain.privacy.epsilon_spent = 0.8;
    plain.delta_norm = 2.25;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    assert_int_equal(mfl_update_header_encode(&plain, su.hashes, 2, &enc, &enc_len, err,
                                              sizeof err),
                     0);
    assert_int_equal(enc_len, su.header_len);
    assert_memory_equal(enc, su.header, enc_len);
    mfl_update_header_t back;
    assert_int_equal(mfl_update_header_decode(enc, enc_len, &back, err, sizeof err), 0);
    assert_string_equal(back.digest_error, "");
    s_expect_hex("decoded header's update digest", back.digest, 32,
                 "826a859f4540f0d3bb2fbcbe09aa3181f09a0a7e1c9fc8058267418cf5b2e859");
    free(enc);

    /* The audit record a coordinator makes of it: the digest comes from the
     * signed header alone. */
    mfl_audit_record_t *rec = calloc(1, sizeof *rec);
    assert_non_null(rec);
    assert_int_equal(mfl_audit_record_from_update(rec, MFL_AUDIT_UPDATE_ACCEPTED, su.header,
                                                  su.header_len, su.signature, err, sizeof err),
                     0);
    s_expect_hex("record delta_hash (update digest)", rec->delta_hash, 32,
                 "826a859f4540f0d3bb2fbcbe09aa3181f09a0a7e1c9fc8058267418cf5b2e859");
    free(rec);
    mfl_signed_update_clear(&su);
    mfl_identity_destroy(&id);
}

/* ---- an audit record's line, hash and signature ----------------------- */

/* Formats, hashes and signs `rec` as the log writer does (seq, time, writer,
 * prev already set), into line (NUL-terminated). */
static void s_audit_line(mfl_audit_record_t *rec, const uint8_t sk[64], char *line, size_t cap)
{
    char err[256];
    size_t body = 0;
    assert_true(mfl_audit_format(rec, 0, line, cap, &body, err, sizeof err) > 0);
    mfl_audit_hash_body(line, body, rec->hash);
    uint8_t msg[64];
    size_t msg_len = 0;
    mfl_audit_sig_message(rec->hash, msg, &msg_len);
    crypto_sign_detached(rec->sig, NULL, msg, msg_len, sk);
    assert_true(mfl_audit_format(rec, 1, line, cap, NULL, err, sizeof err) > 0);
}

static int s_coord_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    const uint8_t *keys = arg; /* coord pk, then site-a pk */
    if (strcmp(name, "coord") == 0) {
        memcpy(pk, keys, 32);
        return 0;
    }
    if (strcmp(name, "site-a") == 0) {
        memcpy(pk, keys + 32, 32);
        return 0;
    }
    snprintf(err, errlen, "no key for '%s'", name);
    return -1;
}

static const char *const S_LINE1 =
    "{\"seq\":1,\"time\":\"2026-12-02T08:26:40.123Z\",\"writer\":\"coord\","
    "\"kind\":\"round_opened\",\"round\":3,\"site\":\"\","
    "\"nonce\":\"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\",\"delta_hash\":\"\",\"norm\":0,"
    "\"n\":2,\"privacy\":null,\"update_sig\":\"\",\"signed_header\":\"\","
    "\"reason\":\"\","
    "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\","
    "\"hash\":\"a1883731654db99d38489cb7693eb84578c2b513bf9be9e9dadafe5425ff421f\","
    "\"sig\":\"28cba500a150744640f29f82ba196dc65278962f992a573101fc146d55cec10f"
    "cbc21909478dc30febcdc86786bfbe5e2964e58978e537a10c143043f39fee08\"}";
static const char *const S_LINE2_HASH =
    "8d6bc9385355d3f173f55dd5505e21da3f0806af9f88e690fc36c4c202fa92e4";
static const char *const S_LINE2_SIG =
    "91b2e5f8e921eff269d0b201ffcbe7b1a03de0d1c9a6430b9cb06a5983a4f9f3"
    "2a9fe04e872a220bc5a2b5043340c467d76aea63e58eb7a1b0801974129f9205";

static void test_audit_record(void **state)
{
    (void)state;
    uint8_t seed[32], pk[64], sk[64];
    memset(seed, 0x22, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    mfl_identity_t *site = s_fixed_identity("site-a", 0x11);
    memcpy(pk + 32, mfl_identity_public(site)->sign_pk, 32);

    mfl_audit_record_t *rec = calloc(2, sizeof *rec);
    assert_non_null(rec);
    char *lines = calloc(2, MFL_AUDIT_LINE_MAX + 2);
    assert_non_null(lines);
    char *l1 = lines, *l2 = lines + MFL_AUDIT_LINE_MAX + 2;

    /* record 1: a round opened */
    mfl_audit_record_init(&rec[0], MFL_AUDIT_ROUND_OPENED, 3, NULL);
    rec[0].seq = 1;
    rec[0].time_ms = 1796200000123ull;
    strcpy(rec[0].writer, "coord");
    for (int i = 0; i < 16; i++)
        rec[0].nonce[i] = (uint8_t)(0xa0 + i);
    rec[0].nonce_len = 16;
    rec[0].n = 2;
    s_audit_line(&rec[0], sk, l1, MFL_AUDIT_LINE_MAX + 2);
    if (strcmp(l1, S_LINE1) != 0) {
        print_error("round_opened line:\n  got      %s\n  expected %s\n", l1, S_LINE1);
        fail();
    }

    /* record 2: site-a's signed update accepted (privacy, header, sig) */
    const float d1[4] = {1.0f, -2.0f, 0.5f, 0.25f};
    const float d2[3] = {-0.75f, 4.0f, 1e-6f};
    mfl_tensor_t t[2] = {mfl_tensor_vec("w", d1, 4), mfl_tensor_vec("b", d2, 3)};
    Metafl__UpdateHeader hdr;
    Metafl__UpdateMetrics met;
    Metafl__PrivacyRecord priv;
    uint8_t nonce[16];
    s_fixed_header(&hdr, &met, &priv, nonce);
    mfl_signed_update_t su;
    char err[256];
    assert_int_equal(mfl_update_sign(site, &hdr, t, 2, &su, err, sizeof err), 0);
    assert_int_equal(mfl_audit_record_from_update(&rec[1], MFL_AUDIT_UPDATE_ACCEPTED, su.header,
                                                  su.header_len, su.signature, err, sizeof err),
                     0);
    rec[1].privacy.delta = 1e-5;
    rec[1].seq = 2;
    rec[1].time_ms = 1796200001456ull;
    strcpy(rec[1].writer, "coord");
    strcpy(rec[1].reason, "known answer");
    memcpy(rec[1].prev, rec[0].hash, 32);
    s_audit_line(&rec[1], sk, l2, MFL_AUDIT_LINE_MAX + 2);
    s_expect_hex("update_accepted record hash", rec[1].hash, 32, S_LINE2_HASH);
    s_expect_hex("update_accepted record sig", rec[1].sig, 64, S_LINE2_SIG);

    /* The two lines are a log that verifies with today's verifier (chain,
     * both writer signatures, the site's signature and digest). */
    char path[512];
    snprintf(path, sizeof path, "%s/ka-audit.log", s_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "%s\n%s\n", l1, l2);
    assert_int_equal(fclose(f), 0);
    mfl_audit_report_t report;
    int rc = mfl_audit_verify_with(path, s_coord_key, pk, &report);
    if (rc != 0)
        print_error("%s\n", report.message);
    assert_int_equal(rc, 0);
    assert_int_equal(report.n_records, 2);
    assert_int_equal(report.n_site_sigs, 1);

    mfl_signed_update_clear(&su);
    mfl_identity_destroy(&site);
    free(lines);
    free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_u64_stream),
        cmocka_unit_test(test_rng_draws),
        cmocka_unit_test(test_model_init),
        cmocka_unit_test(test_round_and_site_seeds),
        cmocka_unit_test(test_checkpoint_bytes),
        cmocka_unit_test(test_update_digest),
        cmocka_unit_test(test_signed_update),
        cmocka_unit_test(test_audit_record),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
