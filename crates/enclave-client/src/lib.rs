//! The server's side of the enclave protocol: a small pool of connections, a deadline on
//! every call, and reconnection, so a dead or hung enclave costs a caller at most the
//! deadline and work resumes as soon as a new enclave process listens again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// A connection to the enclave, read through a buffer: a reply's prefix and body in one
/// read, and no read that finds nothing after it (a read that fills less than the buffer
/// tells tokio the socket is drained).
type Connection = BufReader<UnixStream>;
/// Larger than any reply but an export's.
const READ_BUFFER: usize = 8 * 1024;

use keystead_enclave_proto::{
    FrameError, LEN_PREFIX, Reply, Request, RequestFrame, decode_response, encode_request,
    frame_len,
};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// The most a whole call may take, connecting included.
    pub request_timeout: Duration,
    /// Idle connections kept for reuse. Above the concurrency the server reaches, or
    /// each call past it pays a connect and a close.
    pub max_idle: usize,
    /// Calls sent to the enclave at once; the rest wait their turn, first come first
    /// served. Kept below the enclave's connection limit (256), so a burst of callers
    /// queues here instead of being refused there.
    pub max_in_flight: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_idle: 128,
            max_in_flight: 128,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer in time, or no enclave listening: the caller's `enclave_unavailable`.
    #[error("enclave unavailable: {0}")]
    Unavailable(String),
    /// The enclave answered something this build cannot read.
    #[error("enclave protocol error: {0}")]
    Protocol(String),
}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

pub struct EnclaveClient {
    socket: PathBuf,
    config: ClientConfig,
    idle: Mutex<Vec<Connection>>,
    next_id: AtomicU64,
    /// Turns to call the enclave, handed out in arrival order (tokio's semaphore is fair).
    turns: tokio::sync::Semaphore,
}

enum AttemptError {
    /// Writing to a reused connection failed: the enclave never saw the request.
    Stale,
    Failed(ClientError),
}

impl EnclaveClient {
    pub fn new(socket: impl AsRef<Path>, config: ClientConfig) -> Self {
        Self {
            socket: socket.as_ref().to_path_buf(),
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            turns: tokio::sync::Semaphore::new(config.max_in_flight.max(1)),
            config,
        }
    }

    /// Sends one request and waits for its reply, within `request_timeout`.
    pub async fn call(&self, request: Request) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(&RequestFrame { id, request })?;
        let exchange = async {
            // Waiting for a turn counts against the timeout: an overloaded enclave answers
            // `enclave_unavailable` rather than queueing without end.
            let _turn = self
                .turns
                .acquire()
                .await
                .map_err(|_| ClientError::Unavailable("client closed".into()))?;
            self.exchange(id, &frame).await
        };
        tokio::time::timeout(self.config.request_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Unavailable(format!(
                    "no reply within {:?}",
                    self.config.request_timeout
                )))
            })
    }

    async fn exchange(&self, id: u64, frame: &[u8]) -> Result<Reply, ClientError> {
        loop {
            let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let (stream, fresh) = match reused {
                Some(stream) => (stream, false),
                None => (self.connect().await?, true),
            };
            match self.attempt(stream, id, frame, fresh).await {
                Err(AttemptError::Stale) => continue,
                Err(AttemptError::Failed(e)) => return Err(e),
                Ok(reply) => return Ok(reply),
            }
        }
    }

    async fn connect(&self) -> Result<Connection, ClientError> {
        match tokio::time::timeout(
            self.config.connect_timeout,
            UnixStream::connect(&self.socket),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(BufReader::with_capacity(READ_BUFFER, stream)),
            Ok(Err(e)) => Err(ClientError::Unavailable(format!("cannot connect: {e}"))),
            Err(_) => Err(ClientError::Unavailable("connect timed out".into())),
        }
    }

    async fn attempt(
        &self,
        mut stream: Connection,
        id: u64,
        frame: &[u8],
        fresh: bool,
    ) -> Result<Reply, AttemptError> {
        if let Err(e) = stream.write_all(frame).await {
            // A peer that has closed makes a Unix-socket write fail at once, so on a reused
            // connection this means the enclave restarted and never saw the request.
            if fresh {
                let e = ClientError::Unavailable(format!("write failed: {e}"));
                return Err(AttemptError::Failed(e));
            }
            return Err(AttemptError::Stale);
        }
        let reply = read_reply(&mut stream, id)
            .await
            .map_err(AttemptError::Failed)?;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.config.max_idle {
            idle.push(stream);
        }
        Ok(reply)
    }
}

async fn read_reply(stream: &mut Connection, id: u64) -> Result<Reply, ClientError> {
    let mut prefix = [0u8; LEN_PREFIX];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|e| ClientError::Unavailable(format!("connection lost: {e}")))?;
    let len = frame_len(prefix)?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| ClientError::Unavailable(format!("connection lost: {e}")))?;
    let response = decode_response(&body)?;
    if response.id != id {
        return Err(ClientError::Protocol(format!(
            "reply for request {} on request {id}'s connection",
            response.id
        )));
    }
    Ok(response.reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystead_enclave_proto::{Response, ResponseFrame, decode_request, encode_response};
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use tokio::net::UnixListener;

    /// A peer that answers every request after `hold`, recording the order requests
    /// arrive in and the most it held at once. It stands in for the enclave to observe
    /// the client's own admission, which the real enclave does not report.
    struct Peer {
        order: Arc<Mutex<Vec<u64>>>,
        most: Arc<AtomicUsize>,
    }

    fn peer(listener: UnixListener, hold: Duration) -> Peer {
        let order = Arc::new(Mutex::new(Vec::new()));
        let most = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let (o, m) = (order.clone(), most.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (order, most, now) = (o.clone(), m.clone(), now.clone());
                tokio::spawn(async move {
                    let mut prefix = [0u8; LEN_PREFIX];
                    while stream.read_exact(&mut prefix).await.is_ok() {
                        let mut body = vec![0u8; frame_len(prefix).unwrap()];
                        stream.read_exact(&mut body).await.unwrap();
                        let id = decode_request(&body).unwrap().id;
                        order.lock().unwrap().push(id);
                        let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(held, Ordering::SeqCst);
                        tokio::time::sleep(hold).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let reply = ResponseFrame {
                            id,
                            reply: Reply::ok(Response::Resealed),
                        };
                        stream
                            .write_all(&encode_response(&reply).unwrap())
                            .await
                            .unwrap();
                    }
                });
            }
        });
        Peer { order, most }
    }

    /// `calls` calls started 3 ms apart on a client admitting `max_in_flight` at once.
    async fn run(max_in_flight: usize, calls: usize) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("enclave.sock");
        let peer = peer(
            UnixListener::bind(&socket).unwrap(),
            Duration::from_millis(20),
        );
        let client = Arc::new(EnclaveClient::new(
            &socket,
            ClientConfig {
                max_in_flight,
                ..Default::default()
            },
        ));
        let mut tasks = Vec::new();
        for _ in 0..calls {
            let client = client.clone();
            tasks.push(tokio::spawn(
                async move { client.call(Request::Ping).await },
            ));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().result, Ok(Response::Resealed));
        }
        peer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn calls_past_max_in_flight_wait_their_turn_in_arrival_order() {
        let one = run(1, 10).await;
        assert_eq!(one.most.load(Ordering::SeqCst), 1);
        let order = one.order.lock().unwrap().clone();
        assert_eq!(
            order,
            (1..=10).collect::<Vec<u64>>(),
            "first come, first served"
        );

        // 12 calls of 20 ms arriving every 3 ms: without the limit ~7 would overlap.
        let three = run(3, 12).await;
        assert_eq!(three.most.load(Ordering::SeqCst), 3);
    }
}
