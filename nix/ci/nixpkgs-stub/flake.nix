# A stand-in for nixpkgs, for offline checks only (see nix/ci/check-nix.sh).
# It provides just the attributes krappy's flake uses. mkDerivation runs the
# real Makefile with the HOST toolchain (no nixpkgs here); the library
# packages are empty dummies. It proves the flake's structure and the
# Makefile's install contract, not nixpkgs' real attribute names or closure.
{
  description = "offline stand-in for nixpkgs (krappy CI only)";

  outputs = { self }:
    let
      lib = import ./lib.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ]
        (system: import ./pkgs.nix { inherit lib system; });
    };
}
