//! Fixtures shared by the fuzz targets and the seed generator (`examples/gen_seeds.rs`),
//! so the checked-in seeds stay valid for the targets that read them.

use keystead_envelope::{HpkeKeyPair, Operation};

/// The fixed private key `envelope_opener` opens with.
pub const PRIVATE_KEY: [u8; 32] = [7u8; 32];

/// The enclave clock `envelope_opener` checks envelopes against.
pub const NOW: u64 = 1_700_000_000;

/// The key pair of [`PRIVATE_KEY`].
pub fn key_pair() -> HpkeKeyPair {
    HpkeKeyPair::from_private_bytes(PRIVATE_KEY)
}

/// The operation `envelope_opener` checks opened envelopes against.
pub fn operation() -> Operation {
    Operation::ChangePin {
        app_id: "app_01".into(),
        wallet_id: "wal_01".into(),
    }
}
