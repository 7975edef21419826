# krappy as a nixpkgs-style derivation: the Makefile does the work, with
# PREFIX=$out; its tests run in checkPhase (they skip what needs apt or a
# network inside the sandbox).
{ lib, stdenv, pkg-config, rocksdb, libevent, libcbor, cmocka }:

stdenv.mkDerivation {
  pname = "krappy";
  version = "0.1.0";

  src = lib.cleanSource ../.;

  nativeBuildInputs = [ pkg-config ];
  buildInputs = [ rocksdb libevent libcbor ];
  nativeCheckInputs = [ cmocka ];

  makeFlags = [ "PREFIX=${placeholder "out"}" ];
  enableParallelBuilding = true;

  doCheck = true;
  checkTarget = "test";

  meta = {
    description = "Small, fast event store: per-topic streams plus a latest-value view";
    platforms = lib.platforms.linux;
    mainProgram = "krappyd";
  };
}
