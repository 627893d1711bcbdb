//! What a new PIN must look like.
//!
//! A PIN is exactly 6 ASCII digits, and not one of these 30 easily guessed ones:
//! - one repeated digit: `000000`, `111111`, ... `999999`;
//! - a straight run up or down the digits, where `0` follows `9` (as on a phone keypad's
//!   bottom row and a keyboard's number row), so runs may wrap around: ascending
//!   `012345` ... `456789`, `567890`, `678901`, `789012`, `890123`, `901234`, and the 10
//!   descending ones, `987654` ... `543210`, `432109`, `321098`, `210987`, `109876`,
//!   `098765`.
//!
//! This applies when a PIN is chosen (`create_wallet`, `new_pin`), never to an existing
//! PIN being entered.

/// Why a new PIN was refused. The variant names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PinRuleError {
    #[error("a PIN has exactly 6 digits")]
    WrongLength,
    #[error("a PIN has only the digits 0-9")]
    NotDigits,
    #[error("a PIN cannot be one digit repeated")]
    Repeated,
    #[error("a PIN cannot be a straight run of digits")]
    Sequential,
}

impl PinRuleError {
    /// A stable snake_case code: `wrong_length`, `not_digits`, `repeated`, `sequential`.
    pub fn code(self) -> &'static str {
        match self {
            PinRuleError::WrongLength => "wrong_length",
            PinRuleError::NotDigits => "not_digits",
            PinRuleError::Repeated => "repeated",
            PinRuleError::Sequential => "sequential",
        }
    }
}

/// The number of digits in a PIN.
pub const PIN_LEN: usize = 6;

/// Checks a PIN being chosen against the rules above.
///
/// Length is counted in characters, so a 6-character PIN with a non-ASCII digit (`١`,
/// `６`) is [`PinRuleError::NotDigits`], not [`PinRuleError::WrongLength`].
pub fn validate_new_pin(pin: &str) -> Result<(), PinRuleError> {
    if pin.chars().count() != PIN_LEN {
        return Err(PinRuleError::WrongLength);
    }
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PinRuleError::NotDigits);
    }
    let d = pin.as_bytes();
    // Each step as +1, 0 or -1 modulo 10 (as 1, 0, 9), the same step all the way.
    let step = (d[1] + 10 - d[0]) % 10;
    let same_step = d.windows(2).all(|w| (w[1] + 10 - w[0]) % 10 == step);
    if same_step && step == 0 {
        return Err(PinRuleError::Repeated);
    }
    if same_step && (step == 1 || step == 9) {
        return Err(PinRuleError::Sequential);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_table() {
        use PinRuleError::*;
        let table: &[(&str, Result<(), PinRuleError>)] = &[
            ("482915", Ok(())),
            ("102938", Ok(())),
            ("135790", Ok(())),
            ("024680", Ok(())),
            ("123457", Ok(())),
            ("012346", Ok(())),
            ("121212", Ok(())),
            ("000001", Ok(())),
            ("998877", Ok(())),
            ("", Err(WrongLength)),
            ("12345", Err(WrongLength)),
            ("1234567", Err(WrongLength)),
            ("48291 ", Err(NotDigits)),
            (" 48291", Err(NotDigits)),
            ("4829l5", Err(NotDigits)),
            ("-48291", Err(NotDigits)),
            ("４８２９１５", Err(NotDigits)),
            ("٤٨٢٩١٥", Err(NotDigits)),
            ("4829\u{0}5", Err(NotDigits)),
            ("000000", Err(Repeated)),
            ("111111", Err(Repeated)),
            ("555555", Err(Repeated)),
            ("999999", Err(Repeated)),
            ("012345", Err(Sequential)),
            ("123456", Err(Sequential)),
            ("234567", Err(Sequential)),
            ("345678", Err(Sequential)),
            ("456789", Err(Sequential)),
            ("567890", Err(Sequential)),
            ("678901", Err(Sequential)),
            ("789012", Err(Sequential)),
            ("890123", Err(Sequential)),
            ("901234", Err(Sequential)),
            ("987654", Err(Sequential)),
            ("876543", Err(Sequential)),
            ("765432", Err(Sequential)),
            ("654321", Err(Sequential)),
            ("543210", Err(Sequential)),
            ("432109", Err(Sequential)),
            ("321098", Err(Sequential)),
            ("210987", Err(Sequential)),
            ("109876", Err(Sequential)),
            ("098765", Err(Sequential)),
        ];
        for (pin, want) in table {
            assert_eq!(validate_new_pin(pin), *want, "{pin:?}");
        }
    }

    #[test]
    fn exactly_thirty_six_digit_pins_are_refused() {
        let refused = (0..1_000_000)
            .filter(|n| validate_new_pin(&format!("{n:06}")).is_err())
            .count();
        assert_eq!(refused, 30);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(PinRuleError::WrongLength.code(), "wrong_length");
        assert_eq!(PinRuleError::NotDigits.code(), "not_digits");
        assert_eq!(PinRuleError::Repeated.code(), "repeated");
        assert_eq!(PinRuleError::Sequential.code(), "sequential");
    }
}
