/* Key files, allow-lists and update signatures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire/keys.h"
#include "wire/update_sign.h"

static char s_dir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/mfl-keys-XXXXXX");
    assert_non_null(mkdtemp(s_dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void s_path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", s_dir, file);
}

static void s_write(const char *file, const char *text, mode_t mode)
{
    char p[512];
    s_path(p, sizeof p, file);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
}

static void test_generate_writes_0600_secret_and_refuses_overwrite(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    mode_t old = umask(0); /* the secret must be 0600 whatever the umask */
    assert_int_equal(mfl_keys_generate(s_dir, "site-a", err, sizeof err), 0);
    umask(old);
    struct stat st;
    s_path(p, sizeof p, "site-a.key");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    s_path(p, sizeof p, "site-a.pub");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);

    assert_int_equal(mfl_keys_generate(s_dir, "site-a", err, sizeof err), -1);
    assert_non_null(strstr(err, "refusing to overwrite"));
    assert_int_equal(mfl_keys_generate(s_dir, "../evil", err, sizeof err), -1);
    assert_int_equal(mfl_keys_generate(s_dir, "", err, sizeof err), -1);
    assert_int_equal(mfl_keys_generate(s_dir, ".hidden", err, sizeof err), -1);

    s_path(p, sizeof p, "site-a.key");
    mfl_identity_t *id = mfl_identity_load(p, err, sizeof err);
    assert_non_null(id);
    assert_string_equal(mfl_identity_name(id), "site-a");
    mfl_public_key_t pk;
    s_path(p, sizeof p, "site-a.pub");
    assert_int_equal(mfl_public_key_load(p, &pk, err, sizeof err), 0);
    assert_memory_equal(pk.sign_pk, mfl_identity_public(id)->sign_pk, 32);
    assert_memory_equal(pk.curve_pk, mfl_identity_public(id)->curve_pk, 32);
    assert_int_equal(strlen(mfl_identity_curve_sk_z85(id)), 40);
    mfl_identity_destroy(&id);
    assert_null(id);
    mfl_identity_destroy(&id); /* NULL-safe */

    /* two generations give different keys */
    assert_int_equal(mfl_keys_generate(s_dir, "site-b", err, sizeof err), 0);
    mfl_public_key_t pk2;
    s_path(p, sizeof p, "site-b.pub");
    assert_int_equal(mfl_public_key_load(p, &pk2, err, sizeof err), 0);
    assert_memory_not_equal(pk.sign_pk, pk2.sign_pk, 32);
}

static void test_loading_a_readable_secret_is_refused_clearly(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    assert_int_equal(mfl_keys_generate(s_dir, "site-a", err, sizeof err), 0);
    s_path(p, sizeof p, "site-a.key");
    assert_int_equal(chmod(p, 0644), 0);
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_non_null(strstr(err, "secret key is readable by others (mode 0644); run chmod 600"));
    assert_non_null(strstr(err, p));
    assert_int_equal(chmod(p, 0640), 0);
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_int_equal(chmod(p, 0620), 0);
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_int_equal(chmod(p, 0600), 0);
    mfl_identity_t *id = mfl_identity_load(p, err, sizeof err);
    assert_non_null(id);
    mfl_identity_destroy(&id);
    s_path(p, sizeof p, "missing.key");
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_non_null(strstr(err, "missing.key"));
}

static void test_malformed_key_files_name_file_and_line(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    mfl_public_key_t pk;
    const char *hex = "37cf514b42b2143dc26e4bcb32ffa413a31cd975a56b08a294f186a31791e384";
    char text[512];

    snprintf(text, sizeof text, "metafl-public-key v1\nname: x\nsign: %s\n", hex);
    s_write("x.pub", text, 0644);
    s_path(p, sizeof p, "x.pub");
    assert_int_equal(mfl_public_key_load(p, &pk, err, sizeof err), 0);
    assert_string_equal(pk.name, "x");

    s_write("y.pub", text, 0644); /* the name inside is x */
    s_path(p, sizeof p, "y.pub");
    assert_int_equal(mfl_public_key_load(p, &pk, err, sizeof err), -1);
    assert_non_null(strstr(err, "file stem"));

    const char *bad[] = {
        "metafl-public-key v2\nname: x\nsign: 00\n",
        "metafl-public-key v1\nname: x\nsign: zz\n",
        "metafl-public-key v1\nname: x\n",
        "metafl-public-key v1\nname: x y\nsign: 00\n",
        "metafl-public-key v1\ncolour: red\n",
        "metafl-public-key v1\nname: x\nname: x\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(mfl_public_key_parse(bad[i], strlen(bad[i]), "t.pub", &pk, err,
                                              sizeof err), -1);
        assert_non_null(strstr(err, "t.pub"));
    }
    snprintf(text, sizeof text, "metafl-public-key v1\nname: x\nsign: %s\ncolour: red\n", hex);
    assert_int_equal(mfl_public_key_parse(text, strlen(text), "t.pub", &pk, err, sizeof err), -1);
    assert_non_null(strstr(err, "t.pub:4"));
    /* a curve line that disagrees with the sign key */
    snprintf(text, sizeof text,
             "metafl-public-key v1\nname: x\nsign: %s\ncurve: 0000000000000000000000000000000000000000\n",
             hex);
    assert_int_equal(mfl_public_key_parse(text, strlen(text), "t.pub", &pk, err, sizeof err), -1);
}

static void test_allow_list_loads_every_pub_and_rejects_duplicates(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    mfl_allow_list_t *al = mfl_allow_list_load(s_dir, err, sizeof err);
    assert_non_null(al); /* empty is allowed */
    assert_int_equal(mfl_allow_list_size(al), 0);
    mfl_allow_list_destroy(&al);

    assert_int_equal(mfl_keys_generate(s_dir, "b-site", err, sizeof err), 0);
    assert_int_equal(mfl_keys_generate(s_dir, "a-site", err, sizeof err), 0);
    al = mfl_allow_list_load(s_dir, err, sizeof err);
    assert_non_null(al);
    assert_int_equal(mfl_allow_list_size(al), 2);
    assert_string_equal(mfl_allow_list_at(al, 0)->name, "a-site");
    const mfl_public_key_t *b = mfl_allow_list_find_name(al, "b-site");
    assert_non_null(b);
    assert_ptr_equal(mfl_allow_list_find_curve(al, b->curve_pk), b);
    assert_null(mfl_allow_list_find_name(al, "c-site"));
    mfl_allow_list_destroy(&al);

    /* the same key under a second name */
    char cmd[1200];
    s_path(p, sizeof p, "a-site.pub");
    snprintf(cmd, sizeof cmd, "sed 's/^name: a-site/name: c-site/' %s > %s/c-site.pub", p, s_dir);
    assert_int_equal(system(cmd), 0);
    assert_null(mfl_allow_list_load(s_dir, err, sizeof err));
    assert_non_null(strstr(err, "same key"));
    s_path(p, sizeof p, "c-site.pub");
    unlink(p);

    s_write("broken.pub", "hello\n", 0644);
    assert_null(mfl_allow_list_load(s_dir, err, sizeof err));
    assert_non_null(strstr(err, "broken.pub"));
}

static void test_update_signature_binds_header_and_tensors(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    assert_int_equal(mfl_keys_generate(s_dir, "alice", err, sizeof err), 0);
    assert_int_equal(mfl_keys_generate(s_dir, "bob", err, sizeof err), 0);
    s_path(p, sizeof p, "alice.key");
    mfl_identity_t *alice = mfl_identity_load(p, err, sizeof err);
    s_path(p, sizeof p, "bob.key");
    mfl_identity_t *bob = mfl_identity_load(p, err, sizeof err);
    assert_non_null(alice);
    assert_non_null(bob);

    float d[100];
    for (int i = 0; i < 100; i++)
        d[i] = (float)i;
    mfl_tensor_t t = mfl_tensor_vec("delta", d, 100);
    uint8_t nonce[16] = {1, 2, 3};
    Metafl__UpdateHeader hdr = METAFL__UPDATE_HEADER__INIT;
    hdr.round = 5;
    hdr.nonce.data = nonce;
    hdr.nonce.len = 16;
    hdr.site = (char *)"alice";
    hdr.n_samples = 10;
    hdr.delta_norm = 1.5;
    mfl_signed_update_t su;
    assert_int_equal(mfl_update_sign(alice, &hdr, &t, 1, &su, err, sizeof err), 0);
    assert_int_equal(hdr.n_tensor_hashes, 0); /* the caller's header is left alone */

    int reason = 0;
    Metafl__UpdateHeader *h =
        mfl_update_verify(&su.update, mfl_identity_public(alice), &t, 1, &reason, err, sizeof err);
    assert_non_null(h);
    assert_int_equal(h->round, 5);
    assert_true(h->delta_norm == 1.5);
    assert_int_equal(mfl_update_check_fresh(h, 5, nonce, 16, &reason, err, sizeof err), 0);
    metafl__update_header__free_unpacked(h, NULL);

    /* wrong key */
    assert_null(mfl_update_verify(&su.update, mfl_identity_public(bob), &t, 1, &reason, err,
                                  sizeof err));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_SIGNATURE);
    /* other tensor bytes than signed */
    d[7] += 1.0f;
    assert_null(mfl_update_verify(&su.update, mfl_identity_public(alice), &t, 1, &reason, err,
                                  sizeof err));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_HASH);
    d[7] -= 1.0f;
    assert_null(mfl_update_verify(&su.update, mfl_identity_public(alice), &t, 0, &reason, err,
                                  sizeof err));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_HASH);
    /* a flipped bit in the header */
    su.header[su.header_len / 2] ^= 0x40;
    assert_null(mfl_update_verify(&su.update, mfl_identity_public(alice), &t, 1, &reason, err,
                                  sizeof err));
    assert_int_equal(reason, METAFL__REJECT_REASON__REJECT_SIGNATURE);
    mfl_signed_update_clear(&su);

    /* a site cannot sign in another's name */
    assert_int_equal(mfl_update_sign(bob, &hdr, &t, 1, &su, err, sizeof err), -1);
    assert_non_null(strstr(err, "alice"));
    mfl_identity_destroy(&alice);
    mfl_identity_destroy(&bob);
}

/* The .pub sits next to the .key after keygen and is 0644: loading it as
 * the secret key must say "public key file", not "readable by others". */
static void test_public_key_as_secret_is_named_as_such(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    assert_int_equal(mfl_keys_generate(s_dir, "site-b", err, sizeof err), 0);
    s_path(p, sizeof p, "site-b.pub");
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_non_null(strstr(err, "site-b.pub is a public key file"));
    assert_non_null(strstr(err, "needs the secret key (site-b.key"));
    assert_null(strstr(err, "readable by others"));
    /* also when its mode is already 0600 */
    assert_int_equal(chmod(p, 0600), 0);
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_non_null(strstr(err, "is a public key file"));
}

/* A FIFO (no writer) where the key file should be is refused at once
 * instead of blocking open() forever. */
static void test_fifo_key_file_is_refused_without_blocking(void **state)
{
    (void)state;
    char err[512] = "", p[512];
    s_path(p, sizeof p, "fifo.key");
    assert_int_equal(mkfifo(p, 0600), 0);
    assert_null(mfl_identity_load(p, err, sizeof err));
    assert_non_null(strstr(err, "not a regular file"));
    mfl_public_key_t pk;
    s_path(p, sizeof p, "fifo.pub");
    assert_int_equal(mkfifo(p, 0644), 0);
    assert_int_equal(mfl_public_key_load(p, &pk, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generate_writes_0600_secret_and_refuses_overwrite,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_loading_a_readable_secret_is_refused_clearly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_key_files_name_file_and_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_allow_list_loads_every_pub_and_rejects_duplicates,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_key_as_secret_is_named_as_such, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fifo_key_file_is_refused_without_blocking, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_update_signature_binds_header_and_tensors, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
