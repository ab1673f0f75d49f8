# In-cluster objects and health checks. Sourced after common.sh.
# shellcheck shell=bash

# Prints manifests/FILE with the cluster's settings filled in. @CLIENT_NODE@ is the clients'
# node (node 1), @DNS_NODE@ a node with a CoreDNS replica (node 2); both are the only node
# on one node.
render() {
	sed -e "s|@UPSTREAM_IP@|$UPSTREAM_IP|g" \
		-e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
		-e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" \
		-e "s|@KUBE_PROXY_IMAGE@|$KUBE_PROXY_IMAGE|g" \
		-e "s|@KUBE_PROXY_MODE@|$KUBE_PROXY_MODE|g" \
		-e "s|@POD_CIDR@|$POD_CIDR|g" \
		-e "s|@CLUSTER_POD_CIDR@|$(cluster_pod_cidr)|g" \
		-e "s|@API_SERVER_URL@|$(api_server_url)|g" \
		-e "s|@CLIENT_NODE@|$(node_name 1)|g" \
		-e "s|@DNS_NODE@|$(node_name 2)|g" \
		-e "s|@NODELOCAL_IP@|$NODELOCAL_IP|g" \
		-e "s|@DEAD_NAMESERVER_IP@|$DEAD_NAMESERVER_IP|g" \
		-e "s|@GLIBC_IMAGE@|$GLIBC_IMAGE|g" \
		-e "s|@MUSL_IMAGE@|$MUSL_IMAGE|g" \
		"$CLUSTER_DIR/manifests/$1"
}

# kube-proxy first: CoreDNS reaches the API through the kubernetes Service, and
# a CoreDNS that starts before that ClusterIP works backs off for ~30 s.
apply_addons() {
	local f
	render kube-proxy.yaml | kc apply -f - >>"$LOG_DIR/addons.log" 2>&1 || {
		log_tail addons.log
		die "kubectl apply kube-proxy.yaml failed"
	}
	wait_or_die 90 "kube-proxy programming the kubernetes Service" "$(node_daemon kubelet 1).log $(node_daemon containerd 1).log" api_service_programmed
	for f in coredns.yaml clients.yaml; do
		render "$f" | kc apply -f - >>"$LOG_DIR/addons.log" 2>&1 || {
			log_tail addons.log
			die "kubectl apply $f failed"
		}
	done
}

# node_ready NAME
node_ready() {
	[[ $(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# deployment_ready NS NAME WANT : WANT ready replicas and no old pods left over.
# NS NAME COUNT: COUNT pods ready, all of the current template, none of an older one; and
# the status is about the current spec (right after an apply it still describes the old one).
deployment_ready() {
	local got
	got=$(kc -n "$1" get deploy "$2" -o jsonpath='{.status.readyReplicas}/{.status.replicas}/{.status.updatedReplicas} {.metadata.generation}/{.status.observedGeneration}' 2>/dev/null) || return 1
	local counts=${got% *} generations=${got#* }
	[[ $counts == "$3/$3/$3" && ${generations%/*} == "${generations#*/}" ]]
}

daemonset_ready() {
	local got
	got=$(kc -n "$1" get ds "$2" -o jsonpath='{.status.numberReady}/{.status.desiredNumberScheduled}/{.status.updatedNumberScheduled}' 2>/dev/null) || return 1
	[[ $got == "$NODE_COUNT/$NODE_COUNT/$NODE_COUNT" ]]
}

pod_ready() {
	[[ $(kc -n "$1" get pod "$2" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# kube-proxy's NAT rules on node N (default: node 1), read once: a reader that stops at its
# first match would kill the writer with SIGPIPE, which pipefail turns into a random failure.
proxy_nat_rules() {
	if [[ $KUBE_PROXY_MODE == nftables ]]; then
		in_node "${1:-1}" nft list table ip kube-proxy 2>/dev/null
	else
		in_node "${1:-1}" iptables -t nat -S 2>/dev/null
	fi
}

api_service_programmed() {
	local rules
	rules=$(proxy_nat_rules 1) || return 1
	if [[ $KUBE_PROXY_MODE == nftables ]]; then
		grep -q "$API_SERVICE_IP . tcp . 443" <<<"$rules"
	else
		grep -q -- "-A KUBE-SERVICES -d $API_SERVICE_IP/32 -p tcp" <<<"$rules"
	fi
}

# True when kube-proxy's rules on node N translate the DNS ClusterIP (UDP 53).
proxy_dns_rule_on() {
	local rules
	rules=$(proxy_nat_rules "$1") || return 1
	if [[ $KUBE_PROXY_MODE == nftables ]]; then
		grep -q "$DNS_SERVICE_IP . udp . 53" <<<"$rules"
	else
		grep -q -- "-A KUBE-SERVICES -d $DNS_SERVICE_IP/32 -p udp .*dport 53" <<<"$rules"
	fi
}

# True when kube-proxy has programmed the DNS ClusterIP on every node.
proxy_rules_present() {
	local n
	for n in $(node_numbers); do
		proxy_dns_rule_on "$n" || return 1
	done
}

# True when kube-proxy's rules for the DNS ClusterIP are on no node (on the single node: not
# on it); proxy_rules_present is "on every node", so its negation is "missing on some node".
proxy_rules_absent() {
	local n
	for n in $(node_numbers); do
		! proxy_dns_rule_on "$n" || return 1
	done
}

# The DNS ClusterIP is programmed with exactly the current ready CoreDNS endpoints, on their
# current port (the EndpointSlice's UDP port: 53, or a targetPort a fault set), on every node.
proxy_rules_current() {
	proxy_rules_present || return 1
	local ep n rules eps port
	eps=$(kc -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns \
		-o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}') || return 1
	port=$(kc -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns \
		-o jsonpath='{.items[0].ports[?(@.protocol=="UDP")].port}') || return 1
	[[ $port =~ ^[0-9]+$ ]] || return 1
	for n in $(node_numbers); do
		rules=$(proxy_nat_rules "$n") || return 1
		for ep in $eps; do
			if [[ $KUBE_PROXY_MODE == nftables ]]; then
				grep -q "$ep" <<<"$rules" || return 1
			else
				# ep:port and the end of the word: ep:5353 is not ep:53.
				grep -qE -- "--to-destination ${ep//./\\.}:$port( |$)" <<<"$rules" || return 1
			fi
		done
	done
}

# pod_exec NS POD SECONDS CMD... : kubectl exec with a hard deadline.
pod_exec() {
	local ns=$1 pod=$2 secs=$3
	shift 3
	timeout --kill-after=5 "$secs" "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" -n "$ns" exec "$pod" -- "$@"
}

# resolve POD NAME : resolves NAME with the pod's own libc; prints dnsc's output.
resolve() { pod_exec dns-clients "$1" 30 /usr/local/bin/dnsc resolve "$2"; }

# resolve_tcp POD NAME : the same lookup with glibc forced to TCP (use-vc).
resolve_tcp() { pod_exec dns-clients "$1" 30 env RES_OPTIONS=use-vc /usr/local/bin/dnsc resolve "$2"; }

resolves_ok() { grep -q '^ok ' <<<"$(resolve "$1" "$2")"; }

# Every one of COUNT lookups of NAME from each CLIENT succeeds.
resolves_repeatedly() { # COUNT NAME CLIENT...
	local count=$1 name=$2 client i
	shift 2
	for client in "$@"; do
		for ((i = 0; i < count; i++)); do
			resolves_ok "$client" "$name" || return 1
		done
	done
}

# Elapsed milliseconds of one lookup, or "fail".
resolve_ms() {
	local out
	out=$(resolve "$1" "$2" 2>&1) || true
	if grep -q '^ok ' <<<"$out"; then
		sed -n 's/^ok elapsed_ms=//p' <<<"$out"
	else
		echo fail
	fi
}

uses_cluster_dns() { grep -qx "nameserver $DNS_SERVICE_IP" <<<"$(pod_exec dns-clients "$1" 15 /usr/local/bin/dnsc cat /etc/resolv.conf)"; }

# Every node has a route to every other node's pod range over the overlay.
overlay_routes_ready() {
	local n m routes
	for n in $(node_numbers); do
		routes=$(in_node "$n" ip route show dev flannel.1 2>/dev/null) || return 1
		for m in $(node_numbers); do
			((m == n)) && continue
			grep -q "^$(node_pod_cidr "$m") " <<<"$routes" || return 1
		done
	done
}

# kube-router's policy chains are in place on every node (it jumps to them from the top of
# INPUT, FORWARD and OUTPUT once its first sync ran).
kube_router_ready() {
	local n
	for n in $(node_numbers); do
		grep -q -- '-A FORWARD .*-j KUBE-ROUTER-FORWARD' <<<"$(in_node "$n" iptables -S FORWARD 2>/dev/null)" || return 1
	done
}

CLUSTER_NAME=kubernetes.default.svc.cluster.local
EXTERNAL_NAME=external.test

# Everything `up` promises; returns 1 with a message for the first unmet item.
cluster_healthy() {
	local n
	for n in $(node_numbers); do
		node_ready "$(node_name "$n")" || { echo "node $(node_name "$n") not Ready"; return 1; }
	done
	if multinode; then
		overlay_routes_ready || { echo "flannel's overlay routes incomplete"; return 1; }
		kube_router_ready || { echo "kube-router's policy chains missing on a node"; return 1; }
	fi
	daemonset_ready kube-system kube-proxy || { echo "kube-proxy DaemonSet not ready"; return 1; }
	# CoreDNS before the rules that follow its endpoints: with CoreDNS down the rules change
	# once kube-proxy has synced, and the first unmet item must not change with them.
	deployment_ready kube-system coredns 2 || { echo "CoreDNS not 2/2 ready"; return 1; }
	proxy_rules_current || { echo "kube-proxy rules for $DNS_SERVICE_IP missing or stale"; return 1; }
	local pod name
	for pod in client-glibc client-musl; do
		pod_ready dns-clients "$pod" || { echo "$pod not Ready"; return 1; }
		uses_cluster_dns "$pod" || { echo "$pod resolv.conf does not use $DNS_SERVICE_IP"; return 1; }
		for name in "$CLUSTER_NAME" "$EXTERNAL_NAME"; do
			resolves_ok "$pod" "$name" || { echo "$pod cannot resolve $name"; return 1; }
		done
	done
}

# Waits until cluster_healthy holds, printing progress; dies with logs on timeout.
wait_cluster_healthy() {
	local timeout=$1 deadline=$((SECONDS + $1)) why="" last=""
	while ! why=$(cluster_healthy 2>/dev/null); do
		if [[ $why != "$last" ]]; then
			log "waiting: $why"
			last=$why
		fi
		if ((SECONDS >= deadline)); then
			log "not healthy after ${timeout}s: $why"
			kc get nodes,pods -A -o wide >&2 || true
			log_tail kubelet.log containerd.log kube-controller-manager.log kube-scheduler.log
			die "cluster did not become healthy: $why"
		fi
		sleep 1
	done
}
