#!/bin/sh
# Install the Debian packages krappy needs, when they are missing.
#   sh .ci/deps.sh            build and test packages
#   sh .ci/deps.sh PKG...     just these
# As root with apt-get, missing packages are installed (apt-get update runs
# once, only when something is missing). Otherwise this prints the command
# to run and fails. Inside a Nix build there is no apt: it only checks that
# pkg-config finds the libraries.
set -eu

BUILD_PKGS="gcc make pkg-config librocksdb-dev libevent-dev libcbor-dev zlib1g-dev liblz4-dev
libzstd-dev libsnappy-dev libraft-dev libuv1-dev"
# kcat and librdkafka: the Kafka listener's tests drive real Kafka clients.
TEST_PKGS="libcmocka-dev librdkafka-dev kcat"
pkgs=${*:-"$BUILD_PKGS $TEST_PKGS"}

if [ -n "${NIX_BUILD_TOP:-}" ] || ! command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for m in libevent libcbor zlib liblz4 libzstd; do
        pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"
    done
    if [ -n "$missing" ]; then
        echo "krappy: pkg-config cannot find:$missing - install them with your package manager." >&2
        exit 1
    fi
    exit 0
fi

missing=""
for p in $pkgs; do
    case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "krappy: installing missing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    echo "krappy: installed:$missing"
else
    echo "krappy: missing Debian packages:$missing" >&2
    echo "krappy: install them with: sudo apt-get install$missing" >&2
    exit 1
fi
