# legacyPackages.<system> of the stand-in nixpkgs.
{ lib, system }:

let
  hostPath = "/usr/bin:/bin:/usr/sbin:/sbin";

  # An empty package with the real attribute name (its files come from the
  # host: Debian's -dev packages, visible through sandbox-paths).
  dummy = name: derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-c" "echo 'stand-in for nixpkgs ${name}; the host provides it' > $out" ];
  };

  toStr = xs: builtins.concatStringsSep " " (map toString xs);

  self = {
    inherit lib system;

    callPackage = fn: args:
      let
        f = if builtins.isFunction fn then fn else import fn;
        auto = builtins.intersectAttrs (builtins.functionArgs f) self;
      in
      f (auto // args);

    stdenv = {
      hostPlatform.system = system;
      # Runs the real Makefile: make, [make $checkTarget], make install.
      mkDerivation =
        { pname ? "unnamed", version ? "0", name ? "${pname}-${version}"
        , src, makeFlags ? [ ], buildInputs ? [ ], nativeBuildInputs ? [ ]
        , nativeCheckInputs ? [ ], doCheck ? false, checkTarget ? "check"
        , enableParallelBuilding ? false, meta ? { }, ...
        }:
        let
          drv = derivation {
            inherit name system src checkTarget;
            builder = "/bin/sh";
            args = [ ./make-builder.sh ];
            makeFlags = toStr makeFlags;
            doCheck = if doCheck then "1" else "";
            parallel = if enableParallelBuilding then "1" else "";
            deps = buildInputs ++ nativeBuildInputs ++ nativeCheckInputs;
            PATH = hostPath;
          };
        in
        drv // { inherit pname version meta; };
    };

    # `nix develop` needs bash as the builder.
    mkShell = { name ? "nix-shell", packages ? [ ], inputsFrom ? [ ], ... }:
      derivation {
        inherit name system;
        builder = "/bin/bash";
        args = [ "-c" "echo stand-in shell > $out" ];
        # nix develop's get-env.sh writes the environment to each of $outputs.
        outputs = [ "out" ];
        deps = packages ++ inputsFrom;
        PATH = hostPath;
      };

    dockerTools.buildLayeredImage =
      { name, tag ? "latest", contents ? [ ], config ? { }
      , fakeRootCommands ? "", ...
      }:
      derivation {
        name = "${name}.tar.gz";
        inherit system tag fakeRootCommands;
        imageName = name;
        builder = "/bin/sh";
        args = [ ./image-builder.sh ];
        contents = toStr contents;
        configJson = builtins.toJSON config;
        arch = if system == "aarch64-linux" then "arm64" else "amd64";
        PATH = hostPath;
      };

    writeText = name: text: derivation {
      inherit name system text;
      builder = "/bin/sh";
      args = [ "-c" "printf '%s' \"$text\" > $out" ];
    };
  } // lib.genAttrs [
    "rocksdb" "libevent" "libcbor" "cmocka" "pkg-config" "valgrind"
    "clang-tools" "cppcheck" "gnumake"
    "zlib" "lz4" "zstd" "snappy" "raft-canonical" "libuv" "rdkafka" "kcat"
  ] dummy;
in
self
