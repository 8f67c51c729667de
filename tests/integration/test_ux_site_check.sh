#!/usr/bin/env bash
# Hospital IT's first hour, as the messages they rely on: keygen makes a
# missing key directory (0700) and prints the signing key to read out by
# phone; `metafl-site-agent --check` validates without dialing and prints a
# summary; each typical mistake (missing data file, public key as
# key_file, secret key as coordinator.public_key, bad port) is refused
# with the config file, the key and what to do, in --check and at start.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/federated_env.sh"

cd "$TEST_TMP"
out=$(metafl keygen hospital-x --dir newkeys/sub) || fail "keygen into a missing dir: $out"
echo "$out"
[ "$(stat -c %a newkeys/sub)" = 700 ] || fail "the new key dir is not mode 0700"
grep -q "created newkeys/sub (mode 0700)" <<<"$out" || fail "keygen did not say it made the dir"
sign=$(sed -n 's/^sign: //p' newkeys/sub/hospital-x.pub)
grep -q "signing key $sign" <<<"$out" || fail "keygen does not print the .pub's signing key"
mv newkeys/sub keys
metafl keygen coordinator --dir keys >/dev/null
fed_make_csv rows.csv 5 60 0

site_yaml() { # KEY_FILE COORD_PUB DATA ENDPOINT
  cat <<YAML
site: {id: hospital-x, key_file: $1}
coordinator: {endpoint: "$4", public_key: $2}
data:
  source: csv
  path: $3
  schema:
    header: true
    columns: [x1, x2, x3, {name: y, kind: label, rule: class, n_classes: 2}]
audit: {log: audit/hospital-x.audit}
YAML
}
# Port 9 (discard): nothing listens there; --check must not try anyway.
site_yaml keys/hospital-x.key keys/coordinator.pub rows.csv tcp://127.0.0.1:9 >site.yaml

timeout 20 metafl-site-agent --config site.yaml --check >out.log 2>&1 ||
  { cat out.log; fail "--check failed on a valid config"; }
cat out.log
grep -q "config, keys and data are valid" out.log || fail "--check did not report success"
grep -q "training rows" out.log || fail "--check summary lacks the data's rows"
csign=$(sed -n 's/^sign: //p' keys/coordinator.pub)
grep -q "its signing key: $csign" out.log || fail "--check does not show the pinned key to compare"
grep -q "nothing was sent" out.log || fail "--check does not say it sent nothing"
grep -q "dialing" out.log && fail "--check started dialing the coordinator"
[ -e audit/hospital-x.audit ] && fail "--check created the audit log"

expect_refusal() { # WHAT GREP... (site.yaml variant in bad.yaml; both --check and start)
  local what=$1; shift
  for mode in --check ""; do
    local rc=0
    timeout 20 metafl-site-agent --config bad.yaml $mode >out.log 2>&1 || rc=$?
    cat out.log
    [ "$rc" -eq 1 ] || fail "$what ($mode): exit $rc, want 1"
    for pat in "$@"; do
      grep -qF -- "$pat" out.log || fail "$what ($mode): message lacks '$pat'"
    done
    grep -q "dialing" out.log && fail "$what ($mode): dialed out before refusing"
  done
  return 0
}

site_yaml keys/hospital-x.key keys/coordinator.pub missing.csv tcp://127.0.0.1:9 >bad.yaml
expect_refusal "missing data" "bad.yaml: data.path: " "missing.csv: No such file" \
  "resolved against the config file's directory"

site_yaml keys/hospital-x.pub keys/coordinator.pub rows.csv tcp://127.0.0.1:9 >bad.yaml
expect_refusal "public key as key_file" "bad.yaml: site.key_file:" "is a PUBLIC key" "hospital-x.key"

site_yaml keys/hospital-x.key keys/coordinator.key rows.csv tcp://127.0.0.1:9 >bad.yaml
expect_refusal "secret key as coordinator.public_key" "bad.yaml: coordinator.public_key:" \
  "is a SECRET key"

site_yaml keys/hospital-x.key keys/nothere.pub rows.csv tcp://127.0.0.1:9 >bad.yaml
expect_refusal "missing coordinator key" "bad.yaml: coordinator.public_key:" \
  "ask the consortium operator"

site_yaml keys/hospital-x.key keys/coordinator.pub rows.csv tcp://127.0.0.1:99999 >bad.yaml
expect_refusal "bad port" "bad.yaml: coordinator.endpoint: port '99999'" "1..65535"

rc=0
metafl-site-agent >out.log 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--config FILE is required" out.log || fail "no --config: unclear"
echo "ok"
