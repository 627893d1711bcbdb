//! The load generator's HTTP client: HTTP/1.1 on kept-alive connections of its own, one
//! request at a time on each, written and read by the task that waits for the answer. The
//! generator shares the machine's two cores with the server it measures, so every
//! microsecond it spends is one the server lacks: reqwest (a URL parsed per request, its
//! pool, a timer) cost about twice what hyper's client did, and hyper's client (a task per
//! connection that the caller's task hands each request to and wakes) about twice this.
//! The server under test is hyper; this side needs only what it answers with: a status
//! line, headers and a `content-length` body.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A request that takes longer has failed, as far as the bench is concerned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// More response headers than this is not an answer from Keystead.
const MAX_HEADERS: usize = 32;
/// Read at least this much at a time.
const READ_CHUNK: usize = 8 * 1024;

pub struct Http1 {
    addr: SocketAddr,
    authority: String,
    idle: Mutex<Vec<Connection>>,
}

/// A status and the whole body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

struct Connection {
    stream: TcpStream,
    /// What was read past the last answer's end (nothing, from a server that waits for
    /// each request): kept so that bytes are never lost between answers.
    buffer: BytesMut,
}

/// How reading an answer failed: before any byte of it came (the server had closed a
/// kept-alive connection, so it never saw the request), or later.
enum ReadError {
    ClosedBeforeAnswer,
    Other(String),
}

impl Http1 {
    /// For `base` of the form `http://127.0.0.1:PORT`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("{base}: only http:// is served locally"))?;
        Ok(Self {
            addr: authority.parse()?,
            authority: authority.to_string(),
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
        let request = self.render(&method, path, app_key, token, body.as_deref());
        self.send_rendered(&request).await
    }

    /// Sends a request made by [`Http1::render`] (before a timed window, so that the
    /// window measures the server rather than this side's formatting).
    pub async fn send_rendered(&self, request: &[u8]) -> Result<Reply, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send(request))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
    }

    /// Sends a rendered request for `path`: its body when the status is `want`, else
    /// `<path> HTTP <status> <error code>` (the path cut after its third segment, so that
    /// ids in it do not make every error distinct).
    pub async fn expect(&self, request: &[u8], path: &str, want: u16) -> Result<Bytes, String> {
        let what = || path.split('/').take(4).collect::<Vec<_>>().join("/");
        let reply = self
            .send_rendered(request)
            .await
            .map_err(|e| format!("{}: {e}", what()))?;
        if reply.status != want {
            let code = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(String::from))
                .unwrap_or_default();
            return Err(format!("{}: HTTP {} {code}", what(), reply.status));
        }
        Ok(reply.body)
    }

    /// The bytes of a request with an optional app key, bearer token and JSON body.
    pub fn render(
        &self,
        method: &Method,
        path: &str,
        app_key: Option<&str>,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Vec<u8> {
        use std::io::Write;
        let body = body.unwrap_or_default();
        let mut out = Vec::with_capacity(256 + body.len());
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.authority,
            body.len()
        );
        if let Some(app_key) = app_key {
            let _ = write!(out, "x-app-key: {app_key}\r\n");
        }
        if let Some(token) = token {
            let _ = write!(out, "authorization: Bearer {token}\r\n");
        }
        if !body.is_empty() {
            out.extend_from_slice(b"content-type: application/json\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    async fn send(&self, request: &[u8]) -> Result<Reply, String> {
        let (mut connection, reused) = match self.take_idle() {
            Some(connection) => (connection, true),
            None => (self.connect().await?, false),
        };
        let answer = match connection.exchange(request).await {
            // A kept-alive connection the server had already closed: sent again on a new
            // one. (A server that read the request and closed without an answer would
            // land here too; the sends' nonce check would catch a request run twice.)
            Err(ReadError::ClosedBeforeAnswer) if reused => {
                connection = self.connect().await?;
                connection.exchange(request).await
            }
            other => other,
        };
        let (reply, keep_alive) = answer.map_err(|e| match e {
            ReadError::ClosedBeforeAnswer => "the server closed the connection".to_string(),
            ReadError::Other(e) => e,
        })?;
        if keep_alive {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(connection);
        }
        Ok(reply)
    }

    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
        })
    }
}

impl Connection {
    /// Writes `request` and reads its answer; with it, whether the connection may be used
    /// again.
    async fn exchange(&mut self, request: &[u8]) -> Result<(Reply, bool), ReadError> {
        if let Err(e) = self.stream.write_all(request).await {
            return Err(match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    ReadError::ClosedBeforeAnswer
                }
                _ => ReadError::Other(e.to_string()),
            });
        }
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> Result<(Reply, bool), ReadError> {
        let mut answered = !self.buffer.is_empty();
        let (status, head_len, body_len, keep_alive) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buffer) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or_default();
                    let (body_len, keep_alive) = framing(response.headers)?;
                    break (status, head_len, body_len, keep_alive);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(ReadError::Other(format!("unreadable answer: {e}"))),
            }
            if self.fill().await? == 0 {
                return Err(if answered {
                    ReadError::Other("the connection closed inside an answer".into())
                } else {
                    ReadError::ClosedBeforeAnswer
                });
            }
            answered = true;
        };
        while self.buffer.len() < head_len + body_len {
            if self.fill().await? == 0 {
                return Err(ReadError::Other(
                    "the connection closed inside an answer".into(),
                ));
            }
        }
        // Copied out, so that the buffer is not shared and its space is reused.
        let body = Bytes::copy_from_slice(&self.buffer[head_len..head_len + body_len]);
        self.buffer.advance(head_len + body_len);
        Ok((Reply { status, body }, keep_alive))
    }

    /// Reads what the socket has; 0 at its end.
    async fn fill(&mut self) -> Result<usize, ReadError> {
        self.buffer.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && self.buffer.is_empty() => {
                Err(ReadError::ClosedBeforeAnswer)
            }
            Err(e) => Err(ReadError::Other(e.to_string())),
        }
    }
}

/// The body's length and whether the connection stays open, from the answer's headers.
fn framing(headers: &[httparse::Header<'_>]) -> Result<(usize, bool), ReadError> {
    let mut body_len = None;
    let mut keep_alive = true;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| ReadError::Other("a bad content-length".into()))?;
            body_len = Some(len);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Other(
                "a chunked answer (the bench reads content-length bodies)".into(),
            ));
        } else if header.name.eq_ignore_ascii_case("connection")
            && header.value.eq_ignore_ascii_case(b"close")
        {
            keep_alive = false;
        }
    }
    let body_len =
        body_len.ok_or_else(|| ReadError::Other("an answer without a content-length".into()))?;
    Ok((body_len, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(head: &str) -> Result<(usize, bool), String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        response.parse(head.as_bytes()).expect("a head");
        framing(response.headers).map_err(|e| match e {
            ReadError::Other(e) => e,
            ReadError::ClosedBeforeAnswer => "closed".into(),
        })
    }

    /// A server on a real socket that answers each request with the next of `answers`,
    /// written a few bytes at a time.
    async fn answering(answers: Vec<&'static str>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut buffer = vec![0u8; 4096];
            for answer in answers {
                let _ = socket.read(&mut buffer).await.expect("a request");
                for piece in answer.as_bytes().chunks(7) {
                    socket.write_all(piece).await.expect("write");
                    socket.flush().await.expect("flush");
                    tokio::task::yield_now().await;
                }
            }
        });
        base
    }

    #[tokio::test]
    async fn reads_answers_split_anywhere_on_one_connection() {
        let base = answering(vec![
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{\"a\":\"ok\"}",
            "HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        ])
        .await;
        let http = Http1::new(&base).expect("client");
        let first = http
            .call(
                Method::POST,
                "/x",
                Some("k"),
                Some("t"),
                Some(b"{}".to_vec()),
            )
            .await
            .expect("first");
        assert_eq!(
            (first.status, &first.body[..]),
            (200, &b"{\"a\":\"ok\"}"[..])
        );
        let second = http
            .call(Method::GET, "/y", None, None, None)
            .await
            .expect("second");
        assert_eq!((second.status, second.body.len()), (409, 0));
        let third = http
            .call(Method::GET, "/z", None, None, None)
            .await
            .expect("third");
        assert_eq!((third.status, &third.body[..]), (200, &b"{}"[..]));
        // One connection served all three, and the last one was closed, not kept.
        assert!(http.take_idle().is_none());
    }

    #[test]
    fn renders_a_request() {
        let http = Http1::new("http://127.0.0.1:9").expect("client");
        let request = http.render(
            &Method::POST,
            "/v1/sign/message",
            Some("key"),
            Some("tok"),
            Some(b"{}"),
        );
        assert_eq!(
            String::from_utf8(request).expect("text"),
            "POST /v1/sign/message HTTP/1.1\r\nhost: 127.0.0.1:9\r\ncontent-length: 2\r\n\
             x-app-key: key\r\nauthorization: Bearer tok\r\ncontent-type: application/json\r\n\r\n{}"
        );
    }

    #[test]
    fn reads_length_and_connection() {
        assert_eq!(
            parse("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            Ok((12, true))
        );
        assert_eq!(
            parse("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            Ok((0, false))
        );
        assert!(parse("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse("HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
