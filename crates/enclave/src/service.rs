//! The enclave's request handling: every operation that touches a key.

use std::sync::{Arc, Mutex};

use base64::Engine;
use rand::RngCore;
use rand::rngs::StdRng;
use zeroize::Zeroizing;

use keystead_attestation::AttestationProvider;
use keystead_enclave_proto::{
    Attestation, ChangePinRequest, CreateWallet, EnclaveError, EnvelopeRejection, ExportRequest,
    Health, RecoverRequest, Reply, Request, Response, SealedWallet, SignPayload, SignRequest,
    WalletBinding, WalletContext, WalletCreated,
};
use keystead_envelope::{HpkeKeyPair, Operation, PinPayload, Sealed};
use keystead_kms::{EncryptionContext, Kms, KmsError};

use crate::keys::{self, AccountScheme, AddressBook, Evm, WalletSecret, recovery_code};
use crate::pin::{self, PinMemory};
use crate::replay::{ReplayError, ReplayGuard};
use crate::seal::{self, Opener, SALT_LEN, SEAL_FORMAT};
use crate::sign::{self, SignError};

/// Wall-clock time, passed in so tests can move it.
pub trait Clock: Send + Sync {
    fn now_unix(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

pub struct ServiceConfig {
    /// Envelope nonces remembered at once (each for at most ~11 minutes, about 53 bytes
    /// apiece). Divided by the envelopes' lifetime it is the rate of envelopes the
    /// enclave can take for good: 2,000,000 over the clients' 300 s is 6,667/s, about what
    /// two cores sign; past it new envelopes get `Busy`.
    pub replay_capacity: usize,
    /// Wallets whose latest PIN state is remembered.
    pub pin_memory_capacity: usize,
    /// Account addresses remembered (public data; about 100 bytes each).
    pub address_book_capacity: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            replay_capacity: 2_000_000,
            pin_memory_capacity: 100_000,
            address_book_capacity: 100_000,
        }
    }
}

/// The parts the service is made of; all randomness and time come in here.
pub struct ServiceParts {
    pub kms: Arc<dyn Kms>,
    pub dr_kms: Option<Arc<dyn Kms>>,
    pub attestation: Arc<dyn AttestationProvider>,
    pub clock: Arc<dyn Clock>,
    pub rng: StdRng,
    pub health: Health,
    pub config: ServiceConfig,
}

impl ServiceParts {
    /// The parts an in-process service for measurements is built from: `dev`
    /// attestation over a zero measurement, the system clock, an OS-seeded RNG, and no
    /// process hardening reported (the benchmarks are not the enclave process).
    pub fn in_process(kms: Arc<dyn Kms>, dr_kms: Option<Arc<dyn Kms>>) -> Self {
        use rand::SeedableRng;
        Self {
            kms,
            dr_kms,
            attestation: Arc::new(keystead_attestation::DevProvider::new([0u8; 48])),
            clock: Arc::new(SystemClock),
            rng: StdRng::from_os_rng(),
            health: Health {
                protocol_version: keystead_enclave_proto::PROTOCOL_VERSION,
                attestation_format: "dev".into(),
                non_dumpable: false,
                core_dumps_disabled: false,
                memory_locked: false,
            },
            config: ServiceConfig::default(),
        }
    }
}

pub struct EnclaveService {
    hpke: HpkeKeyPair,
    boot_attestation: Attestation,
    provider: Arc<dyn AttestationProvider>,
    kms: Arc<dyn Kms>,
    dr_kms: Option<Arc<dyn Kms>>,
    clock: Arc<dyn Clock>,
    rng: Mutex<StdRng>,
    replay: Mutex<ReplayGuard>,
    pins: Mutex<PinMemory>,
    addresses: AddressBook,
    health: Health,
}

/// A refused operation, with the wallet record to store when the refusal changed it.
struct Refusal {
    error: EnclaveError,
    wallet_update: Option<Box<SealedWallet>>,
}

impl From<EnclaveError> for Refusal {
    fn from(error: EnclaveError) -> Self {
        Self {
            error,
            wallet_update: None,
        }
    }
}

type Handled = Result<(Response, Option<SealedWallet>), Refusal>;

/// An opened wallet: its secret, and the record as it now stands.
struct Unlocked {
    secret: WalletSecret,
    data_key: Zeroizing<[u8; 32]>,
    wallet: SealedWallet,
    changed: bool,
}

fn rejection(e: keystead_envelope::EnvelopeError) -> EnclaveError {
    use keystead_envelope::EnvelopeError as E;
    EnclaveError::EnvelopeRejected(match e {
        E::PurposeMismatch { .. } => EnvelopeRejection::WrongPurpose,
        E::DigestMismatch => EnvelopeRejection::WrongDigest,
        E::Expired { .. } => EnvelopeRejection::Expired,
        E::ExpiryTooFar { .. } => EnvelopeRejection::ExpiryTooFar,
        E::NonceTooShort { .. } | E::NonceTooLong { .. } => EnvelopeRejection::BadNonce,
        E::MalformedPayload | E::ChainIdOutOfRange(_) => EnvelopeRejection::Malformed,
        _ => EnvelopeRejection::Undecryptable,
    })
}

fn kms_error(e: KmsError) -> EnclaveError {
    EnclaveError::Kms(e.to_string())
}

fn sign_error(e: SignError) -> EnclaveError {
    match e {
        SignError::TypedData(m) => EnclaveError::InvalidRequest(format!("typed data: {m}")),
        SignError::IntentNotCanonical(_) | SignError::Mismatch(_) => {
            EnclaveError::IntentMismatch(e.to_string())
        }
    }
}

fn context(binding: &WalletBinding) -> EncryptionContext {
    EncryptionContext {
        app_id: binding.app_id.clone(),
        wallet_id: binding.wallet_id.clone(),
    }
}

fn client_public_key(client_key: &str) -> Result<[u8; 32], EnclaveError> {
    base64::engine::general_purpose::STANDARD
        .decode(client_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            EnclaveError::InvalidRequest("clientKey must be a base64 X25519 public key".into())
        })
}

impl EnclaveService {
    pub fn new(parts: ServiceParts) -> Result<Self, EnclaveError> {
        let mut rng = parts.rng;
        let hpke = HpkeKeyPair::generate(&mut rng);
        let public_key = hpke.public_key();
        let document = parts
            .attestation
            .attest(&public_key, None, None, parts.clock.now_unix() * 1000)
            .map_err(|_| EnclaveError::Internal)?;
        let boot_attestation = Attestation {
            format: parts.attestation.format().as_str().to_string(),
            document,
            public_key,
        };
        Ok(Self {
            hpke,
            boot_attestation,
            provider: parts.attestation,
            kms: parts.kms,
            dr_kms: parts.dr_kms,
            clock: parts.clock,
            rng: Mutex::new(rng),
            replay: Mutex::new(ReplayGuard::new(parts.config.replay_capacity)),
            pins: Mutex::new(PinMemory::new(parts.config.pin_memory_capacity)),
            addresses: AddressBook::new(parts.config.address_book_capacity),
            health: parts.health,
        })
    }

    pub async fn handle(&self, request: Request) -> Reply {
        let handled = match request {
            Request::Ping => Ok((Response::Pong(self.health.clone()), None)),
            Request::Attestation { nonce } => self.attestation(nonce),
            Request::CreateWallet(r) => self.create_wallet(r).await,
            Request::Sign(r) => self.sign(r).await,
            Request::Export(r) => self.export(r).await,
            Request::ChangePin(r) => self.change_pin(r).await,
            Request::Recover(r) => self.recover(r).await,
        };
        match handled {
            Ok((response, wallet_update)) => Reply {
                result: Ok(response),
                wallet_update,
            },
            Err(refusal) => Reply {
                result: Err(refusal.error),
                wallet_update: refusal.wallet_update.map(|w| *w),
            },
        }
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut rng)
    }

    fn attestation(&self, nonce: Option<Vec<u8>>) -> Handled {
        let Some(nonce) = nonce else {
            return Ok((Response::Attestation(self.boot_attestation.clone()), None));
        };
        if nonce.len() > 512 {
            return Err(
                EnclaveError::InvalidRequest("attestation nonce over 512 bytes".into()).into(),
            );
        }
        let document = self
            .provider
            .attest(
                &self.boot_attestation.public_key,
                None,
                Some(&nonce),
                self.clock.now_unix() * 1000,
            )
            .map_err(|_| EnclaveError::Internal)?;
        Ok((
            Response::Attestation(Attestation {
                document,
                ..self.boot_attestation.clone()
            }),
            None,
        ))
    }

    /// Opens a PIN envelope and checks it against the operation about to be performed,
    /// then spends its nonce.
    fn open_envelope(&self, sealed: &Sealed, op: &Operation) -> Result<PinPayload, EnclaveError> {
        let payload = keystead_envelope::open_pin(&self.hpke, sealed).map_err(rejection)?;
        let now = self.clock.now_unix();
        keystead_envelope::check(&payload, op, now).map_err(rejection)?;
        let mut replay = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        match replay.use_once(&payload.nonce, payload.expires_at, now) {
            Ok(()) => Ok(payload),
            Err(ReplayError::Replayed) => {
                Err(EnclaveError::EnvelopeRejected(EnvelopeRejection::Replayed))
            }
            Err(ReplayError::Full) => Err(EnclaveError::Busy),
        }
    }

    fn open_new_pin(
        &self,
        sealed: &Sealed,
        binding: &WalletBinding,
    ) -> Result<PinPayload, EnclaveError> {
        let op = Operation::NewPin {
            app_id: binding.app_id.clone(),
            wallet_id: binding.wallet_id.clone(),
        };
        let payload = self.open_envelope(sealed, &op)?;
        keystead_envelope::validate_new_pin(&payload.pin)
            .map_err(|e| EnclaveError::WeakPin(e.code().to_string()))?;
        Ok(payload)
    }

    async fn create_wallet(&self, r: CreateWallet) -> Handled {
        let binding = &r.binding;
        let op = Operation::CreateWallet {
            app_id: binding.app_id.clone(),
            user_id: r.user_id.clone(),
            client_key: r.client_key.clone(),
        };
        let payload = self.open_envelope(&r.pin, &op)?;
        keystead_envelope::validate_new_pin(&payload.pin)
            .map_err(|e| EnclaveError::WeakPin(e.code().to_string()))?;
        let client_key = client_public_key(&r.client_key)?;

        let ctx = context(binding);
        let data_key = self.kms.generate_data_key(&ctx).await.map_err(kms_error)?;
        let dr_data_key = match &self.dr_kms {
            Some(dr) => Some(
                dr.wrap_data_key(&data_key.plaintext, &ctx)
                    .await
                    .map_err(kms_error)?,
            ),
            None => None,
        };
        let kms_random = self
            .kms
            .generate_random(keys::ENTROPY_LEN)
            .await
            .map_err(kms_error)?;
        let (local_random, code_random, salt) = self.with_rng(|rng| {
            let mut local = Zeroizing::new([0u8; keys::ENTROPY_LEN]);
            rng.fill_bytes(local.as_mut());
            let mut code = Zeroizing::new([0u8; recovery_code::SYMBOLS]);
            rng.fill_bytes(code.as_mut());
            let mut salt = [0u8; SALT_LEN];
            rng.fill_bytes(&mut salt);
            (local, code, salt)
        });
        let secret =
            WalletSecret::from_entropy(&keys::mix_entropy(&kms_random, local_random.as_ref()))
                .map_err(|_| EnclaveError::Internal)?;
        let code = recovery_code::from_random(&code_random);
        let normalized = recovery_code::normalize(&code).ok_or(EnclaveError::Internal)?;
        let plaintext = secret.encode();
        let dk = &data_key.plaintext;
        let (by_pin, by_recovery) = self.with_rng(|rng| {
            (
                seal::seal(
                    dk,
                    &salt,
                    binding,
                    Opener::Pin,
                    payload.pin.as_bytes(),
                    &plaintext,
                    rng,
                ),
                seal::seal(
                    dk,
                    &salt,
                    binding,
                    Opener::RecoveryCode,
                    normalized.as_bytes(),
                    &plaintext,
                    rng,
                ),
            )
        });
        let mut pin_state = pin::fresh_state();
        seal::authenticate_pin_state(dk, binding, &mut pin_state);
        let account = Evm::account(&secret, 0).map_err(|_| EnclaveError::Internal)?;
        let recovery_kit = self
            .with_rng(|rng| keystead_envelope::seal_recovery_code(&client_key, &code, rng))
            .map_err(|_| EnclaveError::Internal)?;
        let wallet = SealedWallet {
            format: SEAL_FORMAT,
            data_key: data_key.wrapped.clone(),
            dr_data_key,
            salt: salt.to_vec(),
            by_pin,
            by_recovery,
            pin_state,
        };
        Ok((
            Response::WalletCreated(WalletCreated {
                wallet,
                accounts: vec![account],
                recovery_kit,
            }),
            None,
        ))
    }

    /// Unwraps the data key; when the primary KMS key is gone, from the disaster-recovery
    /// copy, re-wrapping it under the primary's current key. The bool says it was re-wrapped.
    async fn data_key(
        &self,
        binding: &WalletBinding,
        wallet: &SealedWallet,
    ) -> Result<(Zeroizing<[u8; 32]>, Option<Vec<u8>>), EnclaveError> {
        let ctx = context(binding);
        match self.kms.decrypt_data_key(&wallet.data_key, &ctx).await {
            Ok(dk) => Ok((dk, None)),
            // The primary key is gone (or was replaced): the DR copy is independent of it.
            Err(KmsError::KeyNotFound { .. } | KmsError::DecryptFailed) => {
                let (Some(dr), Some(dr_wrapped)) = (&self.dr_kms, &wallet.dr_data_key) else {
                    return Err(EnclaveError::Kms(
                        "the wallet's KMS key is unavailable and it has no disaster-recovery copy"
                            .into(),
                    ));
                };
                let dk = dr
                    .decrypt_data_key(dr_wrapped, &ctx)
                    .await
                    .map_err(kms_error)?;
                let rewrapped = self.kms.wrap_data_key(&dk, &ctx).await.map_err(kms_error)?;
                tracing::warn!(wallet = %binding.wallet_id, "restored a wallet's data key from the disaster-recovery copy");
                Ok((dk, Some(rewrapped)))
            }
            Err(e) => Err(kms_error(e)),
        }
    }

    /// Checks the PIN (or recovery code) against the wallet, counting failures.
    async fn unlock(
        &self,
        ctx: &WalletContext,
        secret_input: &[u8],
        opener: Opener,
    ) -> Result<Unlocked, Refusal> {
        let binding = &ctx.binding;
        let mut wallet = ctx.wallet.clone();
        if wallet.format != SEAL_FORMAT {
            return Err(EnclaveError::InvalidRequest(format!(
                "unknown wallet format {}",
                wallet.format
            ))
            .into());
        }
        let (data_key, rewrapped) = self.data_key(binding, &wallet).await?;
        let mut changed = false;
        if let Some(rewrapped) = rewrapped {
            wallet.data_key = rewrapped;
            changed = true;
        }
        if !seal::verify_pin_state(&data_key, binding, &wallet.pin_state) {
            return Err(EnclaveError::TamperedRecord.into());
        }
        let now = self.clock.now_unix();
        let newest = self
            .pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .newest(binding, &wallet.pin_state);
        if newest != wallet.pin_state {
            wallet.pin_state = newest;
            changed = true;
        }
        let sealed = match opener {
            Opener::Pin => {
                if let Some(error) = pin::lock_refusal(&wallet.pin_state, now) {
                    return Err(Refusal {
                        error,
                        wallet_update: changed.then(|| Box::new(wallet)),
                    });
                }
                &wallet.by_pin
            }
            // The recovery code is how a locked-out user gets back in, so the PIN lock does
            // not apply to it; its 125 bits make guessing it hopeless without a counter.
            Opener::RecoveryCode => &wallet.by_recovery,
        };
        match seal::open(
            &data_key,
            &wallet.salt,
            binding,
            opener,
            secret_input,
            sealed,
        ) {
            Some(plaintext) => {
                let secret =
                    WalletSecret::decode(&plaintext).map_err(|_| EnclaveError::TamperedRecord)?;
                if pin::register_success(&mut wallet.pin_state) {
                    self.issue_pin_state(&data_key, binding, &mut wallet);
                    changed = true;
                }
                Ok(Unlocked {
                    secret,
                    data_key,
                    wallet,
                    changed,
                })
            }
            None if opener == Opener::RecoveryCode => Err(Refusal {
                error: EnclaveError::WrongRecoveryCode,
                wallet_update: changed.then(|| Box::new(wallet)),
            }),
            None => {
                let error = pin::register_failure(&mut wallet.pin_state, now);
                self.issue_pin_state(&data_key, binding, &mut wallet);
                Err(Refusal {
                    error,
                    wallet_update: Some(Box::new(wallet)),
                })
            }
        }
    }

    fn issue_pin_state(
        &self,
        data_key: &[u8; 32],
        binding: &WalletBinding,
        wallet: &mut SealedWallet,
    ) {
        seal::authenticate_pin_state(data_key, binding, &mut wallet.pin_state);
        self.pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remember(binding, &wallet.pin_state);
    }

    async fn sign(&self, r: SignRequest) -> Handled {
        let binding = &r.wallet.binding;
        let (app_id, account_id) = (binding.app_id.clone(), r.account_id.clone());
        let op = match &r.payload {
            SignPayload::Message(message) => Operation::SignMessage {
                app_id,
                account_id,
                message: message.clone(),
            },
            SignPayload::TypedData(json) => {
                let hash = sign::typed_data_hash(json).map_err(sign_error)?;
                Operation::SignTypedData {
                    app_id,
                    account_id,
                    hash: hash.0,
                }
            }
            SignPayload::Transaction { intent, .. } => Operation::SignTransaction {
                app_id,
                account_id,
                intent: intent.clone(),
            },
        };
        let payload = self.open_envelope(&r.pin, &op)?;
        let unlocked = self
            .unlock(&r.wallet, payload.pin.as_bytes(), Opener::Pin)
            .await?;
        let update = unlocked.changed.then(|| unlocked.wallet.clone());
        let signer = Evm::signer(&unlocked.secret, r.account_index, &self.addresses)
            .map_err(|_| EnclaveError::Internal)?;
        let signed = match (&r.payload, &op) {
            (SignPayload::Message(message), _) => Ok(sign::sign_message(&signer, message)),
            (SignPayload::TypedData(_), Operation::SignTypedData { hash, .. }) => {
                Ok(sign::sign_typed_hash(&signer, &(*hash).into()))
            }
            (SignPayload::Transaction { intent, tx }, _) => {
                sign::sign_transaction(&signer, intent, tx)
            }
            _ => return Err(EnclaveError::Internal.into()),
        }
        .map_err(|e| Refusal {
            error: sign_error(e),
            wallet_update: update.clone().map(Box::new),
        })?;
        Ok((Response::Signed(signed), update))
    }

    async fn export(&self, r: ExportRequest) -> Handled {
        let binding = &r.wallet.binding;
        let op = Operation::Export {
            app_id: binding.app_id.clone(),
            wallet_id: binding.wallet_id.clone(),
            client_key: r.client_key.clone(),
        };
        let payload = self.open_envelope(&r.pin, &op)?;
        let client_key = client_public_key(&r.client_key)?;
        let unlocked = self
            .unlock(&r.wallet, payload.pin.as_bytes(), Opener::Pin)
            .await?;
        let update = unlocked.changed.then(|| unlocked.wallet.clone());
        let mnemonic = unlocked.secret.mnemonic();
        let sealed = self
            .with_rng(|rng| keystead_envelope::seal_mnemonic(&client_key, &mnemonic, rng))
            .map_err(|_| EnclaveError::Internal)?;
        Ok((Response::Exported { mnemonic: sealed }, update))
    }

    /// Re-seals the secret under a new PIN; the lock and counters reset.
    fn reseal_pin(
        &self,
        unlocked: Unlocked,
        binding: &WalletBinding,
        new_pin: &PinPayload,
    ) -> SealedWallet {
        let mut wallet = unlocked.wallet;
        let plaintext = unlocked.secret.encode();
        wallet.by_pin = self.with_rng(|rng| {
            seal::seal(
                &unlocked.data_key,
                &wallet.salt,
                binding,
                Opener::Pin,
                new_pin.pin.as_bytes(),
                &plaintext,
                rng,
            )
        });
        pin::reset(&mut wallet.pin_state);
        self.issue_pin_state(&unlocked.data_key, binding, &mut wallet);
        wallet
    }

    async fn change_pin(&self, r: ChangePinRequest) -> Handled {
        let binding = &r.wallet.binding;
        let op = Operation::ChangePin {
            app_id: binding.app_id.clone(),
            wallet_id: binding.wallet_id.clone(),
        };
        let new_pin = self.open_new_pin(&r.new_pin, binding)?;
        let payload = self.open_envelope(&r.pin, &op)?;
        let unlocked = self
            .unlock(&r.wallet, payload.pin.as_bytes(), Opener::Pin)
            .await?;
        Ok((
            Response::Resealed,
            Some(self.reseal_pin(unlocked, binding, &new_pin)),
        ))
    }

    async fn recover(&self, r: RecoverRequest) -> Handled {
        let binding = &r.wallet.binding;
        let op = Operation::Recover {
            app_id: binding.app_id.clone(),
            wallet_id: binding.wallet_id.clone(),
        };
        let new_pin = self.open_new_pin(&r.new_pin, binding)?;
        let payload = self.open_envelope(&r.recovery, &op)?;
        // A code that is not even well-formed is simply a wrong code.
        let code = recovery_code::normalize(&payload.pin).unwrap_or_default();
        let unlocked = self
            .unlock(&r.wallet, code.as_bytes(), Opener::RecoveryCode)
            .await?;
        Ok((
            Response::Resealed,
            Some(self.reseal_pin(unlocked, binding, &new_pin)),
        ))
    }
}
