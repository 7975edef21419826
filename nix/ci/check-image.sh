#!/bin/sh
# Runs the image built by check-nix.sh (stand-in nixpkgs) with podman, the
# way the StatefulSet runs it: its args (settings.args), its user
# (uid:gid from settings.nix), a data volume at settings.dataDir. Probes
# /healthz and /readyz from outside on 127.0.0.1, then SIGTERM (podman stop)
# must end krappyd cleanly within the grace period. Then three containers
# as the 3-replica overlay runs them (nix/k8s/overlays/cluster: settings.args
# + clusterArgs, --node-id auto from the host name krappyd-N, peers by
# name): a leader is elected, events acknowledged with ack sync, the
# leader's container is killed (SIGKILL), a new leader serves every
# acknowledged event and takes writes; the killed node comes back on its
# volume and catches up, and a SIGTERM of the leader hands leadership over.
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
raftPort=$(get raftPort)
grace=$(get terminationGracePeriodSeconds)
args=$(echo "$S" | sed 's/.*"args":\[\([^]]*\)\].*/\1/' | tr -d '"' | tr ',' ' ')
clusterArgs=$(echo "$S" | sed 's/.*"clusterArgs":\[\([^]]*\)\].*/\1/' | tr -d '"' | tr ',' ' ')

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

# ---- the 3-replica cluster from the same image -------------------------------
# Host networking, so node n (1..3) gets the ports of `make cluster`: data
# 7070+100(n-1), admin one above, raft two above (settings.raftPort - 
# settings.dataPort), Kafka 9092+100(n-1). Its container's host name is the
# pod's, krappyd-(n-1), so --node-id auto must make it node n.
pkg=$(grep -o '"out":"[^"]*-krappy-[^"]*"' "$N/log/build.json" | sed 's/"out":"//; s/"$//' | head -1)
kbin=$N/store$pkg/bin/krappy
[ -x "$kbin" ] || { bad "no krappy CLI in the package ($kbin)"; exit 1; }
cl() { echo "krappy-cluster-$1"; }
port() { echo $(($2 + 100 * ($1 - 1))); } # port N BASE
addrs="127.0.0.1:$(port 1 "$dataPort"),127.0.0.1:$(port 2 "$dataPort"),127.0.0.1:$(port 3 "$dataPort")"
peers="1=127.0.0.1:$(port 1 "$raftPort"),2=127.0.0.1:$(port 2 "$raftPort"),3=127.0.0.1:$(port 3 "$raftPort")"
api() { curl -fsS -m 2 "http://127.0.0.1:$(port "$1" "$adminPort")/api/cluster" 2>/dev/null; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# leader_of N: the leader node N names (0: none known or no answer)
leader_of() { l=$(api "$1" | json_num leader); echo "${l:-0}"; }
for n in 1 2 3; do
    pm rm -f "$(cl $n)" >/dev/null 2>&1 || true
    for b in "$dataPort" "$adminPort" "$raftPort" "$kafkaPort"; do
        if (bash -c "exec 3<>/dev/tcp/127.0.0.1/$(port $n "$b")") 2>/dev/null; then
            bad "port $(port $n "$b") on 127.0.0.1 is taken (make cluster running?): stop it and run again"
            exit 1
        fi
    done
done
start_node() { # start_node N: its container on its volume (kept between starts)
    n=$1
    a=$(echo " $args $clusterArgs " | sed "s/0\.0\.0\.0:/127.0.0.1:/g;
        s/:$dataPort /:$(port $n "$dataPort") /; s/:$adminPort /:$(port $n "$adminPort") /;
        s/:$kafkaPort /:$(port $n "$kafkaPort") /; s/:$raftPort /:$(port $n "$raftPort") /")
    # shellcheck disable=SC2086
    pm run -d --name "$(cl $n)" --hostname "krappyd-$((n - 1))" --user "$uid:$gid" \
        -v "$P/cluster-data/$n:$dataDir" -e KRAPPY_PEERS="$peers" \
        "localhost/$name:$version" $a >"$P/cluster-run-$n.log" 2>&1
}
rm -rf "$P/cluster-data"
started=0
for n in 1 2 3; do
    mkdir -p "$P/cluster-data/$n"; chown "$uid:$gid" "$P/cluster-data/$n"
    start_node $n && started=$((started + 1))
done
[ "$started" = 3 ] && ok "cluster: podman run x3 --hostname krappyd-0..2 (args + clusterArgs, KRAPPY_PEERS)" ||
    bad "cluster: podman run: $(tail -3 "$P"/cluster-run-*.log)"

# all ready: /readyz 200 on every node (a leader known and caught up)
t0=$(date +%s)
i=0
while [ $i -lt 150 ]; do
    r=0
    for n in 1 2 3; do
        curl -fsS -m 1 "http://127.0.0.1:$(port $n "$adminPort")/readyz" >/dev/null 2>&1 && r=$((r + 1))
    done
    [ $r = 3 ] && break
    sleep 0.2; i=$((i + 1))
done
[ $r = 3 ] && ok "cluster: all three /readyz 200 after $(($(date +%s) - t0))s" ||
    bad "cluster: $r of 3 ready after 30 s: $(for n in 1 2 3; do api $n | head -c 200; echo; done)"
ids=""
for n in 1 2 3; do ids="$ids$(api $n | json_num node)"; done
[ "$ids" = 123 ] && ok "cluster: --node-id auto: host names krappyd-0,1,2 are nodes 1,2,3" ||
    bad "cluster: node ids from the host names: $ids (want 123)"
old=$(leader_of 1)
case $old in 1 | 2 | 3) ok "cluster: node $old leads" ;; *) bad "cluster: no leader"; old=1 ;; esac

# acknowledged with ack sync: committed on a majority
events=1000
seq 1 $events | sed 's/.*/key-&\tvalue-&/' >"$P/cluster-events"
if "$kbin" -h "$addrs" --timeout 10000 produce deploy-check -a sync <"$P/cluster-events" \
    >"$P/cluster-produce.log" 2>&1; then
    ok "cluster: $events events acknowledged (ack sync) through -h $addrs"
else
    bad "cluster: produce: $(tail -3 "$P/cluster-produce.log")"
fi

# kill the leader's container (SIGKILL: no hand-over), time a new leader
t0=$(date +%s%N)
pm kill -s KILL "$(cl "$old")" >/dev/null 2>&1 || bad "cluster: podman kill $(cl "$old")"
survivors=""
for n in 1 2 3; do [ $n = "$old" ] || survivors="$survivors $n"; done
new=0
i=0
while [ $i -lt 100 ]; do
    for n in $survivors; do
        l=$(leader_of $n)
        if [ "$l" != 0 ] && [ "$l" != "$old" ]; then new=$l; break; fi
    done
    [ "$new" != 0 ] && break
    sleep 0.1; i=$((i + 1))
done
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$new" != 0 ] && ok "cluster: leader $old killed (SIGKILL); node $new leads after ${ms} ms" ||
    bad "cluster: no new leader within 10 s of killing node $old"
alive=""
for n in $survivors; do alive="$alive${alive:+,}127.0.0.1:$(port $n "$dataPort")"; done
"$kbin" -h "$alive" --timeout 10000 fetch deploy-check >"$P/cluster-fetch" 2>&1 || true
got=$(grep -c 'value-' "$P/cluster-fetch" || true)
if [ "$got" = "$events" ] && grep -q "key-$events.*value-$events" "$P/cluster-fetch" &&
    [ "$(grep -o 'value-[0-9]*' "$P/cluster-fetch" | sort -u | wc -l)" = "$events" ]; then
    ok "cluster: the survivors serve all $events acknowledged events, each once"
else
    bad "cluster: the survivors serve $got of $events acknowledged events: $(tail -2 "$P/cluster-fetch")"
fi
if echo "after	failover" | "$kbin" -h "$alive" --timeout 10000 produce deploy-check -a sync \
    >"$P/cluster-produce2.log" 2>&1; then
    ok "cluster: the new leader takes writes"
else
    bad "cluster: a write after the failover: $(tail -2 "$P/cluster-produce2.log")"
fi

# the killed node comes back on its volume and catches up
pm rm -f "$(cl "$old")" >/dev/null 2>&1 || true
start_node "$old" || bad "cluster: restarting node $old: $(tail -3 "$P/cluster-run-$old.log")"
i=0
until curl -fsS -m 1 "http://127.0.0.1:$(port "$old" "$adminPort")/readyz" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 150 ] || break; sleep 0.2
done
"$kbin" -h "127.0.0.1:$(port "$old" "$dataPort")" --timeout 10000 fetch deploy-check >"$P/cluster-fetch" 2>&1 || true
got=$(grep -c 'value-\|failover' "$P/cluster-fetch" || true)
[ "$got" = $((events + 1)) ] && ok "cluster: node $old restarted on its volume, caught up ($got events)" ||
    bad "cluster: node $old after its restart serves $got of $((events + 1)) events"

# SIGTERM of the leader (podman stop, as the kubelet does): it hands over
t0=$(date +%s)
pm stop -t "$grace" "$(cl "$new")" >/dev/null 2>&1 || true
code=$(pm inspect -f '{{.State.ExitCode}}' "$(cl "$new")" 2>/dev/null || echo '?')
pm logs "$(cl "$new")" >"$P/cluster-krappyd-$new.log" 2>&1 || true
next=0
for n in 1 2 3; do [ $n = "$new" ] || { l=$(leader_of $n); [ "$l" != 0 ] && next=$l; }; done
if [ "$code" = 0 ] && grep -q '"msg":"leadership handed over"' "$P/cluster-krappyd-$new.log" &&
    [ "$next" != 0 ] && [ "$next" != "$new" ]; then
    ok "cluster: SIGTERM of leader $new: handed over to node $next, exit 0 after $(($(date +%s) - t0))s"
else
    bad "cluster: SIGTERM of leader $new: exit $code, next leader $next; $(grep -o '"msg":"[^"]*"' "$P/cluster-krappyd-$new.log" | tail -4 | tr '\n' ' ')"
fi
for n in 1 2 3; do pm rm -f "$(cl $n)" >/dev/null 2>&1 || true; done

echo "not checked here: a real cluster (probe timing, volume binding, fsGroup), the"
echo "  real nixpkgs closure (this image carries the host's libraries instead)."
[ "$fail" = 0 ] || { echo "check-image: FAILED"; exit 1; }
echo "check-image: all ok"
