#!/bin/sh
# make test-ui: the web console in a real browser.
#
# Installs playwright-core (pinned by e2e/ui/package-lock.json) into
# build/ui/node_modules when missing, starts bin/krappyd on 127.0.0.1 with
# random ports and an --http-token in a mktemp -d directory, produces a topic
# with bin/krappy, runs e2e/ui/console.test.mjs in headless /usr/bin/chromium
# and stops krappyd. Screenshots go to build/ui/*.png.
# Expects bin/krappyd, bin/krappy and /usr/bin/chromium (the Makefile sees to them).
set -eu
cd "$(dirname "$0")/../.."
OUT=build/ui
TOPIC=ui-demo
TOKEN=ui-t0k3n

mkdir -p "$OUT"
# Node.js and npm: the machine's own when it has them, else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    sh .ci/deps.sh nodejs npm
fi
if [ ! -f "$OUT/node_modules/playwright-core/package.json" ] ||
    ! cmp -s e2e/ui/package-lock.json "$OUT/package-lock.json"; then
    echo "test-ui: installing playwright-core into $OUT/node_modules"
    cp e2e/ui/package.json e2e/ui/package-lock.json "$OUT/"
    (cd "$OUT" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi

tmp=$(mktemp -d)
pid=""
member=""
cleanup() {
    rc=$?
    if [ -n "$member" ]; then
        kill "$member" 2>/dev/null || true
        wait "$member" 2>/dev/null || true
    fi
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin/krappyd --listen 127.0.0.1:0 --http 127.0.0.1:0 --http-token "$TOKEN" \
    --data "$tmp/data" --port-file "$tmp/ports" --rocksdb-log-dir "$tmp" \
    --log-format text >"$tmp/krappyd.log" 2>&1 &
pid=$!
i=0
while [ "$(cat "$tmp/ports" 2>/dev/null | wc -l)" -lt 2 ]; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
        echo "test-ui: krappyd did not start; its log:" >&2
        cat "$tmp/krappyd.log" >&2
        exit 1
    fi
    sleep 0.1
done
port=$(sed -n 1p "$tmp/ports")
http=$(sed -n 2p "$tmp/ports")

# A topic with plain and JSON values, a header, a value too long to show
# whole, events at known times, a consumer group that lags and one with a
# member connected; another topic to delete.
cli() { bin/krappy -p "$port" --timeout 10000 "$@" >/dev/null; }
cli produce "$TOPIC" greeting=hello colour=blue
cli produce -J "$TOPIC" 'fruit={"name":"apple","qty":3,"tags":["red","crisp"]}' \
    'order-1={"item":"pear","price":1.25}'
i=0
while [ $i -lt 40 ]; do
    echo "sensor-$((i % 4))	reading $i"
    i=$((i + 1))
done | cli produce "$TOPIC"
cli consume "$TOPIC" --group billing --max 10
cli produce "$TOPIC" -H trace=abc-123 traced=yes           # offset 44
cli produce -J "$TOPIC" "big=\"$(head -c 6000 /dev/zero | tr '\0' x)\""
# 2099-01-01T10:00:00Z and a minute later (after every event produced now),
# then 20 more from 10:05.
printf '{"key":"timed-a","value":1,"ts":4070944800000}\n{"key":"timed-b","value":2,"ts":4070944860000}\n' |
    cli --json produce "$TOPIC"
i=0
while [ $i -lt 20 ]; do
    printf '{"key":"late-%d","value":%d,"ts":%d}\n' $i $i $((4070945100000 + i * 1000))
    i=$((i + 1))
done | cli --json produce "$TOPIC"
cli produce other-topic a=1
# A member that stays connected (a long poll parked) while the page looks.
bin/krappy -p "$port" consume "$TOPIC" --group live --start latest --follow >/dev/null 2>&1 &
member=$!

KRAPPY_UI_URL="http://127.0.0.1:$http/" KRAPPY_UI_TOKEN="$TOKEN" KRAPPY_UI_TOPIC="$TOPIC" \
    KRAPPY_UI_OUT="$OUT" timeout 180 node e2e/ui/console.test.mjs
