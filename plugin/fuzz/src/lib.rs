//! The plugin's pure parsing modules, compiled on their own for the fuzz targets.

#[path = "../../src/capture/mod.rs"]
pub mod capture;

#[path = "../../src/node/mod.rs"]
pub mod node;

#[path = "../../src/dns_config/mod.rs"]
pub mod dns_config;
