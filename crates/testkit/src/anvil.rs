//! A real anvil node (Foundry's EVM development node) for tests.
//!
//! The binary comes from `$KEYSTEAD_ANVIL`, or the place `scripts/lib/anvil.sh`
//! (`ensure_anvil`, which `scripts/test` runs) installs it:
//! `${KEYSTEAD_TOOLS:-$HOME/.cache/keystead/tools}/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil`.
//!
//! Each [`Anvil`] is its own process on `127.0.0.1` with a port the OS picked
//! (`--port 0`; the port is read from anvil's `Listening on` line), so tests run in
//! parallel without clashing. It is killed on drop.
//!
//! The helpers ([`Anvil::rpc`], [`Anvil::set_balance`], [`Anvil::mine`]) use plain
//! blocking HTTP: callable from sync tests and, briefly, from async ones.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// The chain id anvil uses unless told otherwise.
pub const ANVIL_CHAIN_ID: u64 = 31337;

/// The mnemonic of anvil's dev accounts (Hardhat's and Foundry's well-known test one).
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// Private keys of anvil's ten dev accounts, `m/44'/60'/0'/0/i` of [`DEV_MNEMONIC`].
/// Public knowledge: never use them anywhere real.
pub const DEV_PRIVATE_KEYS: [&str; 10] = [
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Addresses of anvil's ten dev accounts (EIP-55), each with 10,000 ETH at start.
pub const DEV_ADDRESSES: [&str; 10] = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
];

/// How anvil is started.
#[derive(Debug, Clone, Default)]
pub struct AnvilOptions {
    /// `--no-mining`: transactions stay pending until [`Anvil::mine`].
    pub no_mining: bool,
    /// `--chain-id`; 31337 when `None`.
    pub chain_id: Option<u64>,
    /// `--block-time` in seconds (interval mining); automine when `None`.
    pub block_time: Option<u64>,
    /// `--mixed-mining` (with `block_time`): automine, and a block every `block_time`
    /// seconds besides, which also mines what automine missed.
    pub mixed_mining: bool,
}

/// A running anvil, killed on drop.
pub struct Anvil {
    child: Child,
    addr: SocketAddr,
    url: String,
    chain_id: u64,
    output: Arc<Mutex<VecDeque<String>>>,
}

/// Lines of anvil's output kept for error messages.
const KEEP_LINES: usize = 200;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

impl Anvil {
    /// Starts anvil with automine and chain id 31337, and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(AnvilOptions::default())
    }

    /// Starts anvil with the options, and waits until it answers `eth_chainId`.
    pub fn start_with(options: AnvilOptions) -> Self {
        let binary = Self::binary();
        let chain_id = options.chain_id.unwrap_or(ANVIL_CHAIN_ID);
        let mut command = Command::new(&binary);
        command
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if options.no_mining {
            command.arg("--no-mining");
        }
        if let Some(seconds) = options.block_time {
            command.args(["--block-time", &seconds.to_string()]);
        }
        if options.mixed_mining {
            command.arg("--mixed-mining");
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start anvil at {}: {e}", binary.display()));

        // Drain both pipes for the life of the process (anvil logs every request; a full
        // pipe would block it), keeping the last lines and reporting the port.
        let output = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = mpsc::channel::<SocketAddr>();
        if let Some(stdout) = child.stdout.take() {
            drain(stdout, Arc::clone(&output), Some(port_tx));
        }
        if let Some(stderr) = child.stderr.take() {
            drain(stderr, Arc::clone(&output), None);
        }

        let mut anvil = Anvil {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            url: String::new(),
            chain_id,
            output,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        anvil.addr = loop {
            match port_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anvil.fail("anvil closed its output before saying where it listens")
                }
            }
            if let Ok(Some(status)) = anvil.child.try_wait() {
                anvil.fail(&format!("anvil exited at start ({status})"));
            }
            if Instant::now() > deadline {
                anvil.fail("anvil did not say where it listens within 30 s");
            }
        };
        anvil.url = format!("http://{}", anvil.addr);

        loop {
            match anvil.rpc("eth_chainId", json!([])) {
                Ok(answer) if answer.as_str().and_then(parse_quantity) == Some(chain_id) => break,
                Ok(answer) => anvil.fail(&format!("anvil answered eth_chainId with {answer}")),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => anvil.fail(&format!("anvil does not answer eth_chainId: {e:#}")),
            }
        }
        anvil
    }

    /// Where the anvil binary is: `$KEYSTEAD_ANVIL`, else the tools directory. Panics
    /// with what to run when it is missing.
    pub fn binary() -> PathBuf {
        let path = match std::env::var_os("KEYSTEAD_ANVIL") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            _ => {
                let tools = std::env::var_os("KEYSTEAD_TOOLS")
                    .filter(|t| !t.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME")
                            .map(|home| PathBuf::from(home).join(".cache/keystead/tools"))
                    })
                    .unwrap_or_else(|| PathBuf::from(".cache/keystead/tools"));
                tools.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
            }
        };
        assert!(
            path.is_file(),
            "anvil is not installed at {}: run scripts/test, which installs it \
             (or `source scripts/lib/anvil.sh && ensure_anvil`, then run the tests again)",
            path.display()
        );
        path
    }

    /// The JSON-RPC URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Dev account `index`'s private key (hex without `0x`). Panics past 9.
    pub fn private_key_hex(&self, index: usize) -> &'static str {
        DEV_PRIVATE_KEYS[index]
    }

    /// Dev account `index`'s private key bytes. Panics past 9.
    pub fn private_key(&self, index: usize) -> [u8; 32] {
        let mut key = [0u8; 32];
        hex_decode(DEV_PRIVATE_KEYS[index], &mut key);
        key
    }

    /// Dev account `index`'s address. Panics past 9.
    pub fn address(&self, index: usize) -> Address {
        DEV_ADDRESSES[index].parse().expect("dev address")
    }

    /// Sets an address's balance (`anvil_setBalance`).
    pub fn set_balance(&self, address: Address, wei: U256) {
        self.rpc("anvil_setBalance", json!([address, wei]))
            .unwrap_or_else(|e| panic!("anvil_setBalance: {e:#}"));
    }

    /// Gives an address `wei` (sets its balance to its current balance plus `wei`).
    pub fn fund(&self, address: Address, wei: U256) {
        let current = self
            .rpc("eth_getBalance", json!([address, "latest"]))
            .ok()
            .and_then(|v| v.as_str().and_then(|s| s.parse::<U256>().ok()))
            .unwrap_or_else(|| panic!("eth_getBalance of {address} failed"));
        self.set_balance(address, current.saturating_add(wei));
    }

    /// Mines one block with the pending transactions (`evm_mine`).
    pub fn mine(&self) {
        self.rpc("evm_mine", json!([]))
            .unwrap_or_else(|e| panic!("evm_mine: {e:#}"));
    }

    /// Mines `blocks` blocks (`anvil_mine`).
    pub fn mine_blocks(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .unwrap_or_else(|e| panic!("anvil_mine: {e:#}"));
    }

    /// The latest block number.
    pub fn block_number(&self) -> u64 {
        self.rpc("eth_blockNumber", json!([]))
            .ok()
            .and_then(|v| v.as_str().and_then(parse_quantity))
            .unwrap_or_else(|| panic!("eth_blockNumber failed"))
    }

    /// Deploys [`crate::test_token`]'s ERC-20 from dev account `from`, which receives the
    /// whole `supply`; returns the contract's address once it is mined.
    pub fn deploy_test_token(&self, from: usize, supply: U256) -> Address {
        let code = format!(
            "0x{}{supply:064x}",
            crate::test_token::TEST_TOKEN_CREATION_CODE
        );
        let hash = self
            .rpc(
                "eth_sendTransaction",
                json!([{"from": self.address(from), "data": code, "gas": "0x200000"}]),
            )
            .unwrap_or_else(|e| panic!("deploying the test token: {e:#}"));
        let deadline = Instant::now() + RPC_TIMEOUT;
        loop {
            let receipt = self
                .rpc("eth_getTransactionReceipt", json!([hash]))
                .unwrap_or_else(|e| panic!("the test token's receipt: {e:#}"));
            if let Some(address) = receipt.get("contractAddress").and_then(Value::as_str) {
                assert_eq!(
                    receipt["status"], "0x1",
                    "the test token's deployment failed"
                );
                return address.parse().expect("contract address");
            }
            assert!(Instant::now() < deadline, "the test token was not mined");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `balanceOf(owner)` of an ERC-20 `token`, read by `eth_call`.
    pub fn token_balance(&self, token: Address, owner: Address) -> U256 {
        let data = format!(
            "0x70a08231{:0>64}",
            format!("{owner:x}").trim_start_matches("0x")
        );
        self.rpc("eth_call", json!([{"to": token, "data": data}, "latest"]))
            .ok()
            .and_then(|v| v.as_str().and_then(|s| s.parse::<U256>().ok()))
            .unwrap_or_else(|| panic!("balanceOf({owner}) at {token} failed"))
    }

    /// One JSON-RPC call; the `result`, or the node's `error` as an error.
    pub fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer = post_json(self.addr, &body.to_string(), RPC_TIMEOUT)
            .with_context(|| format!("{method} to anvil at {}", self.url))?;
        let mut answer: Value = serde_json::from_str(&answer)
            .with_context(|| format!("{method}: anvil's answer is not JSON: {answer}"))?;
        if let Some(error) = answer.get("error") {
            bail!("{method}: anvil answered an error: {error}");
        }
        answer
            .get_mut("result")
            .map(Value::take)
            .ok_or_else(|| anyhow!("{method}: anvil's answer has no result: {answer}"))
    }

    /// The last lines anvil printed (for diagnostics).
    pub fn output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the drain threads a moment to collect the last words.
        std::thread::sleep(Duration::from_millis(50));
        panic!("{what}; anvil's output:\n{}", self.output());
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<VecDeque<String>>>,
    port_tx: Option<mpsc::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut port_tx = port_tx;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &port_tx
                && let Some(addr) = line
                    .trim()
                    .strip_prefix("Listening on ")
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            {
                let _ = tx.send(addr);
                port_tx = None;
            }
            let mut lines = output.lock().unwrap_or_else(|p| p.into_inner());
            if lines.len() == KEEP_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    });
}

/// `0x`-prefixed hex quantity to u64.
fn parse_quantity(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

fn hex_decode(text: &str, out: &mut [u8]) {
    assert_eq!(text.len(), out.len() * 2, "hex length");
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digit");
    }
}

/// A minimal HTTP/1.1 POST of a JSON body; returns the response body.
fn post_json(addr: SocketAddr, body: &str, timeout: Duration) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header end in anvil's answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let payload = &raw[split + 4..];
    let status_ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("200"));
    let payload = if head.contains("transfer-encoding: chunked") {
        dechunk(payload)?
    } else {
        payload.to_vec()
    };
    let text = String::from_utf8(payload).context("anvil's answer is not UTF-8")?;
    if !status_ok {
        bail!(
            "HTTP {}: {text}",
            head.lines().next().unwrap_or_default().trim()
        );
    }
    Ok(text)
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked encoding"))?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| anyhow!("truncated chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}
