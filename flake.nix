{
  description = "krappy - a small, fast event store (krappyd, libkrappy, krappy CLI)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  # Offline checks replace nixpkgs with a stand-in:
  #   sh nix/ci/check-nix.sh
  # (nix flake check --override-input nixpkgs path:./nix/ci/nixpkgs-stub)
  outputs = { self, nixpkgs }:
    let
      settings = import ./nix/settings.nix;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (system: pkgs: rec {
        krappyd = pkgs.callPackage ./nix/package.nix { };
        default = krappyd;
        image = pkgs.callPackage ./nix/image.nix { inherit krappyd settings; };
      });

      apps = forAll (system: pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${system}.krappyd}/bin/krappyd";
        };
      });

      devShells = forAll (system: pkgs: {
        default = pkgs.mkShell {
          # compiler, make, pkg-config, rocksdb, libevent, libcbor, cmocka
          inputsFrom = [ self.packages.${system}.krappyd ];
          packages = [ pkgs.gnumake pkgs.pkg-config pkgs.cmocka pkgs.valgrind pkgs.clang-tools ];
        };
      });

      # The package with doCheck = true: `make test` runs in its checkPhase.
      checks = forAll (system: pkgs: {
        krappyd = self.packages.${system}.krappyd;
      });
    };
}
