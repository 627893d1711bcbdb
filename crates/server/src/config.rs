//! Layered configuration: defaults, then a TOML file, then `KEYSTEAD_*` variables, then
//! flags. Unknown keys are refused. Every secret also has a `*_file` form.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// A file holding `database_url` (it may carry a password).
    pub database_url_file: Option<PathBuf>,
    /// The development mode of `keystead serve --dev`. Never on by default.
    pub dev: bool,
    pub log_json: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    pub enclave: EnclaveConfig,
    /// Networks: `ID=CHAIN_ID@RPC_URL[,RPC_URL…]` strings, or tables with a name,
    /// symbol, decimals, several RPC URLs and a request timeout (see
    /// [`keystead_chains::NetworkConfig`]).
    pub networks: Vec<NetworkSpec>,
    /// How often pending transactions' receipts are looked up and the outbox replayed.
    pub chain_poll_ms: u64,
    /// The URL browsers reach this server at (`https://wallet.example`): login redirects
    /// come back to it and the widget is served from it. Default: `http://<listen>`.
    pub public_url: Option<String>,
    /// The widget's built files, served under `/widget/`; default: `widget/dist` if it
    /// exists, else `widget` beside the `keystead` binary.
    pub widget_dir: Option<PathBuf>,
    /// Lifetime of an access token, in seconds (clients refresh after it).
    pub access_token_ttl_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnclaveConfig {
    /// The enclave binary; default: `keystead-enclave` beside the `keystead` binary.
    pub binary: Option<PathBuf>,
    /// Default: `data_dir/enclave.sock`.
    pub socket: Option<PathBuf>,
    /// Default: `data_dir/kms-primary.json`.
    pub kms_keyring: Option<PathBuf>,
    /// Default: `data_dir/kms-dr.json`; the disaster-recovery copy of every data key.
    pub dr_kms_keyring: Option<PathBuf>,
    pub request_timeout_ms: u64,
    /// Calls sent to the enclave at once; the others wait in arrival order.
    pub max_in_flight: usize,
    /// Start and supervise the enclave process (off when it runs elsewhere, e.g. Nitro).
    pub supervise: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_url_file: None,
            dev: false,
            log_json: false,
            max_body_bytes: 256 * 1024,
            enclave: EnclaveConfig::default(),
            networks: Vec::new(),
            chain_poll_ms: 1_000,
            public_url: None,
            widget_dir: None,
            access_token_ttl_secs: crate::auth::ACCESS_TOKEN_TTL_SECS,
        }
    }
}

impl Default for EnclaveConfig {
    fn default() -> Self {
        Self {
            binary: None,
            socket: None,
            kms_keyring: None,
            dr_kms_keyring: None,
            request_timeout_ms: 5_000,
            max_in_flight: 128,
            supervise: true,
        }
    }
}

/// One configured network, in either form.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NetworkSpec {
    /// `ID=CHAIN_ID@RPC_URL[,RPC_URL…]`, as `--network` takes it.
    Short(String),
    /// A `[[networks]]` table.
    Full(keystead_chains::NetworkConfig),
}

impl NetworkSpec {
    pub fn config(&self) -> Result<keystead_chains::NetworkConfig, ConfigError> {
        match self {
            NetworkSpec::Short(text) => text
                .parse()
                .map_err(|e: keystead_chains::ConfigError| ConfigError::Invalid(e.to_string())),
            NetworkSpec::Full(config) => Ok(config.clone()),
        }
    }
}

impl std::fmt::Debug for NetworkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.config() {
            Ok(c) => write!(
                f,
                "{}={}@{}",
                c.id,
                c.chain_id,
                c.redacted().rpc_urls.join(",")
            ),
            Err(_) => f.write_str("(invalid network)"),
        }
    }
}

impl std::fmt::Display for NetworkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What flags can set; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
}

/// Variables read, as `KEYSTEAD_<KEY>`; nested keys use `__` (`KEYSTEAD_ENCLAVE__SOCKET`).
/// Listed so that unrelated `KEYSTEAD_*` variables (the CLI's `KEYSTEAD_PIN`, test
/// settings) are not mistaken for configuration.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "database_url_file",
    "dev",
    "log_json",
    "max_body_bytes",
    "networks",
    "chain_poll_ms",
    "public_url",
    "widget_dir",
    "access_token_ttl_secs",
    "enclave__binary",
    "enclave__socket",
    "enclave__kms_keyring",
    "enclave__dr_kms_keyring",
    "enclave__request_timeout_ms",
    "enclave__max_in_flight",
    "enclave__supervise",
];

impl Config {
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        Self::load_from(file, flags, Env::prefixed("KEYSTEAD_"))
    }

    fn load_from(
        file: Option<&Path>,
        flags: &FlagOverrides,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = env
            .map(|key| key.as_str().to_ascii_lowercase().into())
            .filter(|key| ENV_KEYS.contains(&key.as_str()));
        figment = figment
            .merge(env.split("__"))
            .merge(Serialized::defaults(flags));
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.resolve_files()?;
        config.networks = dev_default_networks(&config);
        config.validate()?;
        Ok(config)
    }

    fn resolve_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = self.database_url_file.take() {
            if self.database_url.is_some() {
                return Err(ConfigError::Invalid(
                    "set database_url or database_url_file, not both".into(),
                ));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::Read { path, source })?;
            self.database_url = Some(text.trim().to_string());
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database_url must be sqlite:… or postgres://…".into(),
            ));
        }
        self.network_configs()?;
        if let Some(url) = &self.public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::Invalid(
                "public_url must be an http(s) URL".into(),
            ));
        }
        if !(1..=256).contains(&self.enclave.max_in_flight) {
            return Err(ConfigError::Invalid(
                "enclave.max_in_flight must be between 1 and 256 (the enclave's connection limit)"
                    .into(),
            ));
        }
        if !(1..=86_400).contains(&self.access_token_ttl_secs) {
            return Err(ConfigError::Invalid(
                "access_token_ttl_secs must be between 1 and 86400".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("keystead.db").display()
            )
        })
    }

    /// The configured networks, parsed and checked (distinct ids and chain ids).
    pub fn network_configs(&self) -> Result<Vec<keystead_chains::NetworkConfig>, ConfigError> {
        let configs = self
            .networks
            .iter()
            .map(NetworkSpec::config)
            .collect::<Result<Vec<_>, _>>()?;
        keystead_chains::ChainRegistry::new(configs.clone())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(configs)
    }

    /// [`Config::public_url`], or `http://<listen>` with an unspecified address named as
    /// loopback; without a trailing slash.
    pub fn public_base_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_string();
        }
        let ip = match self.listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, self.listen.port()))
    }

    pub fn enclave_socket(&self) -> PathBuf {
        self.enclave
            .socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("enclave.sock"))
    }

    pub fn kms_keyring(&self) -> PathBuf {
        self.enclave
            .kms_keyring
            .clone()
            .unwrap_or_else(|| self.data_dir.join("kms-primary.json"))
    }

    pub fn dr_kms_keyring(&self) -> PathBuf {
        self.enclave
            .dr_kms_keyring
            .clone()
            .unwrap_or_else(|| self.data_dir.join("kms-dr.json"))
    }

    /// The configuration as `config check` prints it: secrets replaced.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        if let Some(url) = &shown.database_url {
            shown.database_url = Some(redact_url(url));
        }
        shown.networks = shown
            .networks
            .iter()
            .map(|n| match n.config() {
                Ok(c) => NetworkSpec::Full(c.redacted()),
                Err(_) => n.clone(),
            })
            .collect();
        shown
    }
}

/// The network `keystead serve --dev` adds when none is configured: a local chain
/// (anvil, hardhat) at its usual address.
pub const DEV_NETWORK: &str = "local=31337@http://127.0.0.1:8545";

/// The networks `config` runs with: the configured ones, or in development mode with none
/// configured, [`DEV_NETWORK`]. Without `dev`, exactly the configured ones.
pub fn dev_default_networks(config: &Config) -> Vec<NetworkSpec> {
    if config.dev && config.networks.is_empty() {
        vec![NetworkSpec::Short(DEV_NETWORK.to_string())]
    } else {
        config.networks.clone()
    }
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keystead.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\n[enclave]\nrequest_timeout_ms = 100\n").unwrap();
        let config = Config::load_from(
            Some(&file),
            &FlagOverrides::default(),
            Env::prefixed("KEYSTEAD_NONE_"),
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.enclave.request_timeout_ms, 100);

        let flags = FlagOverrides {
            data_dir: Some("/from-flag".into()),
            ..Default::default()
        };
        let config =
            Config::load_from(Some(&file), &flags, Env::prefixed("KEYSTEAD_NONE_")).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from-flag"));
        assert_eq!(config.listen.port(), 9000, "untouched by flags");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keystead.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::load_from(
            Some(&file),
            &FlagOverrides::default(),
            Env::prefixed("KEYSTEAD_NONE_"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }

    #[test]
    fn database_url_comes_from_a_file_and_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("db-url");
        std::fs::write(&secret, "postgres://keystead:hunter2@127.0.0.1/keystead\n").unwrap();
        let file = dir.path().join("keystead.toml");
        std::fs::write(
            &file,
            format!("database_url_file = {:?}\n", secret.display().to_string()),
        )
        .unwrap();
        let config = Config::load_from(
            Some(&file),
            &FlagOverrides::default(),
            Env::prefixed("KEYSTEAD_NONE_"),
        )
        .unwrap();
        assert_eq!(
            config.database_url(),
            "postgres://keystead:hunter2@127.0.0.1/keystead"
        );
        let shown = format!("{:?}", config.redacted());
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn access_token_ttl_is_bounded() {
        assert_eq!(
            Config::default().access_token_ttl_secs,
            crate::auth::ACCESS_TOKEN_TTL_SECS
        );
        for (ttl, ok) in [(0, false), (1, true), (86_400, true), (86_401, false)] {
            let config = Config {
                access_token_ttl_secs: ttl,
                ..Config::default()
            };
            assert_eq!(config.validate().is_ok(), ok, "{ttl}");
        }
    }

    fn short(text: &str) -> NetworkSpec {
        NetworkSpec::Short(text.to_string())
    }

    #[test]
    fn networks_are_checked() {
        let local = short("local=31337@http://127.0.0.1:8545").config().unwrap();
        assert_eq!((local.id.as_str(), local.chain_id), ("local", 31337));
        for bad in [
            "local",
            "local=x@http://a",
            "=1@http://a",
            "local=1@ftp://a",
        ] {
            assert!(short(bad).config().is_err(), "{bad}");
        }
        let twice = Config {
            networks: vec![
                short("a=1@http://127.0.0.1:1"),
                short("b=1@http://127.0.0.1:2"),
            ],
            ..Config::default()
        };
        assert!(twice.validate().is_err(), "two networks with one chain id");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn networks_may_be_tables_with_fallback_urls() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "keystead.toml",
                r#"
networks = [
  "local=31337@http://127.0.0.1:8545",
  { id = "base", chain_id = 8453, name = "Base", symbol = "ETH", decimals = 18, rpc_urls = ["https://base.example/v1/SECRETKEY", "https://fallback.example"], request_timeout = "3s" },
]
"#,
            )?;
            let config = Config::load_from(
                Some(Path::new("keystead.toml")),
                &FlagOverrides::default(),
                Env::prefixed("KEYSTEAD_NONE_"),
            )
            .map_err(|e| e.to_string())?;
            let networks = config.network_configs().map_err(|e| e.to_string())?;
            assert_eq!(networks.len(), 2);
            let base = &networks[1];
            assert_eq!((base.name.as_str(), base.chain_id), ("Base", 8453));
            assert_eq!(base.rpc_urls.len(), 2);
            assert_eq!(base.request_timeout, std::time::Duration::from_secs(3));
            let shown = format!(
                "{:?} {}",
                config.redacted(),
                serde_json::to_string(&config.redacted()).unwrap()
            );
            assert!(!shown.contains("SECRETKEY"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn dev_mode_adds_the_local_network_only_when_none_is_configured() {
        let load = |flags: &FlagOverrides| {
            Config::load_from(None, flags, Env::prefixed("KEYSTEAD_NONE_")).unwrap()
        };
        assert!(load(&FlagOverrides::default()).networks.is_empty());
        let dev = FlagOverrides {
            dev: true,
            ..Default::default()
        };
        assert_eq!(load(&dev).networks, vec![short(DEV_NETWORK)]);
        let local = short(DEV_NETWORK).config().unwrap();
        assert_eq!(
            (
                local.id.as_str(),
                local.chain_id,
                local.rpc_urls[0].as_str()
            ),
            ("local", 31337, "http://127.0.0.1:8545")
        );
        let explicit = FlagOverrides {
            dev: true,
            networks: vec!["sepolia=11155111@https://rpc.example".into()],
            ..Default::default()
        };
        assert_eq!(
            load(&explicit).networks,
            vec![short("sepolia=11155111@https://rpc.example")]
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
    fn variables_override_the_file_and_unrelated_ones_are_ignored() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("keystead.toml", "listen = \"127.0.0.1:9000\"\n")?;
            jail.set_env("KEYSTEAD_LISTEN", "127.0.0.1:9100");
            jail.set_env("KEYSTEAD_ENCLAVE__REQUEST_TIMEOUT_MS", "250");
            jail.set_env("KEYSTEAD_PIN", "480927");
            let config = Config::load(Some(Path::new("keystead.toml")), &FlagOverrides::default())
                .map_err(|e| e.to_string())?;
            assert_eq!(config.listen.port(), 9100);
            assert_eq!(config.enclave.request_timeout_ms, 250);
            Ok(())
        });
    }
}
