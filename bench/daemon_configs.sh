# Sourced by bench/rounds_engine.sh and bench/scale_sites.sh: the YAML both
# benches give the real daemons (synthetic CSV of 32 features f0..f31 and a
# two-class label y; FedAvg; generous message limits for 10M-parameter θ).
# env BENCH_MAX_UPLOADS sets rounds.max_concurrent_uploads, BENCH_UPLOAD_ENCODING
# rounds.upload_encoding, BENCH_BROADCAST_ENCODING rounds.broadcast_encoding
# (see below), BENCH_SECAGG=1 secure aggregation
# (BENCH_SECAGG_WORD_BITS=32: with 32-bit masked words)
# (threshold 3; every site's roster = the allow-list directory),
# BENCH_DEFAULT_LIMITS=1 leaves out both files' limits: block (the daemons'
# defaults, which follow the model size).

# bench_site_yaml OUT ID ENDPOINT KEY_DIR CSV TRAIN_FRACTION AUDIT_LOG
bench_site_yaml() {
    local out=$1 s=$2 ep=$3 keys=$4 csv=$5 frac=$6 audit=$7
    {
        echo "site:"
        echo "  id: $s"
        echo "  key_file: $keys/$s.key"
        echo "coordinator:"
        echo "  endpoint: $ep"
        echo "  public_key: $keys/coordinator.pub"
        echo "data:"
        echo "  source: csv"
        echo "  path: $csv"
        echo "  train_fraction: $frac"
        echo "  split_seed: 1"
        echo "  standardize: none"
        echo "  schema:"
        echo "    header: true"
        echo "    columns:"
        for j in $(seq 0 31); do echo "      - f$j"; done
        echo "      - {name: y, kind: label, rule: class, n_classes: 2}"
        echo "runtime:"
        echo "  threads: 1"
        echo "  log_level: warn"
        echo "audit:"
        echo "  log: $audit"
        # BENCH_DEFAULT_LIMITS=1: no limits block, the daemons' defaults
        # (they follow the model size: bench/large_model.sh, bench/grid.sh).
        if [ "${BENCH_DEFAULT_LIMITS:-0}" != 1 ]; then
            echo "limits:"
            echo "  max_message_bytes: 512M"
            echo "  max_params: 64M"
        fi
        # BENCH_SECAGG=1: secure aggregation (docs/SECAGG.md); the roster is
        # the consortium's keys, here the allow-list directory itself.
        if [ "${BENCH_SECAGG:-0}" = 1 ]; then
            echo "secure_aggregation:"
            echo "  roster: $keys/allow"
        fi
    } >"$out"
}

# bench_coord_yaml OUT PORT KEY_DIR RUN_DIR SPEC BATCH EPOCHS ROUNDS MIN_SITES
#                  WAIT_FOR_SITES DEADLINE_S
bench_coord_yaml() {
    local out=$1 port=$2 keys=$3 run=$4 spec=$5 batch=$6 epochs=$7 rounds=$8
    local min=$9 wait=${10} deadline=${11}
    {
        echo "coordinator:"
        echo "  listen: tcp://127.0.0.1:$port"
        echo "  key: $keys/coordinator.key"
        echo "  allow_dir: $keys/allow"
        echo "  run_dir: $run"
        echo "model:"
        echo "  spec: $spec"
        echo "  loss: softmax_ce"
        echo "algorithm:"
        echo "  name: fedavg"
        echo "  inner_lr: 0.01"
        echo "  batch_size: $batch"
        echo "  local_epochs: $epochs"
        echo "rounds:"
        echo "  count: $rounds"
        echo "  min_sites: $min"
        echo "  wait_for_sites: $wait"
        echo "  deadline_s: $deadline"
        # BENCH_MAX_UPLOADS: upload grants in flight (protocol 2); unset =
        # the daemon's default, and the key is left out so builds from
        # before flow control (which refuse unknown keys) read the file too.
        if [ -n "${BENCH_MAX_UPLOADS:-}" ]; then
            echo "  max_concurrent_uploads: $BENCH_MAX_UPLOADS"
        fi
        # BENCH_UPLOAD_ENCODING: fp16 / int8 updates (issue 17); unset =
        # float32, key left out for builds that do not know it.
        if [ -n "${BENCH_UPLOAD_ENCODING:-}" ] && [ "$BENCH_UPLOAD_ENCODING" != fp32 ]; then
            echo "  upload_encoding: $BENCH_UPLOAD_ENCODING"
        fi
        # BENCH_BROADCAST_ENCODING: the model's difference to sites that
        # hold the last one as fp16 / int8 (issue 17); unset = float32.
        if [ -n "${BENCH_BROADCAST_ENCODING:-}" ] && [ "$BENCH_BROADCAST_ENCODING" != fp32 ]; then
            echo "  broadcast_encoding: $BENCH_BROADCAST_ENCODING"
        fi
        echo "eval:"
        echo "  adapt_steps: 1"
        echo "  deadline_s: $deadline"
        if [ "${BENCH_DEFAULT_LIMITS:-0}" != 1 ]; then
            echo "limits:"
            echo "  max_message_bytes: 512M"
        fi
        if [ "${BENCH_SECAGG:-0}" = 1 ]; then
            echo "secure_aggregation:"
            echo "  enabled: true"
            echo "  threshold: 3"
            # BENCH_SECAGG_WORD_BITS=32: 32-bit masked words (docs/SECAGG.md
            # "Word width"), bound BENCH_SECAGG_UPDATE_BOUND (default 64)
            # BENCH_SECAGG_NEIGHBOURS=k: SecAgg+ with k neighbours
            if [ -n "${BENCH_SECAGG_NEIGHBOURS:-}" ]; then
                echo "  neighbours: $BENCH_SECAGG_NEIGHBOURS"
            fi
            if [ "${BENCH_SECAGG_WORD_BITS:-64}" = 32 ]; then
                echo "  word_bits: 32"
                echo "  update_bound: ${BENCH_SECAGG_UPDATE_BOUND:-64}"
            fi
        fi
    } >"$out"
}
