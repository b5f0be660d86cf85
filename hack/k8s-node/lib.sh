# Shared settings and helpers of hack/k8s-node/up and hack/k8s-node/down.
# Sourced, not run. Every setting can be overridden from the environment;
# up writes the values it used into $ROOT/env so that down tears down exactly
# what up set up, whatever the caller's environment says then.

KUBE_VERSION=v1.37.2
KUBE_STAGING_VERSION=v0.37.2
ETCD_VERSION=v3.7.0
CNI_VERSION=v1.9.1
COREDNS_VERSION=v1.15.0

ROOT=${K8S_NODE_ROOT:-/var/lib/redis-manager-k8s-node}
if [ -f "$ROOT/env" ]; then
	# shellcheck disable=SC1091
	. "$ROOT/env"
fi
CACHE=${K8S_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-manager/k8s-node}
POD_CIDR=${POD_CIDR:-${K8S_NODE_POD_CIDR:-10.217.0.0/24}}
SERVICE_CIDR=${SERVICE_CIDR:-${K8S_NODE_SERVICE_CIDR:-10.217.16.0/24}}
BRIDGE=${BRIDGE:-${K8S_NODE_BRIDGE:-rmk8s0}}
NODE_NAME=${NODE_NAME:-${K8S_NODE_NAME:-redis-manager-node}}
API_PORT=${API_PORT:-${K8S_NODE_API_PORT:-16443}}
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-${K8S_NODE_ETCD_PORT:-23790}}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_CLIENT_PORT + 10))}
WITH_DNS=${WITH_DNS:-${K8S_NODE_DNS:-1}}
WITH_IMAGE=${WITH_IMAGE:-${K8S_NODE_IMAGE:-1}}

# Our own iptables chains: forwarded and locally sent packets of the pod and
# Service ranges may use the bridge and nothing else (filter FORWARD, mangle
# POSTROUTING).
FWD_CHAIN=RMK8S-FORWARD
POST_CHAIN=RMK8S-POSTROUTING

# Paths outside $ROOT that containerd, the CNI library or the kubelet create
# whatever their configuration says; up records which of them existed before,
# down removes the ones that did not.
OUTSIDE_PATHS="/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet /etc/cni /opt/cni /opt/containerd /run/netns /var/lib/containerd /etc/kubernetes"

# The order processes are started in; down stops them in reverse.
PROCS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns hostpath-provisioner"

log() { printf '%s k8s-node: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

ip2int() {
	local a b c d
	IFS=. read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int2ip() {
	local n=$1
	echo "$(((n >> 24) & 255)).$(((n >> 16) & 255)).$(((n >> 8) & 255)).$((n & 255))"
}
# cidr_addr CIDR OFFSET: the address OFFSET into CIDR (negative: from the end).
cidr_addr() {
	local net=${1%/*} len=${1#*/} base size off=$2
	size=$((1 << (32 - len)))
	base=$(($(ip2int "$net") & ~(size - 1) & 0xffffffff))
	if [ "$off" -lt 0 ]; then off=$((size + off)); fi
	int2ip $((base + off))
}

GATEWAY=$(cidr_addr "$POD_CIDR" 1)
DNS_ADDR=$GATEWAY
KUBERNETES_SVC_IP=$(cidr_addr "$SERVICE_CIDR" 1)

BIN=$CACHE/kube-$KUBE_VERSION
ETCD_BIN=$CACHE/etcd-$ETCD_VERSION
CNI_BIN=$CACHE/cni-$CNI_VERSION
COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION
CONTAINERD_SOCK=$ROOT/containerd/containerd.sock

# pid_alive NAME: the pid recorded for NAME, if that process still runs the
# binary it was started as (a reused pid is not ours).
pid_alive() {
	local f=$ROOT/run/$1.pid pid exe
	[ -f "$f" ] || return 1
	pid=$(cat "$f")
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	case "$(basename "${exe% (deleted)}")" in
	"$1") echo "$pid" ;;
	*) return 1 ;;
	esac
}

# --- building: shared by up and image ---------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROV_DIR=$REPO/hack/k8s-node/provisioner

# go_env: Go as up and image use it (sudo's secure_path usually lacks Go's
# directory; the wrapper modules are not git checkouts of their own).
go_env() {
	export GOFLAGS=-buildvcs=false
	if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH=$PATH:/usr/local/go/bin; fi
}

# install_packages PKG...: apt-get install the Debian packages not installed.
install_packages() {
	local p missing=""
	for p in "$@"; do
		if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
			missing="$missing $p"
		fi
	done
	[ -n "$missing" ] || return 0
	log "installing Debian packages:$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2 ||
		{ apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2; }
}

# build_into DIR BINS... -- CMD: run CMD with $OUT set to a temporary
# directory unless DIR already holds every one of BINS; then move it in place.
build_into() {
	local dir=$1 ok=1 b s
	shift
	local bins=()
	while [ "$1" != "--" ]; do
		bins+=("$1")
		shift
	done
	shift
	for b in "${bins[@]}"; do [ -x "$dir/$b" ] || ok=0; done
	[ $ok = 1 ] && return 0
	s=$(date +%s)
	log "building ${bins[*]} into $dir (cold builds take minutes)"
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	OUT=$dir.tmp "$@" >&2
	for b in "${bins[@]}"; do [ -x "$dir.tmp/$b" ] || die "build did not produce $b"; done
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	log "built ${bins[*]} in $(($(date +%s) - s)) s"
}
build_kube() {
	(cd "$REPO/hack/k8s-node/build/kube" && go build -o "$OUT/" -ldflags "-s -w \
		-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
		-X k8s.io/component-base/version.gitMajor=1 \
		-X k8s.io/component-base/version.gitMinor=37" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
		k8s.io/kubernetes/cmd/kubectl)
}
build_etcd() { (cd "$REPO/hack/k8s-node/build/etcd" && go build -o "$OUT/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3); }
build_cni() {
	local p=github.com/containernetworking/plugins/plugins
	GOBIN=$OUT go install -ldflags "-s -w" "$p/main/bridge@$CNI_VERSION" "$p/ipam/host-local@$CNI_VERSION" \
		"$p/main/loopback@$CNI_VERSION" "$p/meta/portmap@$CNI_VERSION"
}
build_coredns() { (cd / && GOBIN=$OUT go install -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"); }
build_pause() { (cd "$REPO/hack/k8s-node/build/pause" && CGO_ENABLED=0 go build -o "$OUT/pause" -ldflags "-s -w" .); }
# The provisioner is part of the manager's module: its key covers its
# sources and the module's go.mod and go.sum.
build_provisioner() { (cd "$REPO" && CGO_ENABLED=0 go build -o "$OUT/hostpath-provisioner" -ldflags "-s -w" ./hack/k8s-node/provisioner); }

# oci_archive ROOTFS REF ENTRYPOINT OUT: a single-layer OCI image archive of
# ROOTFS named REF, for ctr images import (no Docker, no registry).
oci_archive() {
	local rootfs=$1 ref=$2 entry=$3 out=$4 d
	d=$(mktemp -d)
	mkdir -p "$d/blobs/sha256"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$d/layer.tar" .
	local ld ls cfg cd cs man md ms
	ld=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
	ls=$(stat -c %s "$d/layer.tar")
	mv "$d/layer.tar" "$d/blobs/sha256/$ld"
	cfg='{"architecture":"amd64","os":"linux","config":{"Entrypoint":["'$entry'"]},"rootfs":{"type":"layers","diff_ids":["sha256:'$ld'"]}}'
	printf '%s' "$cfg" >"$d/cfg"
	cd=$(sha256sum "$d/cfg" | cut -d' ' -f1)
	cs=$(stat -c %s "$d/cfg")
	mv "$d/cfg" "$d/blobs/sha256/$cd"
	man='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$cd'","size":'$cs'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$ld'","size":'$ls'}]}'
	printf '%s' "$man" >"$d/man"
	md=$(sha256sum "$d/man" | cut -d' ' -f1)
	ms=$(stat -c %s "$d/man")
	mv "$d/man" "$d/blobs/sha256/$md"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$d/oci-layout"
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$md" "$ms" "$ref" "${ref##*:}" >"$d/index.json"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d" -cf "$out" oci-layout index.json blobs
	rm -rf "$d"
}

# build_binaries: every binary of the node, from the cache or built; sets
# PAUSE_BIN, PAUSE_REF and PROV_BIN.
build_binaries() {
	local key r
	key=$(cat "$REPO/hack/k8s-node/build/pause/main.go" "$REPO/hack/k8s-node/build/pause/go.mod" | sha256sum | cut -c1-12)
	PAUSE_BIN=$CACHE/pause-$key
	PAUSE_REF=localhost/redis-manager/pause:$key
	# shellcheck disable=SC2046 # the file names have no spaces
	key=$(cat $(find "$PROV_DIR" -maxdepth 1 -name '*.go' ! -name '*_test.go' | sort) "$REPO/go.mod" "$REPO/go.sum" | sha256sum | cut -c1-12)
	PROV_BIN=$CACHE/provisioner-$key
	mkdir -p "$CACHE"
	build_into "$BIN" kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl -- build_kube
	build_into "$ETCD_BIN" etcd -- build_etcd
	build_into "$CNI_BIN" bridge host-local loopback portmap -- build_cni
	build_into "$PAUSE_BIN" pause -- build_pause
	build_into "$PROV_BIN" hostpath-provisioner -- build_provisioner
	if [ "$WITH_DNS" = 1 ]; then build_into "$COREDNS_BIN" coredns -- build_coredns; fi
	"$BIN/kube-apiserver" --version | grep -qx "Kubernetes $KUBE_VERSION" || die "$BIN/kube-apiserver is not $KUBE_VERSION"
	if [ ! -f "$PAUSE_BIN/pause.tar" ]; then
		r=$(mktemp -d)
		cp "$PAUSE_BIN/pause" "$r/pause"
		oci_archive "$r" "$PAUSE_REF" /pause "$PAUSE_BIN/pause.tar.tmp"
		mv "$PAUSE_BIN/pause.tar.tmp" "$PAUSE_BIN/pause.tar"
		rm -rf "$r"
	fi
}

# build_image: the image for the Kubernetes platform: redis-server,
# redis-cli and the libraries ldd lists, and redis-manager built from this
# checkout; tagged by the hash of its files, written when one changed. Sets
# IMAGE_REF and IMAGE_TAR.
build_image() {
	local files libs key r f l
	mkdir -p "$CACHE/image"
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$CACHE/image/redis-manager.tmp" ./cmd/redis-manager)
	mv "$CACHE/image/redis-manager.tmp" "$CACHE/image/redis-manager"
	files="$(command -v redis-server) $(command -v redis-cli)" || die "redis-server or redis-cli missing"
	libs=$(for f in $files; do ldd "$(readlink -f "$f")" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'; done | sort -u)
	# shellcheck disable=SC2086
	key=$(cat $files $libs "$CACHE/image/redis-manager" | sha256sum | cut -c1-12)
	IMAGE_REF=localhost/redis-manager/redis-manager:$key
	IMAGE_TAR=$CACHE/image/$key.tar
	[ -f "$IMAGE_TAR" ] && return 0
	log "writing image $IMAGE_REF"
	r=$(mktemp -d)
	mkdir -p "$r/usr/bin" "$r/usr/local/bin" "$r/tmp" "$r/data" "$r/etc"
	chmod 1777 "$r/tmp"
	for f in $files; do cp -L "$f" "$r/usr/bin/"; done
	cp "$CACHE/image/redis-manager" "$r/usr/local/bin/redis-manager"
	for l in $libs; do
		mkdir -p "$r$(dirname "$l")"
		cp -L "$l" "$r$l"
	done
	echo 'root:x:0:0:root:/data:/usr/local/bin/redis-manager' >"$r/etc/passwd"
	echo 'root:x:0:' >"$r/etc/group"
	oci_archive "$r" "$IMAGE_REF" /usr/local/bin/redis-manager "$IMAGE_TAR.tmp"
	mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
	rm -rf "$r"
}

# import_image TAR: into the node's containerd, where the kubelet finds it.
import_image() { ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$1" >&2; }
