# Control plane, containerd and kubelet as background processes (no systemd).
# Sourced after common.sh.
# shellcheck shell=bash

start_etcd() {
	local bin
	bin=$(k8s_bin_dir)
	mkdir -p "$STATE_DIR/etcd"
	chmod 0700 "$STATE_DIR/etcd"
	start_daemon etcd "$bin/etcd" --name=dnsdoctor --data-dir="$STATE_DIR/etcd" \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
		--initial-cluster=dnsdoctor=http://127.0.0.1:2380 --listen-metrics-urls=http://127.0.0.1:2381 \
		--unsafe-no-fsync --snapshot-count=10000 --log-level=warn
}

etcd_healthy() { grep -q '"health":"true"' <<<"$(curl -fsS --max-time 2 http://127.0.0.1:2381/health)"; }

start_apiserver() {
	local bin
	bin=$(k8s_bin_dir)
	start_daemon kube-apiserver "$bin/k8s" kube-apiserver \
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
		https://127.0.0.1:6443/readyz) || return 1
	[[ $out == *ok* ]]
}

start_controller_manager() {
	local bin kcfg=$STATE_DIR/controller-manager.kubeconfig
	bin=$(k8s_bin_dir)
	start_daemon kube-controller-manager "$bin/k8s" kube-controller-manager \
		--kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg" \
		--bind-address=127.0.0.1 --leader-elect=false \
		--root-ca-file="$PKI_DIR/ca.crt" \
		--service-account-private-key-file="$PKI_DIR/sa.key" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
		--allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--controllers='*,-cloud-node-lifecycle' \
		--profiling=false --v=1
}

start_scheduler() {
	local bin kcfg=$STATE_DIR/scheduler.kubeconfig
	bin=$(k8s_bin_dir)
	start_daemon kube-scheduler "$bin/k8s" kube-scheduler \
		--kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg" \
		--bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
}

write_containerd_config() {
	mkdir -p "$STATE_DIR/containerd" "$RUN_DIR/containerd" "$STATE_DIR/cni/net.d"
	cat >"$STATE_DIR/containerd/config.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$RUN_DIR/containerd/state"

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd/opt"

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
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
EOF
	cat >"$STATE_DIR/cni/net.d/10-dnsdoctor.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "dnsdoctor",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE_IF",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

start_containerd() {
	write_containerd_config
	start_daemon containerd containerd --config "$STATE_DIR/containerd/config.toml"
}

containerd_ready() { ctr --address "$CONTAINERD_SOCK" version; }

# Imports every image tarball whose reference is not in containerd yet with the
# tarball's manifest digest.
import_images() {
	local ref tarball digest have
	have=$(ctr_k8s images ls 2>/dev/null | awk 'NR>1 {print $1, $3}')
	while read -r ref tarball digest; do
		if ! grep -qxF "$ref $digest" <<<"$have"; then
			ctr_k8s images import "$tarball" >>"$LOG_DIR/images.log" 2>&1 || {
				log_tail images.log
				die "ctr images import $tarball failed"
			}
		fi
	done <"$CACHE_DIR/current-images"
}

write_kubelet_config() {
	mkdir -p "$STATE_DIR/kubelet" "$STATE_DIR/pod-logs"
	cat >"$STATE_DIR/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
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
tlsCertFile: $PKI_DIR/kubelet-server.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-server.key
readOnlyPort: 0
failSwapOn: false
podLogsDir: $STATE_DIR/pod-logs
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

start_kubelet() {
	local bin
	bin=$(k8s_bin_dir)
	write_kubelet_config
	start_daemon kubelet "$bin/k8s" kubelet \
		--config="$STATE_DIR/kubelet-config.yaml" \
		--kubeconfig="$STATE_DIR/kubelet.kubeconfig" \
		--root-dir="$STATE_DIR/kubelet" \
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
		--v=1
}
