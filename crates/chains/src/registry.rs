//! The configured networks, by id and by chain id.

use std::sync::Arc;

use crate::config::NetworkConfig;
use crate::error::ConfigError;
use crate::evm::EvmClient;

/// Every configured network with its client, in configuration order. Ids and chain ids
/// are unique, so a transaction intent's chain id names exactly one network.
#[derive(Debug, Default, Clone)]
pub struct ChainRegistry {
    networks: Vec<Arc<EvmClient>>,
}

impl ChainRegistry {
    /// Builds a client per network; refuses invalid configurations and duplicate ids or
    /// chain ids. Makes no request.
    pub fn new(configs: impl IntoIterator<Item = NetworkConfig>) -> Result<Self, ConfigError> {
        let mut networks: Vec<Arc<EvmClient>> = Vec::new();
        for config in configs {
            if networks.iter().any(|n| n.id() == config.id) {
                return Err(ConfigError::DuplicateId(config.id));
            }
            if let Some(other) = networks.iter().find(|n| n.chain_id() == config.chain_id) {
                return Err(ConfigError::DuplicateChainId {
                    chain_id: config.chain_id,
                    first: other.id().to_string(),
                    second: config.id,
                });
            }
            networks.push(Arc::new(EvmClient::new(config)?));
        }
        Ok(Self { networks })
    }

    /// The network with this id (`"local"`).
    pub fn get(&self, id: &str) -> Option<&Arc<EvmClient>> {
        self.networks.iter().find(|n| n.id() == id)
    }

    /// The network with this chain id.
    pub fn by_chain_id(&self, chain_id: u64) -> Option<&Arc<EvmClient>> {
        self.networks.iter().find(|n| n.chain_id() == chain_id)
    }

    /// The networks in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<EvmClient>> {
        self.networks.iter()
    }

    /// The networks' configurations in order (for `GET /v1/app`).
    pub fn configs(&self) -> impl Iterator<Item = &NetworkConfig> {
        self.networks.iter().map(|n| n.config())
    }

    pub fn len(&self) -> usize {
        self.networks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(id: &str, chain_id: u64) -> NetworkConfig {
        NetworkConfig::new(id, chain_id, vec!["http://127.0.0.1:8545".to_string()])
    }

    #[test]
    fn looks_up_by_id_and_chain_id() {
        let registry = ChainRegistry::new([net("local", 31337), net("sepolia", 11155111)]).unwrap();
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.get("sepolia").unwrap().chain_id(), 11155111);
        assert_eq!(registry.by_chain_id(31337).unwrap().id(), "local");
        assert!(registry.get("mainnet").is_none());
        assert!(registry.by_chain_id(1).is_none());
        let ids: Vec<&str> = registry.configs().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["local", "sepolia"]);
    }

    #[test]
    fn refuses_duplicates_and_invalid_networks() {
        assert_eq!(
            ChainRegistry::new([net("a", 1), net("a", 2)]).unwrap_err(),
            ConfigError::DuplicateId("a".into())
        );
        assert!(matches!(
            ChainRegistry::new([net("a", 1), net("b", 1)]).unwrap_err(),
            ConfigError::DuplicateChainId { chain_id: 1, .. }
        ));
        assert!(ChainRegistry::new([NetworkConfig::new("a", 1, vec![])]).is_err());
    }
}
