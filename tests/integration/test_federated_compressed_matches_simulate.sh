#!/usr/bin/env bash
# Compressed updates, negotiated (issue 17): the coordinator asks for int8
# updates (rounds.upload_encoding), site-a and site-b offer int8 (the
# default, and upload.encodings: [int8]), site-c offers none
# (upload.encodings: []) and is asked for float32. The daemons over
# CurveZMQ and `metafl simulate` must end with the same θ bit for bit
# (stochastic rounding from the round seed, error feedback at the sites),
# the audit log (whose update records hold the digests the sites signed
# over the int8 bytes) must verify, and the int8 run must differ from a
# float32 one (the encoding took effect). The model is big enough that
# every update waits for an upload grant. The model goes to the sites as
# an fp16 difference (rounds.broadcast_encoding, docs/WIRE.md "Compressed
# broadcast") from round 2, so both directions are compressed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

# mlp:3-20000-1 (100,001 parameters): an int8 update (100 kB) is over the
# 64 KiB an update may send unasked, so it goes through UploadReady (which
# must announce the int8 size) and UploadGrant; site-c's float32 one too.
fed_setup 4 "rounds.upload_encoding=int8" "rounds.broadcast_encoding=fp16" \
  "model.spec=mlp:3-20000-1"
printf 'upload:\n  encodings: [int8]\n' >>"$TEST_TMP/sites/site-b.yaml"
printf 'upload:\n  encodings: []\n' >>"$TEST_TMP/sites/site-c.yaml"
RUN=$TEST_TMP/run

fed_run_exit_after_eval 50
[ "$(fed_rounds_done "$RUN")" -eq 4 ] || fail "expected 4 rounds in $RUN/metrics.jsonl"
grep -q '"event":"round","round":4,.*"accepted":3' "$RUN/metrics.jsonl" ||
  fail "round 4 did not have 3 accepted updates"

# Who sent what: a and b int8 every round, c float32.
for s in site-a site-b; do
  [ "$(grep -c 'update sent as int8' "$TEST_TMP/$s.log")" -eq 4 ] ||
    fail "$s did not send 4 int8 updates"
done
grep -q 'update sent' "$TEST_TMP/site-c.log" || fail "site-c sent no update"
# every site got rounds 2-4's model as an fp16 difference
for s in "${FED_SITES[@]}"; do
  [ "$(grep -c 'model sent as a fp16 difference' "$TEST_TMP/$s.log")" -eq 3 ] ||
    fail "$s did not get 3 fp16 differences"
done
! grep -q 'update sent as' "$TEST_TMP/site-c.log" || fail "site-c was asked for a lossy update"

metafl audit verify "$RUN/audit.log" --keys "$TEST_TMP/keys" >"$TEST_TMP/verify.out" 2>&1 ||
  { cat "$TEST_TMP/verify.out"; fail "audit log does not verify"; }

fed_expect_simulate_match "$RUN"

# The same run with float32 updates ends elsewhere.
sed -i 's/upload_encoding: int8/upload_encoding: fp32/' "$TEST_TMP/coordinator.yaml"
metafl simulate --config "$TEST_TMP/coordinator.yaml" --run-dir "$TEST_TMP/sim32" \
  >"$TEST_TMP/simulate32.out" 2>"$TEST_TMP/simulate32.log" || fail "simulate (fp32) failed"
fp32_hash=$(fed_final_hash "$TEST_TMP/sim32")
[ -n "$fp32_hash" ] && [ "$fp32_hash" != "$sim_hash" ] ||
  fail "int8 and float32 runs ended with the same θ ($fp32_hash): nothing was compressed"
echo "ok: int8 updates negotiated; daemons and simulate agree ($sim_hash; fp32 $fp32_hash)"
