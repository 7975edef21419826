# Builder of the stand-in dockerTools.buildLayeredImage (POSIX sh, host
# tools). Writes a real docker-archive (.tar.gz, one layer) that `docker
# load` / `podman load` accept:
#   - the store paths the config refers to (the Entrypoint's krappyd) plus
#     $contents; as the stand-in packages are empty, the host libraries that
#     krappyd links (ldd) are copied too, in place of nixpkgs' closure;
#   - $fakeRootCommands run in the layer's root with a `chown` shim (the
#     sandbox maps no uid but root, like fakeroot in real nixpkgs): each
#     chowned path is left out of the first tar pass and appended with the
#     recorded owner (recursively: right for -R and for empty dirs like
#     /data, which is all the image uses);
#   - the config JSON with Entrypoint, ExposedPorts, Volumes, User as given.
set -eu
root=$PWD/root
mkdir -p "$root"
paths=$(printf '%s\n' "$configJson" $contents | grep -o '/nix/store/[a-z0-9]\{32\}-[^/" ]*' | sort -u || true)
for p in $paths; do
    mkdir -p "$root$(dirname "$p")"
    cp -a "$p" "$root$p"
    for f in $(find "$p" -type f -perm -u+x); do
        ldd "$f" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
            [ -e "$lib" ] || continue
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done || true
    done
done
shim=$PWD/shim
owners=$PWD/owners
mkdir -p "$shim"
: > "$owners"
cat > "$shim/chown" <<SHIM
#!/bin/sh
[ "\$1" = -R ] && shift
owner=\$1; shift
for p in "\$@"; do echo "\$owner \$p" >> "$owners"; done
SHIM
chmod +x "$shim/chown"
if [ -n "$fakeRootCommands" ]; then
    (cd "$root" && PATH="$shim:$PATH" sh -eu -c "$fakeRootCommands")
fi
mkdir -p out/layer
set --
while read -r o p; do
    set -- "$@" "--exclude=./${p#./}"
done < "$owners"
tar --sort=name --mtime=@1 --numeric-owner --owner=0 --group=0 "$@" -C "$root" \
    -cf out/layer/layer.tar .
while read -r o p; do
    tar --sort=name --mtime=@1 --numeric-owner --owner="${o%%:*}" --group="${o#*:}" \
        -C "$root" -rf out/layer/layer.tar "./${p#./}"
done < "$owners"
diff=$(sha256sum out/layer/layer.tar | cut -d' ' -f1)
printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:01Z","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
    "$arch" "$configJson" "$diff" > out/config.json
cfg=$(sha256sum out/config.json | cut -d' ' -f1)
mv out/config.json "out/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s:%s"],"Layers":["layer/layer.tar"]}]' \
    "$cfg" "$imageName" "$tag" > out/manifest.json
tar --sort=name --mtime=@1 --numeric-owner -C out -cf - . | gzip -9n > "$out"
echo "stub buildLayeredImage: $imageName:$tag, $(echo $paths | wc -w) store path(s)"
