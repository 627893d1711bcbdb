//! The crypto-only baseline: the enclave's own work for a message signature, in process.
//!
//! An `EnclaveService` built as `keystead-enclave` builds it (local KMS keyrings, a
//! disaster-recovery keyring, dev attestation) handles `Sign` requests directly: envelope
//! open (HPKE), checks and replay memory, KMS unwrap, AES-GCM unseal, the BIP-32 step and
//! the secp256k1 signature. No HTTP, no database, no socket, no server. Every envelope is
//! sealed before the clock starts (sealing is the client's work). It runs on one thread,
//! then on one thread per core sharing the one service (as the enclave process does).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::Serialize;

use keystead_enclave::{EnclaveService, ServiceParts};
use keystead_enclave_proto::{
    CreateWallet, Request, Response, SealedWallet, SignPayload, SignRequest, WalletBinding,
    WalletContext,
};
use keystead_envelope::Operation;
use keystead_kms::LocalKms;
use keystead_testkit::TestClient;

use crate::load::percentile;

const APP: &str = "app_bench";
const ACCOUNT: &str = "acc_bench";
const PIN: &str = "480927";

/// One crypto-only run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CryptoRun {
    pub threads: usize,
    pub operations: usize,
    pub elapsed_s: f64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Process CPU time per operation (all threads), microseconds.
    pub cpu_us_per_op: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CryptoBaseline {
    pub one_thread: CryptoRun,
    pub all_cores: CryptoRun,
    /// What sealing one PIN envelope costs the client (one thread), microseconds.
    pub client_seal_us: f64,
}

struct Fixture {
    service: Arc<EnclaveService>,
    context: WalletContext,
    client: TestClient,
    _dir: tempfile::TempDir,
}

fn fixture() -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let keyring = |file: &str, key_id: &str| -> anyhow::Result<Arc<LocalKms>> {
        Ok(Arc::new(LocalKms::open_or_create(
            &dir.path().join(file),
            key_id,
            keystead_kms::os_rng(),
        )?))
    };
    let service = Arc::new(
        EnclaveService::new(ServiceParts::in_process(
            keyring("kms-primary.json", "primary")?,
            Some(keyring("kms-dr.json", "dr")?),
        ))
        .map_err(|e| anyhow::anyhow!("enclave service: {e}"))?,
    );
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let attestation = match rt
        .block_on(service.handle(Request::Attestation { nonce: None }))
        .result
    {
        Ok(Response::Attestation(a)) => a,
        other => anyhow::bail!("no attestation in process: {other:?}"),
    };
    let mut client = TestClient::attested(&attestation, APP);
    let (_kp, client_key) = client.one_time_key();
    let user_id = "usr_bench".to_string();
    let binding = WalletBinding {
        app_id: APP.into(),
        wallet_id: "wal_bench".into(),
    };
    let op = Operation::CreateWallet {
        app_id: APP.into(),
        user_id: user_id.clone(),
        client_key: client_key.clone(),
    };
    let request = Request::CreateWallet(CreateWallet {
        binding: binding.clone(),
        user_id,
        client_key,
        pin: client.envelope(PIN, &op),
    });
    let wallet: SealedWallet = match rt.block_on(service.handle(request)).result {
        Ok(Response::WalletCreated(created)) => created.wallet,
        other => anyhow::bail!("in-process wallet creation failed: {other:?}"),
    };
    Ok(Fixture {
        service,
        context: WalletContext { binding, wallet },
        client,
        _dir: dir,
    })
}

fn message_op(message: &[u8]) -> Operation {
    Operation::SignMessage {
        app_id: APP.into(),
        account_id: ACCOUNT.into(),
        message: message.to_vec(),
    }
}

fn requests(f: &mut Fixture, message: &[u8], n: usize) -> Vec<Request> {
    let op = message_op(message);
    (0..n)
        .map(|_| {
            Request::Sign(SignRequest {
                wallet: f.context.clone(),
                account_id: ACCOUNT.into(),
                account_index: 0,
                pin: f.client.envelope(PIN, &op),
                payload: SignPayload::Message(message.to_vec()),
            })
        })
        .collect()
}

/// Handles every request on `threads` threads (each its own current-thread runtime, all
/// sharing the service), started together.
fn timed(service: &Arc<EnclaveService>, batches: Vec<Vec<Request>>) -> anyhow::Result<CryptoRun> {
    let threads = batches.len();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let cpu_before = crate::procfs::cpu_time(std::process::id());
    let (start, results) = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let (service, barrier) = (service.clone(), barrier.clone());
                s.spawn(move || -> anyhow::Result<Vec<u64>> {
                    let rt = tokio::runtime::Builder::new_current_thread().build()?;
                    let mut latencies = Vec::with_capacity(batch.len());
                    barrier.wait();
                    for request in batch {
                        let t0 = Instant::now();
                        let reply = rt.block_on(service.handle(request));
                        latencies.push(t0.elapsed().as_micros() as u64);
                        if !matches!(reply.result, Ok(Response::Signed(_))) {
                            anyhow::bail!("in-process signature refused: {:?}", reply.result);
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (start, results)
    });
    let elapsed = start.elapsed();
    let cpu = crate::procfs::cpu_time(std::process::id())
        .zip(cpu_before)
        .map_or(Duration::ZERO, |(a, b)| a.saturating_sub(b));
    let mut latencies = Vec::new();
    for r in results {
        latencies.extend(r.map_err(|_| anyhow::anyhow!("a baseline thread panicked"))??);
    }
    latencies.sort_unstable();
    let n = latencies.len();
    Ok(CryptoRun {
        threads,
        operations: n,
        elapsed_s: elapsed.as_secs_f64(),
        per_s: n as f64 / elapsed.as_secs_f64().max(1e-9),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
    })
}

/// Measures the baseline: `per_thread` signatures on one thread, then as many on each of
/// `cores` threads.
/// The all-cores crypto-only rate alone, on a fresh in-process service: taken again right
/// beside an HTTP window, so that the two are compared on the machine as it was then.
pub fn all_cores(message: &[u8], per_thread: usize, cores: usize) -> anyhow::Result<CryptoRun> {
    let mut f = fixture()?;
    let warm = requests(&mut f, message, (per_thread / 10).max(1));
    timed(&f.service, vec![warm])?;
    let batches = (0..cores.max(1))
        .map(|_| requests(&mut f, message, per_thread))
        .collect();
    timed(&f.service, batches)
}

pub fn measure(
    message: &[u8],
    per_thread: usize,
    cores: usize,
    warmup: usize,
) -> anyhow::Result<CryptoBaseline> {
    let mut f = fixture()?;

    let seal_start = Instant::now();
    let warm = requests(&mut f, message, warmup.max(1));
    let client_seal_us = seal_start.elapsed().as_secs_f64() * 1e6 / warmup.max(1) as f64;
    timed(&f.service, vec![warm])?;

    let one = requests(&mut f, message, per_thread);
    let one_thread = timed(&f.service, vec![one])?;

    let batches = (0..cores.max(1))
        .map(|_| requests(&mut f, message, per_thread))
        .collect();
    let all_cores = timed(&f.service, batches)?;
    Ok(CryptoBaseline {
        one_thread,
        all_cores,
        client_seal_us,
    })
}
