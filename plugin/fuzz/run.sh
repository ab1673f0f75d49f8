#!/usr/bin/env bash
# Runs a fuzz target for a bounded time: ./run.sh [TARGET] [SECONDS]
#   TARGET  capture_reader (default), dns_message, rule_dumps or dns_config
#   SECONDS default 60
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address). No nightly toolchain
# can be downloaded here, so the stable toolchain is told to accept them with
# RUSTC_BOOTSTRAP=1; this works with the stable rust-std, which ships the ASan runtime.
# Install cargo-fuzz once with `cargo install cargo-fuzz --locked`.
#
# The corpus starts from the project's own capture fixtures and the DNS captures of
# tcpdump's test suite (../shared/testdata beside the repository); crashes are written to
# artifacts/TARGET/ and make this script fail.
set -euo pipefail
cd "$(dirname "$0")"
TARGET=${1:-capture_reader}
SECS=${2:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
CORPUS=corpus/$TARGET
mkdir -p "$CORPUS"
case $TARGET in
rule_dumps)
    # Real dumps: iptables-save, nft, ipvsadm, conntrack -S, sysctls.
    find ../tests/fixtures/node -type f ! -name '*.md' -exec cp {} "$CORPUS"/ \;
    ;;
dns_config)
    find ../tests/fixtures/dns_config -type f ! -name '*.md' -exec cp {} "$CORPUS"/ \;
    ;;
*)
    cp ../tests/fixtures/captures/*.pcap* "$CORPUS"/
    TESTDATA=../../../shared/testdata/tcpdump-captures
    if [[ -d $TESTDATA ]]; then
        for f in "$TESTDATA"/dns*.pcap "$TESTDATA"/edns-opts.pcap "$TESTDATA"/LINKTYPE_*.pcap*; do
            [[ -e $f ]] && cp "$f" "$CORPUS"/
        done
    fi
    ;;
esac
export RUSTC_BOOTSTRAP=1
# -rss_limit_mb and -timeout turn memory blow-ups and hangs into failures too.
exec timeout $((SECS + 900)) cargo fuzz run -O "$TARGET" "$CORPUS" -- \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=262144
