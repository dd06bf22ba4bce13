//! Load over a fixed pool of keep-alive HTTP/1.1 connections: open loop at a fixed rate (timed from the scheduled send) and closed loop at full speed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// How long requests still in flight at the end of a run may take before they count as failed.
const GRACE: Duration = Duration::from_secs(10);

/// Where load goes: an address, the model it knows and the credential it wants.
#[derive(Debug)]
pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    path: &'static str,
    /// Sent when set (MCP's streamable HTTP wants both JSON and event streams accepted).
    accept: Option<HeaderValue>,
    host: HeaderValue,
    auth: HeaderValue,
    plain: Bytes,
    stream: Bytes,
}

impl Target {
    pub fn new(name: &'static str, addr: SocketAddr, model: &str, key: &str) -> Result<Arc<Target>, String> {
        let ask = |stream: bool| {
            let mut body = serde_json::json!({
                "model": model, "max_tokens": 16,
                "messages": [{"role": "user", "content": "Say hello to the benchmark in five words."}],
            });
            if stream {
                body["stream"] = true.into();
                body["stream_options"] = serde_json::json!({"include_usage": true});
            }
            Bytes::from(body.to_string())
        };
        Ok(Arc::new(Target {
            name,
            addr,
            path: "/v1/chat/completions",
            accept: None,
            host: HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?,
            plain: ask(false),
            stream: ask(true),
        }))
    }
}

impl Target {
    /// An MCP endpoint (`/mcp`) sent one JSON-RPC message, `body`, with `key` as bearer.
    pub fn mcp(name: &'static str, addr: SocketAddr, key: &str, body: &serde_json::Value) -> Result<Arc<Target>, String> {
        let body = Bytes::from(body.to_string());
        Ok(Arc::new(Target {
            name,
            addr,
            path: "/mcp",
            accept: Some(HeaderValue::from_static("application/json, text/event-stream")),
            host: HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?,
            plain: body.clone(),
            stream: body,
        }))
    }
}

/// What a run measured; times in nanoseconds.
#[derive(Debug)]
pub struct Stats {
    pub ok: u64,
    pub errors: u64,
    /// Scheduled but never answered before the run's end plus grace.
    pub missed: u64,
    pub elapsed: Duration,
    /// Scheduled (open loop) or actual (closed loop) send to the last body byte.
    pub latency: Histogram<u64>,
    /// The same start to the first body byte.
    pub ttfb: Histogram<u64>,
    /// Open loop: the scheduled send to the moment a connection takes the request (timer
    /// overshoot plus waiting for a free connection).
    pub lag: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Stats {
    pub fn new() -> Result<Stats, String> {
        // 1 ns to 1 minute at 3 significant digits; anything longer is clamped (runs are bounded well below).
        let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string());
        Ok(Stats {
            ok: 0,
            errors: 0,
            missed: 0,
            elapsed: Duration::ZERO,
            latency: histogram()?,
            ttfb: histogram()?,
            lag: histogram()?,
            first_error: None,
        })
    }

    fn record(&mut self, start: Instant, timing: &Timing) {
        self.latency.saturating_record(nanos(timing.done.saturating_duration_since(start)));
        self.ttfb.saturating_record(nanos(timing.first.saturating_duration_since(start)));
        self.ok += 1;
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn merge(&mut self, other: Stats) -> Result<(), String> {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latency.add(&other.latency).map_err(|e| e.to_string())?;
        self.ttfb.add(&other.ttfb).map_err(|e| e.to_string())?;
        self.lag.add(&other.lag).map_err(|e| e.to_string())?;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        Ok(())
    }

    /// Adds a later slice of the same run: its requests, histograms, misses and time.
    pub fn append(&mut self, slice: Stats) -> Result<(), String> {
        self.missed += slice.missed;
        self.elapsed += slice.elapsed;
        self.merge(slice)
    }

    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "request counts are far below 2^52")]
        let ok = self.ok as f64;
        ok / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Whole nanoseconds, at least 1 (the histogram's lowest value).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Reconnects after a failure, retrying until `until`.
async fn reconnect(addr: SocketAddr, until: Instant) -> Option<Sender> {
    while Instant::now() < until {
        if let Ok(sender) = connect(addr).await {
            return Some(sender);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

struct Timing {
    first: Instant,
    done: Instant,
    body: Vec<u8>,
}

/// One request: sent, its body read to the end; a non-2xx status is an error quoting the body.
async fn exchange(sender: &mut Sender, target: &Target, stream: bool, keep: bool) -> Result<Timing, String> {
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let mut request = Request::builder().method(Method::POST).uri(target.path);
    if let Some(accept) = &target.accept {
        request = request.header(ACCEPT, accept.clone());
    }
    let request = request
        .header(HOST, target.host.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(AUTHORIZATION, target.auth.clone())
        .body(Full::new(if stream { target.stream.clone() } else { target.plain.clone() }))
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let keep = keep || !status.is_success();
    let mut body = response.into_body();
    let (mut first, mut kept) = (None, Vec::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Some(data) = frame.data_ref().filter(|d| !d.is_empty()) {
            first.get_or_insert_with(Instant::now);
            if keep {
                kept.extend_from_slice(data);
            }
        }
    }
    let done = Instant::now();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&kept).chars().take(300).collect::<String>()));
    }
    Ok(Timing { first: first.unwrap_or(done), done, body: kept })
}

/// One request on a fresh connection; returns the body (to check the path works end to end).
pub async fn probe(target: &Target, stream: bool) -> Result<String, String> {
    let mut sender = connect(target.addr).await?;
    let timing = tokio::time::timeout(GRACE, exchange(&mut sender, target, stream, true)).await.map_err(|_| "timed out".to_owned())??;
    Ok(String::from_utf8_lossy(&timing.body).into_owned())
}

/// Keep-alive connections to one path, kept from one slice of a run to the next so that every
/// slice starts warm; a connection lost to an error is replaced at the next slice.
#[derive(Debug)]
pub struct Pool {
    addr: SocketAddr,
    size: usize,
    senders: Vec<Sender>,
}

impl Pool {
    pub fn new(addr: SocketAddr, size: usize) -> Pool {
        Pool { addr, size: size.max(1), senders: Vec::new() }
    }

    /// The pool's connections, topped up to its size.
    async fn take(&mut self) -> Result<Vec<Sender>, String> {
        while self.senders.len() < self.size {
            self.senders.push(connect(self.addr).await?);
        }
        Ok(std::mem::take(&mut self.senders))
    }

    fn give_back(&mut self, sender: Option<Sender>) {
        self.senders.extend(sender);
    }
}

/// Requests scheduled `1/rate` apart for `duration` by a timer thread; free connections take
/// them in order. Latency runs from the scheduled time, so waiting for a connection counts.
pub async fn open_loop(target: &Arc<Target>, pool: &mut Pool, rate: u32, duration: Duration, stream: bool) -> Result<Stats, String> {
    let senders = pool.take().await?;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "rate × seconds is small and positive")]
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let period_ns = 1_000_000_000 / u64::from(rate.max(1));
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let start = Instant::now() + Duration::from_millis(10);
    let scheduler = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + Duration::from_nanos(i * period_ns);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send(at).is_err() {
                break;
            }
        }
    });
    let rx = Arc::new(Mutex::new(rx));
    let until = start + duration + GRACE;
    let workers: Vec<_> =
        senders.into_iter().map(|sender| tokio::spawn(open_worker(target.clone(), sender, rx.clone(), until, stream))).collect();
    let mut stats = Stats::new()?;
    for worker in workers {
        let (worker_stats, sender) = worker.await.map_err(|e| e.to_string())??;
        stats.merge(worker_stats)?;
        pool.give_back(sender);
    }
    stats.elapsed = start.elapsed();
    drop(rx);
    tokio::task::spawn_blocking(move || scheduler.join()).await.map_err(|e| e.to_string())?.map_err(|_| "scheduler failed".to_owned())?;
    stats.missed = total.saturating_sub(stats.ok + stats.errors);
    Ok(stats)
}

async fn open_worker(
    target: Arc<Target>,
    mut sender: Sender,
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    until: Instant,
    stream: bool,
) -> Result<(Stats, Option<Sender>), String> {
    let mut stats = Stats::new()?;
    let until_tokio = tokio::time::Instant::from_std(until);
    loop {
        let next = {
            let mut rx = rx.lock().await;
            tokio::time::timeout_at(until_tokio, rx.recv()).await
        };
        let Ok(Some(scheduled)) = next else { break };
        stats.lag.saturating_record(nanos(scheduled.elapsed()));
        match tokio::time::timeout_at(until_tokio, exchange(&mut sender, &target, stream, false)).await {
            Ok(Ok(timing)) => stats.record(scheduled, &timing),
            Ok(Err(e)) => {
                stats.error(e);
                let Some(fresh) = reconnect(target.addr, until).await else { return Ok((stats, None)) };
                sender = fresh;
            }
            Err(_) => {
                stats.error("no answer before the run's end plus grace".to_owned());
                return Ok((stats, None));
            }
        }
    }
    Ok((stats, Some(sender)))
}

/// `concurrency` connections, each sending its next request as soon as the last is answered,
/// for `duration`.
pub async fn closed_loop(target: &Arc<Target>, pool: &mut Pool, duration: Duration, stream: bool) -> Result<Stats, String> {
    let senders = pool.take().await?;
    let start = Instant::now();
    let (end, until) = (start + duration, start + duration + GRACE);
    let workers: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut stats = Stats::new()?;
                while Instant::now() < end {
                    let sent = Instant::now();
                    let answer = tokio::time::timeout_at(until.into(), exchange(&mut sender, &target, stream, false)).await;
                    match answer {
                        Ok(Ok(timing)) => stats.record(sent, &timing),
                        Ok(Err(e)) => {
                            stats.error(e);
                            let Some(fresh) = reconnect(target.addr, end).await else { return Ok((stats, None)) };
                            sender = fresh;
                        }
                        Err(_) => {
                            stats.error("no answer before the run's end plus grace".to_owned());
                            return Ok((stats, None));
                        }
                    }
                }
                Ok::<_, String>((stats, Some(sender)))
            })
        })
        .collect();
    let mut stats = Stats::new()?;
    for worker in workers {
        let (worker_stats, sender) = worker.await.map_err(|e| e.to_string())??;
        stats.merge(worker_stats)?;
        pool.give_back(sender);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}
