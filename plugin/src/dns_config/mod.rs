//! Parsers for resolv.conf and the CoreDNS Corefile.
