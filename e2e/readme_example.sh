#!/bin/sh
# e2e/readme_example.sh - README's libkrappy program, exactly as the README
# shows it (between its readme-example markers), built with pkg-config
# against a `make install` into build/readme/prefix, and run against a real
# krappyd the two ways the README says: with an rpath, and with
# LD_LIBRARY_PATH. Run by `make test` after the -O2 build.
set -eu
cd "$(dirname "$0")/.."
out=$PWD/build/readme
prefix=$out/prefix
rm -rf "$out"
mkdir -p "$out"

awk '/<!-- readme-example:begin hello.c -->/ { on = 1; next }
     /<!-- readme-example:end -->/ { on = 0 }
     on && !/^```/ { print }' README.md > "$out/hello.c"
[ -s "$out/hello.c" ] || { echo "readme_example: no program between the README's markers" >&2; exit 1; }

make --no-print-directory install PREFIX="$prefix" >"$out/install.log" 2>&1 ||
    { cat "$out/install.log" >&2; exit 1; }
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cflags_libs=$(pkg-config --cflags --libs krappy)
libdir=$(pkg-config --variable=libdir krappy)
# shellcheck disable=SC2086
cc "$out/hello.c" -o "$out/hello-rpath" $cflags_libs -Wl,-rpath,"$libdir"
# shellcheck disable=SC2086
cc "$out/hello.c" -o "$out/hello" $cflags_libs

tmp=$(mktemp -d)
pid=""
cleanup() {
    rc=$?
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT INT TERM
# RocksDB's own log beside the data, not in /dev/shm where it would outlive $tmp
bin/krappyd --listen 127.0.0.1:0 --http off --data "$tmp/data" --port-file "$tmp/ports" \
    --rocksdb-log-dir "$tmp" --log-format text >"$tmp/krappyd.log" 2>&1 &
pid=$!
i=0
until [ -s "$tmp/ports" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "readme_example: krappyd did not start:" >&2
        cat "$tmp/krappyd.log" >&2
        exit 1
    fi
    sleep 0.1
done
export KRAPPY_ADDR="127.0.0.1:$(sed -n 1p "$tmp/ports")"

got=$("$out/hello-rpath")
want=$(printf '0 ada\n1 bob\n2 cy')
[ "$got" = "$want" ] || { echo "readme_example: with the rpath it printed: $got" >&2; exit 1; }
got=$(LD_LIBRARY_PATH="$libdir" "$out/hello")
want=$(printf '3 ada\n4 bob\n5 cy')
[ "$got" = "$want" ] || { echo "readme_example: with LD_LIBRARY_PATH it printed: $got" >&2; exit 1; }
echo "readme_example: README's program built against $prefix and ran both ways"
