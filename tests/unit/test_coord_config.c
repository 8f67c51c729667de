/* The coordinator's YAML config: values land in the struct, paths resolve
 * against the file, and bad input is refused naming FILE:LINE and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "round/run_config.h"

static char s_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_coord_config.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *s_write(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *GOOD =
    "coordinator:\n"
    "  listen: tcp://127.0.0.1:7777\n"
    "  key: keys/coordinator.key\n"
    "  allow_dir: keys/allow\n"
    "  run_dir: run\n"
    "model:\n"
    "  spec: mlp:13-16-1\n"
    "  loss: bce\n"
    "algorithm:\n"
    "  name: fomaml\n"
    "  inner_steps: 3\n"
    "  inner_lr: 0.05\n"
    "rounds:\n"
    "  count: 7\n"
    "  sites_per_round: 0.5\n"
    "  min_sites: 2\n"
    "  wait_for_sites: 3\n"
    "  deadline_s: 2.5\n"
    "  seed: 99\n"
    "server:\n"
    "  optimizer: adam\n"
    "  lr: 0.01\n"
    "eval:\n"
    "  every: 2\n"
    "sites:\n"
    "  - site-a.yaml\n"
    "  - /abs/site-b.yaml\n";

static void test_good_config_loads_with_resolved_paths(void **state)
{
    (void)state;
    const char *path = s_write("good.yaml", GOOD);
    mfl_coord_config_t c;
    char err[512] = "";
    int rc = mfl_coord_config_load(path, &c, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.listen, "tcp://127.0.0.1:7777");
    char want[256];
    snprintf(want, sizeof want, "%s/keys/coordinator.key", s_dir);
    assert_string_equal(c.key_file, want);
    snprintf(want, sizeof want, "%s/run/checkpoints", s_dir);
    assert_string_equal(c.checkpoint_dir, want);
    snprintf(want, sizeof want, "%s/run/status.json", s_dir);
    assert_string_equal(c.status_file, want);
    assert_string_equal(c.learner.model_spec, "mlp:13-16-1");
    assert_int_equal(c.learner.algo, MFL_ALGO_FOMAML);
    assert_int_equal(c.learner.inner_steps, 3);
    assert_int_equal(c.rounds, 7);
    assert_true(c.sites_fraction == 0.5);
    assert_int_equal(c.min_sites, 2);
    assert_int_equal(c.wait_for_sites, 3);
    assert_int_equal(c.deadline_ms, 2500);
    assert_true(c.seed == 99);
    assert_int_equal(c.server.kind, MFL_OPTIM_ADAM);
    assert_true(c.server.lr == 0.01f);
    assert_int_equal(c.eval_every, 2);
    assert_int_equal(c.n_sites, 2);
    snprintf(want, sizeof want, "%s/site-a.yaml", s_dir);
    assert_string_equal(c.sites[0], want);
    assert_string_equal(c.sites[1], "/abs/site-b.yaml");
}

static void s_expect_error(const char *text, const char *needle, const char *line)
{
    const char *path = s_write("bad.yaml", text);
    mfl_coord_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_coord_config_load(path, &c, err, sizeof err), -1);
    if (!strstr(err, needle) || !strstr(err, line))
        fprintf(stderr, "unexpected error text: %s\n", err);
    assert_non_null(strstr(err, needle));
    assert_non_null(strstr(err, line));
    assert_non_null(strstr(err, "bad.yaml"));
}

static void test_unknown_key_is_refused_with_its_line(void **state)
{
    (void)state;
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  cout: 3\n", "cout", ":4");
}

static void test_bad_values_are_refused_naming_the_key(void **state)
{
    (void)state;
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  sites_per_round: 1.5\n",
                   "rounds.sites_per_round", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nalgorithm:\n  name: magic\n", "magic", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  min_sites: 3\n  wait_for_sites: 2\n",
                   "wait_for_sites", ":5");
    s_expect_error("model:\n  spec: linear:3-1\nserver:\n  optimizer: rmsprop\n", "rmsprop",
                   ":4");
    s_expect_error("rounds:\n  count: 3\n", "model.spec", "bad.yaml");
    /* 0 upload slots would grant nobody: every round would hang to its deadline. */
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  max_concurrent_uploads: 0\n",
                   "rounds.max_concurrent_uploads", ":4");
    /* Aggregation rules and their parameters (issue 10, item 15). */
    s_expect_error("model:\n  spec: linear:3-1\nserver:\n  aggregator: krum\n", "krum", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nserver:\n  trim_fraction: 0.5\n",
                   "server.trim_fraction", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  min_sites: 4\nserver:\n"
                   "  aggregator: multi_krum\n  krum_f: 1\n", "needs rounds.min_sites", ":7");
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  norm_action: clip\n",
                   "needs rounds.norm_bound", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  upload_encoding: int4\n",
                   "rounds.upload_encoding", ":4");
    s_expect_error("model:\n  spec: linear:3-1\nrounds:\n  broadcast_encoding: int4\n",
                   "rounds.broadcast_encoding", ":4");
    /* An empty block scalar is a present but empty spec (found by fuzzing). */
    s_expect_error("model:\n spec: |\n", "model.spec", "is empty");
}

/* Secure aggregation's word width (docs/SECAGG.md "Word width"): 32-bit
 * words need update_bound, which sets F (here 2^(24 - F) >= 100: F = 17);
 * a bound too large for 8 fractional bits, a bound with 64-bit words, any
 * other width: refused naming the key and its line. */
static void test_secagg_word_width(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512];
    const char *base = "model:\n  spec: linear:3-1\nrounds:\n  min_sites: 3\n"
                       "secure_aggregation:\n  enabled: true\n";
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%s  word_bits: 32\n  update_bound: 100\n", base);
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "sa.yaml", &c, err, sizeof err),
                     0);
    assert_int_equal(c.secagg_word_bits, 32);
    assert_int_equal(c.secagg_frac_bits, 17);
    assert_true(c.secagg_update_bound == 100);
    /* a masked input is 4 bytes a word then */
    assert_true(mfl_coord_config_message_bytes(&c, 100000000) == 4 * 100000001ull + (1u << 20));
    assert_int_equal(mfl_coord_config_parse(base, strlen(base), "sa.yaml", &c, err, sizeof err),
                     0);
    assert_int_equal(c.secagg_word_bits, 64); /* the default: as before */
    assert_int_equal(c.secagg_frac_bits, 0);
    assert_true(mfl_coord_config_message_bytes(&c, 100000000) == 8 * 100000001ull + (1u << 20));
    snprintf(yaml, sizeof yaml, "%s  word_bits: 32\n", base);
    s_expect_error(yaml, "secure_aggregation.update_bound", "required with word_bits 32");
    snprintf(yaml, sizeof yaml, "%s  word_bits: 32\n  update_bound: 100000\n", base);
    s_expect_error(yaml, "secure_aggregation.update_bound", "fewer than 8 fractional bits");
    snprintf(yaml, sizeof yaml, "%s  word_bits: 32\n  update_bound: -1\n", base);
    s_expect_error(yaml, "secure_aggregation.update_bound", ":8");
    snprintf(yaml, sizeof yaml, "%s  update_bound: 100\n", base);
    s_expect_error(yaml, "secure_aggregation.update_bound", "only with word_bits 32");
    snprintf(yaml, sizeof yaml, "%s  word_bits: 48\n", base);
    s_expect_error(yaml, "secure_aggregation.word_bits", "64 or 32");
    /* per-phase deadlines: within the round's */
    snprintf(yaml, sizeof yaml, "%s  phase_deadline_s: 1.5\n", base);
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "sa.yaml", &c, err, sizeof err),
                     0);
    assert_int_equal(c.secagg_phase_ms, 1500);
    assert_int_equal(mfl_coord_config_parse(base, strlen(base), "sa.yaml", &c, err, sizeof err),
                     0);
    assert_int_equal(c.secagg_phase_ms, 0); /* unset: derived from rounds.deadline_s */
    snprintf(yaml, sizeof yaml, "%s  phase_deadline_s: 0\n", base);
    s_expect_error(yaml, "secure_aggregation.phase_deadline_s", ":7");
    snprintf(yaml, sizeof yaml, "%s  phase_deadline_s: 500\n", base);
    s_expect_error(yaml, "secure_aggregation.phase_deadline_s", "longer than rounds.deadline_s");
}

/* The documented example must stay loadable (run from the repo root, as
 * tests/run-tests.sh does). */
static void test_aggregator_settings_load(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512];
    const char *yaml = "model:\n  spec: linear:3-1\nrounds:\n  min_sites: 5\n"
                       "  norm_bound: 2.5\n  norm_action: clip\nserver:\n"
                       "  aggregator: multi_krum\n  krum_f: 1\n  krum_m: 3\n"
                       "  max_updates: 8\n  max_weight: 500\n";
    assert_int_equal(mfl_coord_config_parse(yaml, strlen(yaml), "agg.yaml", &c, err,
                                            sizeof err), 0);
    assert_int_equal(c.aggregator, MFL_AGG_MULTI_KRUM);
    assert_int_equal(c.krum_f, 1);
    assert_int_equal(c.krum_m, 3);
    assert_int_equal(c.robust_max_updates, 8);
    assert_true(c.norm_clip && c.norm_bound == 2.5 && c.max_weight == 500);
    const char *plain = "model:\n  spec: linear:3-1\n";
    assert_int_equal(mfl_coord_config_parse(plain, strlen(plain), "p.yaml", &c, err,
                                            sizeof err), 0);
    assert_int_equal(c.aggregator, MFL_AGG_MEAN); /* the default stays the mean */
    assert_false(c.norm_clip);
    const char *bc = "model:\n  spec: linear:3-1\nrounds:\n  broadcast_encoding: int8\n"
                     "  upload_encoding: fp16\n";
    assert_int_equal(mfl_coord_config_parse(bc, strlen(bc), "b.yaml", &c, err, sizeof err), 0);
    assert_int_equal(c.broadcast_encoding, 2);
    assert_int_equal(c.upload_encoding, 1);
}

static void test_documented_example_loads(void **state)
{
    (void)state;
    if (access("configs/coordinator.yaml", R_OK) != 0) {
        fprintf(stderr, "configs/coordinator.yaml not found: run from the repository root\n");
        skip();
    }
    mfl_coord_config_t c;
    char err[512] = "";
    int rc = mfl_coord_config_load("configs/coordinator.yaml", &c, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.rounds, 10);
    assert_int_equal(c.learner.algo, MFL_ALGO_REPTILE);
    assert_int_equal(c.n_sites, 0);
    assert_int_equal(c.max_concurrent_uploads, 2);
    assert_int_equal(c.upload_encoding, 0); /* fp32 */
    assert_int_equal(c.broadcast_encoding, 0); /* fp32: the model in full, as before */
    /* limits.max_message_bytes unset: it follows the model (issue 17) */
    assert_false(c.max_message_bytes_set);
    assert_int_equal(mfl_coord_config_message_bytes(&c, 1000), 256u << 20);
    /* chunked uploads on (the default, limits.chunked_upload_bytes 16 MiB):
     * no site message grows with the model (docs/WIRE.md "Chunked uploads") */
    assert_int_equal(c.chunked_upload_bytes, 16u << 20);
    assert_int_equal(c.upload_chunk_bytes, 1u << 20);
    assert_int_equal(mfl_coord_config_message_bytes(&c, 100000000), 256u << 20);
    c.chunked_upload_bytes = 0; /* off: every update is one message */
    assert_int_equal(mfl_coord_config_message_bytes(&c, 100000000), 400000000u + (1u << 20));
    c.max_message_bytes_set = true; /* set by hand: kept as given */
    assert_int_equal(mfl_coord_config_message_bytes(&c, 100000000), 256u << 20);
    /* limits.site_timeout_s unset: 30 s per 10M parameters, at least 30 s */
    mfl_coord_config_defaults(&c);
    assert_false(c.site_timeout_set);
    assert_int_equal(mfl_coord_config_site_timeout_ms(&c, 1000), 30000);
    assert_int_equal(mfl_coord_config_site_timeout_ms(&c, 10000000), 30000);
    assert_int_equal(mfl_coord_config_site_timeout_ms(&c, 10000001), 60000);
    assert_int_equal(mfl_coord_config_site_timeout_ms(&c, 100000000), 300000);
    c.site_timeout_set = true; /* set by hand: kept as given */
    assert_int_equal(mfl_coord_config_site_timeout_ms(&c, 100000000), 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_config_loads_with_resolved_paths),
        cmocka_unit_test(test_unknown_key_is_refused_with_its_line),
        cmocka_unit_test(test_bad_values_are_refused_naming_the_key),
        cmocka_unit_test(test_documented_example_loads),
        cmocka_unit_test(test_aggregator_settings_load),
        cmocka_unit_test(test_secagg_word_width),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
