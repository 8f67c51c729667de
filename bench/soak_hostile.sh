#!/usr/bin/env bash
# Bounded soak with a hostile site (issue 10): three honest hospitals run
# ROUNDS rounds of a small model (mlp:3-8-1, reptile) through the real
# daemons while an allow-listed site "mallory" cycles, for the whole run,
# through every misbehaviour build/tests/hostile_site knows: not reading
# while flooding bad messages then hanging up, multipart messages of many
# capped frames, a Hello claiming another site's id, unsigned or mis-hashed
# updates, floods of undecodable envelopes. Checks at the end:
#   - every round closed with all three honest updates accepted;
#   - the coordinator's RSS and open fds flat (sampled every second: the
#     maximum over the second half of the run against the maximum over the
#     first half after warm-up, i.e. after its first eighth; RSS within
#     +RSS_SLACK_MIB (16) MiB, fds within +8) and the peak RSS (VmHWM) under RSS_MAX_MIB
#     (default 160): each misbehaviour has had its turn by then (one cycle takes
#     about 12 s);
#   - every audit log (coordinator's and the three sites') verifies.
# Writes OUT (JSON) and prints a summary. Exit 0 only if all checks hold.
#
#   bench/soak_hostile.sh [ROUNDS] [OUT]      (defaults 10000, bench/results/soak_hostile.json)
#   METAFL_BIN=dir HOSTILE=path                other builds
#   MODE_SECONDS=N                             seconds per misbehaviour (default 2)
#   RSS_SLACK_MIB=N                            flatness slack (default 16): a short run's
#                                              first half may not yet hold the heap that
#                                              one capped multipart message leaves behind
set -euo pipefail
ROUNDS=${1:-10000}
OUT=${2:-bench/results/soak_hostile.json}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tests/integration/lib.sh"
source "$HERE/../tests/integration/federated_env.sh"
HOSTILE=${HOSTILE:-$ROOT/build/tests/hostile_site}
[ -x "$HOSTILE" ] || fail "$HOSTILE not built (make unit-tests)"
case "$OUT" in /*) ;; *) OUT=$ROOT/$OUT ;; esac

fed_setup "$ROUNDS" "rounds.deadline_s=20" "limits.max_message_bytes=16M" \
  "limits.site_timeout_s=60" "eval.every=0"
RUN=$TEST_TMP/run
metafl keygen mallory --dir "$TEST_TMP/keys" >/dev/null
cp "$TEST_TMP/keys/mallory.pub" "$TEST_TMP/allow/"
for s in "${FED_SITES[@]}"; do fed_site "$s"; done
fed_coordinator
COORD=$LAST_PID
wait_for 20 grep -q "listening on" "$TEST_TMP/coordinator.log" || fail "coordinator did not start"

"$HOSTILE" --endpoint "tcp://127.0.0.1:$FED_PORT" --key "$TEST_TMP/keys/mallory.key" \
  --server-pub "$TEST_TMP/keys/coordinator.pub" --mode cycle --seconds "${MODE_SECONDS:-2}" --total 86400 \
  --count 300 --big-count 2 --frames 24 --frame-bytes $((4 << 20)) --claim site-a \
  >"$TEST_TMP/mallory.log" 2>&1 &
MALLORY=$!
_PIDS+=("$MALLORY")

# Samples: seconds, RSS KiB, open fds.
SAMPLES=$TEST_TMP/samples.txt
: >"$SAMPLES"
t0=$(date +%s)
while kill -0 "$COORD" 2>/dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$COORD/status" 2>/dev/null || echo)
  fds=$(ls "/proc/$COORD/fd" 2>/dev/null | wc -l || echo)
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$COORD/status" 2>/dev/null || echo)
  [ -n "$rss" ] && [ -n "$hwm" ] && echo "$(( $(date +%s) - t0 )) $rss $fds $hwm" >>"$SAMPLES"
  sleep 1
done
elapsed=$(( $(date +%s) - t0 ))
kill "$MALLORY" 2>/dev/null || true
wait "$COORD" && coord_rc=0 || coord_rc=$?

rounds=$(fed_rounds_done "$RUN")
full=$(grep '"event":"round"' "$RUN/metrics.jsonl" | grep -c '"accepted":3,' || true)
cuts=$(grep -c "connection cut\|connection closed" "$TEST_TMP/coordinator.log" || true)
cycles=$(grep -c "^hostile:" "$TEST_TMP/mallory.log" || true)
verify_ok=1
for log in "$RUN/audit.log" "$TEST_TMP"/run-site-*/audit.log; do
  metafl audit verify "$log" --keys "$TEST_TMP/keys" >>"$TEST_TMP/verify.log" 2>&1 || verify_ok=0
done
read -r rss_early rss_late fds_early fds_late < <(awk -v n="$(wc -l <"$SAMPLES")" '
  { t[NR] = $1; r[NR] = $2; f[NR] = $3 }
  END {
    a = int(n / 8) + 1; b = int(n / 2); c = int(n / 2) + 1;   # warm-up: first eighth
    for (i = a; i <= b; i++) { if (r[i] > re) re = r[i]; if (f[i] > fe) fe = f[i] }
    for (i = c; i <= n; i++) { if (r[i] > rl) rl = r[i]; if (f[i] > fl) fl = f[i] }
    print re + 0, rl + 0, fe + 0, fl + 0
  }' "$SAMPLES")

ok=1
[ "$coord_rc" -eq 0 ] || ok=0
[ "$rounds" -eq "$ROUNDS" ] || ok=0
[ "$full" -eq "$ROUNDS" ] || ok=0
[ "$verify_ok" -eq 1 ] || ok=0
[ "$rss_late" -le $((rss_early + ${RSS_SLACK_MIB:-16} * 1024)) ] || ok=0
[ "$fds_late" -le $((fds_early + 8)) ] || ok=0
rss_max=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { print m }' "$SAMPLES")   # VmHWM: the true peak
[ "$rss_max" -le $(( ${RSS_MAX_MIB:-160} * 1024 )) ] || ok=0

mkdir -p "$(dirname "$OUT")"
cat >"$OUT" <<EOF
{"bench":"soak_hostile","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","rounds":$ROUNDS,
 "rounds_closed":$rounds,"rounds_all_three_accepted":$full,"seconds":$elapsed,
 "coordinator_exit":$coord_rc,"hostile_cycles":$cycles,"connections_cut":$cuts,
 "rss_kib_first_half_max":$rss_early,"rss_kib_max":$rss_max,"rss_kib_second_half_max":$rss_late,
 "fds_first_half_max":$fds_early,"fds_second_half_max":$fds_late,
 "audit_logs_verify":$([ "$verify_ok" -eq 1 ] && echo true || echo false),
 "pass":$([ "$ok" -eq 1 ] && echo true || echo false),
 "command":"bench/soak_hostile.sh $ROUNDS"}
EOF
echo "soak_hostile: $rounds/$ROUNDS rounds ($full with all 3 honest updates) in ${elapsed}s;" \
     "mallory ran $cycles misbehaviours, $cuts connections cut;" \
     "coordinator RSS max ${rss_early} (first half) -> ${rss_late} KiB (second half), peak ${rss_max}," \
     "fds ${fds_early} -> ${fds_late};" \
     "audit logs verify: $([ "$verify_ok" -eq 1 ] && echo yes || echo NO)"
[ "$ok" -eq 1 ] || fail "soak checks failed (see $OUT)"
echo "soak_hostile: pass"
