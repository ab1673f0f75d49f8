//! Parsers for raw node snapshots: iptables-save, nft, ipvsadm, conntrack -S.
