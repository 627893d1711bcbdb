//! Domain types shared across Keystead crates.
