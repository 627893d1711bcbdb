//! `keystead`: the server and its command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use keystead_server::config::{Config, FlagOverrides};

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
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
            if config.dev {
                tracing::warn!(
                    "DEVELOPMENT MODE: demo app, development OpenID issuer and a local chain are enabled"
                );
            }
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
    }
}

fn toml_like(config: &Config) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(config)?)
}
