# The three-node shape (the default; MULTINODE.md): the underlay switch, the nodes'
# network namespaces, their cgroup roots, the Node objects made before the kubelets, and
# flanneld on every node. Sourced after common.sh, build.sh and daemons.sh; nothing here
# runs on the single node.
# shellcheck shell=bash

# The host is not a node: it keeps the blackholes of the single node (so nothing for the
# cluster's ranges can leave by the default route) and reaches the nodes over its own leg on
# the underlay, 10.252.0.254, which is more specific than the 10.252.0.0/16 blackhole.
setup_underlay() {
	ip route replace blackhole "$SERVICE_BLACKHOLE"
	ip route replace blackhole "$POD_BLACKHOLE"
	ip route replace blackhole "$UPSTREAM_BLACKHOLE"
	ip route replace blackhole "$NODE_BLACKHOLE"
	ip route replace blackhole "$NODELOCAL_IP/32"
	ensure_netns "$UNDERLAY_NS"
	# A plain switch: no netfilter for what it bridges (a fault may add an nft bridge rule).
	ip netns exec "$UNDERLAY_NS" sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0
	if ! ip -n "$UNDERLAY_NS" link show "$UNDERLAY_BRIDGE" >/dev/null 2>&1; then
		ip -n "$UNDERLAY_NS" link add "$UNDERLAY_BRIDGE" type bridge
	fi
	ip -n "$UNDERLAY_NS" link set "$UNDERLAY_BRIDGE" up
	if ! ip link show "$UNDERLAY_HOST_IF" >/dev/null 2>&1; then
		ip link add name "$UNDERLAY_HOST_IF" type veth peer name host netns "$UNDERLAY_NS"
	fi
	ip -n "$UNDERLAY_NS" link set dev host master "$UNDERLAY_BRIDGE" up
	sysctl -qw "net.ipv6.conf.$UNDERLAY_HOST_IF.disable_ipv6=1" 2>/dev/null || true
	ip addr replace "$UNDERLAY_HOST_IP/24" dev "$UNDERLAY_HOST_IF"
	ip link set "$UNDERLAY_HOST_IF" up
	local n
	for n in $(node_numbers); do
		setup_node_netns "$n"
	done
}

ensure_netns() {
	grep -qw "$1" <<<"$(ip netns list)" || ip netns add "$1"
	ip -n "$1" link set lo up
}

# setup_node_netns N : node N's namespace: eth0 on the underlay, the service range routed
# into a port-less bridge (what kube-proxy does not translate is discarded there, as on the
# single node), the fake upstream reached over the underlay, and no default route at all.
setup_node_netns() {
	local n=$1 ns
	ns=$(node_netns "$n")
	ensure_netns "$ns"
	if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
		ip -n "$UNDERLAY_NS" link add "n$n" type veth peer name eth0 netns "$ns"
	fi
	ip -n "$UNDERLAY_NS" link set dev "n$n" master "$UNDERLAY_BRIDGE" up
	ip -n "$ns" addr replace "$(node_ip "$n")/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
		net.bridge.bridge-nf-call-ip6tables=1
	if ! ip -n "$ns" link show "$NODE_SERVICE_IF" >/dev/null 2>&1; then
		ip -n "$ns" link add "$NODE_SERVICE_IF" type bridge
	fi
	ip -n "$ns" link set "$NODE_SERVICE_IF" arp off
	ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$NODE_SERVICE_IF.disable_ipv6=1" 2>/dev/null || true
	ip -n "$ns" link set "$NODE_SERVICE_IF" up
	ip -n "$ns" route replace "$SERVICE_CIDR" dev "$NODE_SERVICE_IF"
	ip -n "$ns" route replace "$UPSTREAM_IP/32" via "$UPSTREAM_UNDERLAY_IP" dev eth0
	ip -n "$ns" route replace blackhole "$NODELOCAL_IP/32"
}

# The fake upstream on the underlay: 10.252.0.53 is its link address, 10.253.0.2 (what
# CoreDNS forwards to, as on the single node) sits beside it; the pod ranges are routed back
# through their nodes, so nothing needs masquerading.
setup_upstream_link_multinode() {
	ensure_netns "$UPSTREAM_NS"
	if ! ip -n "$UPSTREAM_NS" link show eth0 >/dev/null 2>&1; then
		ip -n "$UNDERLAY_NS" link add name upstream type veth peer name eth0 netns "$UPSTREAM_NS"
	fi
	ip -n "$UNDERLAY_NS" link set dev upstream master "$UNDERLAY_BRIDGE" up
	ip -n "$UPSTREAM_NS" addr replace "$UPSTREAM_UNDERLAY_IP/24" dev eth0
	ip -n "$UPSTREAM_NS" addr replace "$UPSTREAM_IP/32" dev eth0
	ip -n "$UPSTREAM_NS" link set eth0 up
	local n
	for n in $(node_numbers); do
		ip -n "$UPSTREAM_NS" route replace "$(node_pod_cidr "$n")" via "$(node_ip "$n")" dev eth0
	done
}

teardown_underlay() {
	local n
	for n in 1 2 3; do
		ip netns del "$(node_netns "$n")" 2>/dev/null || true
	done
	ip netns del "$UNDERLAY_NS" 2>/dev/null || true
	ip link del "$UNDERLAY_HOST_IF" 2>/dev/null || true
	ip route del blackhole "$SERVICE_BLACKHOLE" 2>/dev/null || true
}

# The v1 hierarchies the kubelet puts its cgroup root into.
cgroup_hierarchies() {
	local d
	for d in /sys/fs/cgroup/*/; do
		d=${d%/}
		[[ ${d##*/} == unified ]] && continue
		[[ -e $d/cgroup.procs ]] && echo "$d"
	done
}

# The kubelet refuses a cgroupRoot that does not exist yet.
create_node_cgroups() {
	local n h
	for n in $(node_numbers); do
		for h in $(cgroup_hierarchies); do
			mkdir -p "$h/ddoc-node$n"
			if [[ ${h##*/} == cpuset ]]; then
				cat "$h/cpuset.cpus" >"$h/ddoc-node$n/cpuset.cpus"
				cat "$h/cpuset.mems" >"$h/ddoc-node$n/cpuset.mems"
			fi
		done
	done
}

remove_node_cgroups() {
	local n h
	for n in 1 2 3; do
		for h in $(cgroup_hierarchies); do
			[[ -d $h/ddoc-node$n ]] || continue
			find "$h/ddoc-node$n" -depth -type d -exec rmdir {} + 2>/dev/null || true
		done
	done
}

# The Node objects, made before the kubelets with the pod range each must have: the
# controller manager would hand out /24s in registration order. Node 1 runs no DNS replica
# (label dns-doctor.test/no-dns-replica, read by the CoreDNS Deployment's node affinity).
create_node_objects() {
	local n name label
	for n in $(node_numbers); do
		name=$(node_name "$n") label=""
		((n == 1)) && label=$'\n    dns-doctor.test/no-dns-replica: "true"'
		kc get node "$name" >/dev/null 2>&1 && continue
		kc create -f - >>"$LOG_DIR/addons.log" 2>&1 <<EOF || die "creating Node $name failed"
apiVersion: v1
kind: Node
metadata:
  name: $name
  # What a kubelet puts on the Node it registers; flanneld (v0.28.10) also panics on a
  # Node without any annotation.
  annotations:
    volumes.kubernetes.io/controller-managed-attach-detach: "true"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux$label
spec:
  podCIDR: $(node_pod_cidr "$n")
  podCIDRs:
  - $(node_pod_cidr "$n")
EOF
	done
}

# flanneld's network configuration, as upstream's kube-flannel ConfigMap carries it.
write_flannel_config() {
	mkdir -p "$STATE_DIR/flannel"
	cat >"$STATE_DIR/flannel/net-conf.json" <<EOF
{
  "Network": "$CLUSTER_POD_CIDR",
  "EnableNFTables": false,
  "Backend": {"Type": "vxlan", "VNI": 1, "Port": $VXLAN_PORT}
}
EOF
}

# start_flanneld N : flanneld with the Kubernetes subnet manager, on node N: it takes the
# Node's podCIDR as its lease, publishes its VTEP in the Node's annotations and programs the
# overlay (flannel.1, FDB, neighbours, routes) towards every other node.
start_flanneld() {
	local n=$1 bin
	bin=$(cat "$CACHE_DIR/current-multinode-bin")
	mkdir -p "$(node_run_dir "$n")/flannel"
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon "$(node_daemon flanneld "$n")" env NODE_NAME="$(node_name "$n")" $(node_argv "$n") \
		"$bin/flanneld" --kube-subnet-mgr --kubeconfig-file="$STATE_DIR/flannel.kubeconfig" \
		--iface=eth0 --ip-masq=false --subnet-file="$(node_run_dir "$n")/flannel/subnet.env" \
		--net-config-path="$STATE_DIR/flannel/net-conf.json"
}

# flanneld has leased node N's range and built its VXLAN device.
flannel_ready() {
	local n
	for n in "$@"; do
		[[ -s $(node_run_dir "$n")/flannel/subnet.env ]] || return 1
		in_node "$n" ip link show flannel.1 >/dev/null || return 1
	done
}

# start_kube_router N : kube-router's network-policy controller alone on node N (firewall
# on; its router, service proxy and CNI off: flannel and kube-proxy do those). v2.1.0 has
# reported security flaws: fit for this sandboxed test cluster only (README.md).
start_kube_router() {
	local n=$1 bin
	bin=$(cat "$CACHE_DIR/current-multinode-bin")
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon "$(node_daemon kube-router "$n")" $(node_argv "$n") "$bin/kube-router" \
		--run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
		--kubeconfig="$STATE_DIR/kube-router.kubeconfig" --hostname-override="$(node_name "$n")" \
		--service-cluster-ip-range="$SERVICE_CIDR" --enable-ipv4=true --enable-ipv6=false \
		--iptables-sync-period=1m --health-port=0 --metrics-port=0
}

# Every kubelet has reported its node's InternalIP.
node_addresses_reported() {
	local n
	for n in $(node_numbers); do
		[[ $(kc get node "$(node_name "$n")" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}') == "$(node_ip "$n")" ]] || return 1
	done
}
