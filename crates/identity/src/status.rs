//! What a logged-in user must do next, as the seed's service (Wepin) tells its apps.

use serde::{Deserialize, Serialize};

/// The `status` of a Session and of `GET /v1/me`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// The user has no wallet yet: they set a PIN, and the wallet is created with it
    /// (`POST /v1/wallet`). Wepin's `pinRequired`.
    PinRequired,
    /// The user already has a wallet, made through another app, that is not registered
    /// to this app: they enter that wallet's existing PIN once to register it here.
    /// Wepin's `registerRequired` ("register to another app").
    RegisterRequired,
    /// The user has a wallet in this app: ready to use it. Wepin's `complete`.
    Complete,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::PinRequired => "pin_required",
            UserStatus::RegisterRequired => "register_required",
            UserStatus::Complete => "complete",
        }
    }
}

impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule:
///
/// | wallet in this app | wallet elsewhere | status |
/// |---|---|---|
/// | yes | – | `complete` |
/// | no | yes | `register_required` |
/// | no | no | `pin_required` |
///
/// "Elsewhere" means a wallet of the same person made through another app and not yet
/// registered to this one. While Keystead keeps apps fully isolated (a user, and so a
/// wallet, belongs to one app), callers pass `false` for it and `register_required`
/// never occurs; it is kept for the seed's register-to-another-app flow.
pub fn user_status(has_wallet_in_this_app: bool, has_wallet_elsewhere: bool) -> UserStatus {
    match (has_wallet_in_this_app, has_wallet_elsewhere) {
        (true, _) => UserStatus::Complete,
        (false, true) => UserStatus::RegisterRequired,
        (false, false) => UserStatus::PinRequired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_and_wire_names() {
        assert_eq!(user_status(true, false), UserStatus::Complete);
        assert_eq!(user_status(true, true), UserStatus::Complete);
        assert_eq!(user_status(false, true), UserStatus::RegisterRequired);
        assert_eq!(user_status(false, false), UserStatus::PinRequired);
        for s in [
            UserStatus::PinRequired,
            UserStatus::RegisterRequired,
            UserStatus::Complete,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
