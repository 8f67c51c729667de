#!/usr/bin/env bash
# Many sites, one coordinator (issue 6, "scale and memory"): the REAL
# metafl-coordinator and N REAL metafl-site-agent processes on loopback over
# CurveZMQ, keys from `metafl keygen`, allow-listed, signed updates,
# checkpoints and audit log on (the production path, as rounds_engine.sh),
# small model, N up to 256.
#
#   bash bench/scale_sites.sh OUT.json
#   env: METAFL_BUILD (build dir, default build), BENCH_QUICK=1 (N = 16 64),
#        SCALE_N (e.g. "16 64 128 256"), SCALE_R (rounds per run, default 4),
#        SCALE_SPECS (models; default mlp:32-28-2 mlp:32-286-2 mlp:32-2857-2,
#        P = 982, 10,012, 99,997; quick: only mlp:32-286-2),
#        SCALE_BATCH (agents started per batch, default 32),
#        SCALE_KEEP_LOGS=DIR (copy the daemons' logs there)
#
# Each site runs the smallest real local step (FedAvg, one full-batch SGD
# step on its 4 training rows), as the no-training rows of rounds_engine.sh.
#
# Three P at the same N separate what each extra site costs the
# coordinator into a fixed per-connection part and a part that grows with P.
#
# What is measured per (P, N):
#   coordinator peak RSS: the larger of ru_maxrss from /usr/bin/time and
#     VmHWM polled every 0.2 s as rounds_engine.sh does (they differ by a
#     few pages);
#   RSS / (4·P bytes), and the per-site growth (RSS(N) − RSS(Nmin))/(N − Nmin)
#     at the same P;
#   coordinator VmRSS with all N connected before round 1 (the coordinator
#     starts paused via `metafl status --pause`, we read /proc, then
#     --resume): what a connection costs, apart from what a round costs;
#   connect time: first agent started → the coordinator logged "site X
#     connected" for all N distinct sites (agents start in batches of
#     SCALE_BATCH; each batch waits until its sites are connected);
#   round time: the metrics line "seconds" (open → close), median of the
#     rounds after the first; and whether every round accepted all N updates;
#   agents: the first agent's peak RSS (ru_maxrss: it runs under
#     /usr/bin/time too), and every agent's exit code.
set -u
OUT=${1:?usage: scale_sites.sh OUT.json}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench/daemon_configs.sh
. bench/daemon_configs.sh
BUILD=${METAFL_BUILD:-build}
BIN=$BUILD/bin
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    NS=${SCALE_N:-"16 64"}
    R=${SCALE_R:-3}
    SPECS=${SCALE_SPECS:-mlp:32-286-2}
else
    NS=${SCALE_N:-"16 64 128 256"}
    R=${SCALE_R:-4}
    SPECS=${SCALE_SPECS:-"mlp:32-28-2 mlp:32-286-2 mlp:32-2857-2"}
fi
BATCH=${SCALE_BATCH:-32}
for b in metafl metafl-coordinator metafl-site-agent; do
    if [ ! -x "$BIN/$b" ]; then
        printf '{"bench": "scale_sites", "_error": "%s missing (make BUILD=%s all)"}\n' \
            "$BIN/$b" "$BUILD" >"$OUT"
        echo "scale_sites: $BIN/$b missing" >&2
        exit 1
    fi
done
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=

# The agents are single-threaded by config; keep OpenBLAS from starting a
# pool per process (256 pools on 2 cores would measure the scheduler).
export OPENBLAS_NUM_THREADS=1

WORK=$(mktemp -d /tmp/metafl-bench-scale.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ -n "${SCALE_KEEP_LOGS:-}" ]; then
        mkdir -p "$SCALE_KEEP_LOGS" && cp "$WORK"/*.log "$SCALE_KEEP_LOGS"/ 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MAXN=1
for n in $NS; do [ "$n" -gt "$MAXN" ] && MAXN=$n; done
# Each agent holds a few descriptors (socket, zmq signalers, audit log); the
# coordinator one TCP connection per site plus its files.
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((4 * MAXN + 256)) ]; then
    ulimit -n $((4 * MAXN + 256)) 2>/dev/null ||
        echo "scale_sites: ulimit -n is $NOFILE; N = $MAXN may run out of descriptors" >&2
fi
NOFILE=$(ulimit -n)

site_name() { printf 'site%03d' "$1"; }

mkdir -p "$WORK/keys/allow" "$WORK/data" "$WORK/sites"
"$BIN/metafl" keygen coordinator --dir "$WORK/keys" >/dev/null || exit 1
for i in $(seq 1 "$MAXN"); do
    s=$(site_name "$i")
    "$BIN/metafl" keygen "$s" --dir "$WORK/keys" >/dev/null || exit 1
done

# Synthetic tables (32 features, binary label, 8 rows), one per site.
python3 - "$WORK/data" "$MAXN" <<'EOF'
import random, sys
out, maxn = sys.argv[1], int(sys.argv[2])
for i in range(1, maxn + 1):
    rnd = random.Random(7919 * i)
    with open(f"{out}/site{i:03d}.csv", "w") as f:
        f.write(",".join(f"f{j}" for j in range(32)) + ",y\n")
        for r in range(8):
            y = r % 2
            f.write(",".join(f"{rnd.gauss(0.5 * y, 1.0):.5f}" for _ in range(32)) + f",{y}\n")
EOF

site_yaml() { # name endpoint run_dir
    bench_site_yaml "$WORK/sites/$1.yaml" "$1" "$2" "$WORK/keys" "$WORK/data/$1.csv" 0.5 \
        "$3/$1.audit"
}

# min_sites 1: a round that misses sites still closes at its deadline and the
# metrics line says how many were accepted (what we report).
coord_yaml() { # port n run_dir deadline_s spec
    bench_coord_yaml "$WORK/coordinator.yaml" "$1" "$WORK/keys" "$3" "$5" 0 1 "$R" 1 "$2" "$4"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

now() { date +%s.%N; }

# Distinct sites the coordinator has logged as connected so far.
n_connected() {
    grep -o 'site site[0-9]* connected' "$1" 2>/dev/null | sort -u | wc -l
}

HWM=0
AHWM=0
CPID=
APID1=
poll_hwm() {
    local h
    h=$(awk '/VmHWM/ {print $2}' "/proc/$CPID/status" 2>/dev/null)
    [ -n "$h" ] && [ "$h" -gt "$HWM" ] && HWM=$h
    [ -n "$APID1" ] || return 0
    h=$(awk '/VmHWM/ {print $2}' "/proc/$APID1/status" 2>/dev/null)
    [ -n "$h" ] && [ "$h" -gt "$AHWM" ] && AHWM=$h
    return 0
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=$WORK/rows.jsonl
: >"$ROWS"
FAILS=()

params_of() { # mlp:a-b-...-z -> number of parameters (weights + biases)
    python3 -c '
import sys
dims = [int(x) for x in sys.argv[1].split(":", 1)[1].split("-")]
print(sum(a * b + b for a, b in zip(dims, dims[1:])))' "$1"
}

one_run() { # SPEC N
    local spec=$1 n=$2
    local p
    p=$(params_of "$spec")
    local label="P$p-N$n"
    local port run log deadline
    port=$(free_port)
    run="$WORK/run-$label"
    log="$WORK/coord-$label.log"
    mkdir -p "$run"
    # A round is ~N local steps on 2 shared cores plus N signature checks;
    # the deadline only matters when something is wrong.
    deadline=$((60 + n))
    rm -f "$WORK"/keys/allow/*.pub
    for i in $(seq 1 "$n"); do
        local s
        s=$(site_name "$i")
        cp "$WORK/keys/$s.pub" "$WORK/keys/allow/"
        site_yaml "$s" "tcp://127.0.0.1:$port" "$run"
    done
    coord_yaml "$port" "$n" "$run" "$deadline" "$spec"
    # Start paused: all N connect and idle, we read the coordinator's memory,
    # then --resume opens round 1 (separates a connection's cost from a
    # round's).
    local paused=1
    "$BIN/metafl" status --run-dir "$run" --pause >/dev/null 2>&1 || paused=0
    HWM=0
    AHWM=0
    APID1=
    local tpid
    if [ -n "$TIME" ]; then
        "$TIME" -f '%M %e' -o "$WORK/time-$label.txt" \
            "$BIN/metafl-coordinator" --config "$WORK/coordinator.yaml" --log-level info \
            >"$log" 2>&1 &
        tpid=$!
        PIDS+=("$tpid")
        CPID=
        for _ in $(seq 1 100); do
            CPID=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}')
            [ -n "$CPID" ] && break
            sleep 0.05
        done
    else
        "$BIN/metafl-coordinator" --config "$WORK/coordinator.yaml" --log-level info \
            >"$log" 2>&1 &
        tpid=$!
        CPID=$tpid
    fi
    [ -n "$CPID" ] && PIDS+=("$CPID")
    # The coordinator is listening before the first agent dials (an agent
    # would retry anyway, but the connect time should not include our start).
    for _ in $(seq 1 300); do
        grep -q 'listening on' "$log" 2>/dev/null && break
        kill -0 "$tpid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q 'listening on' "$log"; then
        FAILS+=("$label: coordinator did not start: $(tail -n 3 "$log" | tr '"\n' "' ")")
        kill "$tpid" "$CPID" 2>/dev/null
        wait "$tpid" 2>/dev/null
        return
    fi
    local apids=()
    local t0 tconn=
    t0=$(now)
    local started=0 stalled=0
    while [ "$started" -lt "$n" ]; do
        local upto=$((started + BATCH))
        [ "$upto" -gt "$n" ] && upto=$n
        for i in $(seq $((started + 1)) "$upto"); do
            local s
            s=$(site_name "$i")
            if [ "$i" = 1 ] && [ -n "$TIME" ]; then
                # the first agent under /usr/bin/time: its exact peak RSS
                "$TIME" -f '%M' -o "$WORK/time-agent-$label.txt" \
                    "$BIN/metafl-site-agent" --config "$WORK/sites/$s.yaml" --exit-after-eval \
                    >"$WORK/agent-$label-$s.log" 2>&1 &
                local at=$!
                apids+=("$at")
                PIDS+=("$at")
                for _ in $(seq 1 100); do
                    APID1=$(cat "/proc/$at/task/$at/children" 2>/dev/null | awk '{print $1}')
                    [ -n "$APID1" ] && break
                    sleep 0.05
                done
                [ -n "$APID1" ] && PIDS+=("$APID1")
                continue
            fi
            "$BIN/metafl-site-agent" --config "$WORK/sites/$s.yaml" --exit-after-eval \
                >"$WORK/agent-$label-$s.log" 2>&1 &
            apids+=($!)
            PIDS+=($!)
            [ -n "$APID1" ] || APID1=$!
        done
        started=$upto
        # this batch connected (bounded: 120 s per batch)
        local waited=0
        while [ "$(n_connected "$log")" -lt "$started" ] && [ $waited -lt 600 ]; do
            poll_hwm
            sleep 0.2
            waited=$((waited + 1))
        done
        [ $waited -ge 600 ] && stalled=1
    done
    local nc
    nc=$(n_connected "$log")
    if [ "$nc" -ge "$n" ]; then
        tconn=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    else
        FAILS+=("$label: only $nc of $n sites connected within 120 s per batch of $BATCH")
        tconn=null
    fi
    # Memory with every site connected and no round yet (paused start).
    local rss_conn=0
    if [ "$paused" = 1 ]; then
        sleep 1
        rss_conn=$(awk '/VmRSS/ {print $2}' "/proc/$CPID/status" 2>/dev/null)
        "$BIN/metafl" status --run-dir "$run" --resume >/dev/null 2>&1 ||
            FAILS+=("$label: metafl status --resume failed")
    fi
    # Until the coordinator exits (bounded).
    local limit=$((R * deadline + deadline + 120)) ticks=0
    while kill -0 "$tpid" 2>/dev/null; do
        poll_hwm
        sleep 0.2
        ticks=$((ticks + 1))
        if [ $ticks -gt $((limit * 5)) ]; then
            FAILS+=("$label: coordinator still running after ${limit} s; killed")
            kill "$CPID" 2>/dev/null
            break
        fi
    done
    wait "$tpid"
    local crc=$?
    # The agents exit on their own after the final evaluation.
    local arcs=() left=0
    for _ in $(seq 1 150); do
        left=0
        for a in "${apids[@]}"; do kill -0 "$a" 2>/dev/null && left=$((left + 1)); done
        [ $left -eq 0 ] && break
        sleep 0.2
    done
    for a in "${apids[@]}"; do
        kill "$a" 2>/dev/null
        wait "$a" 2>/dev/null
        arcs+=($?)
    done
    local agents_ok=0
    for c in "${arcs[@]}"; do [ "$c" -eq 0 ] && agents_ok=$((agents_ok + 1)); done
    local ru=null
    [ -s "$WORK/time-$label.txt" ] && ru=$(tail -n 1 "$WORK/time-$label.txt" | awk '{print $1}')
    if [ -s "$WORK/time-agent-$label.txt" ]; then
        local aru
        aru=$(tail -n 1 "$WORK/time-agent-$label.txt" | awk '{print $1}')
        [ -n "$aru" ] && [ "$aru" -gt "$AHWM" ] 2>/dev/null && AHWM=$aru
    fi
    local nwarn nerr
    nwarn=$(grep -c ' warn: ' "$log")
    nerr=$(grep -c ' error: ' "$log")
    if [ $crc -ne 0 ]; then
        FAILS+=("$label: coordinator exit $crc; $(tail -n 3 "$log" | tr '"\n' "' ")")
    fi
    # Per-run row (metrics parsed here; the summary is computed at the end).
    python3 - "$run/metrics.jsonl" "$ROWS" "$label" "$n" "$crc" "$HWM" "$ru" "$tconn" \
        "$AHWM" "$agents_ok" "$left" "$nwarn" "$nerr" "$stalled" "$spec" "$p" "${rss_conn:-0}" <<'EOF'
import json, sys
(metrics, rows, label, n, crc, hwm, ru, tconn, agent_rss, agents_ok, left, nwarn, nerr,
 stalled, spec, p, rss_conn) = sys.argv[1:]
n = int(n)
rounds = []
try:
    for line in open(metrics):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("event") == "round":
            rounds.append(m)
except OSError:
    pass
secs = sorted(m["seconds"] for m in rounds if m.get("round", 0) >= 2)
num = lambda v: None if v in ("", "null") else float(v)  # noqa: E731
row = {
    "label": label, "model": spec, "params": int(p), "sites": n, "coordinator_exit": int(crc),
    # the larger of ru_maxrss and the polled VmHWM (they differ by a few
    # pages; the polled one can miss a last peak, ru_maxrss cannot)
    "coordinator_rss_kb": max(int(ru) if ru not in ("", "null") else 0, int(hwm)) or None,
    "coordinator_ru_maxrss_kb": int(ru) if ru not in ("", "null") else None,
    "coordinator_vmhwm_polled_kb": int(hwm) or None,
    "coordinator_rss_connected_kb": int(rss_conn) or None,
    "connect_s": num(tconn),
    "agent_rss_kb": int(agent_rss) or None,
    "rounds_closed": len(rounds),
    "accepted": [m.get("accepted") for m in rounds],
    "selected": [m.get("selected") for m in rounds],
    "attempts": [m.get("attempt") for m in rounds],
    "at_deadline": sum(1 for m in rounds if m.get("at_deadline")),
    "all_accepted": bool(rounds) and all(m.get("accepted") == n for m in rounds),
    "round_s": [m.get("seconds") for m in rounds],
    "median_round_ms": secs[len(secs) // 2] * 1000 if secs else None,
    "first_round_ms": rounds[0]["seconds"] * 1000 if rounds else None,
    "agents_exit_0": int(agents_ok), "agents_killed_at_end": int(left),
    "coordinator_warn_lines": int(nwarn), "coordinator_error_lines": int(nerr),
    "connect_stalled": stalled == "1",
}
with open(rows, "a") as f:
    f.write(json.dumps(row) + "\n")
print(f"scale_sites: P={p} N={n}: peak RSS {row['coordinator_rss_kb']} kB "
      f"(polled VmHWM {hwm}), connected in {tconn} s, median round "
      f"{row['median_round_ms']} ms, accepted per round {row['accepted']}, "
      f"agents exit 0: {agents_ok}/{n}, agent RSS {agent_rss} kB")
EOF
}

for spec in $SPECS; do
    for n in $NS; do
        one_run "$spec" "$n"
    done
done

FAILS_JSON=$(printf '%s\n' "${FAILS[@]+"${FAILS[@]}"}" | python3 -c '
import json, sys
print(json.dumps([l for l in sys.stdin.read().split("\n") if l]))')
python3 - "$ROWS" "$OUT" "$R" "$BATCH" "$NOFILE" "$FAILS_JSON" "$LOAD0" <<'EOF'
import datetime, json, sys
rows_path, out, r, batch, nofile, fails, load0 = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
for x in rows:
    kb = x["coordinator_rss_kb"]
    p = x["params"]
    base = min((y for y in rows if y["params"] == p and y["coordinator_rss_kb"]),
               key=lambda y: y["sites"], default=None)
    x["rss_over_4p"] = round(kb * 1024 / (4 * p), 2) if kb else None
    if base and kb and x["sites"] > base["sites"]:
        x["kb_per_extra_site"] = round((kb - base["coordinator_rss_kb"])
                                       / (x["sites"] - base["sites"]), 2)
    else:
        x["kb_per_extra_site"] = None
    c, c0 = x.get("coordinator_rss_connected_kb"), base and base.get("coordinator_rss_connected_kb")
    if c and c0 and x["sites"] > base["sites"]:
        x["connected_kb_per_extra_site"] = round((c - c0) / (x["sites"] - base["sites"]), 2)
    else:
        x["connected_kb_per_extra_site"] = None
doc = {
    "bench": "scale_sites",
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "command": f"bash bench/scale_sites.sh {out}",
    "how": ("one real metafl-coordinator and N real metafl-site-agent processes on "
            "127.0.0.1, CurveZMQ, allow-listed keys from `metafl keygen`, signed updates, "
            "checkpoints and audit logs on disk; FedAvg, one full-batch SGD step on 4 rows "
            f"per site; agents started in batches of {batch}, each batch waits until its "
            "sites are connected; the coordinator starts paused (`metafl status --pause`) and "
            "is resumed once all N are connected, after its RSS with N idle connections "
            "was read; peak RSS = the larger of the coordinator's ru_maxrss (/usr/bin/time) and "
            "its VmHWM polled every 0.2 s; "
            "round time = metrics 'seconds', median of rounds 2.." + r + "."),
    "rounds": int(r), "batch": int(batch),
    "ulimit_n": nofile,
    # the machine is shared: the 1/5/15-min load averages before and after
    "loadavg_start": load0,
    "loadavg_end": " ".join(open("/proc/loadavg").read().split()[:3]),
    "failures": json.loads(fails),
    "rows": rows,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"{'P':>7} {'N':>5} {'peak RSS MiB':>12} {'RSS/4P':>7} {'kB/site':>8} {'connect s':>9} "
      f"{'median ms':>9} {'all accepted':>12} {'agent MiB':>9}")
for x in rows:
    kb = x["coordinator_rss_kb"]
    print(f"{x['params']:>7} {x['sites']:>5} {kb / 1024 if kb else float('nan'):>12.1f} "
          f"{x['rss_over_4p'] or float('nan'):>7.1f} "
          f"{x['kb_per_extra_site'] if x['kb_per_extra_site'] is not None else '–':>8} "
          f"{x['connect_s'] if x['connect_s'] is not None else '–':>9} "
          f"{x['median_round_ms'] if x['median_round_ms'] is not None else float('nan'):>9.0f} "
          f"{str(x['all_accepted']):>12} "
          f"{(x['agent_rss_kb'] or 0) / 1024:>9.1f}")
print(f"wrote {out}")
EOF
[ ${#FAILS[@]} -eq 0 ]
