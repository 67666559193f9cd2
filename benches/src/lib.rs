//! Turnout's microbenchmarks: what the criterion benchmarks (`micro/`)
//! share with their tests. Requests as the shell sees them (the serialized
//! header map `proxy_get_header_map_pairs` hands over) and a
//! [`turnout::decide::RequestFacts`] that reads them the way the shell
//! does. `cargo bench -p turnout-benches`.
//!
//! The load benchmark is its own package, `benches/load`
//! (`cargo bench-load`); the floor filter it compares with is
//! `benches/floor`.

pub mod micro;
