//! Parsers for raw node snapshots (iptables-save, nft, ipvsadm, conntrack -S and -L, sysctls,
//! ip addr) and the kube-proxy / firewall views built on them. Everything here is pure: text
//! in, typed values out, and no input makes it panic.

pub mod addresses;
pub mod cgroup;
pub mod cgroup_cpu;
pub mod cgroup_memory;
pub mod conntrack;
pub mod conntrack_entries;
pub mod firewall;
pub mod iptables;
pub mod iptables_firewall;
pub mod ipvs;
pub mod kube_proxy_iptables;
pub mod kube_proxy_nftables;
pub mod nftables;
pub mod nftables_firewall;
pub mod service;
pub mod sysctl;
