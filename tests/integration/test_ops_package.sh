#!/usr/bin/env bash
# `make install` and `make deb`: the package holds the programs, both
# units, the example configs and the docs, depends on runtime libraries
# only, and works from a scratch root it is unpacked into (dpkg -x): every
# program answers --help, `metafl keygen` makes keys, and the site agent's
# --check validates the packaged example config (paths pointed into the
# scratch root) against real keys and data without connecting.
source "$(dirname "$0")/lib.sh"
command -v dpkg-deb >/dev/null || { echo "SKIP: dpkg-deb missing (not a Debian system)"; exit 77; }
cd "$TEST_TMP"

# make install with DESTDIR: the layout docs/DEPLOY.md lists.
make --no-print-directory -C "$ROOT" install PREFIX=/opt/metafl DESTDIR="$TEST_TMP/stage" \
  >"$TEST_TMP/install.log" 2>&1 || { cat "$TEST_TMP/install.log"; fail "make install"; }
for f in bin/metafl bin/metafl-coordinator bin/metafl-site-agent \
         lib/systemd/system/metafl-coordinator.service lib/systemd/system/metafl-site-agent.service \
         share/metafl/configs/site.yaml share/metafl/configs/coordinator.yaml \
         share/metafl/configs/consortium-schema.yaml \
         share/metafl/configs/join/coordinator-join.yaml share/doc/metafl/DEPLOY.md; do
  [ -e "$TEST_TMP/stage/opt/metafl/$f" ] || fail "make install did not install $f"
done
grep -q "^ExecStart=/opt/metafl/bin/metafl-site-agent " "$TEST_TMP/stage/opt/metafl/lib/systemd/system/metafl-site-agent.service" ||
  fail "unit not rewritten to PREFIX/bin"

make --no-print-directory -C "$ROOT" deb >"$TEST_TMP/deb.log" 2>&1 || { cat "$TEST_TMP/deb.log"; fail "make deb"; }
DEB=$(ls "$ROOT"/build/metafl_*_*.deb | head -n 1)
[ -f "$DEB" ] || fail "no .deb built"
dpkg-deb -I "$DEB" >info.txt 2>&1 || fail "dpkg-deb -I"
grep -q "^ Package: metafl$" info.txt || fail "no package name"
grep -q "^ Depends: .*libzmq5.*libsodium23" info.txt || fail "runtime dependencies missing"
grep -q "dev" <(sed -n 's/^ Depends: //p' info.txt) && fail "depends on -dev packages"
dpkg-deb -c "$DEB" >contents.txt
grep -q "root/root.*\./usr/bin/metafl-coordinator$" contents.txt || fail "programs not root-owned in /usr/bin"
grep -q "\./usr/lib/systemd/system/metafl-coordinator.service$" contents.txt || fail "no coordinator unit"
grep -q "\./usr/share/metafl/configs/site.yaml$" contents.txt || fail "no example configs"

R=$TEST_TMP/root
dpkg -x "$DEB" "$R" || fail "dpkg -x"
for p in metafl metafl-coordinator metafl-site-agent; do
  "$R/usr/bin/$p" --help >help.txt 2>&1 || fail "$p --help from the package"
  grep -q "usage" help.txt || fail "$p --help says no usage"
done
"$R/usr/bin/metafl" --version | grep "^metafl " >/dev/null || fail "--version"

# --check of the packaged example, pointed into the scratch root.
mkdir -p "$R/etc/metafl" "$R/var/lib/metafl/data"
"$R/usr/bin/metafl" keygen hospital-a --dir "$R/etc/metafl/keys" >/dev/null || fail "keygen"
"$R/usr/bin/metafl" keygen coordinator --dir "$TEST_TMP/coord-keys" >/dev/null
cp "$TEST_TMP/coord-keys/coordinator.pub" "$R/etc/metafl/keys/"
sed -e "s#/var/lib/metafl/#$R/var/lib/metafl/#g" "$R/usr/share/metafl/configs/site.yaml" >"$R/etc/metafl/site.yaml"
cp "$R/usr/share/metafl/configs/consortium-schema.yaml" "$R/etc/metafl/"   # the consortium's schema, beside it
python3 - "$R/etc/metafl/consortium-schema.yaml" "$R/var/lib/metafl/data/hospital-a.csv" <<'PY'
import random, re, sys
cols = [m.group(1) for m in (re.match(r"\s+- ([A-Za-z_0-9]+)\s*$", l) for l in open(sys.argv[1])) if m]
assert len(cols) == 30, cols
rnd = random.Random(1)
with open(sys.argv[2], "w") as f:
    f.write(",".join(cols + ["malignant"]) + "\n")
    for i in range(80):
        f.write(",".join("%.3f" % rnd.gauss(0, 1) for _ in cols) + ",%d\n" % (i % 2))
PY
"$R/usr/bin/metafl-site-agent" --config "$R/etc/metafl/site.yaml" --check >check.txt 2>&1 ||
  { cat check.txt; fail "--check of the packaged example config"; }
grep -q "config, keys and data are valid" check.txt || fail "--check: $(cat check.txt)"
grep -q "audit log .*$R/var/lib/metafl/audit/hospital-a.audit" check.txt || fail "audit log not under the state dir"
echo ok
