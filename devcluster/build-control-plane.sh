#!/usr/bin/env bash
# Build upstream etcd, kube-apiserver and kube-controller-manager from the versions pinned
# in devcluster/upstream/go.mod into .cache/controlplane/ (`make control-plane`).
# A no-op when the binaries match the pins; every failure names its step and the retry.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=devcluster/upstream
OUT=${INCLUSTER_CONTROLPLANE_BIN:-.cache/controlplane}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/build-error.txt"

fail() {
    printf 'control-plane build failed at step "%s": %s\nRetry with: make control-plane\n' "$1" "$2" | tee "$OUT/build-error.txt" >&2
    exit 1
}

command -v go >/dev/null 2>&1 || fail "find Go" "no \`go\` on PATH; install Go >= 1.24 (the polyglot machines have /usr/local/go/bin/go)"
K8S=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$SRC/go.mod")
[ -n "$K8S" ] || fail "read the pins" "$SRC/go.mod names no k8s.io/kubernetes version"
MINOR=$(echo "$K8S" | cut -d. -f2)
STAMP=$( (cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/etcd/main.go" "$0"; go version) | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ] \
    && [ -x "$OUT/etcd" ] && [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ]; then
    echo "control plane is current: kube-apiserver $K8S in $OUT"
    exit 0
fi

export GOFLAGS=-mod=mod
started=$SECONDS
echo "[1/3] downloading the pinned Go modules (k8s.io/kubernetes $K8S, etcd) ..."
(cd "$SRC" && go mod download) || fail "download modules" "\`go mod download\` in $SRC failed; is the Go module proxy ($(go env GOPROXY)) reachable?"
echo "      done in $((SECONDS - started)) s"

step=$SECONDS
echo "[2/3] building etcd ..."
(cd "$SRC" && go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.new" ./etcd) || fail "build etcd" "go build ./etcd in $SRC failed (output above)"
echo "      done in $((SECONDS - step)) s"

step=$SECONDS
echo "[3/3] building kube-apiserver and kube-controller-manager $K8S (5-10 minutes on 2 cores the first time) ..."
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager; do
    (cd "$SRC" && go build -trimpath -ldflags "$LDFLAGS" -o "$OUT/$cmd.new" "k8s.io/kubernetes/cmd/$cmd") \
        || fail "build $cmd" "go build k8s.io/kubernetes/cmd/$cmd in $SRC failed (output above)"
done
echo "      done in $((SECONDS - step)) s"

for bin in etcd kube-apiserver kube-controller-manager; do mv -f "$OUT/$bin.new" "$OUT/$bin"; done
echo "$STAMP" > "$OUT/.stamp"
echo "control plane built in $((SECONDS - started)) s: $("$OUT/kube-apiserver" --version) in $OUT"
