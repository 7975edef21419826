# Builder of the stand-in stdenv.mkDerivation (POSIX sh, host toolchain).
# Phases: unpack (copy $src), build (make $makeFlags), check, install
# (make install $makeFlags).
# Check: the package's real checkTarget (`make test`: an ASan build, unit,
# fuzz replay and the whole e2e suite) takes too long for this offline CI,
# and `make check` on the host already runs it. Here the check phase runs a
# quick subset instead: `make all` already fails on non-API exports of
# libkrappy.so (the `symbols` target); then the built binaries must start and
# report the package version. Real nixpkgs runs `make $checkTarget`.
set -eu
echo "stub mkDerivation: $name (checkTarget '$checkTarget' replaced by a quick check)"
cp -r "$src" ./src
chmod -R u+w ./src
cd ./src
jobs=1
[ -n "$parallel" ] && jobs=$(nproc 2>/dev/null || echo 2)
# shellcheck disable=SC2086
make -j"$jobs" $makeFlags
if [ -n "$doCheck" ]; then
    want=$(sed -n 's/^VERSION *:= *//p' Makefile)
    ./bin/krappyd --version | grep -F "krappyd $want"
    ./bin/krappy --version | grep -F "krappy $want"
fi
# shellcheck disable=SC2086
make install $makeFlags
