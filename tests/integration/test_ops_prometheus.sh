#!/usr/bin/env bash
# The opt-in Prometheus file (output.prometheus_file, node_exporter's
# textfile convention) of a real daemon run: the exposition passes a
# strict parser (and Debian's promtool when installed), and its numbers
# are the run's: 3 rounds, 3 sites connected and last seen, 9 updates
# accepted, a round-duration histogram of 3, bytes in and out; without the
# key no file is written.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
CHECK=$ROOT/tests/integration/py/prom_check.py

fed_setup 3 "output.prometheus_file=textfile/metafl.prom"
mkdir -p "$TEST_TMP/textfile"
cd "$TEST_TMP"
fed_coordinator
COORD=$LAST_PID
# While running: the file appears within a second and already parses.
wait_for 20 test -s textfile/metafl.prom || fail "no prometheus file while running"
python3 "$CHECK" textfile/metafl.prom >/dev/null || fail "the running coordinator's file does not parse"
for s in "${FED_SITES[@]}"; do fed_site "$s"; done
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "coordinator did not finish"
wait "$COORD" || fail "coordinator failed"

python3 "$CHECK" textfile/metafl.prom >check.out || { cat textfile/metafl.prom; fail "exposition format"; }
head -n 1 check.out
ls textfile | grep -v '^metafl.prom$' && fail "temp files left in the textfile directory"
[ "$(stat -c %a textfile/metafl.prom)" = 644 ] || fail "node_exporter (another user) cannot read it"
tail -n 1 check.out | python3 -c '
import json, sys, time
s = json.loads(sys.stdin.read())
def want(k, v):
    assert s.get(k) == v, (k, s.get(k), v)
want("metafl_rounds_completed", 3)
want("metafl_rounds_target", 3)
want("metafl_updates_accepted_total", 9)
want("metafl_round_duration_seconds_count", 3)
want("metafl_round_duration_seconds_bucket{le=\"+Inf\"}", 3)
want("metafl_phase{phase=\"done\"}", 1)
want("metafl_sites_known", 3)
assert s["metafl_received_bytes_total"] > 1000 and s["metafl_sent_bytes_total"] > 1000, s
for site in ("site-a", "site-b", "site-c"):
    seen = s["metafl_site_last_seen_timestamp_seconds{site=\"%s\"}" % site]
    assert abs(seen - time.time()) < 120, (site, seen)
assert not any(k.startswith("metafl_updates_rejected_total") for k in s), "rejections in a clean run"
' || fail "the numbers are not the run's"
# The parser is strict: it refuses what Prometheus would.
printf '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n' >bad1.prom
printf 'm{a="x\\q"} 1\n' >bad2.prom
printf 'm 1\n# TYPE m gauge\n' >bad3.prom
printf 'm 1\nn 1\nm{a="b"} 2\n' >bad4.prom
for b in bad1 bad2 bad3 bad4; do
  if python3 "$CHECK" $b.prom >/dev/null 2>&1; then fail "the parser accepted $b.prom"; fi
done
if command -v promtool >/dev/null; then
  promtool check metrics <textfile/metafl.prom || fail "promtool refuses the file"
  echo "promtool: ok"
else
  echo "promtool not installed: the strict parser above is the check"
fi

# Off by default: a run without the key writes no .prom anywhere.
rm -rf run
sed -i '/prometheus_file/d' coordinator.yaml
rm textfile/metafl.prom
fed_coordinator
COORD=$LAST_PID
wait_for 20 test -s run/status.json || fail "second coordinator did not start"
kill "$COORD"
[ -z "$(find run textfile -name '*.prom')" ] || fail "a .prom file without output.prometheus_file"
echo ok
