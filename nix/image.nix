# The krappyd container image: the runtime closure of krappyd only (no shell,
# no compiler), a non-root user from settings.nix with /etc/passwd and
# /etc/group entries, and /data owned by that user.
#   nix build .#image && docker load < result
{ lib, dockerTools, krappyd, settings ? import ./settings.nix }:

let
  s = settings;
  uid = toString s.uid;
  gid = toString s.gid;
in
dockerTools.buildLayeredImage {
  name = s.name;
  tag = s.version;

  # Nothing but what the config below refers to: krappyd and its runtime
  # closure (glibc, rocksdb, libevent, libcbor).
  contents = [ ];

  # Runs in the image's customisation layer, under fakeroot.
  fakeRootCommands = ''
    mkdir -p ./etc ./tmp .${s.dataDir}
    chmod 1777 ./tmp
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      '${s.user}:x:${uid}:${gid}:krappy event store:${s.dataDir}:/sbin/nologin' > ./etc/passwd
    printf '%s\n' 'root:x:0:' '${s.user}:x:${gid}:' > ./etc/group
    chown ${uid}:${gid} .${s.dataDir}
    chmod 0750 .${s.dataDir}
  '';

  config = {
    # Cmd, not Entrypoint, carries the arguments: the StatefulSet's `args`
    # (the same settings.args) replace Cmd rather than being appended twice.
    Entrypoint = [ "${krappyd}/bin/krappyd" ];
    Cmd = s.args;
    User = "${uid}:${gid}";
    WorkingDir = s.dataDir;
    ExposedPorts = {
      "${toString s.dataPort}/tcp" = { };
      "${toString s.adminPort}/tcp" = { };
      "${toString s.kafkaPort}/tcp" = { };
      "${toString s.raftPort}/tcp" = { };
    };
    Volumes = { "${s.dataDir}" = { }; };
    Labels = {
      "org.opencontainers.image.title" = s.name;
      "org.opencontainers.image.version" = s.version;
    };
  };
}
