//! Benchmark support: packet builders shared by the criterion benches.
