//! What can be checked here, on Linux, about builds for macOS and Windows: the crates such
//! a build compiles, and the plugin's own Unix-only code and its gates.

pub mod graph;
pub mod unix_scan;
