//! The load generator's HTTP client: HTTP/1.1 on kept-alive connections of its own, one
//! request at a time on each, with nothing between a worker and hyper. The generator
//! shares the machine's two cores with the server it measures, so every microsecond it
//! spends is one the server lacks; reqwest (a URL parsed per request, its pool, a timer)
//! cost about twice this per request.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request that takes longer has failed, as far as the bench is concerned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Http1 {
    addr: SocketAddr,
    host: HeaderValue,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// A status and the whole body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Http1 {
    /// For `base` of the form `http://127.0.0.1:PORT`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("{base}: only http:// is served locally"))?;
        Ok(Self {
            addr: authority.parse()?,
            host: HeaderValue::from_str(authority)?,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// One request with an optional app key, bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        app_key: Option<&str>,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone());
        if let Some(app_key) = app_key {
            request = request.header("x-app-key", app_key);
        }
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(REQUEST_TIMEOUT, self.send(request))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, String> {
        let (mut sender, reused) = match self.take_idle() {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // The server closed a kept-alive connection before the request went out: it
            // never saw it, so it is sent again on a new connection.
            Err(mut e) if reused && e.message().is_some() => {
                let request = e.take_message().expect("checked");
                sender = self.connect().await?;
                sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.into_error().to_string()),
        };
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        Ok(Reply { status, body })
    }

    /// A kept-alive connection ready for a request, if one is idle.
    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the sender is dropped.
            let _ = connection.await;
        });
        Ok(sender)
    }
}
