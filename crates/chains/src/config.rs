//! Network configuration: what the server's TOML file, its `--network` flag and
//! `KEYSTEAD_*` variables describe.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ConfigError;

/// The request timeout used when the configuration names none.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One EVM network Keystead can read from and broadcast to.
///
/// In TOML (`name`, `symbol`, `decimals` and `request_timeout` may be left out):
///
/// ```toml
/// [[networks]]
/// id = "local"
/// chain_id = 31337
/// name = "Local (anvil)"
/// symbol = "ETH"
/// decimals = 18
/// rpc_urls = ["http://127.0.0.1:8545", "http://127.0.0.1:8546"]
/// request_timeout = "10s"     # or "500ms", "1m", or a number of seconds
/// tokens = [{ contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3", symbol = "TST", decimals = 6 }]
/// ```
///
/// Deserializing validates the value (see [`NetworkConfig::validate`]); unknown keys
/// are refused. RPC URLs often carry an API key in their path or query, so `Debug`
/// shows only their scheme, host and port.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawNetworkConfig")]
pub struct NetworkConfig {
    /// Keystead's name for the network, used in the API (`"local"`, `"ethereum"`).
    pub id: String,
    /// The EIP-155 chain id every endpoint must report.
    pub chain_id: u64,
    /// A human name for the network; defaults to `id`.
    pub name: String,
    /// The native currency's symbol; defaults to `ETH`.
    pub symbol: String,
    /// The native currency's decimals; defaults to 18.
    pub decimals: u8,
    /// JSON-RPC endpoints over HTTP(S), tried in this order.
    pub rpc_urls: Vec<String>,
    /// How long one JSON-RPC request to one endpoint may take before the next
    /// endpoint is tried; defaults to 10 seconds.
    #[serde(with = "duration_text")]
    pub request_timeout: Duration,
    /// ERC-20 tokens whose balances are shown and whose transfers are named; may be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenConfig>,
}

/// An ERC-20 token the operator vouches for: its symbol and decimals are shown to users
/// as configured, never read from the contract (which could claim anything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub contract: alloy_primitives::Address,
    pub symbol: String,
    pub decimals: u8,
}

/// The most tokens one network may list (each costs an `eth_call` per balance read).
pub const MAX_TOKENS: usize = 32;

/// The serialized form; `NetworkConfig` is built from it through validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetworkConfig {
    id: String,
    chain_id: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    decimals: Option<u8>,
    rpc_urls: Vec<String>,
    #[serde(default, with = "duration_text::option")]
    request_timeout: Option<Duration>,
    #[serde(default)]
    tokens: Vec<TokenConfig>,
}

impl TryFrom<RawNetworkConfig> for NetworkConfig {
    type Error = ConfigError;

    fn try_from(raw: RawNetworkConfig) -> Result<Self, ConfigError> {
        let config = NetworkConfig {
            name: raw.name.unwrap_or_else(|| raw.id.clone()),
            id: raw.id,
            chain_id: raw.chain_id,
            symbol: raw.symbol.unwrap_or_else(|| "ETH".to_string()),
            decimals: raw.decimals.unwrap_or(18),
            rpc_urls: raw.rpc_urls,
            request_timeout: raw.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            tokens: raw.tokens,
        };
        config.validate()?;
        Ok(config)
    }
}

impl NetworkConfig {
    /// A network with the defaults: name = id, `ETH`, 18 decimals, a 10 s timeout.
    pub fn new(id: impl Into<String>, chain_id: u64, rpc_urls: Vec<String>) -> Self {
        let id = id.into();
        Self {
            name: id.clone(),
            id,
            chain_id,
            symbol: "ETH".to_string(),
            decimals: 18,
            rpc_urls,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            tokens: Vec::new(),
        }
    }

    /// The same configuration with every RPC URL cut to its scheme, host and port (they
    /// often carry an API key), for display.
    pub fn redacted(&self) -> NetworkConfig {
        NetworkConfig {
            rpc_urls: self.rpc_urls.iter().map(|u| redact_url_text(u)).collect(),
            ..self.clone()
        }
    }

    /// Checks the values: an id of `a-z 0-9 - _` (1 to 64 characters), a non-zero
    /// chain id, a non-empty symbol, at least one `http`/`https` URL, a non-zero timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            network: self.id.clone(),
            reason,
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(invalid(
                "the id must be 1 to 64 characters of a-z, 0-9, '-' and '_'".to_string(),
            ));
        }
        if self.chain_id == 0 {
            return Err(invalid("the chain id must not be 0".to_string()));
        }
        if self.symbol.trim().is_empty() {
            return Err(invalid("the symbol must not be empty".to_string()));
        }
        if self.rpc_urls.is_empty() {
            return Err(invalid("at least one RPC URL is needed".to_string()));
        }
        for url in &self.rpc_urls {
            parse_rpc_url(url).map_err(invalid)?;
        }
        if self.request_timeout.is_zero() {
            return Err(invalid("the request timeout must not be zero".to_string()));
        }
        if self.tokens.len() > MAX_TOKENS {
            return Err(invalid(format!("at most {MAX_TOKENS} tokens per network")));
        }
        for (i, token) in self.tokens.iter().enumerate() {
            let symbol_ok = (1..=16).contains(&token.symbol.chars().count())
                && token
                    .symbol
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
            if !symbol_ok {
                return Err(invalid(format!(
                    "token {}: the symbol must be 1 to 16 letters, digits, '.' or '-'",
                    token.contract
                )));
            }
            if token.decimals > 36 {
                return Err(invalid(format!(
                    "token {}: at most 36 decimals",
                    token.contract
                )));
            }
            if self.tokens[..i]
                .iter()
                .any(|t| t.contract == token.contract)
            {
                return Err(invalid(format!("token {} is listed twice", token.contract)));
            }
        }
        Ok(())
    }
}

/// Parses one RPC URL: `http` or `https` with a host. The error text never repeats the
/// URL (it may hold an API key).
pub(crate) fn parse_rpc_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim())
        .map_err(|e| format!("an RPC URL does not parse ({e}): {}", redact_url_text(text)))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "RPC URLs must be http or https, not {other}: {}",
                redact_url(&url)
            ));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("an RPC URL has no host".to_string());
    }
    Ok(url)
}

/// `scheme://host:port`, with `/…` when the URL had more (a path, a query, credentials):
/// safe to log and to show.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    let more = (url.path() != "/" && !url.path().is_empty())
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some();
    if more {
        out.push_str("/…");
    }
    out
}

fn redact_url_text(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(url) => redact_url(&url),
        Err(_) => "(unparsable)".to_string(),
    }
}

impl fmt::Debug for NetworkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.rpc_urls.iter().map(|u| redact_url_text(u)).collect();
        f.debug_struct("NetworkConfig")
            .field("id", &self.id)
            .field("chain_id", &self.chain_id)
            .field("name", &self.name)
            .field("symbol", &self.symbol)
            .field("decimals", &self.decimals)
            .field("rpc_urls", &urls)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The command-line form `ID=CHAIN_ID@RPC_URL[,RPC_URL...]`, e.g.
/// `local=31337@http://127.0.0.1:8545`; the other fields take their defaults.
impl FromStr for NetworkConfig {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &str| ConfigError::Invalid {
            network: text.split('=').next().unwrap_or_default().to_string(),
            reason: format!("{reason}; expected ID=CHAIN_ID@RPC_URL[,RPC_URL...]"),
        };
        let (id, rest) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (chain_id, urls) = rest.split_once('@').ok_or_else(|| bad("no '@'"))?;
        let chain_id: u64 = chain_id
            .trim()
            .parse()
            .map_err(|_| bad("the chain id is not a number"))?;
        let urls = urls
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let config = NetworkConfig::new(id.trim(), chain_id, urls);
        config.validate()?;
        Ok(config)
    }
}

/// Durations as text: `"250ms"`, `"10s"`, `"2m"`, or a bare number of seconds.
pub(crate) mod duration_text {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    pub fn format(value: Duration) -> String {
        let millis = value.as_millis();
        if millis.is_multiple_of(60_000) && millis > 0 {
            format!("{}m", millis / 60_000)
        } else if millis.is_multiple_of(1000) {
            format!("{}s", millis / 1000)
        } else {
            format!("{millis}ms")
        }
    }

    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("not a duration: {text:?} (try \"10s\" or \"500ms\")"))?;
        let millis = match unit.trim() {
            "ms" => Some(number),
            "" | "s" => number.checked_mul(1000),
            "m" => number.checked_mul(60_000),
            _ => return Err(format!("unknown unit in {text:?}: use ms, s or m")),
        };
        millis
            .map(Duration::from_millis)
            .ok_or_else(|| format!("duration too large: {text:?}"))
    }

    struct DurationVisitor;

    impl<'de> Visitor<'de> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"10s\", \"500ms\", \"1m\" or a number of seconds")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom("a duration must not be negative"))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }
    }

    pub mod option {
        use std::time::Duration;

        use serde::Deserializer;

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize(deserializer).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(duration_text::parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            duration_text::parse("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(duration_text::parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration_text::parse("7"), Ok(Duration::from_secs(7)));
        assert!(duration_text::parse("10h").is_err());
        assert!(duration_text::parse("fast").is_err());
        assert_eq!(duration_text::format(Duration::from_millis(250)), "250ms");
        assert_eq!(duration_text::format(Duration::from_secs(10)), "10s");
        assert_eq!(duration_text::format(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn flag_form_parses() {
        let config: NetworkConfig = "local=31337@http://127.0.0.1:8545,http://127.0.0.1:8546"
            .parse()
            .unwrap();
        assert_eq!(config.id, "local");
        assert_eq!(config.name, "local");
        assert_eq!(config.chain_id, 31337);
        assert_eq!(config.rpc_urls.len(), 2);
        assert_eq!(config.symbol, "ETH");
        assert_eq!(config.decimals, 18);
        assert_eq!(config.request_timeout, DEFAULT_REQUEST_TIMEOUT);

        assert!("local@http://x".parse::<NetworkConfig>().is_err());
        assert!("local=abc@http://x".parse::<NetworkConfig>().is_err());
        assert!("local=1@".parse::<NetworkConfig>().is_err());
        assert!(
            "local=1@ws://127.0.0.1:8545"
                .parse::<NetworkConfig>()
                .is_err()
        );
        assert!(
            "Local=1@http://127.0.0.1:8545"
                .parse::<NetworkConfig>()
                .is_err()
        );
        assert!(
            "local=0@http://127.0.0.1:8545"
                .parse::<NetworkConfig>()
                .is_err()
        );
    }

    #[test]
    fn serializes_and_parses_back() {
        let mut config = NetworkConfig::new("local", 31337, vec!["http://127.0.0.1:8545".into()]);
        config.request_timeout = Duration::from_millis(1500);
        let text = toml::to_string(&config).unwrap();
        assert!(text.contains("request_timeout = \"1500ms\""), "{text}");
        assert_eq!(toml::from_str::<NetworkConfig>(&text).unwrap(), config);
        let seconds: NetworkConfig = toml::from_str(
            "id = \"a\"\nchain_id = 1\nrpc_urls = [\"https://x.example\"]\nrequest_timeout = 3\n",
        )
        .unwrap();
        assert_eq!(seconds.request_timeout, Duration::from_secs(3));
        assert_eq!(seconds.name, "a");
    }

    #[test]
    fn tokens_parse_and_are_checked() {
        let base = "id = \"a\"\nchain_id = 1\nrpc_urls = [\"https://x.example\"]\n";
        let token = |symbol: &str, decimals: u8| {
            format!(
                "{{ contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\", symbol = \"{symbol}\", decimals = {decimals} }}"
            )
        };
        let one: NetworkConfig =
            toml::from_str(&format!("{base}tokens = [{}]\n", token("USDC.e", 6))).unwrap();
        assert_eq!(one.tokens.len(), 1);
        assert_eq!(one.tokens[0].symbol, "USDC.e");
        assert_eq!(
            one.tokens[0].contract,
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
                .parse::<alloy_primitives::Address>()
                .unwrap()
        );
        // It round-trips, and a network without tokens serializes without the key.
        assert_eq!(
            toml::from_str::<NetworkConfig>(&toml::to_string(&one).unwrap()).unwrap(),
            one
        );
        let none: NetworkConfig = toml::from_str(base).unwrap();
        assert!(!toml::to_string(&none).unwrap().contains("tokens"));

        let twice = format!("{base}tokens = [{}, {}]\n", token("A", 6), token("B", 6));
        let bad_symbol = format!("{base}tokens = [{}]\n", token("<b>", 6));
        let long_symbol = format!("{base}tokens = [{}]\n", token("ABCDEFGHIJKLMNOPQ", 6));
        let decimals = format!("{base}tokens = [{}]\n", token("A", 37));
        let not_an_address =
            format!("{base}tokens = [{{ contract = \"0x12\", symbol = \"A\", decimals = 6 }}]\n");
        for bad in [twice, bad_symbol, long_symbol, decimals, not_an_address] {
            assert!(toml::from_str::<NetworkConfig>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_url_paths() {
        let config = NetworkConfig::new(
            "mainnet",
            1,
            vec!["https://user:pw@mainnet.example.com:8443/v3/SECRETKEY?x=1".to_string()],
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("SECRETKEY"), "{shown}");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(
            shown.contains("https://mainnet.example.com:8443/…"),
            "{shown}"
        );
    }

    #[test]
    fn invalid_url_errors_do_not_repeat_the_url() {
        let config = NetworkConfig::new("m", 1, vec!["ftp://h.example/SECRET".to_string()]);
        let err = config.validate().unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
