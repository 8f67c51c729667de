#!/usr/bin/env bash
# A site agent whose data file has a bad cell stops at once, before dialing
# out, naming the file, line and column; --check validates without running;
# a key readable by others and a key named for another site are refused.
source "$(dirname "$0")/lib.sh"

cd "$TEST_TMP"
metafl keygen coordinator --dir . >/dev/null
metafl keygen hospital-x --dir . >/dev/null
metafl keygen hospital-y --dir . >/dev/null
printf 'a,b,y\n1,2,0\n3,4,1\n5,oops,0\n7,8,1\n' >rows.csv
site_yaml() { # ID KEY
  cat <<YAML
site: {id: $1, key_file: $2}
# Port 9 (discard): nothing listens; the agent must fail before dialing.
coordinator: {endpoint: "tcp://127.0.0.1:9", public_key: coordinator.pub}
data:
  source: csv
  path: rows.csv
  schema:
    header: true
    columns: [a, b, {name: y, kind: label, rule: class, n_classes: 2}]
YAML
}
site_yaml hospital-x hospital-x.key >site.yaml

rc=0
timeout 20 metafl-site-agent --config site.yaml >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "expected exit status 1 for a bad data file, got $rc"
grep -q "rows.csv:4" out.log || fail "the error does not name rows.csv:4"
grep -q "column 2" out.log || fail "the error does not name column 2"
grep -q "oops" out.log || fail "the error does not quote the bad cell"

# Fixed data: --check passes and says so.
printf 'a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n' >rows.csv
timeout 20 metafl-site-agent --config site.yaml --check >out.log 2>&1 ||
  { cat out.log; fail "--check failed on a valid config"; }
grep -q "valid" out.log || fail "--check did not report success"

# A key file others can read is refused with the fix in the message.
chmod 644 hospital-x.key
rc=0
timeout 20 metafl-site-agent --config site.yaml --check >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "a world-readable key was accepted"
grep -q "chmod 600" out.log || fail "the key error does not say how to fix it"
chmod 600 hospital-x.key

# site.id must equal the key's name (the coordinator admits sites by key).
site_yaml hospital-x hospital-y.key >other.yaml
rc=0
timeout 20 metafl-site-agent --config other.yaml --check >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "a key named for another site was accepted"
grep -q "belongs to 'hospital-y'" out.log || fail "the mismatch is not explained"

# A typo in the config names FILE:LINE and the key.
sed 's/^data:/dataa:/' site.yaml >typo.yaml
rc=0
timeout 20 metafl-site-agent --config typo.yaml --check >out.log 2>&1 || rc=$?
cat out.log
[ "$rc" -eq 1 ] || fail "a config typo was accepted"
grep -q "typo.yaml:[0-9]*: unknown key 'dataa'" out.log || fail "the typo is not located"
echo "ok"
