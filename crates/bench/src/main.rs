//! `keystead-bench`: Keystead's measurement harness (issue 6), run by `scripts/bench`.
//!
//! In one run, on this machine:
//!
//! 1. the crypto-only baseline: the enclave's work for a message signature in process
//!    (envelope open, checks, KMS unwrap, unseal, derive, sign) on one thread and on one
//!    thread per core, before anything else runs;
//! 2. anvil, then the real `keystead serve --dev` with its embedded defaults (SQLite, local
//!    KMS, one supervised enclave process) on a free loopback port; resident memory at
//!    rest;
//! 3. login through the development OpenID issuer: first logins (the user is created) and
//!    returning users' logins, at concurrency 16 and then 64;
//! 4. wallet creation, one per user;
//! 5. `POST /v1/sign/message` at concurrency 1, 16 and 64, for a fixed time each;
//! 6. ETH sends to anvil from 16 funded users at once: every one confirmed, nonces
//!    gapless on the chain;
//! 7. resident memory at rest again.
//!
//! Every PIN envelope and request body is prepared before its timed window: sealing is the
//! client's work (its cost is printed), and each envelope is single-use. The attestation
//! is fetched and checked once (the enclave's key lives as long as its process). CPU time
//! of the server, the enclave, this load generator and anvil is read from `/proc` around
//! each window, and peak resident memory of the server and the enclave per window
//! (`VmHWM`, reset between windows through `clear_refs`).
//!
//! It prints a table and writes JSON. Figures are measured, never asserted: the run fails
//! only when something did not work (errors, unconfirmed sends, a nonce gap).

mod crypto;
mod http1;
mod load;
mod procfs;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde::Serialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use keystead_client::api::AttestationResponse;
use keystead_client::attest::{self, AttestationPolicy, EnclaveKey};
use keystead_client::ops::{parse_intent, seal_envelope};
use keystead_envelope::{HpkeKeyPair, Operation, Sealed};
use keystead_testkit::anvil::{Anvil, AnvilOptions};
use keystead_testkit::now_unix;

use crate::load::{Outcome, Summary};
use crate::server::Server;

const PIN: &str = "480927";
const MESSAGE: &str = "hello keystead";
/// The concurrency whose sign-message rate the crypto-only target compares.
const SIGN_RATIO_CONCURRENCY: usize = 16;
/// The slices that window is cut into, with a crypto-only run before each and after the
/// last.
const RATIO_SLICES: usize = 4;
/// Signatures recovered after each sign-message window.
const SIGNATURES_CHECKED: usize = 64;
/// anvil's second development account: the recipient of every send.
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SEND_VALUE_WEI: u64 = 1000;
const FUNDING_WEI: u128 = 10 * 1_000_000_000_000_000_000;

#[derive(Parser)]
#[command(
    name = "keystead-bench",
    about = "Measures Keystead on this machine: the real server under HTTP load, against the same enclave work in process"
)]
struct Args {
    /// A short run (about a quarter of the work), to check that everything works.
    #[arg(long)]
    quick: bool,
    /// Where to write the figures as JSON.
    #[arg(
        long,
        env = "KEYSTEAD_BENCH_JSON",
        default_value = "bench-results.json"
    )]
    json: PathBuf,
    /// The directory holding `keystead` and `keystead-enclave` (default: this program's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Seconds of sign-message load at each concurrency (default 8; 2 with --quick).
    #[arg(long)]
    sign_secs: Option<f64>,
}

/// How much work each scenario does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Plan {
    quick: bool,
    cores: usize,
    crypto_per_thread: usize,
    /// Users logged in (twice) and given a wallet.
    users: usize,
    login_concurrency: usize,
    create_concurrency: usize,
    sign_levels: Vec<usize>,
    sign_secs: f64,
    /// Distinct wallets the signing load is spread over.
    sign_wallets: usize,
    senders: usize,
    sends_per_sender: usize,
    send_concurrency: usize,
}

impl Plan {
    fn new(args: &Args) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let quick = args.quick;
        Self {
            quick,
            cores,
            crypto_per_thread: if quick { 500 } else { 3000 },
            users: if quick { 400 } else { 8000 },
            login_concurrency: 16,
            create_concurrency: 16,
            sign_levels: vec![1, 16, 64],
            sign_secs: args.sign_secs.unwrap_or(if quick { 2.0 } else { 8.0 }),
            // Enough wallets that the 64 requests in flight are almost never for the same
            // wallet (as 64 users would not be): the server runs one operation at a time
            // per wallet, so a few wallets shared by many workers queue behind each other.
            sign_wallets: if quick { 256 } else { 512 },
            senders: 16,
            sends_per_sender: if quick { 6 } else { 25 },
            send_concurrency: 32,
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

#[derive(Clone)]
struct Api {
    http: Arc<http1::Http1>,
    app_key: Arc<str>,
}

impl Api {
    /// A request with the app key, rendered to be sent later.
    fn render(
        &self,
        method: &http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        self.http
            .render(method, path, Some(&self.app_key), token, body)
    }

    /// One call; the JSON answer when the status is `want`, else `HTTP <status> <code>`.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
        want: u16,
    ) -> Result<Value, String> {
        let request = self.render(&method, path, token, body.as_deref());
        let answer = self.http.expect(&request, path, want).await?;
        if answer.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&answer).map_err(|e| format!("{path}: {e}"))
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        want: u16,
    ) -> Result<Value, String> {
        self.call(http::Method::POST, path, token, Some(body), want)
            .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<Value, String> {
        self.call(http::Method::GET, path, token, None, 200).await
    }
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON")
}

fn str_field(v: &Value, pointer: &str) -> Result<String, String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| format!("the answer has no {pointer}"))
}

// ---------------------------------------------------------------------------------------
// Processes, CPU and memory

struct Pids {
    server: u32,
    enclave: Option<u32>,
    bench: u32,
    anvil: Option<u32>,
}

impl Pids {
    fn find(server: &Server) -> Self {
        let bench = std::process::id();
        Self {
            server: server.pid,
            enclave: server.enclave_pid(),
            bench,
            anvil: procfs::child_named(bench, "anvil"),
        }
    }

    fn all(&self) -> [Option<u32>; 4] {
        [
            Some(self.server),
            self.enclave,
            Some(self.bench),
            self.anvil,
        ]
    }
}

/// CPU time per successful operation in a window, by process, and how busy the machine
/// was (all four processes' CPU time over wall time × cores).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct CpuUse {
    server_us: f64,
    enclave_us: f64,
    bench_us: f64,
    anvil_us: f64,
    busy_share: f64,
}

struct CpuMeter {
    before: [Option<Duration>; 4],
    start: Instant,
}

impl CpuMeter {
    fn start(pids: &Pids) -> Self {
        Self {
            before: pids.all().map(|p| p.and_then(procfs::cpu_time)),
            start: Instant::now(),
        }
    }

    fn finish(self, pids: &Pids) -> CpuSample {
        let after = pids.all().map(|p| p.and_then(procfs::cpu_time));
        let mut used = [0.0; 4];
        for (u, (a, b)) in used.iter_mut().zip(after.iter().zip(self.before)) {
            if let (Some(a), Some(b)) = (a, b) {
                *u = a.saturating_sub(b).as_secs_f64();
            }
        }
        CpuSample {
            used,
            wall: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// CPU seconds each process used (server, enclave, load generator, anvil) over `wall`
/// seconds; the samples of a window's slices add up.
#[derive(Default, Clone, Copy)]
struct CpuSample {
    used: [f64; 4],
    wall: f64,
}

impl std::ops::AddAssign for CpuSample {
    fn add_assign(&mut self, other: Self) {
        for (u, o) in self.used.iter_mut().zip(other.used) {
            *u += o;
        }
        self.wall += other.wall;
    }
}

impl CpuSample {
    fn per_op(&self, ops: usize, cores: usize) -> CpuUse {
        let per_op = |s: f64| s * 1e6 / ops.max(1) as f64;
        CpuUse {
            server_us: per_op(self.used[0]),
            enclave_us: per_op(self.used[1]),
            bench_us: per_op(self.used[2]),
            anvil_us: per_op(self.used[3]),
            busy_share: self.used.iter().sum::<f64>() / (self.wall * cores as f64).max(1e-9),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Memory {
    server: procfs::Rss,
    enclave: procfs::Rss,
}

fn memory(pids: &Pids) -> Memory {
    Memory {
        server: procfs::rss(pids.server).unwrap_or_default(),
        enclave: pids.enclave.and_then(procfs::rss).unwrap_or_default(),
    }
}

fn reset_peaks(pids: &Pids) -> bool {
    let server = procfs::reset_peak(pids.server);
    let enclave = pids.enclave.is_none_or(procfs::reset_peak);
    server && enclave
}

// ---------------------------------------------------------------------------------------
// Report

/// One timed window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Window {
    key: String,
    label: String,
    #[serde(flatten)]
    summary: Summary,
    cpu_us_per_op: CpuUse,
    /// Peak resident memory during the window (`VmHWM` after a reset), KiB.
    peak: Memory,
    /// `/proc/loadavg` (1, 5, 15 minutes) at the end of the window: the machine may be
    /// shared.
    load_average: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    first_errors: Vec<String>,
}

#[derive(Default)]
struct Report {
    windows: Vec<Window>,
    failures: Vec<String>,
    /// The crypto-only rate on all cores, taken between the slices of the sign-message
    /// window at concurrency 16 and after it (the target's denominator).
    crypto_beside_sign16: Vec<crypto::CryptoRun>,
}

impl Report {
    fn window(&self, key: &str) -> Option<&Window> {
        self.windows.iter().find(|w| w.key == key)
    }
}

/// Runs one timed window: resets the peaks, meters CPU, runs the load, records it.
#[allow(clippy::too_many_arguments)]
async fn measure<T, R, F, Fut>(
    report: &mut Report,
    pids: &Pids,
    plan: &Plan,
    key: &str,
    label: &str,
    inputs: Vec<T>,
    concurrency: usize,
    limit: Option<Duration>,
    f: F,
) -> Outcome<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, String>> + Send,
{
    reset_peaks(pids);
    let meter = CpuMeter::start(pids);
    let outcome = load::run(inputs, concurrency, limit, f).await;
    let cpu = meter.finish(pids);
    record(report, pids, plan, key, label, outcome, cpu)
}

/// [`measure`] in `slices` slices of `slice` each, with `between(i)` run before slice `i`
/// and after the last (`i == slices`), outside the window's clock and CPU count. The
/// window's rate is its requests over the slices' time.
#[allow(clippy::too_many_arguments)]
async fn measure_sliced<T, R, F, Fut>(
    report: &mut Report,
    pids: &Pids,
    plan: &Plan,
    key: &str,
    label: &str,
    inputs: Vec<T>,
    concurrency: usize,
    (slices, slice): (usize, Duration),
    f: F,
    mut between: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Outcome<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, String>> + Send,
{
    reset_peaks(pids);
    let mut cpu = CpuSample::default();
    let mut whole: Option<Outcome<R>> = None;
    for (i, part) in load::split(inputs, slices).into_iter().enumerate() {
        between(i)?;
        let meter = CpuMeter::start(pids);
        let outcome = load::run(part, concurrency, Some(slice), f.clone()).await;
        cpu += meter.finish(pids);
        match &mut whole {
            None => whole = Some(outcome),
            Some(whole) => whole.absorb(outcome),
        }
    }
    between(slices)?;
    let whole = whole.ok_or_else(|| anyhow::anyhow!("{label}: no requests"))?;
    Ok(record(report, pids, plan, key, label, whole, cpu))
}

/// Reports a finished window: its summary line, and its entry in the report.
fn record<R>(
    report: &mut Report,
    pids: &Pids,
    plan: &Plan,
    key: &str,
    label: &str,
    outcome: Outcome<R>,
    cpu: CpuSample,
) -> Outcome<R> {
    let cpu = cpu.per_op(outcome.latencies_us.len(), plan.cores);
    let peak = memory(pids);
    let summary = Summary::of(&outcome);
    if !outcome.errors.is_empty() {
        report.failures.push(format!(
            "{label}: {} of {} requests failed, first: {}",
            outcome.errors.len(),
            outcome.errors.len() + summary.requests,
            outcome.errors[0]
        ));
    }
    println!(
        "  {label:<44} {:>7} req {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}  (load {})",
        summary.requests,
        summary.per_s,
        summary.p50_ms,
        summary.p99_ms,
        summary.errors,
        procfs::load_average()
    );
    report.windows.push(Window {
        key: key.to_string(),
        label: label.to_string(),
        summary,
        cpu_us_per_op: cpu,
        peak,
        load_average: procfs::load_average(),
        first_errors: outcome.errors.iter().take(5).cloned().collect(),
    });
    outcome
}

// ---------------------------------------------------------------------------------------
// Sealing, before the clock starts

/// Seals one envelope per operation, on every core.
fn seal_all(key: &EnclaveKey, ops: &[Operation], cores: usize) -> anyhow::Result<Vec<Sealed>> {
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_unix();
    let pin = Zeroizing::new(PIN.to_string());
    let chunk = ops.len().div_ceil(cores.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = ops
            .chunks(chunk)
            .map(|part| {
                let pin = &pin;
                s.spawn(move || {
                    part.iter()
                        .map(|op| seal_envelope(key, pin, op, now))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut sealed = Vec::with_capacity(ops.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))?
                .context("sealing a PIN envelope")?;
            sealed.extend(part);
        }
        Ok(sealed)
    })
}

// ---------------------------------------------------------------------------------------
// The run

/// A user as the load generator holds them.
#[derive(Clone)]
struct User {
    token: Arc<str>,
    account_id: String,
    address: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let plan = Plan::new(&args);
    let started = Instant::now();

    let machine = json!({
        "cpu": procfs::cpu_model(),
        "logicalCpus": plan.cores,
        "memTotalKb": procfs::mem_total_kb(),
        "kernel": procfs::kernel(),
        "loadAverageAtStart": procfs::load_average(),
    });
    println!(
        "Keystead benchmark ({}): {}, {} logical CPUs, {:.1} GiB, load average {}",
        if plan.quick { "quick run" } else { "full run" },
        machine["cpu"].as_str().unwrap_or("?"),
        plan.cores,
        procfs::mem_total_kb().unwrap_or(0) as f64 / 1024.0 / 1024.0,
        machine["loadAverageAtStart"].as_str().unwrap_or("?"),
    );

    // ---- 1. Crypto only, in process, before anything else runs.
    println!("\ncrypto only (in-process EnclaveService, envelopes sealed beforehand):");
    let baseline = crypto::measure(
        MESSAGE.as_bytes(),
        plan.crypto_per_thread,
        plan.cores,
        plan.crypto_per_thread / 10,
    )?;
    for run in [&baseline.one_thread, &baseline.all_cores] {
        println!(
            "  sign_message, {} thread(s) {:>18} ops {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  CPU {:.0} µs/op",
            run.threads, run.operations, run.per_s, run.p50_ms, run.p99_ms, run.cpu_us_per_op
        );
    }
    println!(
        "  client: sealing one PIN envelope costs {:.0} µs",
        baseline.client_seal_us
    );

    let bin_dir = server::bin_dir(args.bin_dir.clone())?;
    // With automine alone, in 4 of about 45 runs one sender's chain nonce stopped short
    // and the 15-19 sends after it stayed pending for good: automine can leave a ready
    // transaction unmined (foundry-rs/foundry#10122). A block every second besides mines
    // whatever it missed; a transaction the node lost is the server's to send again.
    let anvil = Anvil::start_with(AnvilOptions {
        block_time: Some(1),
        mixed_mining: true,
        ..AnvilOptions::default()
    });
    let mut server = Server::start(&bin_dir, anvil.url())?;

    // One thread: the generator's tasks never wait for each other's cores, and while the
    // crypto-only rate or the sealing runs on every core it has nothing else to do.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(&plan, baseline.all_cores.per_s, &anvil, &mut server));
    let (mut report, rest, after, extra) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "keystead-bench failed: {e:#}\nserver log (last lines):\n{}",
                server.log_tail()
            );
            return Err(e);
        }
    };
    let log_bytes = server.log_bytes();
    server.stop();
    drop(anvil);

    let targets = print_summary(&plan, &report, &baseline, &rest, &after, &extra);
    let json = json!({
        "machine": machine,
        "plan": plan,
        "durationS": started.elapsed().as_secs_f64(),
        "notes": {
            "sealing": "every PIN envelope and request body is prepared before its timed window; sealing is client work and not in any HTTP figure",
            "cpuUsPerOp": "CPU time per successful request of the server, its enclave process, this load generator and anvil, read from /proc around the window",
            "peak": "VmHWM of the server and the enclave, reset through /proc/PID/clear_refs before each window",
            "serverLogBytes": log_bytes,
        },
        "cryptoOnly": baseline,
        "cryptoOnlyBesideSignC16": report.crypto_beside_sign16,
        "windows": report.windows,
        "sends": extra,
        "memory": {"atRest": rest, "atRestAfterLoad": after},
        "targets": targets,
        "failures": report.failures,
    });
    std::fs::write(&args.json, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!(
        "\nwrote {} ({:.0} s in all)",
        args.json.display(),
        started.elapsed().as_secs_f64()
    );
    if !report.failures.is_empty() {
        report.failures.dedup();
        for f in &report.failures {
            eprintln!("FAILED: {f}");
        }
        bail!("{} check(s) failed", report.failures.len());
    }
    Ok(())
}

async fn run(
    plan: &Plan,
    ceiling: f64,
    anvil: &Anvil,
    server: &mut Server,
) -> anyhow::Result<(Report, Memory, Memory, Value)> {
    let mut report = Report::default();
    let http = Arc::new(http1::Http1::new(&server.base)?);
    let ready_in = server.wait_ready(&http).await?;
    let app = server.demo_app()?;
    let api = Api {
        http,
        app_key: app.app_key.as_str().into(),
    };
    println!(
        "\nkeystead serve --dev (SQLite, local KMS, one enclave process) ready in {:.1} s at {}",
        ready_in.as_secs_f64(),
        server.base
    );

    // ---- 2. At rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids = Pids::find(server);
    if pids.enclave.is_none() {
        bail!("the server's enclave process was not found among its children");
    }
    let rest = memory(&pids);
    println!(
        "  at rest: server RSS {:.1} MiB, enclave RSS {:.1} MiB",
        rest.server.rss_kb as f64 / 1024.0,
        rest.enclave.rss_kb as f64 / 1024.0
    );
    if !reset_peaks(&pids) {
        println!("  (the kernel refused clear_refs: peaks below are since start)");
    }

    // The attestation, once: the enclave's key lives as long as its process.
    let answer: AttestationResponse = serde_json::from_value(
        api.get("/v1/enclave/attestation", None)
            .await
            .map_err(anyhow::Error::msg)?,
    )?;
    let enclave_key = attest::verify(&answer, AttestationPolicy::Dev, now_unix() * 1000)?;

    // ---- 3. Login.
    println!("\nlogin (dev OpenID issuer; ID tokens minted before each window):");
    let subs: Vec<String> = (0..plan.users).map(|i| format!("bench-{i}")).collect();
    let mint = |api: &Api, subs: Vec<String>| {
        let api = api.clone();
        async move {
            load::run(subs, 16, None, move |sub: String| {
                let api = api.clone();
                async move {
                    let b = body(&json!({"sub": sub, "email": format!("{sub}@example.test")}));
                    let minted = api.post("/dev/oidc/token", None, b, 200).await?;
                    str_field(&minted, "/idToken")
                }
            })
            .await
        }
    };
    // Whole requests rendered before the window, answers read after it (as for
    // sign-message): the generator shares the cores, and its one thread turns a group
    // commit's burst of answers around one after another.
    let login_requests = |api: &Api, id_tokens: Vec<String>| -> Vec<Vec<u8>> {
        id_tokens
            .iter()
            .map(|id_token| {
                let b = body(&json!({"provider": "dev", "idToken": id_token}));
                api.render(&http::Method::POST, "/v1/auth/id-token", None, Some(&b))
            })
            .collect()
    };
    let login = |api: &Api| {
        let http = api.http.clone();
        move |request: Vec<u8>| {
            let http = http.clone();
            async move { http.expect(&request, "/v1/auth/id-token", 200).await }
        }
    };
    let session_of = |body: &bytes::Bytes| -> anyhow::Result<(String, String)> {
        let session: Value = serde_json::from_slice(body).context("a session is not JSON")?;
        Ok((
            str_field(&session, "/accessToken").map_err(anyhow::Error::msg)?,
            str_field(&session, "/user/id").map_err(anyhow::Error::msg)?,
        ))
    };
    // First logins (the users are created), then fresh ID tokens for the same users at
    // 16 and at 64: at 16 a login's wait for its group commit bounds the rate (16 ÷
    // latency) while the machine is partly idle. The sessions of the returning window
    // at 16 go on to the next steps.
    let windows = [
        (
            "login_new",
            "login, first time (user created)",
            plan.login_concurrency,
        ),
        ("login", "login, returning user", plan.login_concurrency),
        ("login_c64", "login, returning user, concurrency 64", 64),
    ];
    let mut sessions: Vec<(String, String)> = Vec::new();
    for (key, label, concurrency) in windows {
        let minted = mint(&api, subs.clone()).await;
        if !minted.errors.is_empty() {
            bail!("minting ID tokens failed: {}", minted.errors[0]);
        }
        let out = measure(
            &mut report,
            &pids,
            plan,
            key,
            label,
            login_requests(&api, minted.outputs),
            concurrency,
            None,
            login(&api),
        )
        .await;
        let read: Vec<(String, String)> = out
            .outputs
            .iter()
            .map(session_of)
            .collect::<anyhow::Result<_>>()
            .with_context(|| format!("{label}: an answer"))?;
        if key == "login" {
            sessions = read;
        }
    }
    if sessions.len() < plan.sign_wallets + plan.senders {
        bail!("too few logins succeeded to go on");
    }

    // ---- 4. Wallet creation, one per user.
    println!("\nwallet creation (PIN envelopes and one-time client keys made beforehand):");
    let (inputs, ops): (Vec<_>, Vec<_>) = {
        let mut rng = rand::rng();
        sessions
            .iter()
            .map(|(token, user_id)| {
                let client_key = HpkeKeyPair::generate(&mut rng).public_key_base64();
                let op = Operation::CreateWallet {
                    app_id: app.app_id.clone(),
                    user_id: user_id.clone(),
                    client_key: client_key.clone(),
                };
                ((token.clone(), client_key), op)
            })
            .unzip()
    };
    let sealed = seal_all(&enclave_key, &ops, plan.cores)?;
    let inputs: Vec<(String, Vec<u8>)> = inputs
        .into_iter()
        .zip(sealed)
        .map(|((token, client_key), pin)| {
            (token, body(&json!({"pin": pin, "clientKey": client_key})))
        })
        .collect();
    let created = {
        let api = api.clone();
        measure(
            &mut report,
            &pids,
            plan,
            "wallet_create",
            "wallet creation",
            inputs,
            plan.create_concurrency,
            None,
            move |(token, b): (String, Vec<u8>)| {
                let api = api.clone();
                async move {
                    let created = api.post("/v1/wallet", Some(&token), b, 201).await?;
                    Ok(User {
                        token: token.into(),
                        account_id: str_field(&created, "/accounts/0/id")?,
                        address: str_field(&created, "/accounts/0/address")?,
                    })
                }
            },
        )
        .await
    };
    let users = created.outputs;
    if users.len() < plan.sign_wallets + plan.senders {
        bail!("too few wallets were created to go on");
    }
    let signers: Vec<User> = users[..plan.sign_wallets].to_vec();
    let senders: Vec<User> = users[plan.sign_wallets..plan.sign_wallets + plan.senders].to_vec();
    drop(users);

    // ---- 5. Sign a message over HTTP.
    println!(
        "\nsign-message over HTTP ({:.0} s per concurrency, spread over {} wallets; envelopes sealed beforehand):",
        plan.sign_secs, plan.sign_wallets
    );
    // The HTTP rate cannot beat the in-process rate on every core: seal that many, with
    // a margin, for the window (a window that runs out ends early; its rate stands).
    let ceiling = ceiling.max(500.0 * plan.cores as f64);
    for &c in &plan.sign_levels {
        let warmup = (c * 4).max(32);
        let n = warmup + (ceiling * plan.sign_secs * 1.25).ceil() as usize;
        let ops: Vec<Operation> = (0..n)
            .map(|i| Operation::SignMessage {
                app_id: app.app_id.clone(),
                account_id: signers[i % signers.len()].account_id.clone(),
                message: MESSAGE.as_bytes().to_vec(),
            })
            .collect();
        let sealed = seal_all(&enclave_key, &ops, plan.cores)?;
        // Whole requests, rendered before the clock starts; answers are checked for their
        // status in the window and read after it.
        let mut inputs: Vec<(usize, Vec<u8>)> = sealed
            .into_iter()
            .enumerate()
            .map(|(i, pin)| {
                let user = &signers[i % signers.len()];
                let b = body(&json!({
                    "accountId": user.account_id, "message": MESSAGE, "encoding": "utf8", "pin": pin,
                }));
                let request = api.render(
                    &http::Method::POST,
                    "/v1/sign/message",
                    Some(&user.token),
                    Some(&b),
                );
                (i % signers.len(), request)
            })
            .collect();
        let timed = inputs.split_off(warmup);
        let sign = {
            let http = api.http.clone();
            move |(i, request): (usize, Vec<u8>)| {
                let http = http.clone();
                async move {
                    let body = http.expect(&request, "/v1/sign/message", 200).await?;
                    Ok((i, body))
                }
            }
        };
        let warm = load::run(inputs, c, None, sign.clone()).await;
        if !warm.errors.is_empty() {
            bail!("sign-message warm-up failed: {}", warm.errors[0]);
        }
        let key = format!("sign_c{c}");
        let label = format!("sign-message, concurrency {c}");
        let window = Duration::from_secs_f64(plan.sign_secs);
        let out = if c == SIGN_RATIO_CONCURRENCY {
            // The machine's speed drifts within seconds (a shared VM), so the crypto-only
            // rate it is compared with is taken between slices of the window and averaged.
            let slice = window.div_f64(RATIO_SLICES as f64);
            let mut crypto = Vec::new();
            let mut beside = |i: usize| -> anyhow::Result<()> {
                // On threads of its own: it runs a runtime of its own.
                let run = std::thread::scope(|s| {
                    s.spawn(|| {
                        crypto::all_cores(MESSAGE.as_bytes(), plan.crypto_per_thread, plan.cores)
                    })
                    .join()
                })
                .map_err(|_| anyhow::anyhow!("the crypto-only run panicked"))??;
                println!(
                    "  crypto only, in process ({} threads), {} {:>8.0}/s  CPU {:.0} µs/op",
                    run.threads,
                    if i < RATIO_SLICES {
                        format!("before slice {} of {RATIO_SLICES}", i + 1)
                    } else {
                        "after the last slice".to_string()
                    },
                    run.per_s,
                    run.cpu_us_per_op
                );
                crypto.push(run);
                Ok(())
            };
            let out = measure_sliced(
                &mut report,
                &pids,
                plan,
                &key,
                &label,
                timed,
                c,
                (RATIO_SLICES, slice),
                sign,
                &mut beside,
            )
            .await?;
            report.crypto_beside_sign16.extend(crypto);
            out
        } else {
            measure(
                &mut report,
                &pids,
                plan,
                &key,
                &label,
                timed,
                c,
                Some(window),
                sign,
            )
            .await
        };
        check_signatures(&out.outputs, &signers)
            .with_context(|| format!("sign-message at concurrency {c}"))?;
    }

    // ---- 6. ETH sends.
    let extra = sends(
        plan,
        anvil,
        &api,
        &app.app_id,
        &enclave_key,
        &senders,
        &pids,
        &mut report,
    )
    .await?;

    // ---- 7. At rest again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids = Pids::find(server);
    let after = memory(&pids);
    println!(
        "\nat rest after the load: server RSS {:.1} MiB, enclave RSS {:.1} MiB",
        after.server.rss_kb as f64 / 1024.0,
        after.enclave.rss_kb as f64 / 1024.0
    );
    Ok((report, rest, after, extra))
}

/// Reads up to [`SIGNATURES_CHECKED`] answers spread over a window and recovers each
/// signature to its account.
fn check_signatures(outputs: &[(usize, bytes::Bytes)], signers: &[User]) -> anyhow::Result<()> {
    if outputs.is_empty() {
        bail!("no signature to check");
    }
    let step = outputs.len().div_ceil(SIGNATURES_CHECKED).max(1);
    for (i, body) in outputs.iter().step_by(step) {
        let answer: Value = serde_json::from_slice(body).context("the answer is not JSON")?;
        let signature = str_field(&answer, "/signature").map_err(anyhow::Error::msg)?;
        let bytes = alloy_primitives::hex::decode(signature.trim_start_matches("0x"))?;
        let sig = alloy_primitives::Signature::try_from(bytes.as_slice())?;
        let recovered = sig.recover_address_from_msg(MESSAGE.as_bytes())?;
        let expected: alloy_primitives::Address = signers[*i].address.parse()?;
        if recovered != expected {
            bail!("a signature recovered to {recovered}, not its account {expected}");
        }
    }
    Ok(())
}

/// Sends from `senders` at once, all confirmed, nonces gapless.
#[allow(clippy::too_many_arguments)]
async fn sends(
    plan: &Plan,
    anvil: &Anvil,
    api: &Api,
    app_id: &str,
    enclave_key: &EnclaveKey,
    senders: &[User],
    pids: &Pids,
    report: &mut Report,
) -> anyhow::Result<Value> {
    println!(
        "\nETH sends to anvil ({} funded users, {} each, {} in flight; prepared once per user, envelopes sealed beforehand):",
        senders.len(),
        plan.sends_per_sender,
        plan.send_concurrency
    );
    let wei = alloy_primitives::U256::from(FUNDING_WEI);
    for s in senders {
        anvil.set_balance(s.address.parse()?, wei);
    }
    let mut intents = Vec::new();
    for s in senders {
        let b = body(
            &json!({"accountId": s.account_id, "to": RECIPIENT, "value": SEND_VALUE_WEI.to_string()}),
        );
        let prepared = api
            .post("/v1/tx/prepare", Some(&s.token), b, 200)
            .await
            .map_err(anyhow::Error::msg)?;
        let intent = parse_intent(&prepared["intent"])?;
        let op = Operation::SignTransaction {
            app_id: app_id.to_string(),
            account_id: s.account_id.clone(),
            intent,
        };
        if prepared["digest"].as_str() != Some(op.digest_hex().as_str()) {
            bail!("tx/prepare's digest differs from the client's");
        }
        intents.push((prepared["intent"].clone(), op));
    }
    // Round-robin over senders, so every sender has sends in flight all along.
    let order: Vec<usize> = (0..plan.sends_per_sender)
        .flat_map(|_| 0..senders.len())
        .collect();
    let ops: Vec<Operation> = order.iter().map(|&i| intents[i].1.clone()).collect();
    let sealed = seal_all(enclave_key, &ops, plan.cores)?;
    let inputs: Vec<(usize, Arc<str>, Vec<u8>)> = order
        .iter()
        .zip(sealed)
        .map(|(&i, pin)| {
            (
                i,
                senders[i].token.clone(),
                body(&json!({"intent": intents[i].0, "pin": pin})),
            )
        })
        .collect();
    let total = inputs.len();
    let start = Instant::now();
    let sent = {
        let api = api.clone();
        measure(
            report,
            pids,
            plan,
            "send",
            "ETH send accepted (tx/send, 202)",
            inputs,
            plan.send_concurrency,
            None,
            move |(i, token, b): (usize, Arc<str>, Vec<u8>)| {
                let api = api.clone();
                async move {
                    let sent = api.post("/v1/tx/send", Some(&token), b, 202).await?;
                    Ok((i, token, str_field(&sent, "/id")?, sent["nonce"].as_u64()))
                }
            },
        )
        .await
    };
    let accepted_in = start.elapsed();

    // Every accepted send, polled until final.
    let poll_inputs: Vec<(usize, Arc<str>, String)> = sent
        .outputs
        .iter()
        .map(|(i, token, id, _)| (*i, token.clone(), id.clone()))
        .collect();
    let confirmed = {
        let api = api.clone();
        load::run(
            poll_inputs,
            16,
            None,
            move |(i, token, id): (usize, Arc<str>, String)| {
                let api = api.clone();
                async move {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        let tx = api.get(&format!("/v1/tx/{id}"), Some(&token)).await?;
                        match tx["status"].as_str() {
                            Some("pending") if Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(100)).await
                            }
                            Some("confirmed") => return Ok(i),
                            other => return Err(format!("transaction ended {other:?}")),
                        }
                    }
                }
            },
        )
        .await
    };
    let all_final_in = start.elapsed();

    // The chain's view: each sender's nonce is the number of its sends.
    let mut sent_by = vec![0u64; senders.len()];
    let mut nonces_by: Vec<Vec<u64>> = vec![Vec::new(); senders.len()];
    for (i, _, _, nonce) in &sent.outputs {
        sent_by[*i] += 1;
        if let Some(n) = nonce {
            nonces_by[*i].push(*n);
        }
    }
    let mut gaps = Vec::new();
    for (i, s) in senders.iter().enumerate() {
        let count = anvil.rpc("eth_getTransactionCount", json!([s.address, "latest"]))?;
        let count = count
            .as_str()
            .and_then(|q| u64::from_str_radix(q.trim_start_matches("0x"), 16).ok())
            .context("eth_getTransactionCount")?;
        let mut nonces = nonces_by[i].clone();
        nonces.sort_unstable();
        let gapless = nonces.iter().copied().eq(0..nonces.len() as u64);
        if count != sent_by[i] || !gapless {
            gaps.push(format!(
                "sender {i}: {} accepted, chain nonce {count}, nonces gapless: {gapless}",
                sent_by[i]
            ));
        }
    }
    let n_confirmed = confirmed.outputs.len();
    if n_confirmed != total {
        report.failures.push(format!(
            "sends: {n_confirmed} of {total} confirmed{}",
            confirmed
                .errors
                .first()
                .map(|e| format!(", first: {e}"))
                .unwrap_or_default()
        ));
    }
    for g in &gaps {
        report.failures.push(format!("nonce check: {g}"));
    }
    let confirmed_per_s = n_confirmed as f64 / all_final_in.as_secs_f64();
    println!(
        "  {:<44} {:>7} tx  {:>8.1}/s  (all final {:.1} s after the first send; nonces gapless on chain: {})",
        "ETH send confirmed (GET /v1/tx/{id})",
        n_confirmed,
        confirmed_per_s,
        all_final_in.as_secs_f64(),
        gaps.is_empty()
    );
    Ok(json!({
        "sent": total,
        "accepted": sent.outputs.len(),
        "confirmed": n_confirmed,
        "acceptedInS": accepted_in.as_secs_f64(),
        "allFinalInS": all_final_in.as_secs_f64(),
        "acceptedPerS": sent.outputs.len() as f64 / accepted_in.as_secs_f64(),
        "confirmedPerS": confirmed_per_s,
        "noncesGapless": gaps.is_empty(),
        "nonceProblems": gaps,
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    name: &'static str,
    target: &'static str,
    measured: String,
    met: bool,
}

fn print_summary(
    plan: &Plan,
    report: &Report,
    baseline: &crypto::CryptoBaseline,
    rest: &Memory,
    after: &Memory,
    sends: &Value,
) -> Vec<Target> {
    let mib = |kb: u64| kb as f64 / 1024.0;
    println!("\n{:=<120}", "");
    println!(
        "{:<40} {:>7} {:>9} {:>8} {:>8} {:>6} | {:>28} {:>6}",
        "scenario",
        "conc",
        "per s",
        "p50 ms",
        "p99 ms",
        "errors",
        "CPU µs/op srv/encl/gen/anvil",
        "busy"
    );
    println!("{:-<120}", "");
    for run in [&baseline.one_thread, &baseline.all_cores] {
        println!(
            "{:<40} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>6} | {:>28} {:>6}",
            format!("crypto only, sign_message ({} thr)", run.threads),
            run.threads,
            run.per_s,
            run.p50_ms,
            run.p99_ms,
            0,
            format!("in process: {:.0}", run.cpu_us_per_op),
            "",
        );
    }
    for w in &report.windows {
        let s = &w.summary;
        let c = &w.cpu_us_per_op;
        println!(
            "{:<40} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>6} | {:>28} {:>5.0}%",
            w.label,
            s.concurrency,
            s.per_s,
            s.p50_ms,
            s.p99_ms,
            s.errors,
            format!(
                "{:.0}/{:.0}/{:.0}/{:.0}",
                c.server_us, c.enclave_us, c.bench_us, c.anvil_us
            ),
            c.busy_share * 100.0
        );
    }
    println!(
        "{:<40} {:>7} {:>9.1} {:>8} {:>8} {:>6} | all {} confirmed in {:.1} s; nonces gapless: {}",
        "ETH send, confirmed",
        plan.send_concurrency,
        sends["confirmedPerS"].as_f64().unwrap_or(0.0),
        "",
        "",
        "",
        sends["confirmed"],
        sends["allFinalInS"].as_f64().unwrap_or(0.0),
        sends["noncesGapless"]
    );
    println!("{:-<120}", "");
    println!(
        "{:<40} {:>12} {:>12} {:>12}",
        "resident memory (MiB)", "server", "enclave", ""
    );
    println!(
        "{:<40} {:>12.1} {:>12.1}",
        "at rest, after start",
        mib(rest.server.rss_kb),
        mib(rest.enclave.rss_kb)
    );
    for w in &report.windows {
        println!(
            "{:<40} {:>12.1} {:>12.1}",
            format!("peak during {}", w.label),
            mib(w.peak.server.peak_kb),
            mib(w.peak.enclave.peak_kb)
        );
    }
    println!(
        "{:<40} {:>12.1} {:>12.1}",
        "peak since start (VmHWM at the end)",
        mib(after.server.peak_kb),
        mib(after.enclave.peak_kb)
    );
    println!(
        "{:<40} {:>12.1} {:>12.1}",
        "at rest, after the load",
        mib(after.server.rss_kb),
        mib(after.enclave.rss_kb)
    );

    let per_s = |key: &str| report.window(key).map_or(0.0, |w| w.summary.per_s);
    let sign16 = per_s("sign_c16");
    // The machine's speed drifts over a run (a shared VM): the denominator is the
    // crypto-only rate taken between the window's slices, falling back to the run's start.
    let beside = &report.crypto_beside_sign16;
    let crypto_rate = if beside.is_empty() {
        baseline.all_cores.per_s
    } else {
        beside.iter().map(|r| r.per_s).sum::<f64>() / beside.len() as f64
    };
    let ratio_all = sign16 / crypto_rate.max(1e-9);
    let ratio_start = sign16 / baseline.all_cores.per_s.max(1e-9);
    let around = beside
        .iter()
        .map(|r| format!("{:.0}", r.per_s))
        .collect::<Vec<_>>()
        .join(", ");
    let p99_64 = report
        .window("sign_c64")
        .map_or(f64::NAN, |w| w.summary.p99_ms);
    let targets = vec![
        Target {
            name: "sign-message at concurrency 16 / crypto-only rate (all cores)",
            target: ">= 50%",
            measured: format!(
                "{:.0}% ({sign16:.0}/s over {crypto_rate:.0}/s, the mean of {around}/s taken \
                 between the window's slices; over the start-of-run rate {:.0}/s: {:.0}%)",
                ratio_all * 100.0,
                baseline.all_cores.per_s,
                ratio_start * 100.0
            ),
            met: ratio_all >= 0.5,
        },
        Target {
            name: "sign-message p99 at concurrency 64",
            target: "< 25 ms",
            measured: format!("{p99_64:.1} ms"),
            met: p99_64 < 25.0,
        },
        Target {
            name: "wallet creation",
            target: ">= 500/s",
            measured: format!("{:.0}/s", per_s("wallet_create")),
            met: per_s("wallet_create") >= 500.0,
        },
        Target {
            name: "login (returning user)",
            target: ">= 2,000/s",
            measured: format!(
                "{:.0}/s at c16 (first login {:.0}/s; {:.0}/s at c64)",
                per_s("login"),
                per_s("login_new"),
                per_s("login_c64")
            ),
            met: per_s("login") >= 2000.0,
        },
        Target {
            name: "server RSS at rest",
            target: "< 100 MB",
            measured: format!(
                "{:.1} MB after start, {:.1} MB after the load",
                rest.server.rss_kb as f64 * 1024.0 / 1e6,
                after.server.rss_kb as f64 * 1024.0 / 1e6
            ),
            met: (rest.server.rss_kb as f64 * 1024.0) < 100e6,
        },
    ];
    println!("{:-<120}", "");
    println!(
        "{:<64} {:>10}  {:<36} result",
        "target", "wanted", "measured"
    );
    for t in &targets {
        println!(
            "{:<64} {:>10}  {:<36} {}",
            t.name,
            t.target,
            t.measured,
            if t.met { "met" } else { "MISSED" }
        );
    }
    println!("{:=<120}", "");
    targets
}
