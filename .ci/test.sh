#!/bin/sh
# Runs krappy's test suites; called by the Makefile after it built them.
#   sh .ci/test.sh            everything `make test` runs
#   sh .ci/test.sh unit|fuzz-replay|e2e|smoke|torture|bench|valgrind
# Sanitized binaries live in build/asan, optimised ones in bin/ and build/release.
#
# KRAPPY_TEST_JOBS=N runs up to N suites side by side (default 2): each
# suite's output goes to build/test-logs/ and is printed whole when it ends.
# With 1 they run one at a time and their output shows as it comes. Every
# suite's wall time is printed when it ends, and all of them, longest
# first, at the end (build/test-logs/times).
set -u

what=${1:-all}
ASAN=build/asan
REL=build/release
JOBS=${KRAPPY_TEST_JOBS:-2}
LOGS=build/test-logs
# A small quarantine keeps RSS checks meaningful under ASan (the default
# 256 MB of freed-but-held memory looks like growth).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:quarantine_size_mb=16}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

case $JOBS in
'' | *[!0-9]* | 0)
    echo "KRAPPY_TEST_JOBS must be a number of suites (1 or more), not '$JOBS'" >&2
    exit 2
    ;;
esac
rm -rf "$LOGS"
mkdir -p "$LOGS"

now_ms() {
    echo $(($(date +%s%N) / 1000000))
}

# secs MS: milliseconds as seconds with one decimal.
secs() {
    printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100))
}

# done_line NAME RC MS: the line that closes a suite's output.
done_line() {
    if [ "$2" -eq 0 ]; then
        echo "<== $1: ok, $(secs "$3") s"
    else
        echo "FAILED: $1 (exit status $2, $(secs "$3") s)" >&2
    fi
}

started=0

# run NAME CMD...: one suite. Its status, wall time and name go to
# $LOGS/N.done, read by summary. With JOBS > 1 it runs in the background
# once a slot is free, its output kept in $LOGS/N.log and printed whole
# (under a lock, so two suites' outputs never mix) when it ends.
run() {
    name=$1
    shift
    wait_slot
    started=$((started + 1))
    id=$(printf '%03d' "$started")
    if [ "$JOBS" -eq 1 ]; then
        echo "==> $name"
        t0=$(now_ms)
        "$@"
        rc=$?
        ms=$(($(now_ms) - t0))
        done_line "$name" "$rc" "$ms"
        printf '%s %s %s\n' "$rc" "$ms" "$name" >"$LOGS/$id.done"
        return
    fi
    (
        t0=$(now_ms)
        # stdout line-buffered (stdbuf preloads a library, which ASan
        # accepts when told) keeps it in order with stderr in the file.
        ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" stdbuf -oL "$@" \
            >"$LOGS/$id.log" 2>&1 </dev/null
        rc=$?
        ms=$(($(now_ms) - t0))
        {
            flock 9
            echo "==> $name"
            cat "$LOGS/$id.log"
            done_line "$name" "$rc" "$ms"
        } 9>"$LOGS/print.lock"
        printf '%s %s %s\n' "$rc" "$ms" "$name" >"$LOGS/$id.tmp"
        mv "$LOGS/$id.tmp" "$LOGS/$id.done"
    ) &
}

# How many suites have ended.
n_done() {
    set -- "$LOGS"/*.done
    [ -e "$1" ] && echo $# || echo 0
}

# Wait until fewer than JOBS suites run.
wait_slot() {
    while [ $((started - $(n_done))) -ge "$JOBS" ]; do
        sleep 0.2
    done
}

# Wait for every suite started so far (run's next suites may need the
# files these leave, or the whole machine).
barrier() {
    wait
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

# The longest e2e suites, started first so that the others fill the
# slots around them.
E2E_LONG="e2e_cluster e2e_kafka e2e_compact"

# e2e_list DIR: the e2e suites built in DIR, the longest first.
e2e_list() {
    for t in $E2E_LONG; do
        [ -x "$1/e2e/$t" ] && echo "$1/e2e/$t"
    done
    for t in "$1"/e2e/e2e_*; do
        case " $E2E_LONG " in
        *" ${t##*/} "*) continue ;;
        esac
        [ -x "$t" ] && echo "$t"
    done
}

# e2e DIR BINDIR LABEL [smoke]
e2e() {
    for t in $(e2e_list "$1"); do
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

# Every suite's status and time, counted; the times longest first.
summary() {
    barrier
    passed=0
    failed=0
    failures=""
    for f in "$LOGS"/*.done; do
        [ -e "$f" ] || continue
        read -r rc ms name <"$f"
        printf '%s\t%s\n' "$ms" "$name" >>"$LOGS/times.tmp"
        if [ "$rc" -eq 0 ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failures="$failures
    $name"
        fi
    done
    echo
    echo "suite wall times, longest first (all $started in $(secs $(($(now_ms) - t_all))) s, up to $JOBS side by side):"
    if [ -e "$LOGS/times.tmp" ]; then
        sort -rn "$LOGS/times.tmp" >"$LOGS/times"
        rm -f "$LOGS/times.tmp"
        while IFS="$(printf '\t')" read -r ms name; do
            printf '%7s s  %s\n' "$(secs "$ms")" "$name"
        done <"$LOGS/times"
    fi
    echo
    echo "suites: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] || {
        echo "failed suites:$failures" >&2
        exit 1
    }
}

t_all=$(now_ms)
case $what in
all)
    # The long suites first (they mostly wait: on servers, timers, the
    # disk), the many short ones after them in the other slots.
    e2e $ASAN $ASAN/bin asan
    hammer $ASAN $ASAN/bin asan --seconds 5
    hammer $ASAN $ASAN/bin "asan, mixed acks" --seconds 5 --sync 50
    hammer $ASAN $ASAN/bin "asan, idempotent producers, 3 kills" --seconds 5 --idempotent \
        --kills 3 --sync 50
    hammer $ASAN $ASAN/bin "asan, compacted topic, 2 kills" --seconds 4 --compact --kills 2
    e2e $REL bin "O2 smoke" smoke
    run "README's libkrappy program, installed" sh e2e/readme_example.sh
    unit $ASAN asan
    run "shim self-test" sh tests/shim/test_shim.sh $ASAN
    fuzz_replay $ASAN asan
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
    # load, 30 power cuts; hammer with 100 kill -9s of the server under load;
    # 40 random fault schedules of the cluster's store under libraft's fixture.
    export KRAPPY_E2E_TORTURE=1
    e2e $ASAN $ASAN/bin asan
    run "unit test_cluster_store (asan, 40 fault schedules)" $ASAN/tests/test_cluster_store
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
    # Speed figures want the machine to themselves: one at a time.
    JOBS=1
    # shellcheck disable=SC2086
    run "bench_vs (krappyd, NATS JetStream, Redis Streams)" env KRAPPYD=bin/krappyd \
        $REL/bench/bench_vs ${BENCH_VS_ARGS:-} --out build/bench/results.md
    for b in "$REL"/bench/bench_*; do
        [ -x "$b" ] || continue
        [ "$(basename "$b")" = bench_vs ] && continue
        run "bench $(basename "$b")" env KRAPPYD=bin/krappyd "$b"
    done
    ;;
valgrind)
    # test_store_alloc opens RocksDB once per allocation it fails: under
    # valgrind, every 16th is enough.
    export KRAPPY_ALLOC_STEP="${KRAPPY_ALLOC_STEP:-16}"
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
summary
