#!/bin/sh
# Offline checks of the Nix flake (flake.nix, nix/package.nix, nix/image.nix,
# nix/settings.nix). Run from anywhere:  sh nix/ci/check-nix.sh
#
# No nixpkgs and no binary cache are reachable here, so nixpkgs is replaced
# by the stand-in nix/ci/nixpkgs-stub (see its flake.nix): it proves the
# flake's structure for both systems, the Makefile's build/install contract
# and a loadable docker-archive, not nixpkgs' real attributes or closure.
# Everything Nix writes (store, state, cache, temp) stays under build/nix/.
# Builds run as host root with the host toolchain visible, so they run in a
# private mount namespace with /usr and /etc read-only.
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

if ! command -v nix >/dev/null 2>&1; then
    sh .ci/deps.sh nix-bin
fi

N=$top/build/nix
mkdir -p "$N/conf" "$N/cache" "$N/config" "$N/data" "$N/state" "$N/home" "$N/tmp" "$N/store" "$N/log"
sp="/bin /usr /lib /etc/ld.so.cache /etc/alternatives /etc/passwd /etc/group"
[ -e /lib64 ] && sp="$sp /lib64"
cat > "$N/conf/nix.conf" <<CONF
experimental-features = nix-command flakes
substituters =
build-users-group =
use-registries = false
store = local?root=$N/store
sandbox = true
sandbox-paths = $sp
CONF
export NIX_CONF_DIR="$N/conf" XDG_CACHE_HOME="$N/cache" XDG_CONFIG_HOME="$N/config" \
    XDG_DATA_HOME="$N/data" XDG_STATE_HOME="$N/state" HOME="$N/home" TMPDIR="$N/tmp"
STUB="path:$top/nix/ci/nixpkgs-stub"
# --store/--eval-store again on the command line: without them Nix 2.8's
# `nix flake check` still initialised an empty default store in /nix.
OVR="--store local?root=$N/store --eval-store local?root=$N/store --no-write-lock-file --override-input nixpkgs $STUB"
SYSTEMS="x86_64-linux aarch64-linux"
log=$N/log
rm -f "$log/had-nix"
[ -e /nix ] && : > "$log/had-nix"

# In a private mount namespace, /usr and /etc read-only: a build that
# ignores PREFIX cannot write the host.
guarded() {
    unshare --mount --propagation private sh -eu -c '
        for d in /usr /etc; do mount --bind "$d" "$d"; mount -o remount,bind,ro "$d"; done
        exec "$@"' guarded "$@"
}

# 1. syntax of every tracked .nix file
for f in $(git ls-files '*.nix'); do
    if nix-instantiate --parse "$f" >/dev/null 2>"$log/parse.err"; then
        ok "parse $f"
    else
        bad "parse $f: $(cat "$log/parse.err")"
    fi
done

# 2. the settings shared by the image and the manifests
if json=$(nix-instantiate --eval --strict --json nix/settings.nix 2>"$log/settings.err"); then
    ok "settings.nix evaluates: $json"
else
    bad "settings.nix: $(cat "$log/settings.err")"
fi

# 3. every output, every system, evaluated against the stand-in
# shellcheck disable=SC2086
if nix flake check --no-build $OVR . >"$log/flake-check.log" 2>&1; then
    ok "nix flake check --no-build (stand-in nixpkgs)"
else
    bad "nix flake check --no-build: $(tail -5 "$log/flake-check.log")"
fi
for sys in $SYSTEMS; do
    for a in packages.$sys.default packages.$sys.krappyd packages.$sys.image \
             checks.$sys.krappyd devShells.$sys.default; do
        # shellcheck disable=SC2086
        if nix eval --raw $OVR ".#$a.drvPath" >/dev/null 2>"$log/eval.err"; then
            ok "eval $a"
        else
            bad "eval $a: $(tail -3 "$log/eval.err")"
        fi
    done
    # shellcheck disable=SC2086
    if prog=$(nix eval --raw $OVR ".#apps.$sys.default.program" 2>"$log/eval.err") &&
       case $prog in /nix/store/*-krappy-*/bin/krappyd) true ;; *) false ;; esac; then
        ok "eval apps.$sys.default = $prog"
    else
        bad "apps.$sys.default: ${prog:-} $(tail -3 "$log/eval.err")"
    fi
done

# 4. build the package (real Makefile, host toolchain) and the image
sys=x86_64-linux
# shellcheck disable=SC2086
if guarded nix build -L --no-link --json $OVR ".#packages.$sys.default" \
        ".#packages.$sys.image" ".#checks.$sys.krappyd" >"$log/build.json" 2>"$log/build.log"; then
    ok "nix build packages.$sys.default, .image, checks.$sys.krappyd (in a read-only /usr,/etc namespace)"
else
    bad "nix build: $(tail -15 "$log/build.log")"
fi
outs=$(grep -o '"out":"[^"]*"' "$log/build.json" 2>/dev/null | sed 's/"out":"//; s/"$//' || true)
pkg=$(echo "$outs" | grep -- '-krappy-' | head -1 || true)
img=$(echo "$outs" | grep -- '\.tar\.gz$' | head -1 || true)
if [ -n "$pkg" ]; then
    d=$N/store$pkg
    for f in bin/krappyd bin/krappy lib/libkrappy.a lib/libkrappy.so.0 \
             include/krappy/protocol.h include/krappy/client.h lib/pkgconfig/krappy.pc; do
        if [ -e "$d/$f" ]; then ok "\$out/$f"; else bad "\$out/$f missing ($pkg)"; fi
    done
    if grep -qx "prefix=$pkg" "$d/lib/pkgconfig/krappy.pc" 2>/dev/null; then
        ok "krappy.pc prefix is \$out"
    else
        bad "krappy.pc prefix is not $pkg"
    fi
    if "$d/bin/krappyd" --version >/dev/null 2>&1; then ok "\$out/bin/krappyd runs"; else bad "\$out/bin/krappyd does not run"; fi
else
    bad "no package output found"
fi
if [ -n "$img" ] && [ -f "$N/store$img" ]; then
    t=$N/tmp/image-check
    rm -rf "$t"; mkdir -p "$t"
    gunzip -c "$N/store$img" | tar -C "$t" -xf -
    cfg=$(sed -n 's/.*"Config":"\([^"]*\)".*/\1/p' "$t/manifest.json")
    c=$(cat "$t/$cfg")
    expect() { case $c in *"$1"*) ok "image config has $1" ;; *) bad "image config lacks $1" ;; esac; }
    get() { echo "$json" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" | tr -d '"'; }
    uid=$(get uid); gid=$(get gid); user=$(get user); name=$(get name); version=$(get version)
    expect "\"User\":\"$uid:$gid\""
    expect '"7070/tcp":{}'
    expect '"7071/tcp":{}'
    expect '"Volumes":{"/data":{}}'
    expect '/bin/krappyd"],'
    expect "\"Cmd\":$(echo "$json" | sed 's/.*"args":\(\[[^]]*\]\).*/\1/')"
    if grep -q "\"RepoTags\":\[\"$name:$version\"\]" "$t/manifest.json"; then ok "image tag $name:$version"; else bad "image tag is not $name:$version"; fi
    tar -tvf "$t/layer/layer.tar" --numeric-owner > "$t/list"
    if grep -Eq "^d.* $uid/$gid .* \./data/?\$" "$t/list"; then ok "image /data owned by $uid:$gid"; else bad "image /data owner"; fi
    if tar -xOf "$t/layer/layer.tar" ./etc/passwd | grep -q "^$user:x:$uid:$gid:"; then ok "image /etc/passwd has $user ($uid)"; else bad "image /etc/passwd"; fi
    if tar -xOf "$t/layer/layer.tar" ./etc/group | grep -q "^$user:x:$gid:"; then ok "image /etc/group has $user ($gid)"; else bad "image /etc/group"; fi
    if grep -Eq '/bin/(sh|bash|dash|gcc|cc|make|apt)$' "$t/list"; then
        bad "image holds build tools"
    else
        ok "image holds no shell or compiler"
    fi
else
    bad "no image archive found"
fi

# 5. the dev shell
# shellcheck disable=SC2086
if guarded nix develop $OVR ".#devShells.$sys.default" -c true >"$log/develop.log" 2>&1; then
    ok "nix develop -c true"
else
    bad "nix develop: $(tail -5 "$log/develop.log")"
fi

# 6. negative self-test: a broken copy must fail evaluation
b=$N/broken
rm -rf "$b"; mkdir -p "$b/nix/ci"
cp flake.nix "$b/"; cp nix/*.nix "$b/nix/"; cp -r nix/ci/nixpkgs-stub "$b/nix/ci/"
sed -i 's/{ lib, dockerTools, krappyd/{ lib, dockerTool, krappyd/' "$b/nix/image.nix"
# shellcheck disable=SC2086
if nix flake check --no-build $OVR "path:$b" >"$log/broken.log" 2>&1; then
    bad "broken flake (misspelt dockerTools) not caught"
else
    ok "broken flake caught (misspelt dockerTools: $(grep -m1 -o 'error: .*' "$log/broken.log"))"
fi
cp nix/image.nix "$b/nix/image.nix"
sed -i '/image = pkgs.callPackage/d' "$b/flake.nix"
# shellcheck disable=SC2086
if nix eval --raw $OVR "path:$b#packages.x86_64-linux.image.drvPath" >"$log/broken2.log" 2>&1; then
    bad "broken flake (packages.image removed) not caught"
else
    ok "broken flake caught (packages.image removed)"
fi

if [ -e /nix ] && [ ! -e "$log/had-nix" ]; then
    bad "something wrote /nix on the host"
fi
echo "not checked here (no nixpkgs, no network): real nixpkgs attribute names and"
echo "  arguments (rocksdb, libcbor, dockerTools.buildLayeredImage, fakeRootCommands),"
echo "  flake.lock (none is committed; run 'nix flake lock' where GitHub is reachable),"
echo "  the real runtime closure and image size, 'make test' as the checkPhase"
echo "  (the stand-in runs 'make' + a version check; 'make check' covers the tests)."
[ "$fail" = 0 ] || { echo "check-nix: FAILED"; exit 1; }
echo "check-nix: all ok"
