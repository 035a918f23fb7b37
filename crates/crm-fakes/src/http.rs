//! A small HTTP/1.1 server on 127.0.0.1 for the fake CRMs: one thread per connection,
//! keep-alive, `Content-Length` bodies, and replies that can misbehave on purpose
//! (drop the connection, hang, send garbage) so the client's error paths get exercised.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Longest request head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-encoded as sent, without the query.
    pub path: String,
    /// The query string without `?` (empty when absent).
    pub query: String,
    /// Headers with lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query's pairs, percent-decoded (`+` is a space).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_form(&self.query)
    }
}

/// Split `a=1&b=2` into decoded pairs.
pub fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decode `%XX` escapes and `+`.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A JSON response with another content type (amoCRM answers errors as
    /// `application/problem+json`).
    pub fn typed(status: u16, content_type: &str, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// An empty response (amoCRM answers an empty list with `204 No Content`).
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Add a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the server does with a request.
#[derive(Debug)]
pub enum Reply {
    /// Answer normally.
    Respond(Response),
    /// Close the connection without answering.
    Drop,
    /// Wait, then close without answering (the client's timeout fires first).
    Hang(Duration),
}

/// The fake's logic.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: &Request) -> Reply;
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Start serving `handler` on 127.0.0.1 at a port the system picks.
    pub fn start(handler: Arc<dyn Handler>) -> io::Result<Server> {
        Server::start_on(0, handler)
    }

    /// Start serving on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16, handler: Arc<dyn Handler>) -> io::Result<Server> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::Builder::new()
            .name("crm-fake-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let h = handler.clone();
                    let stop3 = stop2.clone();
                    let _ = thread::Builder::new()
                        .name("crm-fake-conn".into())
                        .spawn(move || serve_connection(conn, &*h, &stop3));
                }
            })?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_connection(stream: TcpStream, handler: &dyn Handler, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(250)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader, stop) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let body = format!("bad request: {e}");
                let _ = write_response(
                    &mut writer,
                    &Response {
                        status: 400,
                        headers: vec![("content-type".into(), "text/plain".into())],
                        body: body.into_bytes(),
                    },
                    true,
                );
                return;
            }
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match handler.handle(&req) {
            Reply::Respond(resp) => {
                if write_response(&mut writer, &resp, close).is_err() || close {
                    return;
                }
            }
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Hang(d) => {
                thread::sleep(d);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Read one request; `None` when the peer closed the connection (or the server stops).
fn read_request(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if head.is_empty() && line.is_empty() {
                    continue;
                }
                // A partial line: keep what arrived and wait for the rest.
                head.extend_from_slice(&line);
                continue;
            }
            Err(_) => return Ok(None),
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        if head == b"\r\n" || head == b"\n" {
            // Stray blank line between requests.
            head.clear();
            continue;
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
    }
    let text = String::from_utf8(head).map_err(|_| io::Error::other("head is not UTF-8"))?;
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::other("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::other("not HTTP/1.x"));
    }
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| io::Error::other("bad header line"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if get("transfer-encoding").is_some() {
        return Err(io::Error::other(
            "chunked bodies are not supported; send Content-Length",
        ));
    }
    let len: usize = match get("content-length") {
        Some(v) => v
            .parse()
            .map_err(|_| io::Error::other("bad Content-Length"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(io::Error::other("body too large"));
    }
    let mut body = vec![0; len];
    let mut got = 0;
    while got < len {
        match r.read(&mut body[got..]) {
            Ok(0) => return Ok(None),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
            }
            Err(_) => return Ok(None),
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.to_owned(), String::new()),
    };
    Ok(Some(Request {
        method: method.to_owned(),
        path,
        query,
        headers,
        body,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(w: &mut TcpStream, resp: &Response, close: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n", resp.body.len()));
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    w.write_all(&bytes)?;
    w.flush()
}
