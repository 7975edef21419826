#!/bin/sh
# libFuzzer runs of every fuzz target (make fuzz FUZZ_SECONDS=60).
#
#   sh .ci/fuzz.sh [SECONDS]     default 30 seconds per target
#
# Builds each tests/fuzz/fuzz_*.c with clang -fsanitize=fuzzer,address,
# undefined into build/fuzz/ (installing clang and libclang-rt-14-dev when
# missing), then runs it for SECONDS on a copy of its seed corpus in
# build/fuzz/work/, so the checked-in corpus is never touched. Afterwards it
# says how many new inputs the run found (worth merging into
# tests/fuzz/corpus/ when they add coverage) and where any crash was saved.
# Exits non-zero when a target crashed.
set -eu

secs=${1:-30}
cd "$(dirname "$0")/.."

out=build/fuzz
mkdir -p "$out"

# clang with libFuzzer's runtime: try a one-line program.
have_libfuzzer() {
    command -v clang >/dev/null 2>&1 || return 1
    printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
        > "$out/probe.c"
    clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" >/dev/null 2>&1
}
if ! have_libfuzzer; then
    sh .ci/deps.sh clang libclang-rt-14-dev
    have_libfuzzer || { echo "fuzz: clang cannot build libFuzzer targets" >&2; exit 1; }
fi
rm -f "$out/probe" "$out/probe.c"

cbor_cflags=$(pkg-config --cflags libcbor 2>/dev/null || true)
cbor_libs=$(pkg-config --libs libcbor 2>/dev/null || echo -lcbor)
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -std=gnu11 -Iinclude -Isrc -D_GNU_SOURCE"

status=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    bin="$out/$name"
    echo "fuzz: building $bin"
    # Every target gets the util and proto sources; the ones that fuzz a store
    # module get that module too (store files link no RocksDB or libevent),
    # the JSON reader's and renderer's get libkrappy (no CLI).
    extra=
    libs=
    case $name in
    fuzz_segment) extra="src/store/segment.c" ;;
    fuzz_index) extra="src/store/index.c src/store/segment.c" ;;
    fuzz_kafka)
        extra="src/kafka/*.c"
        libs="-lz -llz4 -lzstd -lsnappy"
        ;;
    fuzz_json | fuzz_cbor_text)
        for f in src/client/*.c; do
            case ${f##*/} in
            cli.c | cli_*) ;;
            *) extra="$extra $f" ;;
            esac
        done
        ;;
    esac
    # shellcheck disable=SC2086
    clang $flags $cbor_cflags "$src" src/util/*.c src/proto/*.c $extra -o "$bin" $cbor_libs $libs -lm

    seeds="tests/fuzz/corpus/$name"
    work="$out/work/$name"
    crashes="$out/crashes/$name"
    rm -rf "$work"
    mkdir -p "$work" "$crashes"
    [ -d "$seeds" ] && cp "$seeds"/* "$work"/ 2>/dev/null || true
    before=$(find "$work" -type f | wc -l)

    echo "fuzz: running $name for ${secs}s on a copy of $seeds"
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$work" \
        >"$out/$name.log" 2>&1; then
        :
    else
        status=1
        echo "fuzz: $name FAILED; log in $out/$name.log, inputs in $crashes/:" >&2
        ls -l "$crashes" >&2
        grep -m 20 -E "ERROR|SUMMARY|==[0-9]+==" "$out/$name.log" >&2 || true
    fi
    after=$(find "$work" -type f | wc -l)
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|^Done" "$out/$name.log" || true
    echo "fuzz: $name: $((after - before)) new inputs in $work (seeds: $before)"
done

if [ "$status" -ne 0 ]; then
    echo "fuzz: crashes found: fix them, then add each input to tests/fuzz/corpus/<target>/" >&2
else
    echo "fuzz: no crashes"
fi
exit "$status"
