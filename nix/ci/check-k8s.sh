#!/bin/sh
# Offline check of the Kubernetes manifests in nix/k8s (no cluster needed):
# the single node (nix/k8s, i.e. nix/k8s/base) and the 3-replica cluster
# (nix/k8s/overlays/cluster).
#   sh nix/ci/check-k8s.sh        (from anywhere; works from the repo root)
#
# 1. yamllint on every nix/k8s YAML file (Debian yamllint, installed by .ci/deps.sh);
# 2. kubectl kustomize nix/k8s > build/k8s-check/all.yaml, and the overlay
#    into build/k8s-check/cluster.yaml;
# 3. nix/ci/k8s/validate.mjs (npm packages pinned by nix/ci/k8s/package-lock.json,
#    installed into build/k8s-check/node_modules): kubernetes-models schema
#    validation, kubernetes-types + tsc --strict (misspelt fields), and
#    cross-checks against nix/settings.nix read with nix-instantiate;
# 4. a negative self-test: deliberately broken copies of nix/k8s must fail.
# Prints "ok   ..." / "FAIL ..." per check and exits non-zero on any failure.
set -eu
cd "$(dirname "$0")/../.."
OUT=build/k8s-check
PKG=nix/ci/k8s
mkdir -p "$OUT"

fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# --- tools -------------------------------------------------------------------
if ! command -v yamllint >/dev/null 2>&1; then
    sh .ci/deps.sh yamllint
fi
if ! command -v nix-instantiate >/dev/null 2>&1; then
    sh .ci/deps.sh nix-bin
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    sh .ci/deps.sh nodejs npm
fi
if ! command -v kubectl >/dev/null 2>&1; then
    echo "FAIL kubectl not found: install kubectl (kubectl kustomize renders the manifests offline)"
    exit 1
fi

# --- 1. yamllint ---------------------------------------------------------------
cat >"$OUT/yamllint.yaml" <<'EOF'
extends: default
rules:
  line-length:
    max: 120
  document-start: disable
  truthy:
    check-keys: false
EOF
if yamllint -s -c "$OUT/yamllint.yaml" nix/k8s >"$OUT/yamllint.log" 2>&1; then
    ok "yamllint nix/k8s (base, overlays/cluster)"
else
    fail "yamllint nix/k8s:"
    sed 's/^/     /' "$OUT/yamllint.log"
fi

# --- npm packages (only when the lock changed) -----------------------------------
if [ ! -f "$OUT/node_modules/kubernetes-models/package.json" ] ||
    ! cmp -s "$PKG/package-lock.json" "$OUT/package-lock.json"; then
    echo "check-k8s: installing the pinned npm packages into $OUT/node_modules"
    cp "$PKG/package.json" "$PKG/package-lock.json" "$OUT/"
    # kubernetes-models 5.x declares node >=22; it runs on node 20 (checked
    # here by the validators themselves), so the engine warning is silenced.
    (cd "$OUT" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$PKG/validate.mjs" "$OUT/validate.mjs"

# --- settings --------------------------------------------------------------------
# Plain data, evaluated without nixpkgs (no store needed for --eval).
# A store of its own under build/: a bare nix-instantiate would create /nix.
mkdir -p build/nix/k8s-store
if nix-instantiate --store "local?root=$PWD/build/nix/k8s-store" --option build-users-group '' \
    --eval --strict --json nix/settings.nix >"$OUT/settings.json" 2>"$OUT/settings.err"; then
    ok "nix-instantiate --eval nix/settings.nix"
else
    echo "FAIL nix-instantiate --eval nix/settings.nix:"
    sed 's/^/     /' "$OUT/settings.err"
    exit 1
fi

# render DIR OUTFILE; validate OUTFILE WORKDIR MODE (single or cluster)
render() { kubectl kustomize "$1" >"$2"; }
validate() { node "$OUT/validate.mjs" "$1" "$OUT/settings.json" "$2" "$3"; }

# --- 2. + 3. the real manifests ---------------------------------------------------
# real DIR OUTFILE MODE
real() {
    if render "$1" "$2" 2>"$OUT/kustomize.err"; then
        ok "kubectl kustomize $1 > $2"
        if ! validate "$2" "$OUT/ts-$3" "$3"; then
            fails=$((fails + 1))
        fi
    else
        fail "kubectl kustomize $1:"
        sed 's/^/     /' "$OUT/kustomize.err"
    fi
}
real nix/k8s "$OUT/all.yaml" single
real nix/k8s/overlays/cluster "$OUT/cluster.yaml" cluster

# --- 4. negative self-test -----------------------------------------------------
# Each breakage must make the check fail, for the expected reason.
tmp=$(mktemp -d "$PWD/$OUT/neg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# broken WHAT FILE EXPECT SED-SCRIPT: EXPECT is a grep -E pattern that
# must appear on a FAIL line of the check's output. FILE is relative to
# nix/k8s; one under overlays/cluster/ is checked as the cluster overlay.
broken() {
    what=$1 file=$2 expect=$3 script=$4
    rm -rf "$tmp/k8s" "$tmp/ts"
    cp -r nix/k8s "$tmp/k8s"
    sed -i "$script" "$tmp/k8s/$file"
    if cmp -s "nix/k8s/$file" "$tmp/k8s/$file"; then
        fail "broken manifest: $what (the breakage did not apply)"
        return
    fi
    case $file in
    overlays/cluster/*) dir=$tmp/k8s/overlays/cluster mode=cluster ;;
    *) dir=$tmp/k8s mode=single ;;
    esac
    if ! render "$dir" "$tmp/all.yaml" 2>"$tmp/err"; then
        # kustomize itself refusing it counts as caught.
        ok "broken manifest caught: $what (by kubectl kustomize)"
        return
    fi
    if yamllint -s -c "$OUT/yamllint.yaml" "$tmp/k8s/$file" >/dev/null 2>&1 &&
        validate "$tmp/all.yaml" "$tmp/ts" "$mode" >"$tmp/log" 2>&1; then
        fail "broken manifest NOT caught: $what"
    elif grep '^FAIL' "$tmp/log" | grep -Eq "$expect"; then
        ok "broken manifest caught: $what ($(grep '^FAIL' "$tmp/log" | grep -E "$expect" | head -1 | cut -c6-90))"
    else
        fail "broken manifest caught, but not for the expected reason: $what"
        grep '^FAIL' "$tmp/log" | sed 's/^/     /'
    fi
}

broken "misspelt field readinesProbe" base/statefulset.yaml \
    "tsc --strict.*TS2353.*readinesProbe" 's/readinessProbe:/readinesProbe:/'
broken "misspelt field fsGroupChangPolicy (no cross-check looks at it)" base/statefulset.yaml \
    "tsc --strict.*TS2353.*fsGroupChangPolicy" 's/fsGroupChangePolicy:/fsGroupChangPolicy:/'
# shellcheck disable=SC2016 # $a is sed's "append after the last line"
broken "advertised Kafka address not the pod's DNS name" base/statefulset.yaml \
    "KRAPPY_KAFKA_ADVERTISE" 's/value: \$(POD_NAME).krappyd-headless/value: krappyd/'
broken "client Service exposes the admin port 7071" base/service.yaml \
    "only the data port" '$a\    - name: admin\n      port: 7071\n      targetPort: admin'
broken "serviceName points at the client Service" base/statefulset.yaml \
    "serviceName" 's/serviceName: krappyd-headless/serviceName: krappyd/'
broken "runAsUser 0 (not the image user)" base/statefulset.yaml \
    "runAsUser" 's/runAsUser: 10001/runAsUser: 0/'
broken "containerPort as a string" base/statefulset.yaml \
    "kubernetes-models schema" 's/containerPort: 7070/containerPort: "7070"/'

# The overlay: fewer cases than the base (each costs a tsc run); the
# checks they hit are the cluster-only ones.
C=overlays/cluster
broken "cluster: pods started one by one (OrderedReady)" $C/statefulset.yaml \
    "podManagementPolicy" 's/podManagementPolicy: Parallel/podManagementPolicy: OrderedReady/'
broken "cluster: a peer's id is not its ordinal plus one" $C/kustomization.yaml \
    "KRAPPY_PEERS" 's/2=krappyd-1\./4=krappyd-1./'
broken "cluster: the raft port missing from the headless Service" $C/service-headless.yaml \
    "publishes the raft port" 's/port: 7072/port: 7073/; s/targetPort: raft/targetPort: 7073/'
broken "cluster: a budget that lets two of three pods go" $C/poddisruptionbudget.yaml \
    "maxUnavailable 1" 's/maxUnavailable: 1/maxUnavailable: 2/'

# --- what this cannot check --------------------------------------------------------
echo "note not checked here (needs a real cluster): admission (PodSecurity, webhooks),"
echo "     StorageClass / volume binding, scheduling, image pull, probe timing during a"
echo "     real recovery, pod DNS and the disruption budget under a real drain;"
echo "     kubectl apply --dry-run needs an API server, so it is not run. The cluster"
echo "     itself runs from the image in check-image.sh (three containers, a leader killed)."

if [ "$fails" -gt 0 ]; then
    echo "FAIL check-k8s: $fails failure(s)"
    exit 1
fi
echo "ok   check-k8s: all checks passed"
