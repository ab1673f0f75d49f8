# Certificates (openssl, ECDSA P-256) and kubeconfigs for the test cluster.
# Sourced after common.sh.
# shellcheck shell=bash

# issue_cert NAME CN ORG USAGE SANS : USAGE is client, server or both; SANS is an
# openssl subjectAltName value or empty.
issue_cert() {
	local name=$1 cn=$2 org=$3 usage=$4 sans=$5 ext
	[[ -s $PKI_DIR/$name.crt ]] && return 0
	ext=$PKI_DIR/$name.ext
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		case $usage in
		client) echo "extendedKeyUsage=clientAuth" ;;
		server) echo "extendedKeyUsage=serverAuth" ;;
		both) echo "extendedKeyUsage=serverAuth,clientAuth" ;;
		esac
		[[ -z $sans ]] || echo "subjectAltName=$sans"
	} >"$ext"
	local subj="/CN=$cn"
	[[ -z $org ]] || subj="/O=$org$subj"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/$name.key" 2>/dev/null
	openssl req -new -key "$PKI_DIR/$name.key" -subj "$subj" -out "$PKI_DIR/$name.csr" 2>/dev/null
	openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
		-CAcreateserial -days 30 -extfile "$ext" -out "$PKI_DIR/$name.crt" 2>/dev/null
	rm -f "$PKI_DIR/$name.csr" "$ext"
}

# write_kubeconfig FILE USER CERT_NAME [SERVER]
write_kubeconfig() {
	local file=$1 user=$2 cert=$3 server=${4:-https://127.0.0.1:6443}
	[[ -s $file ]] && return 0
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: dns-doctor
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$cert.key")
contexts:
- name: dns-doctor
  context:
    cluster: dns-doctor
    user: $user
current-context: dns-doctor
EOF
	chmod 0600 "$file"
}

ensure_pki() {
	local n
	mkdir -p "$PKI_DIR"
	chmod 0700 "$PKI_DIR"
	if [[ ! -s $PKI_DIR/ca.crt ]]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/ca.key" 2>/dev/null
		openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=dns-doctor-test-ca" -days 30 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
			-out "$PKI_DIR/ca.crt" 2>/dev/null
	fi
	# Front-proxy CA: only so that delegated authentication in the controller
	# manager and scheduler finds the request-header CA it looks for.
	if [[ ! -s $PKI_DIR/front-proxy-ca.crt ]]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/front-proxy-ca.key" 2>/dev/null
		openssl req -x509 -new -key "$PKI_DIR/front-proxy-ca.key" -subj "/CN=dns-doctor-front-proxy-ca" -days 30 \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
			-out "$PKI_DIR/front-proxy-ca.crt" 2>/dev/null
	fi
	issue_cert apiserver kube-apiserver "" server \
		"DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP"
	issue_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters client ""
	issue_cert admin kubernetes-admin system:masters client ""
	issue_cert controller-manager system:kube-controller-manager "" client ""
	issue_cert scheduler system:kube-scheduler "" client ""
	if multinode; then
		local name ip
		for n in $(node_numbers); do
			name=$(node_name "$n") ip=$(node_ip "$n")
			issue_cert "kubelet-client-node$n" "system:node:$name" system:nodes client ""
			issue_cert "kubelet-server-node$n" "$name" "" server "DNS:$name,DNS:localhost,IP:$ip,IP:127.0.0.1"
		done
		# flanneld runs beside the kubelet on every node, as a host daemon with its own identity
		# (ClusterRole flannel, manifests/flannel-rbac.yaml).
		issue_cert flannel dns-doctor:flannel "" client ""
		issue_cert kube-router dns-doctor:kube-router "" client ""
	else
		issue_cert kubelet-client "system:node:$NODE_NAME" system:nodes client ""
		issue_cert kubelet-server "$NODE_NAME" "" server "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
	fi
	if [[ ! -s $PKI_DIR/sa.key ]]; then
		openssl ecparam -name prime256v1 -genkey -noout -out "$PKI_DIR/sa.key" 2>/dev/null
		openssl ec -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
	fi
	local api
	api=$(api_server_url)
	write_kubeconfig "$KUBECONFIG_ADMIN" kubernetes-admin admin "$api"
	# The controller manager and the scheduler run beside the API server (on node 1).
	write_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
	write_kubeconfig "$STATE_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
	if multinode; then
		for n in $(node_numbers); do
			mkdir -p "$STATE_DIR/nodes/$n"
			write_kubeconfig "$STATE_DIR/nodes/$n/kubelet.kubeconfig" "system:node:$(node_name "$n")" "kubelet-client-node$n" "$api"
		done
		write_kubeconfig "$STATE_DIR/flannel.kubeconfig" dns-doctor:flannel flannel "$api"
		write_kubeconfig "$STATE_DIR/kube-router.kubeconfig" dns-doctor:kube-router kube-router "$api"
	else
		write_kubeconfig "$STATE_DIR/kubelet.kubeconfig" "system:node:$NODE_NAME" kubelet-client
	fi
}
