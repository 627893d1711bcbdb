//! Serving the protocol over a byte stream. The Unix-socket listener is the local
//! transport; a vsock listener (AWS Nitro) hands its streams to the same
//! [`serve_connection`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use keystead_enclave_proto::{
    EnclaveError, FrameError, LEN_PREFIX, Reply, ResponseFrame, decode_request, encode_response,
    frame_len,
};

use crate::service::EnclaveService;

/// A peer that starts a frame must finish it within this time.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 256;
/// Larger than a signing request with its wallet record.
const READ_BUFFER: usize = 16 * 1024;

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    id: u64,
    reply: Reply,
) -> std::io::Result<()> {
    let bytes = encode_response(&ResponseFrame { id, reply })
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    stream.write_all(&bytes).await
}

fn protocol_error(e: FrameError) -> Reply {
    Reply::err(EnclaveError::Protocol(e.to_string()))
}

/// Answers frames on one connection until the peer closes it. A malformed or
/// unknown-version frame gets an error reply and the connection goes on; an oversized
/// length prefix gets an error reply and the connection is closed, since what follows
/// cannot be framed.
pub async fn serve_connection<S>(service: Arc<EnclaveService>, stream: S) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // A frame's prefix and body in one read, and no read that finds nothing after it: a
    // read that fills less than the buffer tells tokio the socket is drained.
    let mut stream = BufReader::with_capacity(READ_BUFFER, stream);
    loop {
        let mut prefix = [0u8; LEN_PREFIX];
        match stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = match frame_len(prefix) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(error = %e, "refused a frame; closing the connection");
                write_reply(&mut stream, 0, protocol_error(e)).await?;
                return Ok(());
            }
        };
        let mut body = vec![0u8; len];
        tokio::time::timeout(BODY_TIMEOUT, stream.read_exact(&mut body))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "frame body timed out")
            })??;
        match decode_request(&body) {
            Ok(frame) => {
                let reply = service.handle(frame.request).await;
                write_reply(&mut stream, frame.id, reply).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "refused a malformed frame");
                write_reply(&mut stream, 0, protocol_error(e)).await?;
            }
        }
    }
}

/// Binds `path` (replacing a stale socket), readable and writable by this user only.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts connections until the process ends, each served on its own task.
pub async fn serve_unix(
    service: Arc<EnclaveService>,
    listener: UnixListener,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = listener.accept().await?;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached; refusing a connection");
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(service, stream).await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
}
