"""Collects bench/flower_ref.sh's runs into one JSON and a table.

    summary.py WORK OUT.json R REPS "SIZES" "NS"

Per point and repetition: the reference's median round (rounds 2..R), and
metafl's training-row median_ms (open to open) with fp32 and with int8
upload + int8 broadcast; speed-up = reference ms / metafl ms.
"""
import json
import os
import sys

PARAMS = {"small": 2242, "1M": 999987}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def metafl_ms(path):
    d = load(path)
    rows = (d or {}).get("rows") or []
    return (rows[0].get("median_ms"), rows[0].get("loadavg_1m")) if rows else (None, None)


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def fmt(v, nd=1):
    return "-" if v is None else f"{v:.{nd}f}"


def main(argv):
    work, out, rounds, reps = argv[1], argv[2], int(argv[3]), int(argv[4])
    sizes, ns = argv[5].split(), [int(n) for n in argv[6].split()]
    rows = []
    for size in sizes:
        for n in ns:
            for rep in range(1, reps + 1):
                tag = f"{size}-N{n}-rep{rep}"
                ref = load(os.path.join(work, f"ref-{tag}.json")) or {}
                ref_ms = ref.get("median_ms")
                f32, load32 = metafl_ms(os.path.join(work, f"fp32-{tag}.json"))
                i8, load8 = metafl_ms(os.path.join(work, f"int8-{tag}.json"))
                rows.append({"params": PARAMS[size], "sites": n, "rep": rep,
                             "reference_ms": ref_ms, "metafl_fp32_ms": f32,
                             "metafl_int8_ms": i8,
                             "speedup_fp32": ratio(ref_ms, f32), "speedup_int8": ratio(ref_ms, i8),
                             "loadavg_1m": [ref.get("loadavg_1m"), load32, load8]})
    doc = {"bench": "flower_ref",
           "command": "bash bench/flower_ref.sh OUT.json",
           "how": ("per point and repetition, in this order: the Flower-like reference "
                   "(bench/flower_ref/run.py: Python gRPC without TLS, one stream per client "
                   "process, .npy tensors, one epoch over 200 rows, batch 32, numpy MLP, FedAvg; "
                   "omits Flower's framework work, so a LOWER bound on Flower's round), then "
                   "bench/rounds_engine.sh's training row with fp32, then with int8 upload + "
                   "int8 broadcast; medians of rounds 2..R; speed-up = reference / metafl, an "
                   "UNDER-statement of metafl's speed-up against Flower; loadavg_1m = the "
                   "machine's 1-minute load at the end of the reference, fp32 and int8 runs"),
           "rounds": rounds, "rows": rows}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("| P | N | rep | reference ms | metafl fp32 ms | speed-up fp32 | "
          "metafl int8 ms | speed-up int8 | load (ref / fp32 / int8) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ld = " / ".join(fmt(x) for x in r["loadavg_1m"])
        print(f"| {r['params']:,} | {r['sites']} | {r['rep']} | {fmt(r['reference_ms'])} | "
              f"{fmt(r['metafl_fp32_ms'])} | {fmt(r['speedup_fp32'], 2)}x | "
              f"{fmt(r['metafl_int8_ms'])} | {fmt(r['speedup_int8'], 2)}x | {ld} |")
    print(f"wrote {out}")
    missing = [r for r in rows if None in (r["reference_ms"], r["metafl_fp32_ms"], r["metafl_int8_ms"])]
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
