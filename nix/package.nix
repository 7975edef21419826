# krappy as a nixpkgs-style derivation: the Makefile does the work, with
# PREFIX=$out; its tests run in checkPhase (they skip what needs apt or a
# network inside the sandbox).
{ lib, stdenv, pkg-config, rocksdb, libevent, libcbor, cmocka
, zlib, lz4, zstd, snappy, raft-canonical, libuv, rdkafka, kcat }:

stdenv.mkDerivation {
  pname = "krappy";
  version = "0.1.0";

  src = lib.cleanSource ../.;

  nativeBuildInputs = [ pkg-config ];
  # zlib, lz4, zstd and snappy decompress Kafka record batches; raft-canonical
  # (libraft) and libuv replicate a cluster.
  buildInputs = [ rocksdb libevent libcbor zlib lz4 zstd snappy raft-canonical libuv ];
  # The Kafka listener's tests drive real Kafka clients: librdkafka and kcat.
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
