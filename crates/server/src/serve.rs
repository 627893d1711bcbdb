//! `keystead serve`: wires the parts together and runs until a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::ServiceExt;
use axum::extract::{DefaultBodyLimit, Request};
use keystead_enclave_client::{ClientConfig, EnclaveClient};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer;

use keystead_identity::{OidcVerifier, SessionSigner, VerifierOptions};
use rand::TryRngCore;
use rand::rngs::OsRng;

use crate::admin::open_store;
use crate::auth::Auth;
use crate::config::Config;
use crate::http::{AppState, router};
use crate::locks::Locks;
use crate::metrics::Metrics;
use crate::supervisor::{EnclaveCommand, supervise};
use keystead_chains::ChainRegistry;

pub async fn run(config: Config) -> anyhow::Result<()> {
    // One server per SQLite file, so that it may keep signing's reads in memory.
    let store = open_store(&config)
        .await?
        .become_sole_server()
        .context("claiming the database")?;
    // `--dev` only: the demo app and the development issuer's routes (none without it).
    let dev_routes =
        crate::dev::start(&config, &store, crate::auth::now(), &mut OsRng.unwrap_err()).await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let chains = Arc::new(
        ChainRegistry::new(config.network_configs()?).context("configuring the networks")?,
    );
    for network in chains.configs() {
        tracing::info!(network = %network.id, chain_id = network.chain_id, "network configured");
    }

    let supervisor = if config.enclave.supervise {
        let command =
            EnclaveCommand::from_config(&config).context("locating the enclave binary")?;
        Some(tokio::spawn(supervise(command, shutdown_rx.clone())))
    } else {
        None
    };

    let enclave = Arc::new(EnclaveClient::new(
        config.enclave_socket(),
        ClientConfig {
            request_timeout: Duration::from_millis(config.enclave.request_timeout_ms),
            max_in_flight: config.enclave.max_in_flight,
            ..Default::default()
        },
    ));
    let auth = {
        let mut rng = OsRng.unwrap_err();
        let key_path = config.data_dir.join("session-key.pem");
        let signer = SessionSigner::load_or_create(&key_path, &mut rng)
            .with_context(|| format!("loading the session key {}", key_path.display()))?;
        // Plain-HTTP issuers only on loopback (the verifier's default).
        let verifier = OidcVerifier::with_options(VerifierOptions::default())
            .context("building the OpenID verifier")?;
        Auth::new(signer, verifier, config.access_token_ttl_secs)
    };
    let state = Arc::new(AppState {
        enclave,
        store: store.clone(),
        metrics: Metrics::default(),
        readiness_timeout: Duration::from_secs(2),
        auth,
        chains,
        wallet_locks: Locks::new(1024),
        account_locks: Locks::new(1024),
        app_keys: crate::cache::TtlCache::new(crate::http::APP_KEY_CACHE_TTL, 10_000),
        public_origin: crate::admin::normalize_origin(&config.public_base_url())
            .map_err(anyhow::Error::msg)
            .context("public_url")?,
        public_url: config.public_base_url(),
    });
    let tracker = tokio::spawn(crate::tracker::run(
        state.clone(),
        Duration::from_millis(config.chain_poll_ms),
        shutdown_rx.clone(),
    ));
    let app = router(state.clone())
        .merge(dev_routes)
        .merge(crate::http::widget::routes(
            state,
            crate::http::widget::resolve_dir(config.widget_dir.as_deref()),
        ));

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "keystead listening");
    let mut rx = shutdown_rx.clone();
    let app = DefaultBodyLimit::max(config.max_body_bytes).layer(app);
    axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = rx.changed() => {}
            }
            tracing::info!("shutting down");
        })
        .await
        .context("serving HTTP")?;
    let _ = shutdown_tx.send(true);
    let _ = tracker.await;
    if let Some(supervisor) = supervisor {
        let _ = supervisor.await;
    }
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
