#!/usr/bin/env bash
# The operator's view, as the messages they rely on: coordinator config
# mistakes name the file, key and fix; `metafl status` words the phase,
# --pause/--resume/--abort report that the running coordinator took them;
# a stopped coordinator is reported as NOT RUNNING and --abort/--resume
# are refused instead of being left for the next start; --pause while
# stopped stages a paused start; an old 'abort' found at start is ignored
# with a warning; a restart says it resumed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

fed_setup 200 "rounds.wait_for_sites=2" "rounds.min_sites=2"
CFG=$TEST_TMP/coordinator.yaml
RUN=$TEST_TMP/run
cd "$TEST_TMP"

refused() { # WHAT CONFIG GREP...
  local what=$1 cfg=$2; shift 2
  local rc=0
  timeout 20 metafl-coordinator --config "$cfg" >out.log 2>&1 || rc=$?
  cat out.log
  [ "$rc" -eq 1 ] || fail "$what: exit $rc, want 1"
  for pat in "$@"; do grep -qF -- "$pat" out.log || fail "$what: message lacks '$pat'"; done
}
sed "s#listen: tcp://127.0.0.1:#listen: 127.0.0.1:#" "$CFG" >bad.yaml
refused "listen without tcp://" bad.yaml "bad.yaml:2: key 'coordinator.listen'" "tcp://HOST:PORT"
sed "s#key: keys/coordinator.key#key: keys/coordinator.pub#" "$CFG" >bad.yaml
refused "public key as coordinator.key" bad.yaml "bad.yaml: coordinator.key:" "is a PUBLIC key"
sed "s#allow_dir: allow#allow_dir: nope#" "$CFG" >bad.yaml
refused "missing allow_dir" bad.yaml "bad.yaml: coordinator.allow_dir:" "No such file" \
  "one SITE.pub per admitted hospital"
[ -e run ] && fail "a refused start created the run dir"

# Not started yet: --pause stages a paused first start.
mkdir -p "$RUN" && chmod 700 "$RUN"
metafl status --run-dir "$RUN" --pause >out.log 2>&1 || { cat out.log; fail "--pause before start"; }
grep -q "first start will wait, paused" out.log || fail "--pause before start: unclear: $(cat out.log)"

fed_coordinator
C_PID=$LAST_PID
wait_for 20 test -s "$RUN/status.json" || fail "no status.json"
grep -q "allow-list .*3 site(s): " coordinator.log || fail "the admitted sites are not logged"
grep -q "starting paused" coordinator.log || fail "the staged pause is not announced"
fed_site site-a
fed_site site-b
two_connected() { [ "$(grep -o '"connected":true' "$RUN/status.json" | wc -l)" -eq 2 ]; }
wait_for 20 two_connected || fail "two sites never connected"
out=$(metafl status --config "$CFG") || fail "status: $out"
echo "$out"
grep -q "paused before round 1 of 200 (0 done)" <<<"$out" || fail "paused phase not worded"
grep -q "site-a .*connected" <<<"$out" || fail "site-a not listed as connected"

out=$(metafl status --config "$CFG" --resume) || fail "--resume: $out"
grep -q "coordinator pid $C_PID took 'resume'" <<<"$out" || fail "--resume not confirmed: $out"
some_rounds() { [ "$(fed_rounds_done "$RUN")" -ge 2 ]; }
wait_for 30 some_rounds || fail "no rounds after --resume"
out=$(metafl status --config "$CFG" --pause) || fail "--pause: $out"
grep -q "took 'pause': it finishes the open round" <<<"$out" || fail "--pause not confirmed"
out=$(metafl status --config "$CFG")
echo "$out"
grep -Eq "paused before round|pausing after it" <<<"$out" || fail "pause not shown"
grep -q "selected sites' updates accepted; their mean training loss" <<<"$out" ||
  fail "the last round's numbers are not explained"

# The coordinator dies: status says so, --abort / --resume are refused and
# leave nothing behind.
kill -KILL "$C_PID"
wait "$C_PID" 2>/dev/null || true
out=$(metafl status --config "$CFG") || fail "status of a dead coordinator failed: $out"
echo "$out"
grep -q "NOT RUNNING: process $C_PID has exited" <<<"$out" || fail "dead coordinator not reported"
for cmd in abort resume; do
  rc=0
  metafl status --config "$CFG" --$cmd >out.log 2>&1 || rc=$?
  cat out.log
  [ "$rc" -eq 1 ] || fail "--$cmd on a dead coordinator: exit $rc"
  grep -q "is not running; nothing sent" out.log || fail "--$cmd refusal unclear"
  [ -e "$RUN/control" ] && fail "--$cmd left a control file behind"
done

# An 'abort' left from a stopped run must not stop the next start.
printf 'abort' >"$RUN/control"
fed_coordinator
C_PID=$LAST_PID
wait_for 20 grep -q "resumed from" coordinator.log || fail "restart did not say it resumed"
grep -q "ignored 'abort' in .*control" coordinator.log || fail "stale abort not reported"
running() { metafl status --config "$CFG" | grep "coordinator pid $C_PID on .*: waiting for sites\|coordinator pid $C_PID on .*: running round" >/dev/null; }
wait_for 20 running || { metafl status --config "$CFG"; fail "restarted coordinator is not running rounds"; }
out=$(metafl status --config "$CFG" --abort) || fail "--abort: $out"
grep -q "took 'abort': it stops now" <<<"$out" || fail "--abort not confirmed"
wait_for 20 metafl status --config "$CFG" --json >/dev/null
stopped() { metafl status --config "$CFG" | grep "coordinator pid $C_PID on .*: aborted by operator after" >/dev/null; }
wait_for 20 stopped || fail "abort not shown"
echo "ok"
