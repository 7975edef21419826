#!/bin/sh
# Runs krappy's test suites; called by the Makefile after it built them.
#   sh .ci/test.sh            everything `make test` runs
#   sh .ci/test.sh unit|fuzz-replay|e2e|smoke|torture|bench|valgrind
# Sanitized binaries live in build/asan, optimised ones in bin/ and build/release.
set -u

what=${1:-all}
ASAN=build/asan
REL=build/release
# A small quarantine keeps RSS checks meaningful under ASan (the default
# 256 MB of freed-but-held memory looks like growth).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
failures=""

# run NAME CMD...: one suite; its output is shown, its status counted.
run() {
    name=$1
    shift
    echo "==> $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "FAILED: $name" >&2
    fi
}

unit() {
    for t in "$1"/tests/test_*; do
        [ -x "$t" ] || continue
        run "unit $(basename "$t") ($2)" "$t"
    done
}

fuzz_replay() {
    for f in "$1"/fuzz/fuzz_*; do
        [ -x "$f" ] || continue
        n=$(basename "$f")
        run "fuzz replay $n ($2)" "$f" "tests/fuzz/corpus/$n"
    done
}

# e2e DIR BINDIR LABEL [smoke]
e2e() {
    for t in "$1"/e2e/e2e_*; do
        [ -x "$t" ] || continue
        run "e2e $(basename "$t") ($3)" env KRAPPYD="$2/krappyd" KRAPPY="$2/krappy" \
            KRAPPY_SHIM="$PWD/$1/shim/libkrshim.so" KRAPPY_POWERCUT="$PWD/$1/shim/powercut" \
            ${4:+KRAPPY_E2E_SMOKE=1} "$t"
    done
}

# hammer DIR BINDIR LABEL ARGS...: e2e/hammer, the group load-and-correctness
# tool (producers, competing members with crashes, kill -9s with --kills).
hammer() {
    d=$1
    b=$2
    l=$3
    shift 3
    run "hammer ($l)" env KRAPPYD="$b/krappyd" KRAPPY_SHIM="$PWD/$d/shim/libkrshim.so" \
        KRAPPY_POWERCUT="$PWD/$d/shim/powercut" "$d/e2e/hammer" "$@"
}

case $what in
all)
    unit $ASAN asan
    run "shim self-test" sh tests/shim/test_shim.sh $ASAN
    fuzz_replay $ASAN asan
    e2e $ASAN $ASAN/bin asan
    hammer $ASAN $ASAN/bin asan --seconds 5
    hammer $ASAN $ASAN/bin "asan, mixed acks" --seconds 5 --sync 50
    hammer $ASAN $ASAN/bin "asan, idempotent producers, 3 kills" --seconds 5 --idempotent \
        --kills 3 --sync 50
    hammer $ASAN $ASAN/bin "asan, compacted topic, 2 kills" --seconds 4 --compact --kills 2
    e2e $REL bin "O2 smoke" smoke
    run "README's libkrappy program, installed" sh e2e/readme_example.sh
    ;;
unit) unit $ASAN asan ;;
fuzz-replay) fuzz_replay $ASAN asan ;;
e2e)
    e2e $ASAN $ASAN/bin asan
    hammer $ASAN $ASAN/bin asan --seconds 5
    ;;
smoke)
    e2e $REL bin "O2 smoke" smoke
    run "README's libkrappy program, installed" sh e2e/readme_example.sh
    ;;
torture)
    # The long loops: 100000 churned connections, 100 kill -9 rounds under
    # load, 30 power cuts; hammer with 100 kill -9s of the server under load.
    KRAPPY_E2E_TORTURE=1 e2e $ASAN $ASAN/bin asan
    hammer $ASAN $ASAN/bin "asan, 100 kills" --seconds 60 --kills 100
    hammer $ASAN $ASAN/bin "asan, mixed acks, 30 kills" --seconds 30 --kills 30 --sync 50
    hammer $ASAN $ASAN/bin "asan, idempotent producers, 30 power cuts" --seconds 30 \
        --idempotent --kills 30 --powercut --sync 50
    hammer $ASAN $ASAN/bin "asan, compacted topic, mixed acks, 30 kills" --seconds 60 --compact \
        --kills 30 --sync 50
    hammer $ASAN $ASAN/bin "asan, compacted topic, idempotent producers, 10 power cuts" \
        --seconds 30 --compact --idempotent --kills 10 --powercut --sync 50
    ;;
bench)
    # shellcheck disable=SC2086
    run "bench_vs (krappyd, NATS JetStream, Redis Streams)" env KRAPPYD=bin/krappyd \
        $REL/bench/bench_vs ${BENCH_VS_ARGS:-} --out build/bench/results.md
    for b in $REL/bench/bench_*; do
        [ -x "$b" ] || continue
        [ "$(basename "$b")" = bench_vs ] && continue
        run "bench $(basename "$b")" env KRAPPYD=bin/krappyd "$b"
    done
    ;;
valgrind)
    # test_store_alloc opens RocksDB once per allocation it fails: under
    # valgrind, every 16th is enough.
    export KRAPPY_ALLOC_STEP=${KRAPPY_ALLOC_STEP:-16}
    for t in build/release/tests/test_*; do
        [ -x "$t" ] || continue
        run "valgrind $(basename "$t")" valgrind -q --error-exitcode=1 --leak-check=full \
            --errors-for-leak-kinds=definite,indirect "$t"
    done
    ;;
*)
    echo "usage: sh .ci/test.sh [all|unit|fuzz-replay|e2e|smoke|torture|bench|valgrind]" >&2
    exit 2
    ;;
esac

echo
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "failed suites:$failures" >&2; exit 1; }
