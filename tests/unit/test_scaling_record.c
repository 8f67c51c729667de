/* The pooled scaling as it is kept and handed on (round/scaling_record.h,
 * issue 16): the state file round-trips exactly and a damaged one is
 * refused naming what is wrong; an export's metadata reads back to the
 * very same floats and is refused when a number, the count or the digest
 * does not match; and a site config's data.scaling_from takes them from an
 * export (with standardize: fixed only, never beside data.center). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/model.h"
#include "nn/safetensors.h"
#include "round/scaling_record.h"
#include "site/site_config.h"

static mfl_task_scaling_t s_example(void)
{
    mfl_task_scaling_t sc;
    memset(&sc, 0, sizeof sc);
    sc.n = 3;
    const float mean[3] = {12.3456789f, -0.1f, 1e-7f}, scale[3] = {3.14159274f, 1.0f, 2e5f};
    memcpy(sc.mean, mean, sizeof mean);
    memcpy(sc.scale, scale, sizeof scale);
    return sc;
}

static void s_hex(const mfl_task_scaling_t *sc, char hex[65])
{
    uint8_t h[32];
    mfl_scaling_digest(sc, h);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
}

static void test_state_round_trip_and_damage(void **state)
{
    (void)state;
    char dir[] = "/tmp/mfl-scalrec-XXXXXX", path[64], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/scaling.state", dir);
    mfl_task_scaling_t sc = s_example(), back;
    mfl_scaling_origin_t o = {.sites = 4, .rows = 123}, ob;
    assert_int_equal(mfl_scaling_state_write(path, &sc, &o, err, sizeof err), 0);
    assert_int_equal(mfl_scaling_state_read(path, &back, &ob, err, sizeof err), 0);
    assert_int_equal(back.n, 3);
    assert_memory_equal(back.mean, sc.mean, sizeof(float) * 3);
    assert_memory_equal(back.scale, sc.scale, sizeof(float) * 3);
    assert_int_equal(ob.sites, 4);
    assert_int_equal(ob.rows, 123);
    static const char *const bad[] = {
        "metafl-scaling-v2 n=1 rows=1 sites=1\n0x0p+0\n0x1p+0\n", /* other version */
        "metafl-scaling-v1 n=2 rows=1 sites=1\n0x0p+0 0x0p+0\n0x1p+0\n", /* a scale short */
        "metafl-scaling-v1 n=1 rows=1 sites=1\n0x0p+0\n-0x1p+0\n",       /* scale < 0 */
        "metafl-scaling-v1 n=1 rows=1 sites=1\nnan\n0x1p+0\n",            /* not finite */
        "metafl-scaling-v1 n=1 rows=1 sites=1\n0x0p+0\n0x1p+0 7\n",       /* extra number */
        "metafl-scaling-v1 n=1 rows=1 sites=1\n0x1p+200\n0x1p+0\n",       /* not a float */
        "metafl-scaling-v1 n=0 rows=1 sites=1\n\n\n",                     /* no feature */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(mfl_scaling_state_parse(bad[i], strlen(bad[i]), "x.state", &back, NULL,
                                                 err, sizeof err), -1);
        assert_non_null(strstr(err, "x.state: "));
    }
    unlink(path);
    err[0] = '\0';
    assert_int_equal(mfl_scaling_state_read(path, &back, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "scaling.state"));
    rmdir(dir);
}

static void test_metadata_exact_and_checked(void **state)
{
    (void)state;
    mfl_task_scaling_t sc = s_example(), back;
    char center[256], scale[256], hex[65], err[512];
    assert_int_equal(mfl_scaling_format_list(sc.mean, sc.n, center, sizeof center), 0);
    assert_int_equal(mfl_scaling_format_list(sc.scale, sc.n, scale, sizeof scale), 0);
    s_hex(&sc, hex);
    assert_int_equal(mfl_scaling_from_metadata(center, scale, hex, "m", &back, err, sizeof err), 0);
    assert_int_equal(back.n, 3);
    assert_memory_equal(back.mean, sc.mean, sizeof(float) * 3); /* exact, not close */
    assert_memory_equal(back.scale, sc.scale, sizeof(float) * 3);
    /* One changed digit: the digest no longer matches. */
    char edited[256];
    snprintf(edited, sizeof edited, "%s", center);
    edited[1] = edited[1] == '3' ? '4' : '3';
    assert_int_equal(mfl_scaling_from_metadata(edited, scale, hex, "m", &back, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "does not match"));
    assert_int_equal(mfl_scaling_from_metadata(center, "1,2", hex, "m", &back, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "3 centres and 2 scales"));
    assert_int_equal(mfl_scaling_from_metadata(center, "1,0,2", hex, "m", &back, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "scaling_scale"));
    assert_int_equal(mfl_scaling_from_metadata(center, scale, NULL, "m", &back, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "scaling_blake2b"));
    assert_int_equal(mfl_scaling_from_metadata("1,,2", scale, hex, "m", &back, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "scaling_center"));
}

/* Writes an export-like safetensors file carrying sc (or none). */
static void s_write_export(const char *path, const mfl_task_scaling_t *sc)
{
    char err[512], center[256], scale[256], hex[65];
    mfl_model_t *m = mfl_model_new("mlp:3-1", 1, err, sizeof err);
    assert_non_null(m);
    float theta[4] = {0};
    const char *md[12];
    size_t k = 0;
    if (sc) {
        assert_int_equal(mfl_scaling_format_list(sc->mean, sc->n, center, sizeof center), 0);
        assert_int_equal(mfl_scaling_format_list(sc->scale, sc->n, scale, sizeof scale), 0);
        s_hex(sc, hex);
        md[k++] = MFL_SCALING_MD_KIND;
        md[k++] = "federated";
        md[k++] = MFL_SCALING_MD_CENTER;
        md[k++] = center;
        md[k++] = MFL_SCALING_MD_SCALE;
        md[k++] = scale;
        md[k++] = MFL_SCALING_MD_DIGEST;
        md[k++] = hex;
    }
    md[k] = NULL;
    assert_int_equal(mfl_safetensors_save(path, m, theta, md, err, sizeof err), 0);
    mfl_model_destroy(&m);
}

static int s_site(const char *dir, const char *data_lines, mfl_site_config_t *c, char *err,
                  size_t errlen)
{
    char path[128];
    snprintf(path, sizeof path, "%s/site.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "site:\n  id: s\n  key_file: s.key\ncoordinator:\n  endpoint: tcp://127.0.0.1:1\n"
               "  public_key: c.pub\ndata:\n  source: csv\n  path: d.csv\n%s"
               "  schema:\n    header: true\n    columns:\n      - a\n      - b\n      - c\n"
               "      - {name: y, kind: label, rule: class, n_classes: 2}\n",
            data_lines);
    fclose(f);
    return mfl_site_config_load(path, c, err, errlen);
}

static void test_site_config_scaling_from(void **state)
{
    (void)state;
    static mfl_site_config_t c;
    char dir[] = "/tmp/mfl-scalfrom-XXXXXX", path[128], err[1024];
    assert_non_null(mkdtemp(dir));
    mfl_task_scaling_t sc = s_example();
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    s_write_export(path, &sc);
    assert_int_equal(s_site(dir, "  standardize: fixed\n  scaling_from: model.safetensors\n", &c,
                            err, sizeof err), 0);
    assert_int_equal(c.standardize, MFL_SITE_STD_FIXED);
    assert_int_equal(c.n_fixed, 3);
    assert_memory_equal(c.fixed_center, sc.mean, sizeof(float) * 3);
    assert_memory_equal(c.fixed_scale, sc.scale, sizeof(float) * 3);
    assert_string_equal(c.scaling_from, path);
    mfl_site_config_clear(&c);
    /* Only with standardize: fixed; never beside data.center. */
    assert_int_equal(s_site(dir, "  standardize: site\n  scaling_from: model.safetensors\n", &c,
                            err, sizeof err), -1);
    assert_non_null(strstr(err, "data.scaling_from"));
    assert_int_equal(s_site(dir, "  standardize: fixed\n  scaling_from: model.safetensors\n"
                                 "  center: [0, 0, 0]\n", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "not both"));
    /* An export without a scaling, and a missing file: named. */
    s_write_export(path, NULL);
    assert_int_equal(s_site(dir, "  standardize: fixed\n  scaling_from: model.safetensors\n", &c,
                            err, sizeof err), -1);
    assert_non_null(strstr(err, "carries no feature scaling"));
    assert_non_null(strstr(err, "site.yaml:"));
    unlink(path);
    assert_int_equal(s_site(dir, "  standardize: fixed\n  scaling_from: model.safetensors\n", &c,
                            err, sizeof err), -1);
    assert_non_null(strstr(err, "model.safetensors"));
    snprintf(path, sizeof path, "%s/site.yaml", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip_and_damage),
        cmocka_unit_test(test_metadata_exact_and_checked),
        cmocka_unit_test(test_site_config_scaling_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
