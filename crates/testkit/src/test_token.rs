//! A plain ERC-20 for tests (`contracts/TestToken.sol`: name "Test Token", symbol "TST",
//! 6 decimals, the whole supply to the deployer), compiled by `scripts/gen-test-token`
//! with solc 0.8.37. The widget's browser test deploys the same file.

/// Creation code of `TestToken(uint256 supply)`, hex without `0x`.
pub const TEST_TOKEN_CREATION_CODE: &str = include_str!("../contracts/TestToken.bin").trim_ascii();
