#!/usr/bin/env bash
# Site agents survive a coordinator crash: kill -9 the coordinator mid-run,
# start it again on the same endpoint; the agents (never restarted) redial,
# re-announce themselves with a new Hello, and the resumed run finishes all
# its rounds with them. (The coordinator's own resume logic is tested by the
# coordinator's tests; this one is about the site side.)
source "$(dirname "$0")/lib.sh"

cd "$TEST_TMP"
mkdir -p keys allow data run
metafl keygen coordinator --dir keys >/dev/null
SITES=(clinic-1 clinic-2)
i=0
for s in "${SITES[@]}"; do
  metafl keygen "$s" --dir keys >/dev/null
  cp "keys/$s.pub" allow/
  awk -v seed=$((5 + i)) 'BEGIN { srand(seed); print "x1,x2,y";
    for (r = 0; r < 200; r++) { a = rand() * 4 - 2; b = rand() * 4 - 2;
      printf "%.4f,%.4f,%d\n", a, b, (a - b + (rand() - 0.5) > 0) ? 1 : 0 } }' >"data/$s.csv"
  i=$((i + 1))
done

coord_yaml() { # LISTEN
  cat <<YAML
coordinator: {listen: "$1", key: keys/coordinator.key, allow_dir: allow, run_dir: run}
model: {spec: "mlp:2-64-64-1", loss: bce}
# Heavy enough local work (about half a second a round) to crash mid-run.
algorithm: {name: reptile, batch_size: 16, outer_steps: 300}
rounds: {count: 12, wait_for_sites: 2, min_sites: 2, deadline_s: 20}
output: {checkpoint_dir: run/checkpoints, metrics: run/metrics.jsonl, status: run/status.json}
limits: {heartbeat_s: 0.5, site_timeout_s: 5}
YAML
}
coord_yaml "tcp://127.0.0.1:*" >coordinator.yaml
start_bg coordinator metafl-coordinator --config coordinator.yaml
COORD=$LAST_PID
wait_for 20 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start"
EP=$(sed -n 's/.*listening on \(tcp:\/\/[^;]*\);.*/\1/p' "$TEST_TMP/coordinator.log" | head -n 1)
[ -n "$EP" ] || fail "no endpoint in the coordinator log"

declare -A AGENT
for s in "${SITES[@]}"; do
  cat >"$s.yaml" <<YAML
site: {id: $s, key_file: keys/$s.key}
coordinator: {endpoint: "$EP", public_key: keys/coordinator.pub}
data:
  source: csv
  path: data/$s.csv
  schema: {header: true, columns: [x1, x2, {name: y, kind: label, rule: class, n_classes: 2}]}
audit: {log: run/$s.audit}
limits: {heartbeat_s: 0.5, connect_timeout_s: 2}
YAML
  start_bg "$s" metafl-site-agent --config "$s.yaml"
  AGENT[$s]=$LAST_PID
done

rounds_done() { local n; n=$(grep -c '"event":"round"' run/metrics.jsonl 2>/dev/null) || true; echo "${n:-0}"; }
have_rounds() { [ "$(rounds_done)" -ge "$1" ]; }
wait_for 60 have_rounds 2 || fail "no rounds before the crash"
kill -9 "$COORD"
wait "$COORD" 2>/dev/null || true
before=$(rounds_done)
echo "coordinator killed after $before rounds"

# The agents keep running without a coordinator (and say so).
for s in "${SITES[@]}"; do
  kill -0 "${AGENT[$s]}" 2>/dev/null || fail "$s died with the coordinator"
done
wait_for 30 grep -q "no connection to" "$TEST_TMP/${SITES[0]}.log" ||
  fail "${SITES[0]} did not report the lost coordinator"

# Same endpoint, same run dir: the coordinator resumes from its checkpoint.
coord_yaml "$EP" >coordinator.yaml
start_bg coordinator2 metafl-coordinator --config coordinator.yaml
COORD=$LAST_PID
for s in "${SITES[@]}"; do
  wait_for 60 grep -q "handshake 2), hello sent" "$TEST_TMP/$s.log" ||
    fail "$s did not re-announce itself after the restart"
done
wait_for 120 have_rounds 12 || fail "the resumed run did not finish ($(rounds_done) rounds)"
for s in "${SITES[@]}"; do
  kill -0 "${AGENT[$s]}" 2>/dev/null || fail "$s is not running after the run"
  n=$(grep -c "update sent" "$TEST_TMP/$s.log")
  [ "$n" -ge 12 ] || fail "$s sent $n updates, expected at least 12"
done
# Each site's audit log is intact across the outage.
for s in "${SITES[@]}"; do
  metafl audit verify "run/$s.audit" --keys keys || fail "$s's audit log does not verify"
done
echo "ok"
