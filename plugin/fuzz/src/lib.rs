//! The plugin's pure parsing modules, compiled on their own for the fuzz targets.

#[path = "../../src/capture/mod.rs"]
pub mod capture;
