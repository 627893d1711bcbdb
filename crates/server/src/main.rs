//! `keystead`: the server and its command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use keystead_server::admin;
use keystead_server::config::{Config, FlagOverrides};
use keystead_store::Store;
use rand::TryRngCore;
use rand::rngs::OsRng;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "keystead", version, about = "Keystead embedded-wallet service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServerFlags {
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…`.
    #[arg(long)]
    database_url: Option<String>,
    /// `ID=CHAIN_ID@RPC_URL`, repeatable.
    #[arg(long = "network")]
    networks: Vec<String>,
    /// Development mode: a local network, a demo app and a development OpenID issuer.
    #[arg(long)]
    dev: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerFlags),
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply the database migrations and exit.
    Migrate(ServerFlags),
    /// Manage apps (tenants), directly in the configured database.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// The command-line wallet: log in, create a wallet, sign, send.
    Wallet(keystead_client::cli::WalletArgs),
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an app; prints its id and its key (shown once).
    Create {
        #[command(flatten)]
        server: ServerFlags,
        #[arg(long)]
        name: String,
        /// An origin allowed to call the API (`https://app.example`), repeatable.
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        /// `PROVIDER=ISSUER_URL@CLIENT_ID`, repeatable.
        #[arg(long = "oidc")]
        oidc: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the apps, their origins and providers (never their keys).
    List {
        #[command(flatten)]
        server: ServerFlags,
        #[arg(long)]
        json: bool,
    },
    /// Allow one more origin for an app.
    AddOrigin {
        #[command(flatten)]
        server: ServerFlags,
        #[arg(long)]
        app: String,
        #[arg(long)]
        origin: String,
    },
    /// Give an app a new key and revoke its others; prints the new key (shown once).
    RotateKey {
        #[command(flatten)]
        server: ServerFlags,
        #[arg(long)]
        app: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and check the configuration; print it with secrets hidden.
    Check(ServerFlags),
}

fn load(flags: &ServerFlags) -> anyhow::Result<Config> {
    let overrides = FlagOverrides {
        listen: flags.listen,
        data_dir: flags.data_dir.clone(),
        database_url: flags.database_url.clone(),
        networks: flags.networks.clone(),
        dev: flags.dev,
    };
    Ok(Config::load(flags.config.as_deref(), &overrides)?)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYSTEAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    // Colour codes only for a person at a terminal: a log file or collector gets plain
    // text (and each request's span is formatted that much more cheaply).
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        subscriber.json().init()
    } else {
        subscriber.init()
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => {
            let config = load(&flags)?;
            init_logging(config.log_json);
            // `--dev` announces itself loudly once set up (see `keystead_server::dev`).
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(keystead_server::serve::run(config))
        }
        Command::Config {
            command: ConfigCommand::Check(flags),
        } => {
            let config = load(&flags)?;
            println!("{}", toml_like(&config.redacted())?);
            Ok(())
        }
        Command::Migrate(flags) => {
            let config = load(&flags)?;
            block_on(async {
                let store = admin::open_store(&config).await?;
                store.close().await;
                println!("migrations applied");
                Ok(())
            })
        }
        Command::App { command } => app_command(command),
        Command::Wallet(args) => {
            std::process::exit(keystead_client::cli::run_blocking(args).into())
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn unix_now() -> anyhow::Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
    )?)
}

fn app_command(command: AppCommand) -> anyhow::Result<()> {
    // The clock and the OS random number generator are read here and nowhere below.
    let now = unix_now()?;
    let mut rng = OsRng.unwrap_err();
    match command {
        AppCommand::Create {
            server,
            name,
            origins,
            oidc,
            json,
        } => {
            let new = admin::NewApp::parse(&name, &origins, &oidc)?;
            let config = load(&server)?;
            let created = with_store(&config, |store| async move {
                admin::create_app(&store, &new, now, &mut rng).await
            })?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("appId:  {}", created.app_id);
                println!("appKey: {}", created.app_key);
                eprintln!("The app key is shown only this once; keep it now.");
            }
        }
        AppCommand::List { server, json } => {
            let config = load(&server)?;
            let apps = with_store(
                &config,
                |store| async move { admin::list_apps(&store).await },
            )?;
            if json {
                println!("{}", serde_json::json!({ "apps": apps }));
            } else {
                for app in apps {
                    let providers: Vec<_> = app
                        .login_providers
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    println!(
                        "{}\t{}\torigins: {}\tproviders: {}",
                        app.app_id,
                        app.name,
                        app.origins.join(" "),
                        providers.join(" ")
                    );
                }
            }
        }
        AppCommand::AddOrigin {
            server,
            app,
            origin,
        } => {
            let config = load(&server)?;
            let origin = with_store(&config, |store| async move {
                admin::add_origin(&store, &app, &origin).await
            })?;
            println!("origin {origin} allowed");
        }
        AppCommand::RotateKey { server, app, json } => {
            let config = load(&server)?;
            let rotated = with_store(&config, |store| async move {
                admin::rotate_key(&store, &app, now, &mut rng).await
            })?;
            if json {
                println!("{}", serde_json::to_string(&rotated)?);
            } else {
                println!("appId:  {}", rotated.app_id);
                println!("appKey: {}", rotated.app_key);
                eprintln!("The new key is shown only this once; the app's other keys are revoked.");
            }
        }
    }
    Ok(())
}

/// Opens the configured store (migrating it), runs `f`, and closes the store.
fn with_store<T, F, Fut>(config: &Config, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    block_on(async {
        let store = admin::open_store(config).await?;
        let result = f(store.clone()).await;
        store.close().await;
        result
    })
}

fn toml_like(config: &Config) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(config)?)
}
