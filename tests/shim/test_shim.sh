#!/bin/sh
# tests/shim/test_shim.sh - self-tests of libkrshim.so and powercut, then
# RocksDB under a simulated power cut and under injected faults.
#   sh tests/shim/test_shim.sh [BUILDDIR]     (default build/asan; needs
#   `make BUILD=asan shim` or tests-build). No network, bounded (~10-30 s).
# Prints one line per check and "N passed, N failed"; exit 1 on a failure.
set -u

B=${1:-build/asan}
S=$B/shim
for f in libkrshim.so powercut shimtest rocks_powercut; do
    [ -x "$S/$f" ] || [ -f "$S/$f" ] || { echo "missing $S/$f (make BUILD=... shim)" >&2; exit 2; }
done
S=$(cd "$S" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/krshim.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
R=$T/root
L=$T/log
F=$T/faults

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
bad() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    [ -f "$T/out" ] && sed 's/^/    | /' "$T/out"
    [ -s "$T/err" ] && sed 's/^/    ! /' "$T/err" | head -20
    return 0
}
check() { name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

fresh() { rm -rf "$R" "$L" "$F" "$F.tmp" "$T/go" "$T/out" "$T/err"; mkdir "$R"; }

# shimtest under the shim; a SIGKILL of it is expected (status 137)
under() {
    (env LD_PRELOAD="$S/libkrshim.so" \
        ASAN_OPTIONS="verify_asan_link_order=0:${ASAN_OPTIONS:-detect_leaks=1}" \
        KRAPPY_SHIM_ROOT="$R" KRAPPY_SHIM_LOG="$L" KRAPPY_SHIM_FAULTS="$F" \
        "$@" >"$T/out" 2>"$T/err"
        echo $? >"$T/rc") 2>/dev/null # no "Killed" from the shell
}
st() { under "$S/shimtest" "$@"; }
cut() { "$S/powercut" "$@" "$L" "$R" >"$T/cut" 2>>"$T/err"; }
size() { stat -c %s "$1" 2>/dev/null || echo none; }
has() { grep -q -- "$1" "$T/out"; }
line() { sed -n "$1p" "$T/out" | grep -q -- "$2"; }
logged() { grep -q -- "$1" "$L"; }
rc() { [ "$(cat "$T/rc")" = "$1" ]; }
# the first N bytes are shimtest's pattern a..z repeating
pattern_ok() {
    head -c "$2" "$1" | cmp -s - "$T/pattern" -n "$2"
}
# bytes [OFF, OFF+N) of FILE are all zero
zeroed() { [ "$(dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | tr -d '\000' | wc -c)" = 0 ]; }
awk 'BEGIN { for (i = 0; i < 4096; i++) printf "%c", 97 + i % 26 }' >"$T/pattern"

echo "== shim self-tests ($S)"

# 1. synced prefix survives, the rest is cut
fresh
st open "$R/a" write 100 fdatasync write 50 kill
check "killed -9 under the shim" rc 137
check "sync record with the length at the sync" logged "^sync [0-9]* 100 $R/a\$"
cut
check "powercut truncates to the synced length" [ "$(size "$R/a")" = 100 ]
check "synced bytes intact" pattern_ok "$R/a" 100
check "powercut says what it did" grep -q "^truncate $R/a 150 -> 100" "$T/cut"
check "powercut appends its marker" [ "$(tail -n 1 "$L")" = powercut ]

# 2. new files: never-synced in a never-dirsynced dir vanish, in a dirsynced dir become empty
fresh
st mkdir "$R/d" open "$R/d/new" write 10 close mkdir "$R/e" open "$R/e/new" write 10 dirsync "$R/e" kill
cut
check "never-synced new file in a never-synced dir vanishes" [ "$(size "$R/d/new")" = none ]
check "never-synced new file in a dirsynced dir is emptied" [ "$(size "$R/e/new")" = 0 ]

# 3. rename of a synced temp file keeps its content (tracked by inode)
fresh
st open "$R/tmp" write 64 fsync close rename "$R/tmp" "$R/final" kill
check "rename logged" logged "^rename $R/tmp $R/final\$"
cut
check "renamed synced file keeps its content" [ "$(size "$R/final")" = 64 ]
check "renamed synced file content intact" pattern_ok "$R/final" 64
check "temp name gone" [ "$(size "$R/tmp")" = none ]
# ... and with -s (strict POSIX) the same file vanishes without a dirsync
fresh
st open "$R/tmp" write 64 fsync close rename "$R/tmp" "$R/final" kill
cut -s
check "strict: synced new file without dirsync vanishes" [ "$(size "$R/final")" = none ]
fresh
st open "$R/tmp" write 64 fsync close rename "$R/tmp" "$R/final" dirsync "$R" kill
check "dirsync logged" logged "^dirsync $R\$"
cut -s
check "strict: with a dirsync after the rename it stays" [ "$(size "$R/final")" = 64 ]
fresh
st open "$R/tmp" write 64 fsync close rename "$R/tmp" "$R/final" odirsync "$R" kill
check "fsync of an fd opened behind the shim's back (opendir) is adopted" logged "^dirsync $R\$"

# 4. pre-existing files: unsynced appends dropped, untouched files kept
fresh
head -c 50 "$T/pattern" >"$R/old"
head -c 70 "$T/pattern" >"$R/untouched"
st append "$R/old" write 30 kill
check "open record for a pre-existing file" logged "^open [0-9]* 50 $R/old\$"
cut
check "pre-existing file back to its size at open" [ "$(size "$R/old")" = 50 ]
check "untouched file kept" [ "$(size "$R/untouched")" = 70 ]

# 5. the log after a powercut marker: a second run and a second cut
st append "$R/old" write 10 fdatasync write 5 kill
cut
check "second cut: synced length of the second run" [ "$(size "$R/old")" = 60 ]
check "two markers in the log" [ "$(grep -c '^powercut$' "$L")" = 2 ]

# 6. openat/renameat (dirfd-relative), writev/pwritev, sync_file_range, fopen, dup2
fresh
mkdir "$R/sub"
st openat "$R/sub" x writev 90 pwritev 30 90 fdatasync srange write 7 renameat "$R/sub" x y kill
check "openat tracked (create record)" logged "^create [0-9]* $R/sub/x\$"
check "writev + pwritev counted by the sync" logged "^sync [0-9]* 120 $R/sub/x\$"
check "sync_file_range logged as rangesync, not sync" logged "^rangesync [0-9]* 120 $R/sub/x\$"
check "renameat resolved against its dirfd" logged "^rename $R/sub/x $R/sub/y\$"
cut
check "dirfd-relative file cut to its sync" [ "$(size "$R/sub/y")" = 120 ]
fresh
st fopen "$R/f" write 33 fsync write 11 close kill
check "fopen'd file: fsync of its fd logged" logged "^sync [0-9]* 33 $R/f\$"
fresh
printf 'write victim SHORT\n' >"$F"
st open "$R/victim" dup2 77 write 100 write 100 fdatasync kill
check "dup2 copies the tracking (SHORT hits fd 77)" has "^write 100 -> 50\$"
check "tracked fd 77 syncs" logged "^sync [0-9]* 150 $R/victim\$"

# 7. files outside ROOT are never touched or logged
fresh
printf 'any * EIO\n' >"$F"
st open "$T/outside" write 10 fdatasync close kill
check "outside ROOT: no fault" has "^write 10 -> 10\$"
check "outside ROOT: not logged" sh -c "! grep -q outside '$L' 2>/dev/null"

# 8. faults: ENOSPC after=2, switched off at run time
fresh
printf 'write victim ENOSPC after=2\n' >"$F"
st open "$R/victim" write 10 write 10 write 10 open "$R/other" write 10 \
    setfaults "" open "$R/victim" write 10 kill
check "first two writes pass" [ "$(grep -c '^write 10 -> 10$' "$T/out")" -ge 2 ]
check "third write fails with ENOSPC" line 4 "^write 10 -> -1 ENOSPC\$"
check "non-matching path unaffected" line 6 "^write 10 -> 10\$"
check "fault logged" logged "^fault write ENOSPC $R/victim\$"
check "rule removed at run time: writes succeed again" line 9 "^write 10 -> 10\$"
# times=1, and an in-place edit of the fault file by another process
fresh
printf 'write victim EIO times=1\nsync victim EDQUOT\n' >"$F"
(st open "$R/victim" write 10 write 10 fdatasync waitfor "$T/go" fdatasync write 3 kill) &
n=0
while ! grep -q "^fdatasync" "$T/out" 2>/dev/null && [ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done
: >"$F"
touch "$T/go"
wait
check "times=1: first write EIO, second passes" \
    sh -c "sed -n 2,3p '$T/out' | tr '\n' ' ' | grep -q 'write 10 -> -1 EIO write 10 -> 10'"
check "sync fault EDQUOT" line 4 "^fdatasync -> -1 EDQUOT\$"
check "fault file emptied in place by another process: sync passes" \
    line 6 "^fdatasync -> 0\$"

# 9. SHORT write returns half, later writes are whole
fresh
printf 'write victim SHORT\n' >"$F"
st open "$R/victim" write 100 write 100 pwrite 40 0 writev 30 kill
check "SHORT: half written" line 2 "^write 100 -> 50\$"
check "SHORT: next write whole" line 3 "^write 100 -> 100\$"
check "SHORT logged" logged "^fault write SHORT $R/victim\$"
fresh
printf 'write victim SHORT times=2\n' >"$F"
st open "$R/victim" writev 30 pwritev 31 0 write 1 kill
check "SHORT on writev and pwritev" \
    sh -c "sed -n 2,3p '$T/out' | tr '\n' ' ' | grep -q 'writev 30 -> 15 pwritev 31 -> 15'"

# 10. failed fdatasync: the unsynced bytes are lost even if a later sync passes
fresh
printf 'sync victim EIO after=1 times=1\n' >"$F"
st open "$R/victim" write 100 fdatasync write 100 fdatasync write 100 fdatasync kill
check "failed sync reported" line 5 "^fdatasync -> -1 EIO\$"
check "syncfail logged" logged "^syncfail [0-9]* 200 $R/victim\$"
cut
check "length after a later good sync" [ "$(size "$R/victim")" = 300 ]
check "bytes of the failed sync zeroed" zeroed "$R/victim" 100 100
check "bytes before it intact" pattern_ok "$R/victim" 100
check "powercut reports the zeroing" grep -q "^zero $R/victim 100..200" "$T/cut"
# the recovery DESIGN.md asks for: truncate to the synced length, rewrite, sync
fresh
printf 'sync victim EIO after=1 times=1\n' >"$F"
st open "$R/victim" write 100 fdatasync write 100 fdatasync ftruncate 100 pwrite 100 100 fdatasync kill
cut
check "truncate + rewrite after a failed sync: length kept" [ "$(size "$R/victim")" = 200 ]
check "truncate + rewrite after a failed sync: nothing zeroed" sh -c "! grep -q '^zero' '$T/cut'"

# 11. other fault ops
fresh
printf 'open blocked ENOSPC\nrename final EIO\ntruncate victim EROFS\nmkdir nodir EDQUOT\nunlink victim EIO\nfallocate victim ENOSPC\n' >"$F"
st open "$R/blocked" open "$R/victim" ftruncate 0 fallocate 4096 write 5 fsync rename "$R/victim" "$R/final" \
    unlink "$R/victim" mkdir "$R/nodir" kill
check "open O_CREAT fault" line 1 "^open -> -1 ENOSPC\$"
check "the blocked file was not created" [ "$(size "$R/blocked")" = none ]
check "truncate fault" grep -q "^ftruncate -> -1 EROFS\$" "$T/out"
check "fallocate fault" grep -q "^fallocate -> -1 ENOSPC\$" "$T/out"
check "rename fault" grep -q "^rename -> -1 EIO\$" "$T/out"
check "unlink fault" grep -q "^unlink -> -1 EIO\$" "$T/out"
check "mkdir fault" grep -q "^mkdir -> -1 EDQUOT\$" "$T/out"

# 12. threads: every fdatasync of 8 threads x 200 is logged once
fresh
st threads 8 "$R" 200
check "threads ran" has "^threads ok\$"
check "1600 sync records" [ "$(grep -c '^sync ' "$L")" = 1600 ]
check "no ASan report" sh -c "! grep -q 'ERROR: AddressSanitizer\|LeakSanitizer' '$T/err'"

echo "== RocksDB under the shim (WAL off, flush + wait, kill -9, power cut)"
fresh
i=0
for delay in none 2000 8000 20000; do
    i=$((i + 1))
    if [ $delay = none ]; then
        under "$S/rocks_powercut" write "$R/db" t$i
    else
        under "$S/rocks_powercut" write "$R/db" t$i $delay
    fi
    check "rocksdb run $i killed (delay $delay us)" rc 137
    cut
    sed 's/^/    cut: /' "$T/cut"
    if "$S/rocks_powercut" check "$R/db" t$i >"$T/out" 2>"$T/err"; then
        ok "rocksdb reopens after the cut, all flushed keys there (run $i: $(cat "$T/out" | head -1))"
    else
        bad "rocksdb reopens after the cut, all flushed keys there (run $i)"
    fi
done
fresh
under "$S/rocks_powercut" faults "$R/db"
sed 's/^/    /' "$T/out"
check "rocksdb: ENOSPC on .sst, EIO on fdatasync of .sst and MANIFEST fail the flush; reopen recovers" rc 0

echo "$passed passed, $failed failed"
[ $failed = 0 ]
