//! Test support: starts the real enclave binary, plays the client (widget) that seals
//! PINs, and reads another process's memory for secrets.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rand::SeedableRng;
use rand::rngs::StdRng;
use zeroize::Zeroizing;

use keystead_enclave_proto::{Attestation, Request, Response};
use keystead_envelope::{HpkeKeyPair, Operation, PinPayload, Sealed};

pub mod anvil;
pub mod memory;
pub mod oidc;
pub mod oidc_provider;
pub mod test_token;

/// A binary of this workspace, built beside the running test (cargo builds every
/// workspace binary before running a workspace's tests).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through cargo for the whole workspace",
        path.display()
    );
    path
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A running `keystead-enclave` with its own keyrings, killed on drop.
pub struct EnclaveProcess {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub with_dr: bool,
    /// Further command-line arguments, given again on a restart.
    pub extra_args: Vec<String>,
}

impl EnclaveProcess {
    /// Starts an enclave whose files live in `dir`, with a disaster-recovery keyring.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, true)
    }

    pub fn start_with(dir: &Path, with_dr: bool) -> Self {
        Self::start_with_args(dir, with_dr, &[])
    }

    pub fn start_with_args(dir: &Path, with_dr: bool, extra_args: &[&str]) -> Self {
        let mut process = Self {
            child: None,
            dir: dir.to_path_buf(),
            socket: dir.join("enclave.sock"),
            with_dr,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut command = Command::new(workspace_bin("keystead-enclave"));
        command
            .arg("--socket")
            .arg(&self.socket)
            .arg("--kms-keyring")
            .arg(self.dir.join("kms-primary.json"))
            .env("KEYSTEAD_LOG", "error")
            .stdin(Stdio::null());
        if self.with_dr {
            command
                .arg("--dr-kms-keyring")
                .arg(self.dir.join("kms-dr.json"));
        }
        command.args(&self.extra_args);
        let child = command.spawn().expect("spawn keystead-enclave");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "enclave did not start listening");
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("enclave exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts a new one over the same files.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Stops the process (SIGSTOP) and waits until every thread is stopped: a hung enclave.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.all_threads_stopped() {
            assert!(Instant::now() < deadline, "enclave did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn all_threads_stopped(&self) -> bool {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return false;
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('T'))
                })
                .unwrap_or(false)
        })
    }
}

impl Drop for EnclaveProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The client's part (what the widget does): checks the attestation, then seals PINs to
/// the attested key for exactly the operation the user approved.
pub struct TestClient {
    pub enclave_key: [u8; 32],
    pub app_id: String,
    rng: StdRng,
}

impl TestClient {
    /// Verifies a `dev` attestation document and takes its public key.
    pub fn attested(attestation: &Attestation, app_id: &str) -> Self {
        assert_eq!(attestation.format, "dev");
        let verifier = keystead_attestation::DevVerifier::new();
        use keystead_attestation::AttestationVerifier;
        let doc = verifier
            .verify(&attestation.document, now_unix() * 1000)
            .expect("dev attestation verifies");
        assert_eq!(
            doc.public_key.as_deref(),
            Some(&attestation.public_key[..]),
            "attested key"
        );
        Self {
            enclave_key: attestation.public_key,
            app_id: app_id.to_string(),
            rng: StdRng::from_os_rng(),
        }
    }

    pub fn envelope(&mut self, pin: &str, op: &Operation) -> Sealed {
        self.envelope_expiring(pin, op, now_unix() + 300)
    }

    pub fn envelope_expiring(&mut self, pin: &str, op: &Operation, expires_at: u64) -> Sealed {
        let payload = PinPayload::for_operation(
            Zeroizing::new(pin.to_string()),
            op,
            expires_at,
            &mut self.rng,
        );
        keystead_envelope::seal_pin(&self.enclave_key, &payload, &mut self.rng).expect("seal pin")
    }

    /// A one-time key for values the enclave seals back to the client.
    pub fn one_time_key(&mut self) -> (HpkeKeyPair, String) {
        let kp = HpkeKeyPair::generate(&mut self.rng);
        let b64 = base64::engine::general_purpose::STANDARD.encode(kp.public_key());
        (kp, b64)
    }
}

/// Asks for the boot attestation over a fresh client.
pub async fn fetch_attestation(client: &keystead_enclave_client::EnclaveClient) -> Attestation {
    match client
        .call(Request::Attestation { nonce: None })
        .await
        .expect("enclave answers")
        .result
    {
        Ok(Response::Attestation(a)) => a,
        other => panic!("unexpected attestation reply: {other:?}"),
    }
}
