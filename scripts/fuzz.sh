#!/usr/bin/env bash
# Fuzzes every parser of untrusted bytes with the toolchain's libFuzzer (coverage instrumentation
# and AddressSanitizer): builds drover-fuzz into .build-fuzz, then runs each target over
# Tests/fuzz/corpus/<target> and Tests/fuzz/regressions/<target> and for SECONDS more of new inputs. New
# inputs go to a scratch folder, crashes to .drover/fuzz/; a crash fails the run (turn it into a
# regression file: Tests/fuzz/regressions/<target>/<name>).
# usage: scripts/fuzz.sh [SECONDS per target, default 10] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-10}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=($(ls Tests/fuzz/corpus))
fi
swift_bin=$(dirname "$(readlink -f "$(command -v swiftc)")")
runtime=$(ls "$swift_bin"/../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -1)
echo "fuzz: building drover-fuzz with libFuzzer into .build-fuzz"
# SwiftPM gives an executable its own main (--defsym), so libFuzzer's main-less runtime is linked
# and drover-fuzz hands its command line to LLVMFuzzerRunDriver.
swift build --product drover-fuzz --scratch-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xswiftc -DDROVER_LIBFUZZER -Xlinker "$runtime" -Xlinker -lstdc++ 2>&1 \
    | grep -v -e "ld.gold: warning: Cannot export" -e "^warning: Cannot export" | tail -n 2
binary=.build-fuzz/debug/drover-fuzz
mkdir -p .drover/fuzz
passed=0
for target in "${targets[@]}"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/drover-fuzz-$target.XXXXXX")
    mkdir -p "Tests/fuzz/regressions/$target"
    echo "fuzz: $target: $(ls "Tests/fuzz/corpus/$target" | wc -l) seeds, $(ls "Tests/fuzz/regressions/$target" | wc -l) regressions, then ${seconds} s of new inputs"
    status=0
    DROVER_FUZZ_TARGET=$target ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix=".drover/fuzz/$target-" \
        "$work" "Tests/fuzz/corpus/$target" "Tests/fuzz/regressions/$target" >"$work.log" 2>&1 || status=$?
    grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE" "$work.log" | tail -n 2 | sed "s/^/fuzz: $target: /"
    rm -rf "$work"
    if ((status != 0)); then
        tail -n 40 "$work.log"
        echo "fuzz: $target FAILED (exit $status); the input is in .drover/fuzz/$target-*"
        rm -f "$work.log"
        exit 1
    fi
    rm -f "$work.log"
    passed=$((passed + 1))
done
echo "fuzz: ${passed} passed, 0 failed"
