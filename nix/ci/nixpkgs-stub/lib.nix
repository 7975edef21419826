# The few nixpkgs.lib functions krappy's nix files use.
rec {
  genAttrs = names: f:
    builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);

  # Like nixpkgs' cleanSource: drop VCS dirs, result links, objects.
  cleanSource = src: builtins.path {
    path = src;
    name = "source";
    filter = path: type:
      let b = baseNameOf path; in
      !(b == ".git" || b == "build" || builtins.match "result.*" b != null
        || builtins.match ".*\\.(o|so|a)" b != null);
  };

  optionals = cond: xs: if cond then xs else [ ];
  concatStringsSep = builtins.concatStringsSep;
  getExe' = drv: name: "${drv}/bin/${name}";

  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
}
