# krappy as a nixpkgs-style derivation: the Makefile does the work, with
# PREFIX=$out; its tests run in checkPhase (they skip what needs apt or a
# network inside the sandbox).
{ lib, stdenv, pkg-config, rocksdb, libevent, libcbor, zlib, lz4, zstd, snappy, cmocka
, rdkafka, kcat }:

stdenv.mkDerivation {
  pname = "krappy";
  version = "0.1.0";

  src = lib.cleanSource ../.;

  nativeBuildInputs = [ pkg-config ];
  # zlib, lz4, zstd, snappy: the Kafka codec's decompressors.
  buildInputs = [ rocksdb libevent libcbor zlib lz4 zstd snappy ];
  # librdkafka and kcat drive the Kafka listener's e2e tests.
  nativeCheckInputs = [ cmocka rdkafka kcat ];

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
