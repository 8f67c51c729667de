#!/usr/bin/env bash
# metafl privacy epsilon|sigma: the accountant's known answers through the
# real binary (plain and --json), and every bad value refused with exit 2
# and a message naming it.
source "$(dirname "$0")/lib.sh"

out=$(metafl privacy epsilon --q 0.04 --sigma 1.5 --steps 2250 --delta 1e-5) || fail "epsilon failed"
eps=$(sed -n 1p <<<"$out"); order=$(sed -n 2p <<<"$out")
awk -v e="$eps" 'BEGIN { d = e - 7.32911117143; if (d < 0) d = -d; exit !(d <= 7.33e-6) }' \
  || fail "epsilon $eps, want 7.32911117143 (Opacus)"
[ "$order" = 3.9 ] || fail "best order $order, want 3.9"

json=$(metafl privacy epsilon --q 0.04 --sigma 1.5 --steps 2250 --delta 1e-5 --json)
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert abs(d["epsilon"]-7.32911117143)<1e-5 and d["order"]==3.9 and d["conversion"]=="balle2020", d' "$json" \
  || fail "--json: $json"

classic=$(metafl privacy epsilon --q 1 --sigma 4.530877117 --steps 1 --delta 1e-6 --classic | head -n 1)
[ "${classic:0:6}" = 1.1845 ] || fail "classic conversion gave $classic, want 1.1845..."
balle=$(metafl privacy epsilon --q 1 --sigma 4.530877117 --steps 1 --delta 1e-6 | head -n 1)
awk -v e="$balle" 'BEGIN { exit !(e >= 1 && e - 1.0000003 < 1e-7 && 1.0000003 - e < 1e-7) }' || fail "Balle et al. conversion gave $balle, want 1.0000003..."

# caller's orders: only those are searched
o=$(metafl privacy epsilon --q 0.04 --sigma 1.5 --steps 2250 --delta 1e-5 --orders 2,32 | sed -n 2p)
[ "$o" = 2 ] || [ "$o" = 32 ] || fail "--orders 2,32 gave best order $o"

sigma=$(metafl privacy sigma --epsilon 8 --delta 1e-5 --q 0.04 --steps 2000)
[ "${sigma:0:6}" = 1.3562 ] || fail "sigma $sigma, want 1.3562 (Opacus get_noise_multiplier)"
metafl privacy sigma --epsilon 8 --delta 1e-5 --q 0.04 --steps 2000 --json | grep '"sigma":1.3562' >/dev/null \
  || fail "sigma --json"

refuse() { # expected-message-fragment args...
  local want=$1; shift
  set +e
  metafl privacy "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err"; local rc=$?
  set -e
  [ $rc -eq 2 ] || fail "'$*' exited $rc, want 2"
  [ ! -s "$TEST_TMP/out" ] || fail "'$*' printed a number: $(cat "$TEST_TMP/out")"
  grep -q -- "$want" "$TEST_TMP/err" || fail "'$*': no message naming $want: $(cat "$TEST_TMP/err")"
}
refuse 'q (sample rate)' epsilon --q 0 --sigma 1 --steps 10 --delta 1e-5
refuse 'q (sample rate)' epsilon --q 1.01 --sigma 1 --steps 10 --delta 1e-5
refuse 'sigma' epsilon --q 0.1 --sigma 0 --steps 10 --delta 1e-5
refuse 'sigma' epsilon --q 0.1 --sigma -2 --steps 10 --delta 1e-5
refuse 'steps' epsilon --q 0.1 --sigma 1 --steps 0 --delta 1e-5
refuse 'steps' epsilon --q 0.1 --sigma 1 --steps 2.5 --delta 1e-5
refuse 'delta' epsilon --q 0.1 --sigma 1 --steps 10 --delta 1
refuse 'delta' epsilon --q 0.1 --sigma 1 --steps 10 --delta 0
refuse 'not a finite number' epsilon --q abc --sigma 1 --steps 10 --delta 1e-5
refuse 'not a finite number' epsilon --q nan --sigma 1 --steps 10 --delta 1e-5
refuse '--delta is required' epsilon --q 0.1 --sigma 1 --steps 10
refuse 'order' epsilon --q 0.1 --sigma 1 --steps 10 --delta 1e-5 --orders 1,2
refuse 'epsilon must be > 0' sigma --epsilon 0 --delta 1e-5 --q 0.1 --steps 10
refuse 'q (sample rate)' sigma --epsilon 1 --delta 1e-5 --q 2 --steps 10
refuse 'unknown verb' budget --q 0.1
metafl privacy --help | grep 'usage: metafl privacy epsilon' >/dev/null || fail "--help"
metafl --help | grep privacy >/dev/null || fail "privacy missing from metafl --help"
echo "ok"
