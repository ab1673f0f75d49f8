//! Shared helpers for the end-to-end tests: network namespaces, the test cluster, the built binaries.
