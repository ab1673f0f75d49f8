# Control plane, containerd and kubelet as background processes (no systemd).
# Sourced after common.sh.
# shellcheck shell=bash

start_etcd() {
	local bin
	bin=$(k8s_bin_dir)
	mkdir -p "$STATE_DIR/etcd"
	chmod 0700 "$STATE_DIR/etcd"
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon etcd $(node_argv 1) "$bin/etcd" --name=dnsdoctor --data-dir="$STATE_DIR/etcd" \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
		--initial-cluster=dnsdoctor=http://127.0.0.1:2380 --listen-metrics-urls=http://127.0.0.1:2381 \
		--unsafe-no-fsync --snapshot-count=10000 --log-level=warn
}

etcd_healthy() { grep -q '"health":"true"' <<<"$(in_node 1 curl -fsS --max-time 2 http://127.0.0.1:2381/health)"; }

start_apiserver() {
	local bin
	bin=$(k8s_bin_dir)
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon kube-apiserver $(node_argv 1) "$bin/k8s" kube-apiserver \
		--etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
		--client-ca-file="$PKI_DIR/ca.crt" \
		--tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
		--kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$PKI_DIR/ca.crt" \
		--kubelet-preferred-address-types=InternalIP \
		--requestheader-client-ca-file="$PKI_DIR/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI_DIR/sa.pub" \
		--service-account-signing-key-file="$PKI_DIR/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction \
		--allow-privileged=true \
		--profiling=false \
		--v=1
}

apiserver_ready() {
	local out
	out=$(curl -fsS --max-time 3 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key" \
		"$(api_server_url)/readyz") || return 1
	[[ $out == *ok* ]]
}

start_controller_manager() {
	local bin kcfg=$STATE_DIR/controller-manager.kubeconfig
	bin=$(k8s_bin_dir)
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon kube-controller-manager $(node_argv 1) "$bin/k8s" kube-controller-manager \
		--kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg" \
		--bind-address=127.0.0.1 --leader-elect=false \
		--root-ca-file="$PKI_DIR/ca.crt" \
		--service-account-private-key-file="$PKI_DIR/sa.key" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
		--allocate-node-cidrs=true --cluster-cidr="$(cluster_pod_cidr)" --node-cidr-mask-size=24 \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--controllers='*,-cloud-node-lifecycle' \
		--profiling=false --v=1
}

start_scheduler() {
	local bin kcfg=$STATE_DIR/scheduler.kubeconfig
	bin=$(k8s_bin_dir)
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon kube-scheduler $(node_argv 1) "$bin/k8s" kube-scheduler \
		--kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg" \
		--bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
}

# write_containerd_config N : node N's containerd configuration and CNI network. On three
# nodes each node has its own root (its image store), state, socket and runc root; its pods
# get the node's /24 with the overlay's MTU.
write_containerd_config() {
	local n=$1 sdir rdir pod_cidr mtu="" runc_root=""
	sdir=$(node_state_dir "$n") rdir=$(node_run_dir "$n") pod_cidr=$(node_pod_cidr "$n")
	if multinode; then
		mtu=$'\n      "mtu": '"$FLANNEL_MTU"','
		runc_root=$'\n        Root = "'"$rdir"'/runc"'
	fi
	mkdir -p "$sdir/containerd" "$rdir/containerd" "$sdir/cni/net.d"
	cat >"$sdir/containerd/config.toml" <<EOF
version = 2
root = "$(node_containerd_root "$n")"
state = "$rdir/containerd/state"

[grpc]
  address = "$(node_containerd_sock "$n")"

[plugins."io.containerd.internal.v1.opt"]
  path = "$sdir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # This VM grants root no CAP_SYS_RESOURCE, so negative oom_score_adj values
  # (which the kubelet asks for critical pods) fail in runc; clamp them instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false$runc_root
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$sdir/cni/net.d"
EOF
	cat >"$sdir/cni/net.d/10-dnsdoctor.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "dnsdoctor",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE_IF",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,$mtu
      "ipam": {
        "type": "host-local",
        "dataDir": "$sdir/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# start_containerd N
start_containerd() {
	local n=$1
	write_containerd_config "$n"
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon "$(node_daemon containerd "$n")" $(node_argv "$n") containerd --config "$(node_state_dir "$n")/containerd/config.toml"
}

# containerd_ready N...
containerd_ready() {
	local n
	for n in "$@"; do
		ctr --address "$(node_containerd_sock "$n")" version || return 1
	done
}

# import_images N : imports into node N's containerd every image tarball whose reference
# is not there yet with the tarball's manifest digest.
import_images() {
	local n=$1 ref tarball digest have
	have=$(ctr_node "$n" images ls 2>/dev/null | awk 'NR>1 {print $1, $3}')
	while read -r ref tarball digest; do
		if ! grep -qxF "$ref $digest" <<<"$have"; then
			ctr_node "$n" images import "$tarball" >>"$LOG_DIR/images.log" 2>&1 || {
				log_tail images.log
				die "ctr images import $tarball failed"
			}
		fi
	done <"$CACHE_DIR/current-images"
}

# write_kubelet_config N : node N's KubeletConfiguration. On three nodes each kubelet has
# a cgroup root of its own (the three share one kernel and one cgroup tree).
write_kubelet_config() {
	local n=$1 sdir cert=kubelet-server cgroup_root=""
	sdir=$(node_state_dir "$n")
	if multinode; then
		cert=kubelet-server-node$n
		cgroup_root=$'\n'"cgroupRoot: /ddoc-node$n"
	fi
	mkdir -p "$sdir/kubelet" "$sdir/pod-logs"
	cat >"$sdir/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs$cgroup_root
containerRuntimeEndpoint: unix://$(node_containerd_sock "$n")
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI_DIR/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS:
- $DNS_SERVICE_IP
resolvConf: $STATE_DIR/kubelet-resolv.conf
tlsCertFile: $PKI_DIR/$cert.crt
tlsPrivateKeyFile: $PKI_DIR/$cert.key
readOnlyPort: 0
failSwapOn: false
podLogsDir: $sdir/pod-logs
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
syncFrequency: 10s
nodeStatusReportFrequency: 10s
EOF
}

# start_kubelet N
start_kubelet() {
	local n=$1 bin sdir
	bin=$(k8s_bin_dir)
	sdir=$(node_state_dir "$n")
	write_kubelet_config "$n"
	# shellcheck disable=SC2046 # node_argv is a word list
	start_daemon "$(node_daemon kubelet "$n")" $(node_argv "$n") "$bin/k8s" kubelet \
		--config="$sdir/kubelet-config.yaml" \
		--kubeconfig="$sdir/kubelet.kubeconfig" \
		--root-dir="$sdir/kubelet" \
		--hostname-override="$(node_name "$n")" --node-ip="$(node_ip "$n")" \
		--v=1
}
