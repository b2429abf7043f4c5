#!/usr/bin/env bash
# Coverage-guided fuzzing of every target under libFuzzer, SECS seconds each (default 60), with a nightly
# toolchain. Uses `cargo fuzz` when it is installed; otherwise builds the targets with the same instrumentation
# cargo-fuzz applies (SanitizerCoverage, AddressSanitizer) and runs them directly. New inputs go to a scratch
# corpus (seeded from corpus/<target>/), crashes to artifacts/<target>/. Prints libFuzzer's closing figures.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
targets=(execute_body jail_frames worker_lines path_confinement)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

if cargo +nightly fuzz --version >/dev/null 2>&1; then
    for t in "${targets[@]}"; do
        mkdir -p "$scratch/$t" "artifacts/$t" && cp corpus/$t/* "$scratch/$t/"
        cargo +nightly fuzz run --features libfuzzer "$t" "$scratch/$t" -- -max_total_time="$secs" \
            -artifact_prefix="artifacts/$t/" 2>&1 | tail -n 3
    done
    exit 0
fi

# Without cargo-fuzz: the flags it passes (cargo-fuzz 0.12, default options).
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Zsanitizer=address -Cdebug-assertions \
-Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
# The bundled SQLite (linked through runbox-server) trips ASan's one-definition-rule check, a false positive here.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"
cargo +nightly build --release --features libfuzzer --bins --target "$host"
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t" && cp corpus/$t/* "$scratch/$t/"
    echo "== $t"
    "$CARGO_TARGET_DIR/$host/release/$t" "$scratch/$t" -max_total_time="$secs" -artifact_prefix="artifacts/$t/" \
        -print_final_stats=1 2>&1 | grep -E "(DONE|^Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)" || true
done
