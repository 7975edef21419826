#!/bin/sh
# Runs the image built by check-nix.sh (stand-in nixpkgs) with podman, the
# way the StatefulSet runs it: its args (settings.args), its user
# (uid:gid from settings.nix), a data volume at settings.dataDir. Probes
# /healthz and /readyz from outside on 127.0.0.1, then SIGTERM (podman stop)
# must end krappyd cleanly within the grace period.
#   sh nix/ci/check-image.sh        (runs check-nix.sh first if needed)
# podman's storage and config live under build/podman/; podman 4.3 on this
# host needs runc, cgroupfs, host networking and explicit ulimits.
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

command -v podman >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 || sh .ci/deps.sh podman runc
command -v curl >/dev/null 2>&1 || sh .ci/deps.sh curl

# podman still writes a few host paths of its own (the blob-info cache in
# /var/lib/containers, runc state in /run/runc): run the rest in a private
# mount namespace where /var/lib and /run are overlays whose writes land in
# build/podman/overlay/. The network namespace stays the host's, so the
# probes below still come from outside the container.
P=$top/build/podman
if [ -z "${KRAPPY_IMAGE_NS:-}" ]; then
    for d in var-lib run; do
        rm -rf "$P/overlay/$d"; mkdir -p "$P/overlay/$d/up" "$P/overlay/$d/work"
    done
    exec unshare --mount --propagation private env KRAPPY_IMAGE_NS=1 sh -eu -c '
        P=$1; shift
        mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$P/overlay/var-lib/up,workdir=$P/overlay/var-lib/work" /var/lib
        mount -t overlay overlay -o "lowerdir=/run,upperdir=$P/overlay/run/up,workdir=$P/overlay/run/work" /run
        exec sh "$@"' ns "$P" "$0" "$@"
fi

N=$top/build/nix
if [ ! -s "$N/log/build.json" ]; then
    sh nix/ci/check-nix.sh >/dev/null || { echo "FAIL check-nix.sh failed; run it first"; exit 1; }
fi
img=$(grep -o '"out":"[^"]*\.tar\.gz"' "$N/log/build.json" | sed 's/"out":"//; s/"$//' | head -1)
[ -n "$img" ] && [ -f "$N/store$img" ] || { echo "FAIL no image archive in $N/log/build.json"; exit 1; }

# settings.nix (the same values the StatefulSet is checked against)
S=$(NIX_CONF_DIR=$N/conf nix-instantiate --eval --strict --json nix/settings.nix)
get() { echo "$S" | sed -n "s/.*\"$1\":\\([^,}]*\\).*/\\1/p" | tr -d '"'; }
uid=$(get uid); gid=$(get gid); name=$(get name); version=$(get version)
dataDir=$(get dataDir); adminPort=$(get adminPort); dataPort=$(get dataPort)
kafkaPort=$(get kafkaPort)
grace=$(get terminationGracePeriodSeconds)
args=$(echo "$S" | sed 's/.*"args":\[\([^]]*\)\].*/\1/' | tr -d '"' | tr ',' ' ')

mkdir -p "$P/conf" "$P/storage" "$P/run" "$P/tmp" "$P/volumes" "$P/xdg" "$P/networks" "$P/runc"
cat > "$P/conf/containers.conf" <<CONF
[containers]
netns = "host"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
cgroups = "enabled"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
tmp_dir = "$P/tmp"
image_copy_tmp_dir = "$P/tmp"
volume_path = "$P/volumes"
static_dir = "$P/storage/libpod"
[network]
network_config_dir = "$P/networks"
CONF
cat > "$P/conf/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$P/storage"
runroot = "$P/run"
CONF
export CONTAINERS_CONF="$P/conf/containers.conf" CONTAINERS_STORAGE_CONF="$P/conf/storage.conf" \
    XDG_RUNTIME_DIR="$P/xdg" XDG_CONFIG_HOME="$P/xdg" TMPDIR="$P/tmp"
# runc keeps its state under build/ too (its default is /run/runc).
pm() { podman --root "$P/storage" --runroot "$P/run" --storage-driver vfs \
    --runtime-flag "root=$P/runc" "$@"; }

c=krappy-image-check
pm rm -f "$c" >/dev/null 2>&1 || true
if gunzip -c "$N/store$img" | pm load >"$P/load.log" 2>&1; then
    ok "podman load $name:$version"
else
    bad "podman load: $(tail -3 "$P/load.log")"; exit 1
fi

# The container shares the host's network here (podman's own networking does
# not work on this host), so the StatefulSet's 0.0.0.0 would listen on every
# host interface: bind loopback instead. Everything else is as in the pod.
args=$(echo "$args" | sed 's/0\.0\.0\.0:/127.0.0.1:/g')
if curl -fsS -m 2 "http://127.0.0.1:$adminPort/healthz" >/dev/null 2>&1 ||
    (bash -c "exec 3<>/dev/tcp/127.0.0.1/$dataPort") 2>/dev/null ||
    (bash -c "exec 3<>/dev/tcp/127.0.0.1/$kafkaPort") 2>/dev/null; then
    bad "ports $dataPort/$adminPort/$kafkaPort on 127.0.0.1 are taken (a local krappyd, make run?): stop it and run again"
    exit 1
fi

vol=$top/build/podman/data
rm -rf "$vol"; mkdir -p "$vol"; chown "$uid:$gid" "$vol"
# shellcheck disable=SC2086
if pm run -d --name "$c" --user "$uid:$gid" -v "$vol:$dataDir" "localhost/$name:$version" $args \
        >"$P/run.log" 2>&1; then
    ok "podman run --user $uid:$gid -v DATA:$dataDir $name:$version $args"
else
    bad "podman run: $(tail -3 "$P/run.log")"; exit 1
fi

ready=""
i=0
while [ $i -lt 50 ]; do
    if curl -fsS "http://127.0.0.1:$adminPort/readyz" >"$P/readyz" 2>/dev/null; then ready=1; break; fi
    sleep 0.2; i=$((i + 1))
done
[ -n "$ready" ] && ok "GET /readyz from outside: $(head -c 120 "$P/readyz")" || bad "/readyz never answered: $(pm logs "$c" 2>&1 | tail -5)"
if curl -fsS "http://127.0.0.1:$adminPort/healthz" >"$P/healthz" 2>/dev/null; then
    ok "GET /healthz from outside: $(head -c 120 "$P/healthz")"
else
    bad "/healthz"
fi
if (exec 3<>/dev/tcp/127.0.0.1/"$dataPort") 2>/dev/null || bash -c "exec 3<>/dev/tcp/127.0.0.1/$dataPort" 2>/dev/null; then
    ok "data port $dataPort accepts connections"
else
    bad "data port $dataPort"
fi
if bash -c "exec 3<>/dev/tcp/127.0.0.1/$kafkaPort" 2>/dev/null; then
    ok "Kafka port $kafkaPort accepts connections"
else
    bad "Kafka port $kafkaPort"
fi
top_user=$(pm top "$c" user 2>/dev/null | tail -1 | tr -d ' ')
[ -n "$top_user" ] && ok "krappyd runs as user: $top_user" || true
if [ -n "$(ls -A "$vol")" ] && [ "$(stat -c %u "$vol")" = "$uid" ]; then
    ok "krappyd wrote its data into the volume as uid $uid"
else
    bad "nothing written to the data volume"
fi

t0=$(date +%s)
pm stop -t "$grace" "$c" >/dev/null 2>&1 || true
t1=$(date +%s)
code=$(pm inspect -f '{{.State.ExitCode}}' "$c" 2>/dev/null || echo '?')
if [ "$code" = 0 ] && [ $((t1 - t0)) -lt "$grace" ]; then
    ok "SIGTERM: exit 0 after $((t1 - t0))s (grace period ${grace}s)"
else
    bad "SIGTERM: exit code $code after $((t1 - t0))s (grace ${grace}s); $(pm logs "$c" 2>&1 | tail -3)"
fi
pm logs "$c" >"$P/krappyd.log" 2>&1 || true
if grep -q '"msg":"stopping","signal":"SIGTERM"' "$P/krappyd.log" && grep -q '"msg":"stopped"' "$P/krappyd.log"; then
    ok "krappyd logged a SIGTERM shutdown (JSON logs)"
else
    bad "no clean SIGTERM shutdown in the log: $(tail -3 "$P/krappyd.log")"
fi
pm rm -f "$c" >/dev/null 2>&1 || true

echo "not checked here: a real cluster (probe timing, volume binding, fsGroup), the"
echo "  real nixpkgs closure (this image carries the host's libraries instead)."
[ "$fail" = 0 ] || { echo "check-image: FAILED"; exit 1; }
echo "check-image: all ok"
