//! Wrong-PIN counting and lock-out, and the enclave's memory of the PIN states it issued.

use keystead_enclave_proto::{EnclaveError, PinState, WalletBinding};

use crate::bounded::BoundedMap;

/// Wrong PINs allowed before the first lock-out.
pub const MAX_TRIES: u32 = 5;
const FIRST_LOCKOUT_SECS: u64 = 60;
const MAX_LOCKOUT_SECS: u64 = 24 * 60 * 60;

/// Lock-out length for the n-th lock-out: 1 min, 4 min, 16 min, ... capped at a day.
pub fn lockout_secs(lockouts: u32) -> u64 {
    let growth = 4u64.saturating_pow(lockouts.saturating_sub(1));
    FIRST_LOCKOUT_SECS
        .saturating_mul(growth)
        .min(MAX_LOCKOUT_SECS)
}

/// A new wallet's state, before its MAC is set.
pub fn fresh_state() -> PinState {
    PinState {
        failures: 0,
        lockouts: 0,
        locked_until: 0,
        counter: 0,
        mac: Vec::new(),
    }
}

/// The refusal a locked wallet gives, if it is locked at `now`.
pub fn lock_refusal(state: &PinState, now: u64) -> Option<EnclaveError> {
    (state.locked_until > now).then(|| EnclaveError::WalletLocked {
        retry_after: state.locked_until - now,
    })
}

/// Counts a wrong PIN; returns the refusal to report. After `MAX_TRIES` the wallet locks;
/// once a lock-out has passed, each further wrong PIN locks it again, for longer.
pub fn register_failure(state: &mut PinState, now: u64) -> EnclaveError {
    state.counter += 1;
    state.failures += 1;
    if state.failures >= MAX_TRIES {
        state.lockouts += 1;
        state.failures = MAX_TRIES - 1;
        state.locked_until = now + lockout_secs(state.lockouts);
        EnclaveError::WalletLocked {
            retry_after: state.locked_until - now,
        }
    } else {
        EnclaveError::WrongPin {
            remaining_tries: MAX_TRIES - state.failures,
        }
    }
}

/// Clears the counters after a right PIN; `false` when there was nothing to clear.
pub fn register_success(state: &mut PinState) -> bool {
    if state.failures == 0 && state.lockouts == 0 && state.locked_until == 0 {
        return false;
    }
    state.counter += 1;
    state.failures = 0;
    state.lockouts = 0;
    state.locked_until = 0;
    true
}

/// Clears the counters after the PIN itself changed: always a new state.
pub fn reset(state: &mut PinState) {
    state.counter += 1;
    state.failures = 0;
    state.lockouts = 0;
    state.locked_until = 0;
}

/// The newest PIN state this enclave issued for each wallet, so a server that stores an
/// update and then presents an older record (to win back tries) gets the newer one
/// applied instead. Bounded: the oldest entries are forgotten first. It does not survive
/// a restart; docs/threat-model.md says what that leaves open.
pub struct PinMemory {
    states: BoundedMap<(String, String), PinState>,
}

impl PinMemory {
    pub fn new(capacity: usize) -> Self {
        Self {
            states: BoundedMap::new(capacity),
        }
    }

    /// The state to trust: the presented one, unless this enclave issued a newer one.
    pub fn newest(&self, binding: &WalletBinding, presented: &PinState) -> PinState {
        match self.states.get(&key(binding)) {
            Some(remembered) if remembered.counter > presented.counter => remembered.clone(),
            _ => presented.clone(),
        }
    }

    pub fn remember(&mut self, binding: &WalletBinding, state: &PinState) {
        self.states.insert(key(binding), state.clone());
    }
}

fn key(binding: &WalletBinding) -> (String, String) {
    (binding.app_id.clone(), binding.wallet_id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_wrong_pins_lock_and_locks_grow() {
        let mut s = fresh_state();
        for remaining in (1..MAX_TRIES).rev() {
            assert_eq!(
                register_failure(&mut s, 1000),
                EnclaveError::WrongPin {
                    remaining_tries: remaining
                }
            );
        }
        assert_eq!(
            register_failure(&mut s, 1000),
            EnclaveError::WalletLocked { retry_after: 60 }
        );
        assert_eq!(
            lock_refusal(&s, 1030),
            Some(EnclaveError::WalletLocked { retry_after: 30 })
        );
        assert_eq!(lock_refusal(&s, 1060), None);
        assert_eq!(
            register_failure(&mut s, 1060),
            EnclaveError::WalletLocked { retry_after: 240 }
        );
        assert_eq!(
            register_failure(&mut s, 1300),
            EnclaveError::WalletLocked { retry_after: 960 }
        );
        assert!(register_success(&mut s));
        assert_eq!((s.failures, s.lockouts, s.locked_until), (0, 0, 0));
        assert!(!register_success(&mut s));
        assert_eq!(lockout_secs(40), MAX_LOCKOUT_SECS);
    }

    #[test]
    fn memory_prefers_the_newer_state_and_stays_bounded() {
        let b = WalletBinding {
            app_id: "a".into(),
            wallet_id: "w".into(),
        };
        let mut memory = PinMemory::new(2);
        let old = fresh_state();
        let mut newer = old.clone();
        register_failure(&mut newer, 0);
        memory.remember(&b, &newer);
        assert_eq!(memory.newest(&b, &old), newer);
        let mut newest = newer.clone();
        register_failure(&mut newest, 0);
        assert_eq!(memory.newest(&b, &newest), newest);
        for i in 0..3 {
            let other = WalletBinding {
                app_id: "a".into(),
                wallet_id: format!("x{i}"),
            };
            memory.remember(&other, &newer);
        }
        assert_eq!(memory.states.len(), 2);
        assert_eq!(memory.newest(&b, &old), old, "oldest entry forgotten first");
    }
}
