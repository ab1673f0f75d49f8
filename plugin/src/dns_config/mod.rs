//! Parsers for resolv.conf and the CoreDNS Corefile. Pure: text in, typed values out; no
//! input makes them panic.

pub mod corefile;
pub mod names;
pub mod resolv_conf;
