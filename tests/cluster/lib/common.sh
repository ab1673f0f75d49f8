# Shared settings and helpers for the test-cluster scripts. Sourced, never run.
# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the scripts that source this file

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$CLUSTER_DIR/../.." && pwd)

K8S_VERSION=v1.34.4
COREDNS_VERSION=v1.12.4
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
COREDNS_IMAGE=registry.k8s.io/coredns/coredns:$COREDNS_VERSION
KUBE_PROXY_IMAGE=registry.k8s.io/kube-proxy:$K8S_VERSION
GLIBC_IMAGE=dns-doctor.test/client-glibc:1
MUSL_IMAGE=dns-doctor.test/client-musl:1

GO=${GO:-/usr/local/go/bin/go}
CACHE_DIR=${DNS_DOCTOR_CLUSTER_CACHE:-/var/cache/dns-doctor-cluster}
STATE_DIR=/var/lib/dns-doctor-cluster
RUN_DIR=/run/dns-doctor-cluster
LOG_DIR=$STATE_DIR/logs
PKI_DIR=$STATE_DIR/pki
KUBECONFIG_ADMIN=$STATE_DIR/admin.kubeconfig
CONTAINERD_SOCK=$RUN_DIR/containerd/containerd.sock
# containerd's root holds the imported images, a cache like the built tarballs:
# `down` deletes every container and sandbox in it, and keeps the images.
CONTAINERD_ROOT=$CACHE_DIR/containerd
KUBECTL=${KUBECTL:-/usr/bin/kubectl}

NODE_NAME=dnsdoctor-node
# The node's address lives on a port-less bridge (see lib/net.sh), so nothing the cluster does
# depends on (or is routed through) the machine's real interface.
NODE_IP=10.252.0.1
DUMMY_IF=ddoc0
NODE_BLACKHOLE=10.252.0.0/16
SERVICE_CIDR=10.96.0.0/16
SERVICE_BLACKHOLE=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
POD_CIDR=10.244.0.0/24
POD_BLACKHOLE=10.244.0.0/16
BRIDGE_IF=cni0
UPSTREAM_NS=ddoc-upstream
UPSTREAM_HOST_IF=ddoc-up0
UPSTREAM_HOST_IP=10.253.0.1
UPSTREAM_IP=10.253.0.2
UPSTREAM_BLACKHOLE=10.253.0.0/16
NODELOCAL_IP=169.254.20.10
# An address of the service range that nothing owns: the host blackholes it, so a pod
# that lists it as a nameserver gets no answer (fault dead-nameserver).
DEAD_NAMESERVER_IP=10.96.0.250
FAULT_CHAIN=DNSDOCTOR-FAULT
# kube-proxy mode: iptables (default) or nftables, chosen by DNS_DOCTOR_PROXY_MODE
# at `up`; later commands read the mode the running cluster was started with.
KUBE_PROXY_MODE=${DNS_DOCTOR_PROXY_MODE:-$(cat "$STATE_DIR/proxy-mode" 2>/dev/null || echo iptables)}

# Cluster shape, chosen by DNS_DOCTOR_NODES at `up` (3, the default, or 1); later commands
# read the shape the running cluster was started with. Three nodes: each node is a network
# namespace of its own (ddoc-node1..3, node IPs 10.252.0.1..3 on an underlay switch in
# ddoc-underlay, pod ranges 10.244.N.0/24 joined by flannel's VXLAN overlay); node 1 also runs
# the control plane. One node: the host's network namespace is the node. See MULTINODE.md.
NODE_COUNT=${DNS_DOCTOR_NODES:-$(cat "$STATE_DIR/node-count" 2>/dev/null || echo 3)}
CLUSTER_POD_CIDR=10.244.0.0/16
UNDERLAY_NS=ddoc-underlay
UNDERLAY_BRIDGE=br0
UNDERLAY_HOST_IF=ddoc-ul0
UNDERLAY_HOST_IP=10.252.0.254
UNDERLAY_CIDR=10.252.0.0/24
UPSTREAM_UNDERLAY_IP=10.252.0.53
NODE_SERVICE_IF=ddoc-svc
VXLAN_PORT=8472
FLANNEL_MTU=1450

multinode() { ((NODE_COUNT > 1)); }
# The nodes' numbers: 1 on the single node, 1 2 3 on three.
node_numbers() { seq 1 "$NODE_COUNT"; }
node_name() { if multinode; then echo "dnsdoctor-node$1"; else echo "$NODE_NAME"; fi; }
node_ip() { if multinode; then echo "10.252.0.$1"; else echo "$NODE_IP"; fi; }
node_netns() { echo "ddoc-node$1"; }
node_pod_cidr() { if multinode; then echo "10.244.$1.0/24"; else echo "$POD_CIDR"; fi; }
# The pod range of the whole cluster (what kube-proxy calls clusterCIDR).
cluster_pod_cidr() { if multinode; then echo "$CLUSTER_POD_CIDR"; else echo "$POD_CIDR"; fi; }
# Where the API server listens, as the host and the nodes reach it.
api_server_url() { if multinode; then echo "https://$(node_ip 1):6443"; else echo "https://127.0.0.1:6443"; fi; }
# Words that run a program inside node N's network namespace (none on the single node).
# nsenter, not `ip netns exec`: that would give every daemon a mount namespace of its own,
# and a kubelet's tmpfs volumes would then be invisible to the containerd that starts runc.
node_argv() { if multinode; then echo "nsenter --net=/run/netns/$(node_netns "$1") --"; fi; }
# in_node N CMD... : runs the program CMD inside node N's network namespace.
in_node() {
	local n=$1
	shift
	if multinode; then
		nsenter --net="/run/netns/$(node_netns "$n")" -- "$@"
	else
		"$@"
	fi
}
# node_exec N CMD... : replaces the calling (sub)shell with CMD inside node N's network
# namespace (nsenter execs CMD in turn), so `node_exec N CMD &` leaves CMD's own PID in $!.
node_exec() {
	local n=$1
	shift
	if multinode; then
		exec nsenter --net="/run/netns/$(node_netns "$n")" -- "$@"
	else
		exec "$@"
	fi
}
# Per-node daemon names: containerd-node2, kubelet-node3 (plain names on the single node).
node_daemon() { if multinode; then echo "$1-node$2"; else echo "$1"; fi; }
# Where node N keeps its files: its containerd's config and CNI folders, the kubelet's root.
node_state_dir() { if multinode; then echo "$STATE_DIR/nodes/$1"; else echo "$STATE_DIR"; fi; }
node_run_dir() { if multinode; then echo "$RUN_DIR/nodes/$1"; else echo "$RUN_DIR"; fi; }
node_containerd_sock() { echo "$(node_run_dir "$1")/containerd/containerd.sock"; }
node_containerd_root() { if multinode; then echo "$CACHE_DIR/containerd-node$1"; else echo "$CONTAINERD_ROOT"; fi; }

export KUBECONFIG=$KUBECONFIG_ADMIN

log() { printf '%s [cluster] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

die() {
	log "ERROR: $*"
	exit 1
}

# Prints the last lines of each named log file (relative to LOG_DIR or absolute).
log_tail() {
	local f
	for f in "$@"; do
		[[ $f == /* ]] || f=$LOG_DIR/$f
		if [[ -f $f ]]; then
			printf -- '----- last lines of %s -----\n' "$f" >&2
			tail -n 25 "$f" >&2
		fi
	done
}

# wait_for SECONDS DESCRIPTION COMMAND... : runs COMMAND until it succeeds or
# the deadline passes; on timeout returns 1 after logging DESCRIPTION.
wait_for() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${timeout}s waiting for: $what"
			return 1
		fi
		sleep 0.5
	done
}

# wait_or_die SECONDS DESCRIPTION LOGS COMMAND... : like wait_for, but exits with
# the tails of the space-separated LOGS on timeout.
wait_or_die() {
	local timeout=$1 what=$2 logs=$3
	shift 3
	if ! wait_for "$timeout" "$what" "$@"; then
		# shellcheck disable=SC2086
		log_tail $logs
		die "timed out waiting for $what"
	fi
}

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=20s "$@"; }

# Closes the descriptors this shell inherited above stderr (bash's own 255 aside).
close_inherited_fds() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[[ $fd =~ ^[0-9]+$ ]] && ((fd > 2 && fd != 255)) || continue
		eval "exec $fd>&-" 2>/dev/null || true
	done
}

# Starts a daemon in its own session with a pid file and a log file. The daemon gets none
# of the caller's descriptors above stderr: under `flock /tmp/dns-doctor-cluster.lock CMD`
# one of them is the lock, which a daemon would otherwise hold for as long as it runs.
start_daemon() {
	local name=$1
	shift
	mkdir -p "$RUN_DIR/pids" "$LOG_DIR"
	if daemon_running "$name"; then
		return 0
	fi
	(
		close_inherited_fds
		setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
		echo $! >"$RUN_DIR/pids/$name.pid"
	)
}

daemon_pid() { cat "$RUN_DIR/pids/$1.pid" 2>/dev/null; }

# True when PID exists and is not a zombie: PID 1 on these machines is slow to
# reap the daemons it inherits, and a zombie must count as stopped.
pid_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

daemon_running() {
	local pid
	pid=$(daemon_pid "$1") || return 1
	[[ -n $pid ]] && pid_alive "$pid"
}

# Stops a daemon started by start_daemon: SIGTERM, then SIGKILL after a grace period.
stop_daemon() {
	local name=$1 grace=${2:-10} pid
	pid=$(daemon_pid "$name") || return 0
	if [[ -n $pid ]] && pid_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + grace))
		while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
		if pid_alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
	fi
	rm -f "$RUN_DIR/pids/$name.pid"
}

# The one Kubernetes binary; dispatches on its first argument.
k8s_bin_dir() { cat "$CACHE_DIR/current-bin" 2>/dev/null; }

# The debug image reference, derived from the workspace version so that it
# always equals the plugin's default.
debug_image_ref() {
	local v
	v=$(awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p && $1=="version"{gsub(/"/,"",$3); print $3; exit}' "$REPO_DIR/Cargo.toml")
	[[ -n $v ]] || die "cannot read [workspace.package] version from $REPO_DIR/Cargo.toml"
	echo "ghcr.io/dns-doctor/debug:v$v"
}

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
# ctr_node N ARGS... : ctr against node N's containerd.
ctr_node() {
	local n=$1
	shift
	ctr --address "$(node_containerd_sock "$n")" -n k8s.io "$@"
}

# Interface that carries the default route (the one no packet may leave by).
default_if() { ip -4 route show default | awk '!found {for(i=1;i<NF;i++) if($i=="dev"){print $(i+1); found=1; break}}'; }

require_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }
