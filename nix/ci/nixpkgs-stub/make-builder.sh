# Builder of the stand-in stdenv.mkDerivation (POSIX sh, host toolchain).
# Phases: unpack (copy $src), build (make $makeFlags), check (make
# $checkTarget, as nixpkgs' checkPhase does: for krappy `make test`, inside
# the sandbox: no apt, no network but loopback, no /tmp), install (make
# install $makeFlags).
set -eu
echo "stub mkDerivation: $name (checkTarget '$checkTarget')"
cp -r "$src" ./src
chmod -R u+w ./src
cd ./src
jobs=1
[ -n "$parallel" ] && jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck disable=SC2086
make -j"$jobs" $makeFlags
if [ -n "$doCheck" ]; then
    # shellcheck disable=SC2086
    make $makeFlags "${checkTarget:-check}"
    want=$(sed -n 's/^VERSION *:= *//p' Makefile)
    ./bin/krappyd --version | grep -F "krappyd $want"
    ./bin/krappy --version | grep -F "krappy $want"
fi
# shellcheck disable=SC2086
make install $makeFlags
