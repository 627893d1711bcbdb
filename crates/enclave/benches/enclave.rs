//! Speed of the enclave, in-process, on one thread.
//!
//! Builds an `EnclaveService` the way `keystead-enclave` does (local KMS keyrings, a
//! disaster-recovery keyring, dev attestation, the system clock and an OS-seeded RNG) and
//! a client that seals PIN envelopes to its attested key. Every envelope is sealed before
//! the timed loops (sealing is the client's cost, and each nonce is single-use); each
//! operation is timed on its own and reported as mean, p50 and p99 in microseconds and as
//! operations per second. The parts of a signature are timed separately so their sum can
//! be set against the whole, and a few parts against the costs measured for the
//! components on this kind of machine (`COMPONENTS.md`, "Facts measured here").
//!
//! The machine may be shared, so beside wall time each batch also records the thread's
//! CPU time (`CLOCK_THREAD_CPUTIME_ID`) and how long it waited, runnable, for a CPU
//! (`run_delay` in `/proc/thread-self/schedstat`). A large wait share means the wall
//! figures measure the neighbours as much as the code; the CPU figures much less so. The
//! whole and its parts are measured in interleaved rounds, so a change of load in the
//! middle of the run falls on both.
//!
//! A harness that prints figures, not a test: nothing here fails on a slow result.
//!
//! `cargo bench -p keystead-enclave --bench enclave` runs it in full (release). Without
//! `--bench` (as under `cargo test --benches`) it runs a few iterations of each, to show
//! that it still works. Set `KEYSTEAD_BENCH_JSON=path` to also write the figures as JSON.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Signature, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use bip32::{DerivationPath, XPrv};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use keystead_enclave::keys::{AccountScheme, AddressBook, Evm, WalletSecret};
use keystead_enclave::replay::ReplayGuard;
use keystead_enclave::seal::{self, Opener};
use keystead_enclave::{EnclaveService, ServiceConfig, ServiceParts};
use keystead_enclave_proto::{
    CreateWallet, Reply, Request, Response, SealedWallet, SignPayload, SignRequest, Signed,
    UnsignedTx, WalletBinding, WalletContext,
};
use keystead_envelope::{HpkeKeyPair, Operation, PinPayload, Sealed, TxIntent, Zeroizing};
use keystead_kms::{EncryptionContext, Kms, LocalKms};
use keystead_testkit::{TestClient, now_unix};

const PIN: &str = "480927";
const APP: &str = "app_bench";
const ACCOUNT: &str = "acc_0";
const MESSAGE: &[u8] = b"hello keystead";
const BOB: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// The "Mail" example of EIP-712.
const MAIL: &str = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"version","type":"string"},{"name":"chainId","type":"uint256"},{"name":"verifyingContract","type":"address"}],"Person":[{"name":"name","type":"string"},{"name":"wallet","type":"address"}],"Mail":[{"name":"from","type":"Person"},{"name":"to","type":"Person"},{"name":"contents","type":"string"}]},"primaryType":"Mail","domain":{"name":"Ether Mail","version":"1","chainId":1,"verifyingContract":"0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},"message":{"from":{"name":"Cow","wallet":"0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},"to":{"name":"Bob","wallet":"0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},"contents":"Hello, Bob!"}}"#;

/// Single-thread rates measured for the components on this kind of machine
/// (`COMPONENTS.md`, "Facts measured here"), in operations per second.
const BASE_SECP256K1_SIGN: f64 = 22_300.0; // k256 0.13, which alloy uses
const BASE_HPKE_OPEN: f64 = 13_900.0;
const BASE_BIP32_PATH: f64 = 6_200.0;
const BASE_PBKDF2_SEED: f64 = 925.0;

const TARGET_SIGN_US: f64 = 1_000.0;
const TARGET_CREATE_US: f64 = 10_000.0;

/// Iteration counts: `--bench` gives the full run, anything else a smoke run.
struct Plan {
    full: bool,
    /// Untimed operations of each kind before its timed ones.
    warmup: usize,
    /// Interleaved rounds of (whole, parts) for signing and for wallet creation.
    rounds: usize,
    sign: usize,
    other_sign: usize,
    parts: usize,
    create: usize,
    create_warmup: usize,
}

impl Plan {
    fn from_args() -> Self {
        if std::env::args().any(|a| a == "--bench") {
            Self {
                full: true,
                warmup: 200,
                rounds: 10,
                sign: 2_000,
                other_sign: 1_000,
                parts: 2_000,
                create: 300,
                create_warmup: 30,
            }
        } else {
            Self {
                full: false,
                warmup: 2,
                rounds: 2,
                sign: 10,
                other_sign: 10,
                parts: 10,
                create: 4,
                create_warmup: 1,
            }
        }
    }
}

/// This thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How long this thread has waited, runnable, for a CPU (zero where the kernel does not say).
fn thread_run_delay() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .map_or(Duration::ZERO, Duration::from_nanos)
}

#[derive(Clone, Copy)]
struct Probe {
    at: Instant,
    cpu: Duration,
    wait: Duration,
}

impl Probe {
    fn now() -> Self {
        let wait = thread_run_delay();
        Self {
            at: Instant::now(),
            cpu: thread_cpu_time(),
            wait,
        }
    }
}

/// One or more batches of one operation: each operation's wall time, and the batches'
/// total wall time, thread CPU time and time spent waiting for a CPU.
#[derive(Default)]
struct Measured {
    walls: Vec<Duration>,
    elapsed: Duration,
    cpu: Duration,
    wait: Duration,
}

impl Measured {
    fn between(walls: Vec<Duration>, before: Probe, after: Probe) -> Self {
        Self {
            walls,
            elapsed: after.at - before.at,
            cpu: after.cpu.saturating_sub(before.cpu),
            wait: after.wait.saturating_sub(before.wait),
        }
    }

    fn merge(&mut self, other: Measured) {
        self.walls.extend(other.walls);
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        self.wait += other.wait;
    }
}

/// Times `f` on each input; the outputs are dropped after the clock stops.
fn time_each<T, R>(inputs: Vec<T>, mut f: impl FnMut(T) -> R) -> Measured {
    let mut walls = Vec::with_capacity(inputs.len());
    let before = Probe::now();
    for input in inputs {
        let start = Instant::now();
        let out = f(input);
        walls.push(start.elapsed());
        drop(black_box(out));
    }
    Measured::between(walls, before, Probe::now())
}

/// Times `f` `n` times over the same inputs.
fn time_n<R>(n: usize, mut f: impl FnMut() -> R) -> Measured {
    time_each(vec![(); n], |()| f())
}

/// Times each future to completion, all inside one `block_on`; returns the outputs.
fn time_each_async<T, R, Fut>(
    rt: &Runtime,
    inputs: Vec<T>,
    f: impl Fn(T) -> Fut,
) -> (Measured, Vec<R>)
where
    Fut: Future<Output = R>,
{
    rt.block_on(async {
        let mut walls = Vec::with_capacity(inputs.len());
        let mut outputs = Vec::with_capacity(inputs.len());
        let before = Probe::now();
        for input in inputs {
            let start = Instant::now();
            let out = f(input).await;
            walls.push(start.elapsed());
            outputs.push(out);
        }
        (Measured::between(walls, before, Probe::now()), outputs)
    })
}

struct Stats {
    n: usize,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    min_us: f64,
    max_us: f64,
    /// Thread CPU time per operation.
    cpu_us: f64,
    /// Share of the batches' wall time spent waiting for a CPU.
    wait_share: f64,
}

impl Stats {
    fn of(m: &Measured) -> Self {
        assert!(!m.walls.is_empty(), "no samples");
        let mut us: Vec<f64> = m.walls.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let n = us.len();
        // Nearest rank.
        let rank = |p: f64| us[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            mean_us: us.iter().sum::<f64>() / n as f64,
            p50_us: rank(0.50),
            p99_us: rank(0.99),
            min_us: us[0],
            max_us: us[n - 1],
            cpu_us: m.cpu.as_secs_f64() * 1e6 / n as f64,
            wait_share: m.wait.as_secs_f64() / m.elapsed.as_secs_f64().max(1e-9),
        }
    }

    fn ops_per_s(&self) -> f64 {
        1e6 / self.mean_us
    }

    fn cpu_ops_per_s(&self) -> f64 {
        1e6 / self.cpu_us
    }
}

struct Row {
    key: &'static str,
    group: &'static str,
    label: &'static str,
    measured: Measured,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Adds a batch; batches under one key (rounds) are pooled.
    fn add(&mut self, key: &'static str, group: &'static str, label: &'static str, m: Measured) {
        match self.rows.iter_mut().find(|r| r.key == key) {
            Some(row) => row.measured.merge(m),
            None => self.rows.push(Row {
                key,
                group,
                label,
                measured: m,
            }),
        }
    }

    fn get(&self, key: &str) -> Stats {
        Stats::of(
            &self
                .rows
                .iter()
                .find(|r| r.key == key)
                .expect("measured row")
                .measured,
        )
    }
}

fn signed_of(reply: &Reply) -> &Signed {
    match &reply.result {
        Ok(Response::Signed(signed)) => signed,
        other => panic!("expected a signature, got {other:?}"),
    }
}

/// What a client holds for one wallet: the record, and how to ask for signatures.
struct Fixture {
    binding: WalletBinding,
    wallet: SealedWallet,
    address: Address,
    checksummed: String,
}

impl Fixture {
    fn sign_request(&self, pin: Sealed, payload: SignPayload) -> Request {
        Request::Sign(SignRequest {
            wallet: WalletContext {
                binding: self.binding.clone(),
                wallet: self.wallet.clone(),
            },
            account_id: ACCOUNT.into(),
            account_index: 0,
            pin,
            payload,
        })
    }

    fn check_signed(&self, reply: &Reply) {
        assert_eq!(
            reply.wallet_update, None,
            "a right PIN on a clean record changes nothing"
        );
        assert_eq!(signed_of(reply).signer, self.checksummed);
    }
}

fn message_op() -> Operation {
    Operation::SignMessage {
        app_id: APP.into(),
        account_id: ACCOUNT.into(),
        message: MESSAGE.to_vec(),
    }
}

fn intent() -> TxIntent {
    TxIntent {
        chain_id: 31337,
        to: BOB.into(),
        value: "1000000000000000".into(),
        data: "0x".into(),
        gas_limit: "25200".into(),
        max_fee_per_gas: "2000000000".into(),
        max_priority_fee_per_gas: "1000000000".into(),
    }
}

fn eip1559(nonce: u64) -> UnsignedTx {
    UnsignedTx::Eip1559 {
        chain_id: 31337,
        nonce,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        gas_limit: 21_000,
        to: BOB.parse::<Address>().expect("address").into(),
        value: U256::from(1_000_000_000_000_000u64).to_be_bytes(),
        data: vec![],
    }
}

fn random_bytes<const N: usize>(rng: &mut StdRng, n: usize) -> Vec<[u8; N]> {
    (0..n)
        .map(|_| {
            let mut b = [0u8; N];
            rng.fill_bytes(&mut b);
            b
        })
        .collect()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let plan = Plan::from_args();
    let mut report = Report::default();
    let started = Instant::now();
    let load_before = load_average();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");

    // ---- The service, built as the enclave binary builds it.
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = |file: &str, key_id: &str| {
        Arc::new(
            LocalKms::open_or_create(&dir.path().join(file), key_id, keystead_kms::os_rng())
                .expect("keyring"),
        )
    };
    let (kms, dr_kms) = (
        keyring("kms-primary.json", "primary"),
        keyring("kms-dr.json", "dr"),
    );
    let service = EnclaveService::new(ServiceParts::in_process(kms.clone(), Some(dr_kms.clone())))
        .expect("enclave service");
    let service = &service;
    let handle = move |r: Request| service.handle(r);

    // ---- The client: checks the attestation and seals to the attested key.
    let attestation = match rt
        .block_on(handle(Request::Attestation { nonce: None }))
        .result
    {
        Ok(Response::Attestation(a)) => a,
        other => panic!("no attestation: {other:?}"),
    };
    let mut user = TestClient::attested(&attestation, APP);
    let (_client_kp, client_key) = user.one_time_key();
    let user_id = "usr_bench".to_string();
    let create_request = |user: &mut TestClient, i: usize| {
        let op = Operation::CreateWallet {
            app_id: APP.into(),
            user_id: user_id.clone(),
            client_key: client_key.clone(),
        };
        Request::CreateWallet(CreateWallet {
            binding: WalletBinding {
                app_id: APP.into(),
                wallet_id: format!("wal_{i}"),
            },
            user_id: user_id.clone(),
            client_key: client_key.clone(),
            pin: user.envelope(PIN, &op),
        })
    };

    // The wallet every signature below uses.
    let created = rt.block_on(handle(create_request(&mut user, 0)));
    let Ok(Response::WalletCreated(created)) = created.result else {
        panic!("create failed: {:?}", created.result)
    };
    let fixture = Fixture {
        binding: WalletBinding {
            app_id: APP.into(),
            wallet_id: "wal_0".into(),
        },
        address: created.accounts[0].address.parse().expect("EIP-55 address"),
        checksummed: created.accounts[0].address.clone(),
        wallet: created.wallet,
    };
    let mut next_wallet = 1;

    println!(
        "Keystead enclave benchmark ({})",
        if plan.full {
            "full run"
        } else {
            "smoke run; pass --bench for the full one"
        }
    );
    println!(
        "  in-process EnclaveService: LocalKms primary + dr, dev attestation; one thread \
         (tokio current-thread)\n  CPU: {}; {} logical CPUs; load average at start {}\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before
    );

    // Inputs for the parts: our own HPKE key pair, and the fixture's data key and secret.
    let mut rng = StdRng::from_os_rng();
    let kp = HpkeKeyPair::generate(&mut rng);
    let seal_to_kp = |rng: &mut StdRng| {
        let payload = PinPayload::for_operation(
            Zeroizing::new(PIN.to_string()),
            &message_op(),
            now_unix() + 300,
            rng,
        );
        keystead_envelope::seal_pin(&kp.public_key(), &payload, rng).expect("seal")
    };
    let ctx = EncryptionContext::new(APP, "wal_0");
    let (primary, dr, key_ctx, wrapped) = (&*kms, &*dr_kms, &ctx, &fixture.wallet.data_key);
    let unwrap = move |()| primary.decrypt_data_key(wrapped, key_ctx);
    let data_key = rt.block_on(unwrap(())).expect("unwrap");
    let (w, binding) = (&fixture.wallet, &fixture.binding);
    let unseal = || {
        seal::open(
            &data_key,
            &w.salt,
            binding,
            Opener::Pin,
            PIN.as_bytes(),
            &w.by_pin,
        )
        .expect("unseal")
    };
    let secret = WalletSecret::decode(&unseal()).expect("wallet secret");
    // What a signature pays: the address is in the enclave's book after the account's
    // first signature; a fresh book each time derives it, as on that first one.
    let book = AddressBook::new(1);
    let derive = || Evm::signer(&secret, 0, &book).expect("derive");
    let derive_first = || Evm::signer(&secret, 0, &AddressBook::new(1)).expect("derive");
    let signer = derive();
    assert_eq!(signer.address(), fixture.address);
    let path: DerivationPath = "m/44'/60'/0'/0/0".parse().expect("path");
    let bip32_only = || XPrv::derive_from_path(secret.seed(), &path).expect("derive");
    // bip32 uses k256 0.14 and alloy 0.13: the key crosses as 32 bytes, as in keys.rs.
    let child_key = Zeroizing::new(<[u8; 32]>::from(bip32_only().private_key().to_bytes()));
    let alloy_signer = PrivateKeySigner::from_slice(child_key.as_ref()).expect("signer");
    let alloy_sign = || alloy_signer.sign_message_sync(MESSAGE).expect("sign");
    let sign = || keystead_enclave::sign::sign_message(&signer, MESSAGE);
    let open = |s: Sealed| keystead_envelope::open_pin(&kp, &s).expect("open");
    let payload = open(seal_to_kp(&mut rng));
    let now = now_unix();
    let check = || keystead_envelope::check(&payload, &message_op(), now).expect("check");
    let mut guard = ReplayGuard::new(ServiceConfig::default().replay_capacity);
    let mut use_once = |nonce: [u8; keystead_envelope::NONCE_LEN]| {
        guard.use_once(&nonce, now + 300, now).expect("fresh nonce")
    };
    let verify = || assert!(seal::verify_pin_state(&data_key, binding, &w.pin_state));

    let message_requests = |user: &mut TestClient, n: usize| -> Vec<Request> {
        (0..n)
            .map(|_| {
                let envelope = user.envelope(PIN, &message_op());
                fixture.sign_request(envelope, SignPayload::Message(MESSAGE.to_vec()))
            })
            .collect()
    };

    // ---- 1 and 2. sign_message end to end, and its parts, in interleaved rounds.
    let prep = Instant::now();
    let warm = message_requests(&mut user, plan.warmup);
    let client_seal_us = prep.elapsed().as_secs_f64() * 1e6 / plan.warmup as f64;
    time_each_async(&rt, warm, handle)
        .1
        .iter()
        .for_each(|r| fixture.check_signed(r));
    let warm: Vec<Sealed> = (0..plan.warmup).map(|_| seal_to_kp(&mut rng)).collect();
    time_each(warm, open);
    time_n(plan.warmup, check);
    time_each(random_bytes(&mut rng, plan.warmup), &mut use_once);
    time_each_async(&rt, vec![(); plan.warmup], unwrap);
    time_n(plan.warmup, verify);
    time_n(plan.warmup, unseal);
    time_n(plan.warmup, derive);
    time_n(plan.warmup, derive_first);
    time_n(plan.warmup, bip32_only);
    time_n(plan.warmup, alloy_sign);
    time_n(plan.warmup, sign);

    let (sign_n, parts_n) = (plan.sign / plan.rounds, plan.parts / plan.rounds);
    let mut first_reply = None;
    for _ in 0..plan.rounds {
        let requests = message_requests(&mut user, sign_n);
        let (m, replies) = time_each_async(&rt, requests, handle);
        replies.iter().for_each(|r| fixture.check_signed(r));
        first_reply = first_reply.or(replies.into_iter().next());
        report.add("sign_message_e2e", "end to end", "sign_message (handle)", m);

        let sealed: Vec<Sealed> = (0..parts_n).map(|_| seal_to_kp(&mut rng)).collect();
        report.add(
            "hpke_open",
            "sign parts",
            "HPKE open_pin",
            time_each(sealed, open),
        );
        let m = time_n(parts_n, check);
        report.add(
            "envelope_check",
            "sign parts",
            "envelope check (op digest)",
            m,
        );
        let m = time_each(random_bytes(&mut rng, parts_n), &mut use_once);
        report.add("replay", "sign parts", "replay memory use_once", m);
        let (m, _) = time_each_async(&rt, vec![(); parts_n], unwrap);
        report.add("kms_decrypt", "sign parts", "LocalKms decrypt_data_key", m);
        report.add(
            "pin_state_hmac",
            "sign parts",
            "PIN-state HMAC verify",
            time_n(parts_n, verify),
        );
        report.add(
            "unseal",
            "sign parts",
            "AES-GCM seal::open",
            time_n(parts_n, unseal),
        );
        report.add(
            "derive",
            "sign parts",
            "Evm::signer (one BIP-32 step, address known)",
            time_n(parts_n, derive),
        );
        report.add(
            "derive_first",
            "sign parts",
            "  (first signature: and the address)",
            time_n(parts_n, derive_first),
        );
        let m = time_n(parts_n, bip32_only);
        report.add(
            "bip32_path",
            "sign parts",
            "  (full 5-level path from seed, reference)",
            m,
        );
        report.add(
            "secp256k1_sign",
            "sign parts",
            "sign::sign_message (EIP-191, k256 0.14)",
            time_n(parts_n, sign),
        );
        let m = time_n(parts_n, alloy_sign);
        report.add(
            "alloy_sign",
            "sign parts",
            "  (alloy's signer, k256 0.13, reference)",
            m,
        );
    }
    let first = first_reply.expect("a reply");
    let sig = Signature::try_from(signed_of(&first).signature.as_slice()).expect("signature");
    assert_eq!(
        sig.recover_address_from_msg(MESSAGE).expect("recoverable"),
        fixture.address
    );

    // ---- 3. Typed data and EIP-1559 transactions end to end.
    let typed_hash = keystead_enclave::sign::typed_data_hash(MAIL).expect("typed data");
    let typed_op = Operation::SignTypedData {
        app_id: APP.into(),
        account_id: ACCOUNT.into(),
        hash: typed_hash.0,
    };
    let typed_requests = |user: &mut TestClient, n: usize| -> Vec<Request> {
        (0..n)
            .map(|_| {
                let envelope = user.envelope(PIN, &typed_op);
                fixture.sign_request(envelope, SignPayload::TypedData(MAIL.into()))
            })
            .collect()
    };
    time_each_async(&rt, typed_requests(&mut user, plan.warmup), handle);
    let (m, replies) = time_each_async(&rt, typed_requests(&mut user, plan.other_sign), handle);
    replies.iter().for_each(|r| fixture.check_signed(r));
    let sig = Signature::try_from(signed_of(&replies[0]).signature.as_slice()).expect("signature");
    assert_eq!(
        sig.recover_address_from_prehash(&typed_hash)
            .expect("recoverable"),
        fixture.address
    );
    drop(replies);
    report.add(
        "sign_typed_data_e2e",
        "end to end",
        "sign typed data (handle)",
        m,
    );
    let hash = || keystead_enclave::sign::typed_data_hash(MAIL).expect("hash");
    time_n(plan.warmup, hash);
    report.add(
        "eip712_hash",
        "other parts",
        "EIP-712 hash of the JSON",
        time_n(plan.parts, hash),
    );

    let tx_op = Operation::SignTransaction {
        app_id: APP.into(),
        account_id: ACCOUNT.into(),
        intent: intent(),
    };
    let tx_requests = |user: &mut TestClient, nonces: std::ops::Range<u64>| -> Vec<Request> {
        nonces
            .map(|nonce| {
                let payload = SignPayload::Transaction {
                    intent: intent(),
                    tx: eip1559(nonce),
                };
                fixture.sign_request(user.envelope(PIN, &tx_op), payload)
            })
            .collect()
    };
    let (warm_n, tx_n) = (plan.warmup as u64, plan.other_sign as u64);
    time_each_async(&rt, tx_requests(&mut user, 0..warm_n), handle);
    let (m, replies) = time_each_async(&rt, tx_requests(&mut user, warm_n..warm_n + tx_n), handle);
    for reply in &replies {
        fixture.check_signed(reply);
        assert!(
            signed_of(reply).signed_transaction.is_some(),
            "a signed transaction"
        );
    }
    drop(replies);
    report.add(
        "sign_eip1559_e2e",
        "end to end",
        "sign EIP-1559 tx (handle)",
        m,
    );
    let (tx_intent, tx) = (intent(), eip1559(0));
    let sign_tx =
        || keystead_enclave::sign::sign_transaction(&signer, &tx_intent, &tx).expect("sign tx");
    time_n(plan.warmup, sign_tx);
    let m = time_n(plan.parts, sign_tx);
    report.add(
        "tx_check_sign",
        "other parts",
        "tx intent check + sign + encode",
        m,
    );

    // ---- 4. Wallet creation end to end, and its parts, in interleaved rounds.
    let mut create_requests = |user: &mut TestClient, n: usize| -> Vec<Request> {
        let first = next_wallet;
        next_wallet += n;
        (first..first + n)
            .map(|i| create_request(user, i))
            .collect()
    };
    let check_created = |reply: &Reply| {
        let Ok(Response::WalletCreated(c)) = &reply.result else {
            panic!("create failed: {:?}", reply.result)
        };
        assert_eq!(c.accounts.len(), 1);
    };
    let to_seed = |entropy: [u8; 32]| {
        bip39::Mnemonic::from_entropy(&entropy)
            .expect("entropy")
            .to_seed("")
    };
    let new_key = move |()| async move {
        let dk = primary.generate_data_key(key_ctx).await.expect("data key");
        dr.wrap_data_key(&dk.plaintext, key_ctx)
            .await
            .expect("dr wrap")
    };
    let account = || Evm::account(&secret, 0).expect("account");
    let client_pk = keystead_envelope::public_key_from_base64(&client_key).expect("client key");
    let code = Zeroizing::new("ABCDE-FGHJK-MNPQR-STVWX-YZ012".to_string());
    let mut kit_rng = StdRng::from_os_rng();
    let mut kit =
        || keystead_envelope::seal_recovery_code(&client_pk, &code, &mut kit_rng).expect("kit");

    let warm = create_requests(&mut user, plan.create_warmup);
    time_each_async(&rt, warm, handle)
        .1
        .iter()
        .for_each(check_created);
    time_each(random_bytes(&mut rng, plan.create_warmup), to_seed);
    time_each_async(&rt, vec![(); plan.warmup], new_key);
    time_n(plan.warmup, account);
    time_n(plan.warmup, &mut kit);
    let create_rounds = plan.rounds.min(plan.create).max(1);
    let (create_n, create_parts_n) = (plan.create / create_rounds, plan.parts / create_rounds);
    for _ in 0..create_rounds {
        let requests = create_requests(&mut user, create_n);
        let (m, replies) = time_each_async(&rt, requests, handle);
        replies.iter().for_each(check_created);
        drop(replies);
        report.add(
            "create_wallet_e2e",
            "end to end",
            "create wallet (handle)",
            m,
        );

        let m = time_each(random_bytes(&mut rng, create_n), to_seed);
        report.add(
            "mnemonic_to_seed",
            "create parts",
            "BIP-39 mnemonic->seed (PBKDF2)",
            m,
        );
        let (m, _) = time_each_async(&rt, vec![(); create_parts_n], new_key);
        report.add("kms_new_key", "create parts", "KMS data key + DR wrap", m);
        let m = time_n(create_parts_n, account);
        report.add(
            "evm_account",
            "create parts",
            "Evm::account (derive, xpub)",
            m,
        );
        let m = time_n(create_parts_n, &mut kit);
        report.add(
            "recovery_kit_seal",
            "create parts",
            "HPKE seal of the recovery kit",
            m,
        );
    }

    // ---- 5. Print, compare, write.
    print_table(&report);
    let json = print_ratios(&report, &plan, client_seal_us);
    let load_after = load_average();
    println!(
        "\nload average at start {load_before}, at end {load_after}; total run time {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if let Some(path) = std::env::var_os("KEYSTEAD_BENCH_JSON") {
        let mut json = json;
        json["load_average"] = json!({"start": load_before, "end": load_after});
        json["run_time_s"] = json!(started.elapsed().as_secs_f64());
        let text = serde_json::to_string_pretty(&json).expect("json");
        std::fs::write(&path, text + "\n").expect("write KEYSTEAD_BENCH_JSON");
        println!("figures written to {}", path.to_string_lossy());
    }
}

fn print_table(report: &Report) {
    println!(
        "{:<13} {:<33} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "group", "operation", "n", "mean µs", "p50 µs", "p99 µs", "ops/s", "cpu µs", "wait"
    );
    println!("{}", "-".repeat(109));
    let mut last = "";
    for row in &report.rows {
        let s = Stats::of(&row.measured);
        let group = if row.group == last { "" } else { row.group };
        last = row.group;
        println!(
            "{:<13} {:<33} {:>5} {:>9.1} {:>9.1} {:>9.1} {:>9.0} {:>9.1} {:>5.0}%",
            group,
            row.label,
            s.n,
            s.mean_us,
            s.p50_us,
            s.p99_us,
            s.ops_per_s(),
            s.cpu_us,
            100.0 * s.wait_share
        );
    }
    println!(
        "(mean/p50/p99: wall time per operation; ops/s = 1 / mean; cpu µs: this thread's CPU \
         time per operation;\n wait: share of the wall time the thread was runnable but not \
         running, i.e. other processes had the CPUs)"
    );
}

fn print_ratios(report: &Report, plan: &Plan, client_seal_us: f64) -> Value {
    let g = |k: &str| report.get(k);
    println!("\nmeasured vs COMPONENTS.md, one core (ratio > 1: faster here than the baseline)");
    println!(
        "  {:<42} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "", "wall/s", "cpu/s", "base/s", "wall", "cpu"
    );
    let baselines = [
        (
            "secp256k1 sign (sign::sign_message)",
            "secp256k1_sign",
            BASE_SECP256K1_SIGN,
        ),
        ("HPKE open (open_pin)", "hpke_open", BASE_HPKE_OPEN),
        (
            "BIP-32 path from seed (bip32 alone)",
            "bip32_path",
            BASE_BIP32_PATH,
        ),
        (
            "one BIP-32 step, address known (Evm::signer)",
            "derive",
            BASE_BIP32_PATH,
        ),
        (
            "BIP-39 mnemonic to seed (PBKDF2 x2048)",
            "mnemonic_to_seed",
            BASE_PBKDF2_SEED,
        ),
    ];
    let mut baseline_json = Vec::new();
    for (label, key, base) in baselines {
        let s = g(key);
        let (wall, cpu) = (s.ops_per_s(), s.cpu_ops_per_s());
        println!(
            "  {label:<42} {wall:>8.0} {cpu:>8.0} {base:>8.0} {:>6.2}x {:>6.2}x",
            wall / base,
            cpu / base
        );
        baseline_json.push(json!({
            "what": label, "key": key, "baseline_ops_per_s": base,
            "measured_ops_per_s": wall, "ratio": wall / base,
            "cpu_ops_per_s": cpu, "cpu_ratio": cpu / base,
        }));
    }

    let parts = [
        "hpke_open",
        "kms_decrypt",
        "unseal",
        "derive",
        "secp256k1_sign",
    ];
    let checks = ["envelope_check", "replay", "pin_state_hmac"];
    // Sums of mean wall time and of CPU time per operation.
    let sum = |keys: &[&str]| {
        keys.iter()
            .map(|k| g(k))
            .fold((0.0, 0.0), |(wall, cpu), s| {
                (wall + s.mean_us, cpu + s.cpu_us)
            })
    };
    let e2e = g("sign_message_e2e");
    let (parts_wall, parts_cpu) = sum(&parts);
    let (checks_wall, checks_cpu) = sum(&checks);
    let (all_wall, all_cpu) = (parts_wall + checks_wall, parts_cpu + checks_cpu);
    println!("\nsign_message: end to end vs the sum of its parts (µs per operation)");
    println!("  {:<56} {:>8} {:>8}", "", "wall", "cpu");
    println!(
        "  {:<56} {:>8.1} {:>8.1}",
        "end to end (handle)", e2e.mean_us, e2e.cpu_us
    );
    println!(
        "  {:<56} {:>8.1} {:>8.1}",
        "sum: open_pin + KMS unwrap + unseal + derive + sign", parts_wall, parts_cpu
    );
    println!(
        "  {:<56} {:>8.3} {:>8.3}",
        "end to end / sum",
        e2e.mean_us / parts_wall,
        e2e.cpu_us / parts_cpu
    );
    println!(
        "  {:<56} {:>8.1} {:>8.1}",
        "sum + envelope check + replay memory + PIN-state HMAC", all_wall, all_cpu
    );
    println!(
        "  {:<56} {:>8.1} {:>8.1}",
        "remainder (request handling, clones, drops)",
        e2e.mean_us - all_wall,
        e2e.cpu_us - all_cpu
    );
    let shares: Vec<String> = parts
        .iter()
        .chain(&checks)
        .map(|k| format!("{k} {:.1}%", 100.0 * g(k).cpu_us / e2e.cpu_us))
        .collect();
    println!("  shares of the end-to-end CPU time: {}", shares.join(", "));

    let create = g("create_wallet_e2e");
    let seed = g("mnemonic_to_seed");
    println!(
        "\nwallet creation: PBKDF2 mnemonic->seed is {:.0}% of it by wall mean ({:.1} of {:.1} \
         µs), {:.0}% by CPU time ({:.1} of {:.1} µs)",
        100.0 * seed.mean_us / create.mean_us,
        seed.mean_us,
        create.mean_us,
        100.0 * seed.cpu_us / create.cpu_us,
        seed.cpu_us,
        create.cpu_us
    );

    let verdict = |s: &Stats, target: f64| match (s.mean_us <= target, s.p99_us <= target) {
        (true, true) => "mean and p99 within target",
        (true, false) => "mean within target, p99 over",
        (false, _) => "OVER target",
    };
    println!("\ntargets (reported, not enforced)");
    for (label, s, target) in [
        ("sign_message", &e2e, TARGET_SIGN_US),
        ("create wallet", &create, TARGET_CREATE_US),
    ] {
        println!(
            "  {label:<14} < {target:>6.0} µs: mean {:>7.1}, p50 {:>7.1}, p99 {:>8.1}, cpu {:>7.1} \
             µs -> {}",
            s.mean_us,
            s.p50_us,
            s.p99_us,
            s.cpu_us,
            verdict(s, target)
        );
    }
    println!(
        "  (not timed: the client's envelope sealing and request building, {client_seal_us:.1} µs each)"
    );

    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|r| {
            let s = Stats::of(&r.measured);
            json!({
                "key": r.key, "group": r.group, "label": r.label.trim(), "n": s.n,
                "mean_us": s.mean_us, "p50_us": s.p50_us, "p99_us": s.p99_us,
                "min_us": s.min_us, "max_us": s.max_us, "ops_per_s": s.ops_per_s(),
                "cpu_us": s.cpu_us, "cpu_ops_per_s": s.cpu_ops_per_s(),
                "wait_share": s.wait_share,
            })
        })
        .collect();
    json!({
        "benchmark": "keystead-enclave",
        "mode": if plan.full { "full" } else { "smoke" },
        "threads": 1,
        "cpu": cpu_model(),
        "logical_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "unix_time": now_unix(),
        "results": rows,
        "baselines": baseline_json,
        "sign_message_vs_parts": {
            "e2e_mean_us": e2e.mean_us,
            "e2e_cpu_us": e2e.cpu_us,
            "parts": parts,
            "parts_mean_us": parts_wall,
            "parts_cpu_us": parts_cpu,
            "e2e_over_parts": e2e.mean_us / parts_wall,
            "e2e_over_parts_cpu": e2e.cpu_us / parts_cpu,
            "checks": checks,
            "parts_and_checks_mean_us": all_wall,
            "parts_and_checks_cpu_us": all_cpu,
        },
        "create_wallet_vs_pbkdf2": {
            "e2e_mean_us": create.mean_us,
            "e2e_cpu_us": create.cpu_us,
            "pbkdf2_mean_us": seed.mean_us,
            "pbkdf2_cpu_us": seed.cpu_us,
        },
        "targets": {
            "sign_message_us": TARGET_SIGN_US,
            "create_wallet_us": TARGET_CREATE_US,
        },
        "client_envelope_seal_us": client_seal_us,
    })
}
