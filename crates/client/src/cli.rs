//! `keystead wallet ...`: the command-line wallet (API.md, "Command line").
//!
//! Every command that seals a PIN first fetches and verifies the enclave's attestation
//! and seals only to the attested key; values sealed back to the user (the recovery code,
//! the mnemonic) are opened here, with a one-time key that never leaves this process.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand, ValueEnum};
use keystead_envelope::{HpkeKeyPair, Operation, open_mnemonic, open_recovery_code};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::api::{Account, Client, MessageEncoding, TxStatus};
use crate::attest::{self, AttestationPolicy, EnclaveKey};
use crate::error::{ClientError, Result};
use crate::ops::{self, TxRequest};
use crate::session::{self, Session};

const PIN_HELP: &str = "\
PINs: the PIN comes from the KEYSTEAD_PIN variable, or with --pin-stdin from the first \
line of standard input. `change-pin` also needs the new PIN: KEYSTEAD_NEW_PIN, or the \
second line of standard input. `recover` needs only the new PIN: KEYSTEAD_NEW_PIN (else \
KEYSTEAD_PIN), or the first line of standard input. A new PIN is 6 digits, not one \
digit repeated and not a straight run (123456, 987654...).

Attestation: before sealing a PIN every command verifies the enclave's attestation and \
seals only to the key it attests. A `dev` attestation proves nothing and is reported on \
standard error; --attestation nitro refuses it, and a session that once saw `nitro` never \
accepts `dev`.";

/// `keystead wallet ...`.
#[derive(Debug, Args)]
#[command(after_long_help = PIN_HELP)]
pub struct WalletArgs {
    #[command(flatten)]
    pub flags: CommonFlags,
    #[command(subcommand)]
    pub command: WalletCommand,
}

/// Flags every `wallet` command takes (before or after the subcommand).
#[derive(Debug, Clone, Args)]
pub struct CommonFlags {
    /// The session file [default: $XDG_CONFIG_HOME/keystead/session.json, else
    /// ~/.config/keystead/session.json].
    #[arg(long, global = true, value_name = "FILE", env = "KEYSTEAD_SESSION")]
    pub session: Option<PathBuf>,
    /// Print machine-readable JSON; on failure, the error object `{"error": {...}}`.
    #[arg(long, global = true)]
    pub json: bool,
    /// Read the PIN (and for `change-pin` the new PIN, on a second line) from stdin
    /// instead of KEYSTEAD_PIN / KEYSTEAD_NEW_PIN.
    #[arg(long, global = true)]
    pub pin_stdin: bool,
    /// Which enclave attestation to accept.
    #[arg(long, global = true, value_enum, default_value_t = AttestationArg::Auto, env = "KEYSTEAD_ATTESTATION")]
    pub attestation: AttestationArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationArg {
    /// What the server offers (`nitro`, or `dev` with a warning), never `dev` after
    /// `nitro` for the same session.
    Auto,
    /// Only development attestations (they prove nothing).
    Dev,
    /// Only AWS Nitro attestations.
    Nitro,
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Log in with an ID token from one of the app's OpenID providers; keeps the session
    /// in the session file (mode 0600).
    Login {
        /// The Keystead server, e.g. https://wallet.example.
        #[arg(long)]
        server: String,
        /// The app's key.
        #[arg(long)]
        app_key: String,
        /// The app's name for the OpenID provider (see GET /v1/app).
        #[arg(long)]
        provider: String,
        /// The ID token the provider issued.
        #[arg(long)]
        id_token: String,
    },
    /// Create the wallet with a new PIN; prints the recovery code (shown once).
    Create,
    /// List the wallet's accounts.
    Accounts,
    /// Show an account's balance.
    Balance {
        /// Account id (or its address).
        #[arg(long)]
        account: String,
    },
    /// Sign a message (EIP-191 personal_sign); prints the signature.
    SignMessage {
        /// Account id (or its address).
        #[arg(long)]
        account: String,
        /// The message; its UTF-8 bytes are signed (with --hex, the bytes it spells).
        #[arg(long)]
        message: String,
        /// The message is hex (`0x` optional).
        #[arg(long)]
        hex: bool,
    },
    /// Sign EIP-712 typed data read from a JSON file; prints the signature.
    SignTypedData {
        /// Account id (or its address).
        #[arg(long)]
        account: String,
        /// A JSON file with `types`, `primaryType`, `domain` and `message`.
        #[arg(long, value_name = "JSON")]
        file: PathBuf,
    },
    /// Send a transaction; prints its id and hash.
    Send {
        /// Account id (or its address).
        #[arg(long)]
        account: String,
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount in wei (decimal).
        #[arg(long, value_name = "WEI")]
        value: String,
        /// Calldata, hex.
        #[arg(long, value_name = "HEX")]
        data: Option<String>,
        /// Sent as Idempotency-Key: repeating the command with the same key returns the
        /// first result and never broadcasts twice.
        #[arg(long, value_name = "K")]
        idempotency_key: Option<String>,
        /// Wait until the transaction is confirmed or failed (up to 2 minutes).
        #[arg(long)]
        wait: bool,
    },
    /// Export the wallet's mnemonic, opened locally. Anyone who sees it owns the funds.
    Export,
    /// Change the PIN (needs the current PIN and the new PIN).
    ChangePin,
    /// Set a new PIN with the recovery code.
    Recover {
        /// The recovery code `create` printed.
        #[arg(long, value_name = "CODE")]
        recovery_code: String,
    },
    /// Log out: revoke the session and delete the session file.
    Logout,
}

/// Runs a `wallet` command: 0 on success, 1 on failure (with `--json`, the error object
/// is printed on stdout).
pub async fn run(args: WalletArgs) -> ExitCode {
    ExitCode::from(run_code(args).await)
}

/// [`run`] on a runtime of its own, for a synchronous `main`.
pub fn run_blocking(args: WalletArgs) -> u8 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run_code(args)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            1
        }
    }
}

async fn run_code(args: WalletArgs) -> u8 {
    let json = args.flags.json;
    match execute(args).await {
        Ok(()) => 0,
        Err(err) => {
            if json {
                println!("{}", err.error_object());
            }
            eprintln!("error: {}", describe(&err));
            1
        }
    }
}

/// The error for people: the message, plus what the server's details say to do.
fn describe(err: &ClientError) -> String {
    let mut text = err.to_string();
    if let ClientError::Api { body, .. } = err {
        let details = &body["error"]["details"];
        if let Some(n) = details["remainingTries"].as_u64() {
            text.push_str(&format!(" ({n} tries left)"));
        }
        if let Some(t) = details["retryAfter"].as_u64() {
            text.push_str(&format!(" (retry after {t})"));
        }
    }
    text
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn execute(args: WalletArgs) -> Result<()> {
    let WalletArgs { flags, command } = args;
    let path = match &flags.session {
        Some(path) => path.clone(),
        None => session::default_path()?,
    };
    let mut pins = PinSource::new(flags.pin_stdin);
    match command {
        WalletCommand::Login {
            server,
            app_key,
            provider,
            id_token,
        } => {
            let id_token = Zeroizing::new(id_token);
            login(&flags, &path, &server, &app_key, &provider, &id_token).await
        }
        WalletCommand::Logout => {
            let ctx = Ctx::open(&flags, &path).await?;
            ctx.client.logout().await?;
            std::fs::remove_file(&path)
                .map_err(|e| ClientError::io("cannot delete the session file", e))?;
            print_result(&flags, &json!({}), || println!("Logged out."))
        }
        command => {
            let mut ctx = Ctx::open(&flags, &path).await?;
            ctx.command(command, &mut pins).await
        }
    }
}

async fn login(
    flags: &CommonFlags,
    path: &Path,
    server: &str,
    app_key: &str,
    provider: &str,
    id_token: &str,
) -> Result<()> {
    let mut client = Client::new(server, app_key)?;
    let now = now_unix();
    let tokens = client.login_id_token(provider, id_token).await?;
    client.set_access_token(tokens.access_token.clone());
    // Check the enclave now too: the user learns at once about a dev attestation, and
    // the session remembers the format so that it can never be downgraded later.
    let policy = match flags.attestation {
        AttestationArg::Auto => AttestationPolicy::Auto,
        AttestationArg::Dev => AttestationPolicy::Dev,
        AttestationArg::Nitro => AttestationPolicy::Nitro,
    };
    let enclave = checked_enclave(&client, policy).await?;
    let session = Session {
        server: client.server_url().to_string(),
        app_key: Zeroizing::new(app_key.to_string()),
        access_token: tokens.access_token.clone(),
        refresh_token: tokens.refresh_token.clone(),
        access_expires_at: now.saturating_add(tokens.expires_in),
        user_id: Some(tokens.user.id.clone()),
        attestation: Some(enclave.format.to_string()),
    };
    session.save(path)?;
    let out = json!({"user": tokens.user, "status": tokens.status});
    print_result(flags, &out, || {
        let email = tokens.user.email.as_deref().unwrap_or("no email");
        println!(
            "Logged in to {} as {} ({email}); status: {}.",
            session.server, tokens.user.id, tokens.status
        );
        println!("Session saved to {}.", path.display());
    })
}

/// Fetches and verifies the attestation; warns on stderr when it proves nothing.
async fn checked_enclave(client: &Client, policy: AttestationPolicy) -> Result<EnclaveKey> {
    let answer = client.attestation().await?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let key = attest::verify(&answer, policy, now_ms)?;
    if key.is_dev() {
        eprintln!("{}", attest::dev_warning());
    }
    Ok(key)
}

fn print_result(flags: &CommonFlags, value: &Value, human: impl FnOnce()) -> Result<()> {
    if flags.json {
        println!("{value}");
    } else {
        human();
    }
    Ok(())
}

/// Prints JSON holding a secret from a zeroizing buffer (the recovery code, the mnemonic).
fn print_secret_json<T: Serialize>(value: &T) -> Result<()> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(512));
    serde_json::to_writer(&mut *bytes, value)
        .map_err(|e| ClientError::Decode(format!("cannot encode the output: {e}")))?;
    bytes.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::io("cannot write to stdout", e))
}

/// Prints a secret on a line of its own, from a zeroizing buffer.
fn print_secret_line(secret: &str) -> Result<()> {
    let mut line = Zeroizing::new(Vec::with_capacity(secret.len() + 1));
    line.extend_from_slice(secret.as_bytes());
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|e| ClientError::io("cannot write to stdout", e))
}

/// Where PINs come from: the variables, or lines of stdin read in order.
struct PinSource {
    stdin: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PinKind {
    /// The PIN: the current one, or the one chosen at `create`.
    Current,
    /// A new PIN (`change-pin`, `recover`).
    New,
}

impl PinSource {
    fn new(stdin: bool) -> Self {
        Self { stdin }
    }

    /// The next PIN. From stdin, each call reads the next line; else `KEYSTEAD_PIN` for
    /// [`PinKind::Current`] and `KEYSTEAD_NEW_PIN` for [`PinKind::New`] (falling back to
    /// `KEYSTEAD_PIN` when `fallback` is set: `recover` has no current PIN).
    fn next(&mut self, kind: PinKind, fallback: bool) -> Result<Zeroizing<String>> {
        let pin = if self.stdin {
            read_stdin_line()?
        } else {
            let var = match kind {
                PinKind::Current => "KEYSTEAD_PIN",
                PinKind::New => "KEYSTEAD_NEW_PIN",
            };
            match std::env::var(var) {
                Ok(pin) => Zeroizing::new(pin),
                Err(_) if fallback && kind == PinKind::New => std::env::var("KEYSTEAD_PIN")
                    .map(Zeroizing::new)
                    .map_err(|_| missing_pin(var))?,
                Err(_) => return Err(missing_pin(var)),
            }
        };
        if pin.is_empty() {
            return Err(ClientError::InvalidInput("the PIN is empty".into()));
        }
        Ok(pin)
    }
}

fn missing_pin(var: &str) -> ClientError {
    ClientError::InvalidInput(format!(
        "no PIN: set {var} or pass --pin-stdin (see `keystead wallet --help`)"
    ))
}

fn read_stdin_line() -> Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::with_capacity(64));
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::io("cannot read the PIN from stdin", e))?;
    if n == 0 {
        return Err(ClientError::InvalidInput(
            "--pin-stdin: standard input has no more lines".into(),
        ));
    }
    // Truncating keeps the same allocation, which Zeroizing wipes.
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(line)
}

/// A logged-in command's context.
struct Ctx<'a> {
    flags: &'a CommonFlags,
    client: Client,
    session: Session,
    app_id: Option<String>,
}

impl<'a> Ctx<'a> {
    /// Loads the session, refreshing (and rewriting) it if the access token expired.
    async fn open(flags: &'a CommonFlags, path: &Path) -> Result<Ctx<'a>> {
        let mut session = Session::load(path)?;
        let mut client = Client::new(&session.server, &session.app_key)?;
        let now = now_unix();
        if session.needs_refresh(now) {
            let tokens = client.refresh(&session.refresh_token).await?;
            session.access_token = tokens.access_token;
            session.refresh_token = tokens.refresh_token;
            session.access_expires_at = now.saturating_add(tokens.expires_in);
            // The old refresh token is spent: save the new one before anything else.
            session.save(path)?;
        }
        client.set_access_token(session.access_token.clone());
        Ok(Ctx {
            flags,
            client,
            session,
            app_id: None,
        })
    }

    fn policy(&self) -> AttestationPolicy {
        match self.flags.attestation {
            AttestationArg::Dev => AttestationPolicy::Dev,
            AttestationArg::Nitro => AttestationPolicy::Nitro,
            AttestationArg::Auto if self.session.attestation.as_deref() == Some("nitro") => {
                AttestationPolicy::Nitro
            }
            AttestationArg::Auto => AttestationPolicy::Auto,
        }
    }

    async fn enclave(&self) -> Result<EnclaveKey> {
        checked_enclave(&self.client, self.policy()).await
    }

    async fn app_id(&mut self) -> Result<String> {
        if let Some(id) = &self.app_id {
            return Ok(id.clone());
        }
        let id = self.client.app().await?.app_id;
        self.app_id = Some(id.clone());
        Ok(id)
    }

    async fn wallet_id(&self) -> Result<String> {
        self.client.me().await?.wallet_id.ok_or_else(|| {
            ClientError::InvalidInput(
                "this user has no wallet yet: run `keystead wallet create`".into(),
            )
        })
    }

    /// An account id; an address is looked up among the wallet's accounts.
    async fn account_id(&self, account: &str) -> Result<String> {
        let Ok(address) = account.parse::<alloy_primitives::Address>() else {
            return Ok(account.to_string());
        };
        let accounts = self.client.accounts().await?;
        accounts
            .iter()
            .find(|a| a.address.parse::<alloy_primitives::Address>().ok() == Some(address))
            .map(|a| a.id.clone())
            .ok_or_else(|| ClientError::InvalidInput(format!("no account has address {account}")))
    }

    async fn command(&mut self, command: WalletCommand, pins: &mut PinSource) -> Result<()> {
        match command {
            WalletCommand::Login { .. } | WalletCommand::Logout => {
                unreachable!("handled before a session is opened")
            }
            WalletCommand::Create => self.create(pins).await,
            WalletCommand::Accounts => {
                let accounts = self.client.accounts().await?;
                print_result(self.flags, &json!({ "accounts": accounts }), || {
                    print_accounts(&accounts)
                })
            }
            WalletCommand::Balance { account } => {
                let id = self.account_id(&account).await?;
                let balance = self.client.balance(&id).await?;
                print_result(self.flags, &balance, || print_balance(&balance))
            }
            WalletCommand::SignMessage {
                account,
                message,
                hex,
            } => self.sign_message(pins, &account, &message, hex).await,
            WalletCommand::SignTypedData { account, file } => {
                self.sign_typed_data(pins, &account, &file).await
            }
            WalletCommand::Send {
                account,
                to,
                value,
                data,
                idempotency_key,
                wait,
            } => {
                self.send(
                    pins,
                    &account,
                    &to,
                    &value,
                    data.as_deref(),
                    idempotency_key.as_deref(),
                    wait,
                )
                .await
            }
            WalletCommand::Export => self.export(pins).await,
            WalletCommand::ChangePin => self.change_pin(pins).await,
            WalletCommand::Recover { recovery_code } => {
                let code = Zeroizing::new(recovery_code);
                self.recover(pins, &code).await
            }
        }
    }

    async fn create(&mut self, pins: &mut PinSource) -> Result<()> {
        let pin = pins.next(PinKind::Current, false)?;
        ops::check_new_pin(&pin)?;
        let app_id = self.app_id().await?;
        let user_id = self.client.me().await?.user.id;
        let enclave = self.enclave().await?;
        let one_time = HpkeKeyPair::generate(&mut rand::rng());
        let client_key = one_time.public_key_base64();
        let op = Operation::CreateWallet {
            app_id,
            user_id,
            client_key: client_key.clone(),
        };
        let envelope = ops::seal_envelope(&enclave, &pin, &op, now_unix())?;
        let created = self.client.create_wallet(&envelope, &client_key).await?;
        let recovery_code = open_recovery_code(&one_time, &created.recovery_kit)?;
        if self.flags.json {
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Out<'a> {
                wallet_id: &'a str,
                accounts: &'a [Account],
                recovery_code: &'a str,
            }
            print_secret_json(&Out {
                wallet_id: &created.wallet_id,
                accounts: &created.accounts,
                recovery_code: &recovery_code,
            })
        } else {
            println!("Wallet {} created.", created.wallet_id);
            print_accounts(&created.accounts);
            println!();
            println!("Recovery code (shown only this once; write it down and keep it offline):");
            print_secret_line(&recovery_code)
        }
    }

    async fn sign_message(
        &mut self,
        pins: &mut PinSource,
        account: &str,
        message: &str,
        hex: bool,
    ) -> Result<()> {
        let bytes = ops::message_bytes(message, hex)?;
        let pin = pins.next(PinKind::Current, false)?;
        let account_id = self.account_id(account).await?;
        let app_id = self.app_id().await?;
        let enclave = self.enclave().await?;
        let op = Operation::SignMessage {
            app_id,
            account_id: account_id.clone(),
            message: bytes.clone(),
        };
        let envelope = ops::seal_envelope(&enclave, &pin, &op, now_unix())?;
        let (text, encoding) = if hex {
            (format!("0x{}", hex::encode(&bytes)), MessageEncoding::Hex)
        } else {
            (message.to_string(), MessageEncoding::Utf8)
        };
        let signed = self
            .client
            .sign_message(&account_id, &text, encoding, &envelope)
            .await?;
        print_result(self.flags, &json!({"signature": signed.signature}), || {
            println!("{}", signed.signature)
        })
    }

    async fn sign_typed_data(
        &mut self,
        pins: &mut PinSource,
        account: &str,
        file: &Path,
    ) -> Result<()> {
        let typed_data = ops::read_typed_data(file)?;
        let hash = ops::typed_data_hash(&typed_data)?;
        let pin = pins.next(PinKind::Current, false)?;
        let account_id = self.account_id(account).await?;
        let app_id = self.app_id().await?;
        let enclave = self.enclave().await?;
        let op = Operation::SignTypedData {
            app_id,
            account_id: account_id.clone(),
            hash,
        };
        let envelope = ops::seal_envelope(&enclave, &pin, &op, now_unix())?;
        let signed = self
            .client
            .sign_typed_data(&account_id, &typed_data, &envelope)
            .await?;
        print_result(self.flags, &json!({"signature": signed.signature}), || {
            println!("{}", signed.signature)
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        pins: &mut PinSource,
        account: &str,
        to: &str,
        value: &str,
        data: Option<&str>,
        idempotency_key: Option<&str>,
        wait: bool,
    ) -> Result<()> {
        let request = TxRequest::parse(to, value, data)?;
        let pin = pins.next(PinKind::Current, false)?;
        let account_id = self.account_id(account).await?;
        let app_id = self.app_id().await?;

        // A retry with the same idempotency key resends the same intent: a new prepare
        // would pick new fees, and the server could take that for a different request.
        let cache = idempotency_key.and_then(|key| self.intent_cache_path(key));
        let cached = cache
            .as_deref()
            .and_then(|path| IntentCache::load(path, &account_id, &request));
        let (intent_json, server_digest) = match cached {
            Some(intent) => (intent, None),
            None => {
                let prepared = self
                    .client
                    .tx_prepare(
                        &account_id,
                        &request.to_checksum(),
                        &request.value_decimal(),
                        request.data_hex().as_deref(),
                    )
                    .await?;
                (prepared.intent, prepared.digest)
            }
        };
        let intent = ops::parse_intent(&intent_json)?;
        request.check_intent(&intent)?;
        let enclave = self.enclave().await?;
        let op = Operation::SignTransaction {
            app_id,
            account_id: account_id.clone(),
            intent,
        };
        if let Some(digest) = server_digest
            && digest.trim_start_matches("0x") != op.digest_hex()
        {
            eprintln!(
                "warning: the server's digest for this transaction differs from the one \
                 computed here; sealing the locally computed one"
            );
        }
        if let Some(path) = &cache {
            IntentCache::store(path, &account_id, &request, &intent_json);
        }
        let envelope = ops::seal_envelope(&enclave, &pin, &op, now_unix())?;
        let mut sent = self
            .client
            .tx_send(&intent_json, &envelope, idempotency_key)
            .await?;
        if wait {
            sent = self.wait_for(sent).await?;
        }
        let out = json!({"id": sent.id, "hash": sent.hash, "status": sent.status});
        print_result(self.flags, &out, || {
            println!("id:     {}", sent.id);
            println!("hash:   {}", sent.hash.as_deref().unwrap_or("-"));
            println!("status: {}", sent.status);
        })
    }

    async fn wait_for(&self, mut tx: TxStatus) -> Result<TxStatus> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while tx.status == "pending" && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            tx = self.client.tx_get(&tx.id).await?;
        }
        Ok(tx)
    }

    /// `<session dir>/tx-intents/<sha256(server, app key, key)>.json`.
    fn intent_cache_path(&self, key: &str) -> Option<PathBuf> {
        let path = self
            .flags
            .session
            .clone()
            .or_else(|| session::default_path().ok())?;
        let dir = path.parent()?.join("tx-intents");
        let mut h = Sha256::new();
        for part in [
            self.session.server.as_bytes(),
            self.session.app_key.as_bytes(),
            key.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Some(dir.join(format!("{}.json", hex::encode(h.finalize()))))
    }

    async fn export(&mut self, pins: &mut PinSource) -> Result<()> {
        let pin = pins.next(PinKind::Current, false)?;
        let app_id = self.app_id().await?;
        let wallet_id = self.wallet_id().await?;
        let enclave = self.enclave().await?;
        let one_time = HpkeKeyPair::generate(&mut rand::rng());
        let client_key = one_time.public_key_base64();
        let op = Operation::Export {
            app_id,
            wallet_id,
            client_key: client_key.clone(),
        };
        let envelope = ops::seal_envelope(&enclave, &pin, &op, now_unix())?;
        let exported = self.client.export(&envelope, &client_key).await?;
        let mnemonic = open_mnemonic(&one_time, &exported.mnemonic)?;
        if self.flags.json {
            print_secret_json(&json_mnemonic(&mnemonic))
        } else {
            eprintln!("Anyone who sees these words controls the wallet's funds.");
            print_secret_line(&mnemonic)
        }
    }

    async fn change_pin(&mut self, pins: &mut PinSource) -> Result<()> {
        let pin = pins.next(PinKind::Current, false)?;
        let new_pin = pins.next(PinKind::New, false)?;
        ops::check_new_pin(&new_pin)?;
        let app_id = self.app_id().await?;
        let wallet_id = self.wallet_id().await?;
        let enclave = self.enclave().await?;
        let now = now_unix();
        let current = ops::seal_envelope(
            &enclave,
            &pin,
            &Operation::ChangePin {
                app_id: app_id.clone(),
                wallet_id: wallet_id.clone(),
            },
            now,
        )?;
        let new = ops::seal_envelope(
            &enclave,
            &new_pin,
            &Operation::NewPin { app_id, wallet_id },
            now,
        )?;
        self.client.change_pin(&current, &new).await?;
        print_result(self.flags, &json!({"status": "ok"}), || {
            println!("PIN changed.")
        })
    }

    async fn recover(&mut self, pins: &mut PinSource, code: &Zeroizing<String>) -> Result<()> {
        if code.trim().is_empty() {
            return Err(ClientError::InvalidInput(
                "the recovery code is empty".into(),
            ));
        }
        let new_pin = pins.next(PinKind::New, true)?;
        ops::check_new_pin(&new_pin)?;
        let app_id = self.app_id().await?;
        let wallet_id = self.wallet_id().await?;
        let enclave = self.enclave().await?;
        let now = now_unix();
        let recovery = ops::seal_envelope(
            &enclave,
            code,
            &Operation::Recover {
                app_id: app_id.clone(),
                wallet_id: wallet_id.clone(),
            },
            now,
        )?;
        let new = ops::seal_envelope(
            &enclave,
            &new_pin,
            &Operation::NewPin { app_id, wallet_id },
            now,
        )?;
        self.client.recover(&recovery, &new).await?;
        print_result(self.flags, &json!({"status": "ok"}), || {
            println!("Wallet recovered; the new PIN is set.")
        })
    }
}

#[derive(Serialize)]
struct MnemonicOut<'a> {
    mnemonic: &'a str,
}

fn json_mnemonic(mnemonic: &str) -> MnemonicOut<'_> {
    MnemonicOut { mnemonic }
}

fn print_accounts(accounts: &[Account]) {
    for a in accounts {
        println!("{}\t{}\t{}\t{}", a.id, a.network, a.address, a.path);
    }
}

fn print_balance(balance: &Value) {
    let native = &balance["native"];
    println!(
        "{} on {}: {} {}",
        balance["address"].as_str().unwrap_or("?"),
        balance["network"].as_str().unwrap_or("?"),
        format_units(
            native["amount"].as_str().unwrap_or("0"),
            native["decimals"].as_u64().unwrap_or(0)
        ),
        native["symbol"].as_str().unwrap_or("")
    );
    for token in balance["tokens"].as_array().into_iter().flatten() {
        println!(
            "  {} {} ({})",
            format_units(
                token["amount"].as_str().unwrap_or("0"),
                token["decimals"].as_u64().unwrap_or(0)
            ),
            token["symbol"].as_str().unwrap_or(""),
            token["contract"].as_str().unwrap_or("?")
        );
    }
}

/// A decimal string of base units shown with `decimals` decimals (`"1500000000000000000"`,
/// 18 → `"1.5"`). Anything that is not digits is shown as given.
fn format_units(amount: &str, decimals: u64) -> String {
    let decimals = decimals.min(77) as usize;
    if decimals == 0 || amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
        return amount.to_string();
    }
    let padded = format!("{amount:0>width$}", width = decimals + 1);
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// The intent sent with an idempotency key, kept (0600) so that a retry resends it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntentCache {
    account_id: String,
    to: String,
    value: String,
    data: String,
    intent: Value,
    created_at: u64,
}

/// How long a kept intent is reused: past this a retry prepares afresh.
const INTENT_CACHE_SECS: u64 = 24 * 3600;

impl IntentCache {
    fn load(path: &Path, account_id: &str, request: &TxRequest) -> Option<Value> {
        let text = std::fs::read_to_string(path).ok()?;
        let cache: IntentCache = serde_json::from_str(&text).ok()?;
        let same = cache.account_id == account_id
            && cache.to == request.to_checksum()
            && cache.value == request.value_decimal()
            && cache.data == request.data_hex().unwrap_or_default()
            && now_unix().saturating_sub(cache.created_at) < INTENT_CACHE_SECS;
        same.then_some(cache.intent)
    }

    /// Best effort: without the cache a retry still works, it just prepares again.
    fn store(path: &Path, account_id: &str, request: &TxRequest, intent: &Value) {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let Some(dir) = path.parent() else { return };
        if std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .is_err()
        {
            return;
        }
        // Forget old intents.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > INTENT_CACHE_SECS);
                if old {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let cache = IntentCache {
            account_id: account_id.to_string(),
            to: request.to_checksum(),
            value: request.value_decimal(),
            data: request.data_hex().unwrap_or_default(),
            intent: intent.clone(),
            created_at: now_unix(),
        };
        let Ok(text) = serde_json::to_vec(&cache) else {
            return;
        };
        let _ = std::fs::remove_file(path);
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            let _ = file.write_all(&text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        command: TopCommand,
    }

    #[derive(Subcommand)]
    enum TopCommand {
        Wallet(WalletArgs),
    }

    fn parse(args: &[&str]) -> WalletArgs {
        let top = Top::try_parse_from(std::iter::once("keystead").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let TopCommand::Wallet(w) = top.command;
        w
    }

    #[test]
    fn the_contract_commands_parse() {
        let w = parse(&[
            "wallet",
            "login",
            "--server",
            "http://x",
            "--app-key",
            "k",
            "--provider",
            "p",
            "--id-token",
            "t",
        ]);
        assert!(matches!(w.command, WalletCommand::Login { .. }));
        let w = parse(&[
            "wallet",
            "create",
            "--pin-stdin",
            "--json",
            "--session",
            "/tmp/s",
        ]);
        assert!(w.flags.json && w.flags.pin_stdin);
        assert_eq!(w.flags.session.as_deref(), Some(Path::new("/tmp/s")));
        let w = parse(&["wallet", "--json", "accounts"]);
        assert!(w.flags.json);
        parse(&["wallet", "balance", "--account", "acc"]);
        parse(&[
            "wallet",
            "sign-message",
            "--account",
            "a",
            "--message",
            "hi",
        ]);
        parse(&[
            "wallet",
            "sign-typed-data",
            "--account",
            "a",
            "--file",
            "t.json",
        ]);
        let w = parse(&[
            "wallet",
            "send",
            "--account",
            "a",
            "--to",
            "0x00",
            "--value",
            "1",
            "--data",
            "0x",
            "--idempotency-key",
            "k1",
        ]);
        match w.command {
            WalletCommand::Send {
                idempotency_key, ..
            } => assert_eq!(idempotency_key.as_deref(), Some("k1")),
            _ => panic!("not send"),
        }
        parse(&["wallet", "export"]);
        parse(&["wallet", "change-pin"]);
        parse(&["wallet", "recover", "--recovery-code", "CODE"]);
    }

    #[test]
    fn units() {
        assert_eq!(format_units("1500000000000000000", 18), "1.5");
        assert_eq!(format_units("0", 18), "0");
        assert_eq!(format_units("1", 18), "0.000000000000000001");
        assert_eq!(format_units("2000", 3), "2");
        assert_eq!(format_units("12", 0), "12");
        assert_eq!(format_units("x", 18), "x");
    }

    #[test]
    fn intent_cache_reuses_only_the_same_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tx-intents/k.json");
        let request =
            TxRequest::parse("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "5", None).unwrap();
        let intent = json!({"chainId": 1, "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"});
        IntentCache::store(&path, "acc", &request, &intent);
        assert_eq!(IntentCache::load(&path, "acc", &request), Some(intent));
        assert_eq!(IntentCache::load(&path, "other", &request), None);
        let other =
            TxRequest::parse("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "6", None).unwrap();
        assert_eq!(IntentCache::load(&path, "acc", &other), None);
    }
}
