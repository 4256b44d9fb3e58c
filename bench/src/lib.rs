//! Criterion micro-benchmarks of Switchboard's hot paths live in `benches/`; this library is
//! empty. Run them with `cargo bench -p switchboard-bench` (see `bench/NOTES.md`).
