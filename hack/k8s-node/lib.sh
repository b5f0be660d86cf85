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
PROCS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns"

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
