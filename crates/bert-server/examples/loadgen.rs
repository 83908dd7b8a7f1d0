//! A closed-loop HTTP load generator for `bert serve` (the benchmark of `scripts/serve_bench.sh`):
//! N clients, each on its own keep-alive connection, send one request after another for a fixed
//! time, cycling through the lines of a corpus (or one fixed text). Prints requests/s, the real
//! tokens/s the server counted (`bert_tokens_total` of `/metrics`, before and after), latency
//! percentiles, and statuses, then one JSON line with the same figures.
//!
//! ```sh
//! cargo run --release -p bert-server --example loadgen -- --addr 127.0.0.1:3000 \
//!     --corpus scripts/peers/data/fortunes-en.txt --clients 64 --seconds 30
//! ```
//!
//! Options: `--addr HOST:PORT`, `--route /embed` (or `/v1/embeddings`, `/predict`),
//! `--corpus FILE` (one text per line, blank lines skipped) or `--text TEXT`, `--lines N` (first N
//! lines; default all), `--texts-per-request K` (default 1), `--clients N`, `--seconds S`,
//! `--api-key KEY`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    addr: String,
    route: String,
    texts: Vec<String>,
    per_request: usize,
    clients: usize,
    seconds: f64,
    api_key: Option<String>,
}

fn parse() -> Result<Opts, String> {
    let mut args = std::env::args().skip(1);
    let mut o = Opts {
        addr: "127.0.0.1:3000".into(),
        route: "/embed".into(),
        texts: Vec::new(),
        per_request: 1,
        clients: 1,
        seconds: 10.0,
        api_key: None,
    };
    let (mut corpus, mut text, mut lines) = (None, None, usize::MAX);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|e| format!("{a} {s}: {e}"));
        match a.as_str() {
            "--addr" => o.addr = v()?,
            "--route" => o.route = v()?,
            "--corpus" => corpus = Some(v()?),
            "--text" => text = Some(v()?),
            "--lines" => lines = num(v()?)? as usize,
            "--texts-per-request" => o.per_request = num(v()?)? as usize,
            "--clients" => o.clients = num(v()?)? as usize,
            "--seconds" => o.seconds = num(v()?)?,
            "--api-key" => o.api_key = Some(v()?),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    o.texts = match (corpus, text) {
        (_, Some(t)) => vec![t],
        (Some(p), None) => std::fs::read_to_string(&p)
            .map_err(|e| format!("{p}: {e}"))?
            .split('\n')
            .filter(|l| !l.trim().is_empty())
            .take(lines)
            .map(String::from)
            .collect(),
        (None, None) => return Err("give --corpus FILE or --text TEXT".into()),
    };
    if o.texts.is_empty() || o.clients == 0 || o.per_request == 0 {
        return Err("need at least one text, client and text per request".into());
    }
    Ok(o)
}

/// A keep-alive HTTP/1.1 connection (test tooling; the server's HTTP is hyper's).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
        })
    }

    /// Sends a request and reads the answer: (status, body).
    fn call(&mut self, head: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let s = self.reader.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut status = 0;
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

fn head(o: &Opts, method: &str, path: &str, len: usize) -> String {
    let auth = o
        .api_key
        .as_ref()
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {len}\r\n\r\n",
        o.addr
    )
}

/// `bert_tokens_total` of `/metrics`.
fn tokens_total(o: &Opts) -> Result<f64, String> {
    let mut c = Conn::open(&o.addr).map_err(|e| format!("{}: {e}", o.addr))?;
    let (_, body) = c
        .call(&head(o, "GET", "/metrics", 0), b"")
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("bert_tokens_total "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no bert_tokens_total in /metrics".to_string())
}

fn body(o: &Opts, at: usize) -> Vec<u8> {
    let texts: Vec<&String> = (0..o.per_request)
        .map(|k| &o.texts[(at + k) % o.texts.len()])
        .collect();
    let v = if o.route == "/v1/embeddings" {
        serde_json::json!({ "input": texts })
    } else {
        serde_json::json!({ "inputs": texts, "truncate": true })
    };
    serde_json::to_vec(&v).expect("JSON of strings")
}

/// One client: (latencies in µs, statuses, I/O errors).
fn client(o: &Opts, next: &AtomicUsize, until: Instant) -> (Vec<u64>, BTreeMap<u16, u64>, u64) {
    let (mut lat, mut codes, mut io) = (Vec::new(), BTreeMap::new(), 0);
    let mut conn = None;
    while Instant::now() < until {
        let at = next.fetch_add(o.per_request, Ordering::Relaxed);
        let b = body(o, at);
        let h = head(o, "POST", &o.route, b.len());
        let c = match conn.take() {
            Some(c) => c,
            None => match Conn::open(&o.addr) {
                Ok(c) => c,
                Err(_) => {
                    io += 1;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let mut c = c;
        let t = Instant::now();
        match c.call(&h, &b) {
            Ok((code, _)) => {
                lat.push(t.elapsed().as_micros() as u64);
                *codes.entry(code).or_insert(0) += 1;
                conn = Some(c);
            }
            Err(_) => io += 1,
        }
    }
    (lat, codes, io)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1e3
}

fn main() {
    let o = match parse() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let before = tokens_total(&o).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    });
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(o.seconds);
    let handles: Vec<_> = (0..o.clients)
        .map(|_| {
            let (o, next) = (o.clone(), next.clone());
            std::thread::spawn(move || client(&o, &next, until))
        })
        .collect();
    let (mut lat, mut codes, mut io) = (Vec::new(), BTreeMap::new(), 0);
    for h in handles {
        let (l, c, e) = h.join().expect("client thread");
        lat.extend(l);
        for (k, v) in c {
            *codes.entry(k).or_insert(0) += v;
        }
        io += e;
    }
    let wall = start.elapsed().as_secs_f64();
    let tokens = tokens_total(&o).unwrap_or(f64::NAN) - before;
    lat.sort_unstable();
    let (p50, p90, p99) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
    );
    let max = lat.last().copied().unwrap_or(0) as f64 / 1e3;
    let codes_s: BTreeMap<String, u64> = codes.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    println!(
        "{} clients, {} {}: {} requests in {wall:.1} s = {:.1} req/s, {:.0} tokens/s; latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2}; statuses {codes_s:?}, I/O errors {io}",
        o.clients,
        o.route,
        if o.texts.len() == 1 { "(one text)" } else { "(corpus)" },
        lat.len(),
        lat.len() as f64 / wall,
        tokens / wall,
    );
    let json = serde_json::json!({
        "clients": o.clients, "route": o.route, "texts_per_request": o.per_request,
        "requests": lat.len(), "seconds": wall, "requests_per_s": lat.len() as f64 / wall,
        "tokens_per_s": tokens / wall, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
        "statuses": codes_s, "io_errors": io,
    });
    println!("{json}");
}
