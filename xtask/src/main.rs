//! `cargo xtask`: shell, filled by the xtask work.
fn main() {}
