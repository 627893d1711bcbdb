//! `keystead-enclave`: the enclave process, on a Unix socket.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;

use keystead_attestation::{AttestationProvider, DevProvider, measure_file};
use keystead_enclave::hardening::harden_process;
use keystead_enclave::transport::{bind_unix, serve_unix};
use keystead_enclave::{EnclaveService, ServiceConfig, ServiceParts, SystemClock};
use keystead_kms::{Kms, LocalKms};

#[derive(Parser)]
#[command(
    name = "keystead-enclave",
    about = "Keystead's key-custody enclave process"
)]
struct Args {
    /// Unix socket to serve the enclave protocol on.
    #[arg(long, env = "KEYSTEAD_ENCLAVE_SOCKET")]
    socket: PathBuf,
    /// The local KMS keyring (created with mode 0600 on first start).
    #[arg(long, env = "KEYSTEAD_KMS_KEYRING")]
    kms_keyring: PathBuf,
    /// A second, independent keyring for disaster-recovery copies of every data key.
    #[arg(long, env = "KEYSTEAD_DR_KMS_KEYRING")]
    dr_kms_keyring: Option<PathBuf>,
    /// Attestation provider: `dev` (proves nothing) locally; `nitro` inside AWS Nitro.
    #[arg(long, default_value = "dev")]
    attestation: String,
    /// Refuse to start unless every hardening step succeeded.
    #[arg(long)]
    require_hardening: bool,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Envelope nonces remembered at once (about 53 bytes each); when full, new
    /// envelopes are refused with `Busy` until older ones expire.
    #[arg(
        long,
        env = "KEYSTEAD_ENCLAVE_REPLAY_CAPACITY",
        default_value_t = ServiceConfig::default().replay_capacity as u64,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    replay_capacity: u64,
}

fn main() -> anyhow::Result<()> {
    // Before anything else exists in memory worth protecting.
    let hardening = harden_process();
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYSTEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        subscriber.json().init()
    } else {
        subscriber.init()
    }

    if !(hardening.non_dumpable && hardening.core_dumps_disabled && hardening.memory_locked) {
        tracing::warn!(
            non_dumpable = hardening.non_dumpable,
            core_dumps_disabled = hardening.core_dumps_disabled,
            memory_locked = hardening.memory_locked,
            "process hardening incomplete"
        );
        anyhow::ensure!(
            !args.require_hardening,
            "hardening incomplete and --require-hardening given"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, hardening))
}

async fn run(args: Args, hardening: keystead_enclave::hardening::Hardening) -> anyhow::Result<()> {
    let provider: Arc<dyn AttestationProvider> = match args.attestation.as_str() {
        "dev" => {
            let exe = std::env::current_exe().context("locating the enclave executable")?;
            let measurement = measure_file(&exe).context("measuring the enclave executable")?;
            tracing::warn!("dev attestation: it proves nothing about the code that holds keys");
            Arc::new(DevProvider::new(measurement))
        }
        other => anyhow::bail!("attestation provider {other:?} is not available in this build"),
    };
    let kms: Arc<dyn Kms> = Arc::new(
        LocalKms::open_or_create(&args.kms_keyring, "primary", keystead_kms::os_rng())
            .context("opening the KMS keyring")?,
    );
    let dr_kms: Option<Arc<dyn Kms>> = match &args.dr_kms_keyring {
        Some(path) => Some(Arc::new(
            LocalKms::open_or_create(path, "dr", keystead_kms::os_rng())
                .context("opening the disaster-recovery keyring")?,
        )),
        None => None,
    };
    let health = hardening.health(provider.format().as_str());
    let service = Arc::new(
        EnclaveService::new(ServiceParts {
            kms,
            dr_kms,
            attestation: provider,
            clock: Arc::new(SystemClock),
            rng: StdRng::from_os_rng(),
            health,
            config: ServiceConfig {
                replay_capacity: usize::try_from(args.replay_capacity)
                    .context("--replay-capacity")?,
                ..ServiceConfig::default()
            },
        })
        .map_err(|e| anyhow::anyhow!("starting the enclave service: {e}"))?,
    );
    let listener = bind_unix(&args.socket).context("binding the enclave socket")?;
    tracing::info!(socket = %args.socket.display(), "enclave ready");
    tokio::select! {
        served = serve_unix(service, listener) => served.context("serving"),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = terminate() => Ok(()),
    }
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
