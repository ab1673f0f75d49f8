# Builds the cluster's binaries and images into CACHE_DIR, keyed by their inputs,
# so a warm run rebuilds nothing. Sourced after common.sh.
# shellcheck shell=bash

GOBUILD_DIR=$CLUSTER_DIR/gobuild
DEFAULT_DEBUG_PACKAGES="tcpdump iproute2 iptables nftables ipvsadm conntrack util-linux procps ca-certificates"
DEBIAN_MIRROR="http://deb.debian.org/debian"
DEBIAN_SECURITY="http://deb.debian.org/debian-security"

hash_files() { cat "$@" | sha256sum | cut -c1-16; }
hash_text() { printf '%s' "$*" | sha256sum | cut -c1-16; }

# Kubernetes components (one multi-call binary), etcd, CoreDNS and pause.
build_binaries() {
	local key dir tmp
	key=$(hash_text "$("$GO" version)" "$(hash_files "$GOBUILD_DIR/go.mod" "$GOBUILD_DIR/go.sum" "$GOBUILD_DIR"/*/main.go)" "$COREDNS_VERSION")
	dir=$CACHE_DIR/bin/$K8S_VERSION-$key
	if [[ -x $dir/k8s && -x $dir/etcd && -x $dir/coredns && -x $dir/pause ]]; then
		echo "$dir" >"$CACHE_DIR/current-bin"
		return 0
	fi
	log "building binaries into $dir (cold build; several minutes)"
	tmp=$dir.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	local ld="-s -w" p start=$SECONDS
	local minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	(
		cd "$GOBUILD_DIR"
		export CGO_ENABLED=0
		"$GO" build -trimpath -ldflags "$ld" -o "$tmp/k8s" ./k8s
		log "  k8s components built after $((SECONDS - start)) s"
		"$GO" build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./etcd
		"$GO" build -trimpath -ldflags "-s -w" -o "$tmp/pause" ./pause
		log "  etcd and pause built after $((SECONDS - start)) s"
		# CoreDNS has its own module graph, so it is built from its own module.
		GOBIN=$tmp "$GO" install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
		log "  coredns built after $((SECONDS - start)) s"
	) >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "go build failed"
	}
	rm -rf "$dir"
	mv "$tmp" "$dir"
	echo "$dir" >"$CACHE_DIR/current-bin"
	log "binaries built in $((SECONDS - start)) s"
}

debug_packages() {
	local list=$REPO_DIR/debug-image/packages.txt
	if [[ -f $list ]]; then
		sed -e 's/#.*//' "$list" | tr -s ' \t\n' ' ' | sed -e 's/^ //' -e 's/ $//'
	else
		echo "$DEFAULT_DEBUG_PACKAGES"
	fi
}

# mmdebstrap_tar VARIANT "PKG..." [MMDEBSTRAP_OPTION...] : prints the path of a cached
# rootfs tarball. The options (hooks) are part of the cache key.
mmdebstrap_tar() {
	local variant=$1 pkgs=$2 key out
	shift 2
	# Without options, the key is the one earlier versions used, so their tarballs stay valid.
	key=$(hash_text "bookworm $variant $pkgs${*:+ $*}")
	out=$CACHE_DIR/rootfs/$variant-$key.tar
	if [[ ! -s $out ]]; then
		mkdir -p "$CACHE_DIR/rootfs"
		log "mmdebstrap $variant: ${pkgs:-(no extra packages)}"
		# mmdebstrap refuses an empty --include.
		local include=()
		if [[ -n $pkgs ]]; then include=(--include="${pkgs// /,}"); fi
		mmdebstrap --quiet --format=tar --variant="$variant" "${include[@]}" "$@" \
			--dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/doc/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			--aptopt='Acquire::Languages "none"' \
			--customize-hook="rm -rf \"\$1\"/var/cache/apt/* \"\$1\"/var/lib/apt/lists/*" \
			bookworm "$out.tmp" \
			"deb $DEBIAN_MIRROR bookworm main" \
			"deb $DEBIAN_MIRROR bookworm-updates main" \
			"deb $DEBIAN_SECURITY bookworm-security main" >>"$LOG_DIR/build.log" 2>&1 || {
			log_tail build.log
			die "mmdebstrap failed"
		}
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}

# layer_from_dir DIR : prints the path of an uncompressed layer tarball of DIR.
layer_from_dir() {
	local dir=$1 out
	out=$(mktemp "$CACHE_DIR/tmp/layer.XXXXXX")
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir" -cf "$out" .
	echo "$out"
}

# oci_image OUT REF ENTRYPOINT_JSON LAYER... : writes an OCI image layout tarball
# that `ctr images import` accepts, with uncompressed layers.
oci_image() {
	local out=$1 ref=$2 entrypoint=$3
	shift 3
	local work layer digest size diff_ids="" layers_json="" sep=""
	work=$(mktemp -d "$CACHE_DIR/tmp/oci.XXXXXX")
	mkdir -p "$work/blobs/sha256"
	for layer in "$@"; do
		digest=$(sha256sum "$layer" | cut -d' ' -f1)
		size=$(stat -c %s "$layer")
		cp "$layer" "$work/blobs/sha256/$digest"
		diff_ids+="$sep\"sha256:$digest\""
		layers_json+="$sep{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$digest\",\"size\":$size}"
		sep=","
	done
	local config manifest cdigest mdigest
	config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Entrypoint\":$entrypoint,\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"WorkingDir\":\"/\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diff_ids]}}"
	cdigest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	printf '%s' "$config" >"$work/blobs/sha256/$cdigest"
	manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cdigest\",\"size\":${#config}},\"layers\":[$layers_json]}"
	mdigest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
	printf '%s' "$manifest" >"$work/blobs/sha256/$mdigest"
	oci_index "$mdigest" "${#manifest}" "$ref" >"$work/index.json"
	printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
	tar -C "$work" -cf "$out.tmp" oci-layout index.json blobs
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

# oci_index MANIFEST_DIGEST MANIFEST_SIZE REF : prints an OCI index of one amd64 manifest,
# named REF for `ctr images import` (io.containerd.image.name).
oci_index() {
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
		"$1" "$2" "$3" "${3##*:}"
}

# The manifest digest of an image tarball (the first digest of its index).
image_digest() { tar -xOf "$1" index.json | grep -o 'sha256:[0-9a-f]*' | sed -n 1p; }

# A one-file layer: layer_with_file SRC DEST_PATH MODE
layer_with_file() {
	local src=$1 dest=$2 mode=$3 dir out
	dir=$(mktemp -d "$CACHE_DIR/tmp/root.XXXXXX")
	install -D -m "$mode" "$src" "$dir$dest"
	out=$(layer_from_dir "$dir")
	rm -rf "$dir"
	echo "$out"
}

probe_binary() {
	local bin=$REPO_DIR/target/release/dns-doctor-probe
	log "building dns-doctor-probe (cargo build --release -p dns-doctor-probe)"
	(cd "$REPO_DIR" && cargo build --release -p dns-doctor-probe) >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "cargo build of dns-doctor-probe failed"
	}
	[[ -x $bin ]] || die "cargo did not produce $bin"
	echo "$bin"
}

# Builds every image tarball (cached by content) and lists them in
# CACHE_DIR/current-images, one "REF TARBALL" per line.
build_images() {
	local bin
	bin=$(k8s_bin_dir)
	mkdir -p "$CACHE_DIR/images" "$CACHE_DIR/tmp"
	local list=$CACHE_DIR/current-images.tmp
	: >"$list"
	local debug_ref probe dbg_rootfs key out l1 l2 dir
	debug_ref=$(debug_image_ref)
	probe=$(probe_binary)

	# pause
	key=$(hash_files "$bin/pause")
	out=$CACHE_DIR/images/pause-$key.tar
	if [[ ! -s $out ]]; then
		l1=$(layer_with_file "$bin/pause" /pause 0755)
		oci_image "$out" "$PAUSE_IMAGE" '["/pause"]' "$l1"
		rm -f "$l1"
	fi
	echo "$PAUSE_IMAGE $out $(image_digest "$out")" >>"$list"

	# CoreDNS: the static binary alone, as upstream ships it.
	key=$(hash_files "$bin/coredns")
	out=$CACHE_DIR/images/coredns-$key.tar
	if [[ ! -s $out ]]; then
		l1=$(layer_with_file "$bin/coredns" /coredns 0755)
		oci_image "$out" "$COREDNS_IMAGE" '["/coredns"]' "$l1"
		rm -f "$l1"
	fi
	echo "$COREDNS_IMAGE $out $(image_digest "$out")" >>"$list"

	# The debug image: the package list plus the probe.
	dbg_rootfs=$(mmdebstrap_tar essential "$(debug_packages)")
	key=$(hash_text "$(hash_files "$dbg_rootfs" "$probe")" "$debug_ref")
	out=$CACHE_DIR/images/debug-$key.tar
	if [[ ! -s $out ]]; then
		l2=$(layer_with_file "$probe" /usr/local/bin/dns-doctor-probe 0755)
		oci_image "$out" "$debug_ref" '["/usr/local/bin/dns-doctor-probe"]' "$dbg_rootfs" "$l2"
		rm -f "$l2"
	fi
	echo "$debug_ref $out $(image_digest "$out")" >>"$list"

	# kube-proxy: the debug rootfs (iptables, nft, conntrack) plus the binary,
	# which dispatches on the name it is called by.
	key=$(hash_text "$(hash_files "$dbg_rootfs" "$bin/k8s")")
	out=$CACHE_DIR/images/kube-proxy-$key.tar
	if [[ ! -s $out ]]; then
		l2=$(layer_with_file "$bin/k8s" /usr/local/bin/kube-proxy 0755)
		oci_image "$out" "$KUBE_PROXY_IMAGE" '["/usr/local/bin/kube-proxy"]' "$dbg_rootfs" "$l2"
		rm -f "$l2"
	fi
	echo "$KUBE_PROXY_IMAGE $out $(image_digest "$out")" >>"$list"

	# glibc client: the debug image's Debian rootfs (a layer containerd already
	# has) plus dnsc built against glibc. glibc's RES_OPTIONS=use-vc makes the
	# same CLI resolve over TCP.
	key=$(hash_text "$(hash_files "$dbg_rootfs" "$CLUSTER_DIR/images/dnsc.c")")
	out=$CACHE_DIR/images/client-glibc-$key.tar
	if [[ ! -s $out ]]; then
		gcc -O2 -Wall -Wextra -Werror -o "$CACHE_DIR/tmp/dnsc-glibc" "$CLUSTER_DIR/images/dnsc.c"
		l2=$(layer_with_file "$CACHE_DIR/tmp/dnsc-glibc" /usr/local/bin/dnsc 0755)
		oci_image "$out" "$GLIBC_IMAGE" '["/usr/local/bin/dnsc"]' "$dbg_rootfs" "$l2"
		rm -f "$l2" "$CACHE_DIR/tmp/dnsc-glibc"
	fi
	echo "$GLIBC_IMAGE $out $(image_digest "$out")" >>"$list"

	# musl client: Debian's musl loader/libc and dnsc built with musl-gcc,
	# dynamically linked so the image's own musl resolver answers.
	local musl_lib
	musl_lib=$(readlink -f /lib/ld-musl-x86_64.so.1)
	key=$(hash_text "$(hash_files "$musl_lib" "$CLUSTER_DIR/images/dnsc.c")")
	out=$CACHE_DIR/images/client-musl-$key.tar
	if [[ ! -s $out ]]; then
		dir=$(mktemp -d "$CACHE_DIR/tmp/root.XXXXXX")
		install -D -m 0755 "$musl_lib" "$dir/lib/ld-musl-x86_64.so.1"
		mkdir -p "$dir/usr/local/bin"
		musl-gcc -O2 -Wall -Wextra -Werror -o "$dir/usr/local/bin/dnsc" "$CLUSTER_DIR/images/dnsc.c"
		mkdir -p "$dir/etc" "$dir/tmp"
		l1=$(layer_from_dir "$dir")
		oci_image "$out" "$MUSL_IMAGE" '["/usr/local/bin/dnsc"]' "$l1"
		rm -rf "$dir" "$l1"
	fi
	echo "$MUSL_IMAGE $out $(image_digest "$out")" >>"$list"
	mv "$list" "$CACHE_DIR/current-images"
}

ensure_apt_packages() {
	# One list for the whole suite (tests/commands.tsv), installed and checked in one place.
	"$REPO_DIR/tests/install-deps" >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "tests/install-deps failed (see above)"
	}
}
