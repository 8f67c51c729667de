/* The Prometheus textfile exporter: counters by reason and stage, the
 * round-duration histogram (cumulative buckets, +Inf = count, sum), gauges
 * read from the engine, and the file written atomically. The exposition
 * format itself is checked by a strict parser in
 * tests/integration/test_ops_prometheus.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/fileio.h"
#include "round/prom_export.h"
#include "round/round_engine.h"

static mfl_coord_config_t s_cfg;

static mfl_round_engine_t *s_engine(const char *dir)
{
    mfl_coord_config_defaults(&s_cfg);
    mfl_learner_config_defaults(&s_cfg.learner, MFL_ALGO_REPTILE);
    snprintf(s_cfg.learner.model_spec, sizeof s_cfg.learner.model_spec, "mlp:3-4-1");
    s_cfg.learner.loss = MFL_LOSS_BCE;
    s_cfg.rounds = 5;
    s_cfg.wait_for_sites = 3;
    snprintf(s_cfg.checkpoint_dir, sizeof s_cfg.checkpoint_dir, "%s/ckpt", dir);
    s_cfg.metrics_file[0] = '\0';
    char err[256] = "";
    mfl_round_engine_t *e = mfl_round_engine_new(&s_cfg, NULL, NULL, NULL, err, sizeof err);
    if (!e)
        fprintf(stderr, "engine: %s\n", err);
    assert_non_null(e);
    return e;
}

static void s_has(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want))
        fail_msg("missing line '%s' in:\n%s", line, text);
}

static void test_counters_histogram_gauges(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_round_prom.XXXXXX";
    assert_non_null(mkdtemp(dir));
    mfl_round_engine_t *e = s_engine(dir);
    mfl_round_engine_site_hello(e, "site-a", 100, 5000);
    mfl_round_engine_site_hello(e, "site-b", 100, 6500);

    char path[256];
    snprintf(path, sizeof path, "%s/metafl.prom", dir);
    mfl_prom_t *p = mfl_prom_new(path);
    assert_non_null(p);
    assert_null(mfl_prom_new(""));
    mfl_round_summary_t m;
    memset(&m, 0, sizeof m);
    m.n_accepted = 3;
    m.wall_seconds = 0.3;
    mfl_prom_round_closed(p, &m);
    m.n_accepted = 2;
    m.wall_seconds = 7;
    mfl_prom_round_closed(p, &m);
    mfl_prom_rejected(p, 4); /* REJECT_REPLAY */
    mfl_prom_rejected(p, 4);
    mfl_prom_rejected(p, 9); /* REJECT_NORM */
    mfl_prom_rejected(p, 1000); /* out of range: counted, not crashed */
    mfl_prom_wire_t w;
    memset(&w, 0, sizeof w);
    w.bytes_in = 12345;
    w.bytes_out = 678;
    w.rejected_by_reason[10] = 7; /* REJECT_SIGNATURE */

    char *t = mfl_prom_render(p, e, &s_cfg, &w, 7000);
    assert_non_null(t);
    s_has(t, "metafl_updates_accepted_total 5");
    s_has(t, "metafl_updates_rejected_total{stage=\"engine\",reason=\"reject_replay\"} 2");
    s_has(t, "metafl_updates_rejected_total{stage=\"engine\",reason=\"reject_norm\"} 1");
    s_has(t, "metafl_updates_rejected_total{stage=\"wire\",reason=\"reject_signature\"} 7");
    s_has(t, "metafl_round_duration_seconds_bucket{le=\"0.25\"} 0");
    s_has(t, "metafl_round_duration_seconds_bucket{le=\"0.5\"} 1");
    s_has(t, "metafl_round_duration_seconds_bucket{le=\"5\"} 1");
    s_has(t, "metafl_round_duration_seconds_bucket{le=\"10\"} 2");
    s_has(t, "metafl_round_duration_seconds_bucket{le=\"+Inf\"} 2");
    s_has(t, "metafl_round_duration_seconds_sum 7.300000");
    s_has(t, "metafl_round_duration_seconds_count 2");
    s_has(t, "metafl_received_bytes_total 12345");
    s_has(t, "metafl_sent_bytes_total 678");
    s_has(t, "metafl_sites_known 2");
    s_has(t, "metafl_sites_connected 2");
    /* Last seen is published as wall time: the engine converts its
     * monotonic instant with the wall clock of the moment, so allow for
     * the time between the render and this check. */
    const char *key = "\nmetafl_site_last_seen_timestamp_seconds{site=\"site-b\"} ";
    const char *at = strstr(t, key);
    assert_non_null(at);
    double seen = strtod(at + strlen(key), NULL);
    double want = (double)mfl_round_engine_wall_of(e, 6500) / 1000.0;
    assert_true(seen > want - 0.5 && seen < want + 0.5);
    s_has(t, "metafl_rounds_target 5");
    s_has(t, "metafl_phase{phase=\"waiting\"} 1");
    s_has(t, "metafl_phase{phase=\"round\"} 0");
    s_has(t, "# TYPE metafl_round_duration_seconds histogram");
    free(t);

    char err[256];
    assert_int_equal(mfl_prom_write(p, e, &s_cfg, NULL, 8000, err, sizeof err), 0);
    char *file = NULL;
    size_t len = 0;
    assert_int_equal(mfl_file_read_all(path, 1 << 20, &file, &len, err, sizeof err), 0);
    assert_non_null(strstr(file, "\nmetafl_received_bytes_total 0\n")); /* no wire: zeros */
    assert_non_null(strstr(file, "\nmetafl_exporter_updated_timestamp_seconds 8.000\n"));
    free(file);
    mfl_prom_destroy(&p);
    assert_null(p);
    mfl_round_engine_destroy(&e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_histogram_gauges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
