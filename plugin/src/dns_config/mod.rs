//! Parsers for resolv.conf, the CoreDNS Corefile and CoreDNS's log lines. Pure: text in,
//! typed values out; no input makes them panic.

pub mod coredns_log;
pub mod corefile;
pub mod names;
pub mod resolv_conf;
