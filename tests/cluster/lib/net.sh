# Host networking of the test cluster: sysctls, the node's dummy interface with
# the containment routes, and the fake upstream resolver in its own namespace.
# Sourced after common.sh.
# shellcheck shell=bash

# nf_conntrack_max is saved too: fault conntrack-near-full lowers it.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	net.ipv4.conf.all.route_localnet net.netfilter.nf_conntrack_max)

save_and_set_sysctls() {
	local saved=$STATE_DIR/sysctl.saved k
	if [[ ! -s $saved ]]; then
		for k in "${SYSCTLS[@]}"; do
			echo "$k=$(sysctl -n "$k")"
		done >"$saved"
	fi
	sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
}

restore_sysctls() {
	local saved=$STATE_DIR/sysctl.saved line
	[[ -s $saved ]] || return 0
	while read -r line; do
		sysctl -qw "$line" || true
	done <"$saved"
}

# The node IP sits on a port-less bridge with ARP off, which this kernel has
# (it has no dummy driver): whatever is routed into it is discarded. The
# service range is routed into that device rather than a `blackhole` route: a
# blackhole would make the kernel reject host-originated packets to a ClusterIP
# before kube-proxy's OUTPUT DNAT can translate them, while this device accepts
# the route lookup and silently discards whatever is not translated. Pod and
# upstream ranges get true blackhole routes, less specific than the cni0 and
# veth routes.
setup_host_routes() {
	if ! ip link show "$DUMMY_IF" >/dev/null 2>&1; then
		ip link add "$DUMMY_IF" type bridge
	fi
	ip link set "$DUMMY_IF" arp off
	sysctl -qw "net.ipv6.conf.$DUMMY_IF.disable_ipv6=1" 2>/dev/null || true
	ip link set "$DUMMY_IF" up
	ip addr replace "$NODE_IP/32" dev "$DUMMY_IF"
	ip route replace "$SERVICE_BLACKHOLE" dev "$DUMMY_IF"
	ip route replace blackhole "$POD_BLACKHOLE"
	ip route replace blackhole "$UPSTREAM_BLACKHOLE"
	ip route replace blackhole "$NODE_BLACKHOLE"
	# NodeLocal DNSCache's link-local address: pods told to use it (fault
	# nodelocaldns-down) must not reach the default route.
	ip route replace blackhole "$NODELOCAL_IP/32"
}

teardown_host_routes() {
	ip route del blackhole "$POD_BLACKHOLE" 2>/dev/null || true
	ip route del blackhole "$UPSTREAM_BLACKHOLE" 2>/dev/null || true
	ip route del blackhole "$NODE_BLACKHOLE" 2>/dev/null || true
	ip route del blackhole "$NODELOCAL_IP/32" 2>/dev/null || true
	ip link del "$DUMMY_IF" 2>/dev/null || true
}

# Zone data of the fake upstream. TTLs are short so that CoreDNS's cache does
# not hide the upstream-down fault for long.
write_upstream_config() {
	local dir=$STATE_DIR/upstream
	mkdir -p "$dir"
	cat >"$dir/Corefile" <<EOF
test:53 {
    file $dir/test.zone
    errors
}
example.com:53 example.org:53 kubernetes.io:53 {
    hosts $dir/hosts {
        ttl 2
    }
    errors
}
.:53 {
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
	cat >"$dir/test.zone" <<'EOF'
$ORIGIN test.
$TTL 2
@         IN SOA ns.test. admin.test. 1 7200 3600 1209600 2
@         IN NS  ns.test.
ns        IN A   198.51.100.1
external  IN A   198.51.100.10
external  IN AAAA 2001:db8::10
api.external IN A 198.51.100.11
v4only    IN A   198.51.100.12
EOF
	# big.external.test: 40 addresses, 680 bytes as an answer, more than the 512
	# a query without EDNS may get over UDP, so it comes back truncated and
	# needs TCP (fault truncated-tcp-blocked).
	local i
	for i in $(seq 100 139); do
		printf 'big.external IN A 198.51.100.%s\n' "$i"
	done >>"$dir/test.zone"
	# huge.external.test: 100 addresses, about 1.6 kB as an answer: over TCP its first
	# segment fills the pod's MSS, a packet that only fits a path with the overlay's full
	# MTU (fault overlay-mtu).
	for i in $(seq 140 239); do
		printf 'huge.external IN A 198.51.100.%s\n' "$i"
	done >>"$dir/test.zone"
	cat >"$dir/hosts" <<'EOF'
198.51.100.20 example.com www.example.com
2001:db8::20 example.com www.example.com
198.51.100.21 example.org www.example.org
198.51.100.22 kubernetes.io
EOF
}

setup_upstream() {
	local bin
	bin=$(k8s_bin_dir)
	if multinode; then
		setup_upstream_link_multinode
	else
		setup_upstream_link
	fi
	write_upstream_config
	start_daemon upstream ip netns exec "$UPSTREAM_NS" "$bin/coredns" -conf "$STATE_DIR/upstream/Corefile"
	printf 'nameserver %s\n' "$UPSTREAM_IP" >"$STATE_DIR/kubelet-resolv.conf"
}

# The single node's link to the fake upstream: a veth pair from the host.
setup_upstream_link() {
	if ! grep -qw "$UPSTREAM_NS" <<<"$(ip netns list)"; then
		ip netns add "$UPSTREAM_NS"
	fi
	if ! ip link show "$UPSTREAM_HOST_IF" >/dev/null 2>&1; then
		ip link add "$UPSTREAM_HOST_IF" type veth peer name eth0 netns "$UPSTREAM_NS"
	fi
	ip addr replace "$UPSTREAM_HOST_IP/30" dev "$UPSTREAM_HOST_IF"
	ip link set "$UPSTREAM_HOST_IF" up
	ip netns exec "$UPSTREAM_NS" ip link set lo up
	ip netns exec "$UPSTREAM_NS" ip addr replace "$UPSTREAM_IP/30" dev eth0
	ip netns exec "$UPSTREAM_NS" ip link set eth0 up
	# Only the node and the pods are routed back; there is no default route.
	ip netns exec "$UPSTREAM_NS" ip route replace "$POD_CIDR" via "$UPSTREAM_HOST_IP"
	ip netns exec "$UPSTREAM_NS" ip route replace "$NODE_IP/32" via "$UPSTREAM_HOST_IP"
}

teardown_upstream() {
	stop_daemon upstream 5
	ip netns del "$UPSTREAM_NS" 2>/dev/null || true
	ip link del "$UPSTREAM_HOST_IF" 2>/dev/null || true
}
