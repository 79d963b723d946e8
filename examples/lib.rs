//! Helpers shared by the sockserve examples (the examples themselves are the `[[example]]`
//! targets of this package: `cargo run --example NAME` from the workspace root).
#![forbid(unsafe_code)]

pub mod parity;
