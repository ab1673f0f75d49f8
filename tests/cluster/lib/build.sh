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

# ---- Binaries of the planned three-node cluster (MULTINODE.md). `up` does not call these
# yet; tests/cluster/build-multinode-binaries builds them on their own.
#
# flanneld: its module cannot be built with `go install module@version`, because one of
# its requirements (the Tencent VPC SDK at v1.3.188) is not served by the module proxy;
# gobuild-flannel/ is a wrapper module that pins that SDK to a served version and builds
# flannel's main package. The udp backend is cgo on amd64 and flanneld links it in, so
# the binary is linked statically with cgo (netgo and osusergo keep glibc's resolver and
# user lookup out of the static link).
# kube-router v2.1.0: the only version the proxy serves; reported security flaws make it
# fit only for this sandboxed test cluster (network-policy controller alone). Built from
# its own module graph, as upstream pins it.
# The flannel CNI plugin: github.com/flannel-io/cni-plugin is not served, and Debian's
# containernetworking-plugins (1.1.1) no longer carries it; its last home inside
# github.com/containernetworking/plugins was v0.9.1, which builds with today's Go.
FLANNEL_VERSION=v0.28.10
KUBE_ROUTER_VERSION=v2.1.0
FLANNEL_CNI_VERSION=v0.9.1
FLANNEL_GOBUILD_DIR=$CLUSTER_DIR/gobuild-flannel
MULTINODE_BINARIES=(flanneld kube-router flannel)

# build_multinode_binaries : writes the directory of flanneld, kube-router and the flannel
# CNI plugin (built when their inputs changed) to CACHE_DIR/current-multinode-bin, and
# sets MULTINODE_BUILT to 1 when it had to build them.
build_multinode_binaries() {
	local key dir tmp b start=$SECONDS
	MULTINODE_BUILT=0
	key=$(hash_text "$("$GO" version)" "$(hash_files "$FLANNEL_GOBUILD_DIR/go.mod" "$FLANNEL_GOBUILD_DIR/go.sum")" \
		"$KUBE_ROUTER_VERSION" "$FLANNEL_CNI_VERSION" "$(declare -f build_multinode_binaries)")
	dir=$CACHE_DIR/bin-multinode/$FLANNEL_VERSION-$key
	for b in "${MULTINODE_BINARIES[@]}" ""; do
		if [[ -z $b ]]; then
			echo "$dir" >"$CACHE_DIR/current-multinode-bin"
			return 0
		fi
		[[ -x $dir/$b ]] || break
	done
	log "building the multi-node binaries into $dir (cold build; a few minutes)"
	mkdir -p "$LOG_DIR"
	tmp=$dir.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	(
		cd "$FLANNEL_GOBUILD_DIR"
		CGO_ENABLED=1 "$GO" build -trimpath -buildvcs=false -tags netgo,osusergo \
			-ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION -extldflags -static" \
			-o "$tmp/flanneld" github.com/flannel-io/flannel
		log "  flanneld $FLANNEL_VERSION built after $((SECONDS - start)) s"
		local v=github.com/cloudnativelabs/kube-router/v2/pkg/version
		CGO_ENABLED=0 GOBIN=$tmp "$GO" install -trimpath \
			-ldflags "-s -w -X $v.Version=$KUBE_ROUTER_VERSION -X $v.BuildDate=1970-01-01T00:00:00Z" \
			"github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
		log "  kube-router $KUBE_ROUTER_VERSION built after $((SECONDS - start)) s"
		CGO_ENABLED=0 GOBIN=$tmp "$GO" install -trimpath -ldflags "-s -w" \
			"github.com/containernetworking/plugins/plugins/meta/flannel@$FLANNEL_CNI_VERSION"
		log "  flannel CNI plugin $FLANNEL_CNI_VERSION built after $((SECONDS - start)) s"
	) >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "go build of the multi-node binaries failed"
	}
	rm -rf "$dir"
	mv "$tmp" "$dir"
	echo "$dir" >"$CACHE_DIR/current-multinode-bin"
	# shellcheck disable=SC2034 # read by build-multinode-binaries
	MULTINODE_BUILT=1
	log "multi-node binaries built in $((SECONDS - start)) s"
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

# ---- The debug image, built from debug-image/Dockerfile itself
#
# buildah (Debian's) builds the Dockerfile the release builds, with --pull=never: the two
# images its FROM lines name are made here from mmdebstrap rootfs tarballs and tagged with
# exactly those names, so nothing comes from a container registry; only Debian packages
# (the final stage's apt-get) and crates (fetched on the host by cargo and put into the
# local rust image) come over the network. The image store is the harness's own, under
# CACHE_DIR. RUN steps use chroot isolation: no cgroups, no network namespace (apt reaches
# the mirror the host uses), nothing shared with the cluster's containerd and runc.

# The official rust image's layout: rustup and its proxies in CARGO_HOME/bin, toolchains
# in RUSTUP_HOME.
RUST_BASE_PACKAGES="gcc libc6-dev ca-certificates"
RUST_IMAGE_CARGO_HOME=/usr/local/cargo
RUST_IMAGE_RUSTUP_HOME=/usr/local/rustup
# Debian's official images are merged-/usr without the usrmerge package (and its perl).
MERGED_USR_HOOK=--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
# The issue's goal for the debug image: what a node pulls, its gzip-compressed layers.
DEBUG_IMAGE_MAX_COMPRESSED=$((60 * 1000 * 1000))

# buildah with the harness's store. The run root is per store and on tmpfs, as
# containers/storage expects: its record of mounts must not outlive a reboot.
bh() {
	buildah --root "$CACHE_DIR/buildah" --runroot "/run/dns-doctor-buildah-$(hash_text "$CACHE_DIR")" \
		--storage-driver overlay "$@"
}

# dockerfile_arg NAME : the default of `ARG NAME=...` in debug-image/Dockerfile.
dockerfile_arg() {
	local v
	v=$(sed -n "s/^ARG $1=//p" "$REPO_DIR/debug-image/Dockerfile")
	[[ -n $v ]] || die "debug-image/Dockerfile has no line 'ARG $1=<image>'"
	echo "$v"
}

# local_image NAME KEYED FROM FILL [BUILDAH_CONFIG_OPTION...] : names NAME the image KEYED
# (a tag carrying the key of its inputs). Unless the store has KEYED, commits it first as one
# layer over FROM (an image of the store, or a rootfs tarball): FILL MOUNTPOINT writes that
# layer's files, then the options set the image's config. NAME is the image's first name,
# the one buildah records as the base of what is built on it.
local_image() {
	local name=$1 keyed=$2 from=$3 fill=$4 c mnt
	shift 4
	if bh inspect --type image "$keyed" >/dev/null 2>&1; then
		bh tag "$keyed" "$name"
		return 0
	fi
	log "making the local image $keyed"
	if [[ -f $from ]]; then
		c=$(bh from --quiet scratch)
		bh add --quiet "$c" "$from" /
	else
		c=$(bh from --quiet --pull=never "$from")
	fi
	mnt=$(bh mount "$c")
	"$fill" "$mnt"
	bh umount "$c" >/dev/null
	if (($#)); then bh config "$@" "$c"; fi
	bh commit --quiet --rm "$c" "$name" >/dev/null
	bh tag "$name" "$keyed"
}

# What debuerreotype puts into the official debian images besides the packages: apt keeps
# no caches (Dockerfiles written for those images remove only the package lists), and the
# slim images carry no documentation but the copyright files.
fill_debian() {
	local root=$1
	printf '%s\n' \
		'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
		'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' >"$root/etc/apt/apt.conf.d/docker-clean"
	echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
	echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	printf 'path-exclude /usr/share/%s/*\n' doc groff info lintian/overrides locale man >"$root/etc/dpkg/dpkg.cfg.d/docker"
	echo 'path-include /usr/share/doc/*/copyright' >>"$root/etc/dpkg/dpkg.cfg.d/docker"
}

# The host's Rust toolchain (no download could bring another), without its documentation,
# and rustup.
fill_rust_toolchain() {
	local root=$1 sysroot toolchain p
	sysroot=$(rustc --print sysroot)
	toolchain=${sysroot##*/}
	mkdir -p "$root$RUST_IMAGE_RUSTUP_HOME/toolchains" "$root$RUST_IMAGE_CARGO_HOME/bin"
	tar -C "${sysroot%/*}" --exclude="$toolchain/share/doc" -cf - "$toolchain" |
		tar -C "$root$RUST_IMAGE_RUSTUP_HOME/toolchains" -xf -
	install -m 0755 "$(command -v rustup)" "$root$RUST_IMAGE_CARGO_HOME/bin/rustup"
	for p in cargo rustc rustdoc cargo-clippy cargo-fmt clippy-driver rustfmt; do
		ln -s rustup "$root$RUST_IMAGE_CARGO_HOME/bin/$p"
	done
	printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$toolchain" \
		>"$root$RUST_IMAGE_RUSTUP_HOME/settings.toml"
}

# The crates of Cargo.lock as cargo's registry cache (index and .crate files), where the
# image's cargo looks; the image's CARGO_NET_OFFLINE=true keeps the build off the network.
fill_rust_crates() {
	mkdir -p "$1$RUST_IMAGE_CARGO_HOME/registry"
	cp -a "$CACHE_DIR/cargo/registry/index" "$CACHE_DIR/cargo/registry/cache" \
		"$1$RUST_IMAGE_CARGO_HOME/registry/"
}

# Makes the two images the Dockerfile's FROM lines name, each cached under a tag that
# carries the key of its inputs, and sets BASE_IMAGES_KEY to a key of both.
local_base_images() {
	local debian_ref rust_ref rootfs debian_key toolchain_key crates_key
	debian_ref=$(dockerfile_arg BASE_IMAGE)
	rust_ref=$(dockerfile_arg RUST_IMAGE)

	rootfs=$(mmdebstrap_tar minbase "" "$MERGED_USR_HOOK")
	debian_key=$(hash_text "$(hash_files "$rootfs")" "$(declare -f fill_debian)")
	local_image "$debian_ref" "localhost/dns-doctor-base/debian:$debian_key" "$rootfs" fill_debian \
		--cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

	rootfs=$(mmdebstrap_tar minbase "$RUST_BASE_PACKAGES" "$MERGED_USR_HOOK")
	toolchain_key=$(hash_text "$(hash_files "$rootfs")" "$(rustc -vV)" "$(rustup --version 2>/dev/null)" \
		"$(declare -f fill_rust_toolchain)")
	local_image "localhost/dns-doctor-base/rust-toolchain:$toolchain_key" \
		"localhost/dns-doctor-base/rust-toolchain:$toolchain_key" "$rootfs" fill_rust_toolchain \
		--cmd '["bash"]' \
		--env RUSTUP_HOME=$RUST_IMAGE_RUSTUP_HOME --env CARGO_HOME=$RUST_IMAGE_CARGO_HOME \
		--env PATH=$RUST_IMAGE_CARGO_HOME/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env RUST_VERSION="$(rustc -V | cut -d' ' -f2)" --env CARGO_NET_OFFLINE=true

	# The crates are a layer of their own, so a new Cargo.lock rebuilds only that. They are
	# fetched into a cargo home of the harness's own, not the user's, which other cargo
	# runs write to at the same time.
	crates_key=$(hash_text "$toolchain_key" "$(hash_files "$REPO_DIR/Cargo.lock")" "$(declare -f fill_rust_crates)")
	if ! bh inspect --type image "localhost/dns-doctor-base/rust:$crates_key" >/dev/null 2>&1; then
		CARGO_HOME=$CACHE_DIR/cargo cargo fetch --locked --manifest-path "$REPO_DIR/Cargo.toml" \
			>>"$LOG_DIR/build.log" 2>&1 || {
			log_tail build.log
			die "cargo fetch --locked failed"
		}
		# cargo fetch also unpacks every crate; the image's cargo unpacks its own.
		rm -rf "$CACHE_DIR/cargo/registry/src"
	fi
	local_image "$rust_ref" "localhost/dns-doctor-base/rust:$crates_key" \
		"localhost/dns-doctor-base/rust-toolchain:$toolchain_key" fill_rust_crates
	# Images of earlier inputs go; their layers shared with the current ones stay.
	local name
	for name in $(bh images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/dns-doctor-base/'); do
		case $name in
		*:"$debian_key" | *:"$toolchain_key" | *:"$crates_key") ;;
		*) bh rmi "$name" >/dev/null || log "could not remove the stale image $name" ;;
		esac
	done
	BASE_IMAGES_KEY=$(hash_text "$debian_key" "$crates_key")
}

# What decides the debug image besides its base images: the Dockerfile, its package list,
# and the sources of the probe it builds; of the rest of the workspace, which the build
# stage copies only because cargo loads the whole workspace, the manifests and the names of
# the files (so a plugin change does not rebuild the image, a broken manifest does).
debug_image_inputs_key() {
	local files own
	files=$(cd "$REPO_DIR" && find debug-image plugin tests/src tests/tests -type f \
		-not -path '*/target/*' -not -path 'plugin/fuzz/*' -not -path 'plugin/tests/*' \
		-not -path 'debug-image/probe/tests/*' | LC_ALL=C sort)
	mapfile -t own < <(grep '^debug-image/' <<<"$files")
	hash_text "$files" "$(cd "$REPO_DIR" && hash_files .dockerignore Cargo.toml Cargo.lock plugin/Cargo.toml \
		tests/Cargo.toml "${own[@]}")"
}

# debug_image_tarball REF : sets DEBUG_IMAGE_TARBALL to the debug image's tarball, built
# when its inputs changed.
debug_image_tarball() {
	local ref=$1 inputs_key
	mkdir -p "$CACHE_DIR/images" "$CACHE_DIR/tmp" "$LOG_DIR"
	local_base_images
	inputs_key=$(debug_image_inputs_key)
	DEBUG_IMAGE_TARBALL=$CACHE_DIR/images/debug-$(hash_text "$BASE_IMAGES_KEY" "$inputs_key" "$ref").tar
	[[ -s $DEBUG_IMAGE_TARBALL ]] || build_debug_image "$DEBUG_IMAGE_TARBALL" "$ref"
}

# build_debug_image OUT REF : builds debug-image/Dockerfile into the OCI image tarball OUT
# (layers as the Dockerfile build made them, gzip-compressed), named REF for containerd.
build_debug_image() {
	local out=$1 ref=$2 start=$SECONDS work c manifest
	log "building $ref from debug-image/Dockerfile (buildah)"
	(
		cd "$REPO_DIR"
		bh build --isolation chroot --pull=never --build-arg TARGETARCH=amd64 \
			--file debug-image/Dockerfile --tag "$ref" .
	) >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		# A failed build leaves its working containers (buildah 1.28's --force-rm needs --layers).
		bh rm --all >/dev/null
		die "buildah build of debug-image/Dockerfile failed"
	}
	debug_image_runs "$ref" >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "the image built from debug-image/Dockerfile does not run, or lacks a program the probe starts"
	}
	work=$(mktemp -d "$CACHE_DIR/tmp/oci.XXXXXX")
	bh push --quiet "$ref" "oci:$work/layout:$ref" >>"$LOG_DIR/build.log" 2>&1 || {
		log_tail build.log
		die "buildah push to an OCI layout failed"
	}
	bh rmi "$ref" >/dev/null
	# containerd 1.6 names imported images by the io.containerd.image.name annotation.
	manifest=$(grep -o '"digest":"sha256:[0-9a-f]*","size":[0-9]*' "$work/layout/index.json")
	[[ $manifest =~ sha256:([0-9a-f]+)\",\"size\":([0-9]+) ]] || die "no manifest in the OCI layout buildah wrote"
	oci_index "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$ref" >"$work/layout/index.json"
	tar -C "$work/layout" -cf "$out.tmp" oci-layout index.json blobs
	rm -rf "$work"
	local compressed unpacked
	read -r compressed unpacked < <(image_sizes "$out.tmp")
	log "debug image built in $((SECONDS - start)) s: $compressed bytes in compressed layers, $unpacked unpacked"
	if ((compressed > DEBUG_IMAGE_MAX_COMPRESSED)); then
		rm -f "$out.tmp"
		die "the debug image's layers are $compressed bytes compressed, over the goal of $DEBUG_IMAGE_MAX_COMPRESSED"
	fi
	mv "$out.tmp" "$out"
}

# debug_image_runs REF : the image's entrypoint runs, and every program the probe starts is
# on the image's PATH.
debug_image_runs() {
	local c status=0
	c=$(bh from --quiet --pull=never "$1")
	bh run --isolation chroot "$c" -- /usr/local/bin/dns-doctor-probe --version || status=1
	# shellcheck disable=SC2016 # expanded by the image's shell
	bh run --isolation chroot "$c" -- sh -c 'for p in "$@"; do
		command -v "$p" || { echo "$p: not in the image"; exit 1; }
	done' sh nsenter tcpdump iptables-legacy-save iptables-nft-save nft ipvsadm conntrack ip timeout || status=1
	bh rm "$c" >/dev/null
	return "$status"
}

# image_sizes TARBALL : prints the size of an image tarball's gzip-compressed layers (what
# a node pulls) and their size unpacked, in bytes.
image_sizes() {
	local tarball=$1 manifest compressed=0 unpacked=0 size digest
	manifest=$(tar -xOf "$tarball" "blobs/sha256/$(image_digest "$tarball" | cut -d: -f2)")
	while read -r size digest; do
		compressed=$((compressed + size))
		unpacked=$((unpacked + $(tar -xOf "$tarball" "blobs/sha256/${digest#sha256:}" | gzip -dc | wc -c)))
	done < <(grep -o '"digest":"sha256:[0-9a-f]*","size":[0-9]*' <<<"${manifest#*\"layers\"}" |
		sed -e 's/"digest":"\(sha256:[0-9a-f]*\)","size":\([0-9]*\)/\2 \1/')
	echo "$compressed $unpacked"
}

# Builds every image tarball (cached by content) and lists them in
# CACHE_DIR/current-images, one "REF TARBALL" per line.
build_images() {
	local bin
	bin=$(k8s_bin_dir)
	mkdir -p "$CACHE_DIR/images" "$CACHE_DIR/tmp"
	local list=$CACHE_DIR/current-images.tmp
	: >"$list"
	local debug_ref dbg_rootfs key out l1 l2 dir
	debug_ref=$(debug_image_ref)

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

	# The debug image: debug-image/Dockerfile, as the release builds it.
	debug_image_tarball "$debug_ref"
	echo "$debug_ref $DEBUG_IMAGE_TARBALL $(image_digest "$DEBUG_IMAGE_TARBALL")" >>"$list"

	# kube-proxy and the glibc client keep a Debian rootfs of the debug image's packages.
	dbg_rootfs=$(mmdebstrap_tar essential "$(debug_packages)")

	# kube-proxy: that rootfs (iptables, nft, conntrack) plus the binary,
	# which dispatches on the name it is called by.
	key=$(hash_text "$(hash_files "$dbg_rootfs" "$bin/k8s")")
	out=$CACHE_DIR/images/kube-proxy-$key.tar
	if [[ ! -s $out ]]; then
		l2=$(layer_with_file "$bin/k8s" /usr/local/bin/kube-proxy 0755)
		oci_image "$out" "$KUBE_PROXY_IMAGE" '["/usr/local/bin/kube-proxy"]' "$dbg_rootfs" "$l2"
		rm -f "$l2"
	fi
	echo "$KUBE_PROXY_IMAGE $out $(image_digest "$out")" >>"$list"

	# glibc client: the same Debian rootfs (a layer containerd already has from
	# kube-proxy) plus dnsc built against glibc. glibc's RES_OPTIONS=use-vc makes the
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
