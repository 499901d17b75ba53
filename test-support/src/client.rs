//! Real clients over loopback sockets (hyper's HTTP/1.1 and HTTP/2 client
//! connections, and a raw TCP client that writes exact bytes), and a real
//! hyper server for a tower service.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{combinators::BoxBody, BodyExt};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response as the client saw it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends one request on a fresh connection and reads the whole response.
pub async fn send<B>(addr: SocketAddr, mut request: Request<B>) -> Answer
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
        request.headers_mut().entry(header::HOST).or_insert(host);
    }
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender.send_request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    // A server may close the connection mid-body after refusing a request;
    // what was received is what counts.
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Serves `service` with hyper (HTTP/1 and HTTP/2) on a free loopback port
/// until the test ends.
pub async fn serve<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with(service, |_| {}).await
}

/// [`serve`], with the server's settings (timeouts, limits) changed by
/// `configure` first.
pub async fn serve_with<S, B>(
    service: S,
    configure: impl FnOnce(&mut auto::Builder<TokioExecutor>),
) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    configure(&mut builder);
    let builder = Arc::new(builder);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            let builder = builder.clone();
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// How long a test waits for the server before failing: a guard against a
/// test hanging, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A raw TCP connection that writes exact bytes and reads HTTP/1.1
/// responses one by one, for what a well-behaved client cannot send.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect"),
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes `bytes`; `false` when the server already closed the
    /// connection.
    pub async fn write(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
    }

    /// Sends FIN: the request is over, the response can still come back.
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads more bytes; `false` at the end of the stream (or a reset).
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0; 8192];
        let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut chunk))
            .await
            .expect("the server neither answered nor closed the connection");
        match read {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response, or `None` when the server closed the connection
    /// without (completing) one.
    pub async fn response(&mut self) -> Option<Answer> {
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let mut headers = HeaderMap::new();
        for line in lines.filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(':').expect("a header line");
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        let length: usize = match headers.get(header::CONTENT_LENGTH) {
            Some(length) => length.to_str().unwrap().parse().unwrap(),
            None if headers.contains_key(header::TRANSFER_ENCODING) => {
                panic!("chunked responses are not expected here")
            }
            None => 0,
        };
        while self.buf.len() < head_end + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = Bytes::copy_from_slice(&self.buf[head_end..head_end + length]);
        self.buf.drain(..head_end + length);
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    /// Whether the server closed the connection (after any responses still
    /// unread, which are discarded).
    pub async fn closed(&mut self) -> bool {
        while self.fill().await {}
        true
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// An HTTP/2 connection with prior knowledge (h2c), for many concurrent
/// requests on one connection.
pub async fn h2(addr: SocketAddr) -> http2::SendRequest<BoxBody<Bytes, BoxError>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

/// Sends one request on an HTTP/2 connection and reads the whole response;
/// `Err` when the stream was reset.
pub async fn send_h2(
    sender: &mut http2::SendRequest<BoxBody<Bytes, BoxError>>,
    request: Request<BoxBody<Bytes, BoxError>>,
) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}
