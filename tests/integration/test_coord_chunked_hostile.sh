#!/usr/bin/env bash
# Hostile chunked uploads against the real daemons (issue 17 item 3,
# docs/WIRE.md "Chunked uploads"). Every update of mlp:3-2000-1 goes in
# 11 chunks (limits at 4 KiB). site-a and site-b are honest; sites c-i run
# the real site agent with one chunk fault each (build/tests/
# chunk_fault_site): a chunk out of order, a duplicate, bytes that differ
# from the signed hash, a missing chunk, an oversized chunk, a chunk-hash
# list that does not match the signature, and an upload that stops half
# way. The coordinator must refuse each with its reason (a Reject the site
# sees, an update_rejected record), cut the stalled one at the deadline,
# and fold nothing of them: θ equals `metafl simulate` over a and b alone,
# bit for bit, and the audit log verifies.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"
FAULT_SITE=${CHUNK_FAULT_SITE:-$ROOT/build/tests/chunk_fault_site}
[ -x "$FAULT_SITE" ] || fail "$FAULT_SITE not built (make unit-tests)"

FED_SITES=(site-a site-b site-c site-d site-e site-f site-g site-h site-i)
FAULTS=(- - reorder duplicate bad-hash skip oversize bad-list stall)
fed_setup 1 "model.spec=mlp:3-2000-1" "algorithm.inner_steps=1" "algorithm.outer_steps=1" \
  "limits.chunked_upload_bytes=4K" "limits.upload_chunk_bytes=4K" \
  "rounds.wait_for_sites=9" "rounds.deadline_s=6" "eval.deadline_s=3"
cd "$TEST_TMP"
# the coordinator's site list names a and b only (simulate reads it); the
# daemon admits whoever is allow-listed
python3 - coordinator.yaml <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("  - sites/site-c.yaml\n", "")
open(p, "w").write(s)
PY
sed 's/^  wait_for_sites: 9/  wait_for_sites: 2/' coordinator.yaml >sim.yaml
metafl simulate --config sim.yaml --run-dir sim >simulate.out 2>simulate.log ||
  { cat simulate.log; fail "simulate failed"; }
want=$(fed_final_hash sim)
[ -n "$want" ] || fail "simulate left no θ hash"

fed_coordinator
COORD=$LAST_PID
for i in "${!FED_SITES[@]}"; do
  s=${FED_SITES[$i]} f=${FAULTS[$i]}
  if [ "$f" = - ]; then
    fed_site "$s" --exit-after-eval
  else
    start_bg "$s" "$FAULT_SITE" --config "sites/$s.yaml" --fault "$f"
  fi
done
wait_for 60 bash -c "! kill -0 $COORD 2>/dev/null" || fail "the coordinator did not finish"
wait "$COORD" || fail "the coordinator exited with status $?"
grep -q '"event":"round","round":1,.*"accepted":2' run/metrics.jsonl ||
  fail "round 1 did not fold exactly the 2 honest updates"
got=$(fed_final_hash run)
echo "daemons $got, simulate over a and b $want"
[ "$got" = "$want" ] || fail "θ differs from simulate over the honest sites"
metafl audit verify run/audit.log --keys keys >verify.out 2>&1 ||
  { cat verify.out; fail "the audit log does not verify"; }

# expect SITE REASON TEXT: the coordinator's log, the site's log, the audit record
expect() {
  local site=$1 reason=$2 text=$3
  grep -q "rejected message from site $site: $reason: $text" coordinator.log ||
    { grep "$site" coordinator.log | tail -n 5; fail "$site: no $reason '$text' in the coordinator's log"; }
  grep -q "$reason" "$site.log" || { tail -n 5 "$site.log"; fail "$site was not told $reason"; }
  grep -q "\"kind\":\"update_rejected\".*\"site\":\"$site\"" run/audit.log ||
    fail "$site: no update_rejected record"
}
expect site-c REJECT_CHUNK 'chunk 2 out of order (chunk 1 expected)'
expect site-d REJECT_CHUNK 'chunk 0 again (a duplicate; 1 taken)'
expect site-e REJECT_HASH "chunk 1 ('[^']*') differs from its signed hash"
expect site-f REJECT_CHUNK 'chunk 2 out of order (chunk 1 expected)'
expect site-g REJECT_CHUNK "chunk 0 is '[^']*', 1025 values, encoding 0; expected '[^']*', 1024 values"
expect site-h REJECT_HASH 'the 11 chunk hashes do not give the signed tensor hashes'
grep -q 'site site-i: chunked upload for round 1 cut short at 5 of 11 chunks' coordinator.log ||
  { tail -n 20 coordinator.log; fail "site-i's stalled upload was not cut at the deadline"; }
ls -A run | grep upload >/dev/null && fail "a spool file was left in the run directory"
echo "ok: every hostile chunked upload refused with its reason, θ = simulate over the honest sites"
