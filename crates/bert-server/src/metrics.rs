//! Prometheus text exposition (version 0.0.4) of the server's counters: requests and errors by
//! route and status code, queue depth, batch sizes, tokens, and latency histograms. Written by
//! hand (a few counters under one lock) rather than through a metrics registry crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];
/// Upper bounds of the batch size buckets (requests, inputs and tokens).
const SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0,
];

#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (c, &b) in self.counts.iter_mut().zip(self.bounds) {
            if v <= b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    /// (route, status code) -> requests.
    requests: BTreeMap<(String, u16), u64>,
    /// route -> request latency (seconds).
    latency: BTreeMap<String, Histogram>,
    queue_time: Histogram,
    inference_time: Histogram,
    batch_requests: Histogram,
    batch_inputs: Histogram,
    batch_tokens: Histogram,
    tokens: u64,
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    inner: Mutex<Inner>,
    queue_depth: AtomicI64,
    in_flight: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                latency: BTreeMap::new(),
                queue_time: Histogram::new(&LATENCY_BUCKETS),
                inference_time: Histogram::new(&LATENCY_BUCKETS),
                batch_requests: Histogram::new(&SIZE_BUCKETS),
                batch_inputs: Histogram::new(&SIZE_BUCKETS),
                batch_tokens: Histogram::new(&SIZE_BUCKETS),
                tokens: 0,
            }),
            queue_depth: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic elsewhere while the lock was held leaves plain counters: still usable.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// One finished request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.with(|m| {
            *m.requests.entry((route.to_string(), status)).or_insert(0) += 1;
            m.latency
                .entry(route.to_string())
                .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
                .observe(elapsed.as_secs_f64());
        });
    }

    pub fn in_flight_add(&self, d: i64) {
        self.in_flight.fetch_add(d, Ordering::Relaxed);
    }

    pub fn queue_add(&self, d: i64) {
        self.queue_depth.fetch_add(d, Ordering::Relaxed);
    }

    pub fn queue_time(&self, d: Duration) {
        self.with(|m| m.queue_time.observe(d.as_secs_f64()));
    }

    pub fn inference_time(&self, d: Duration) {
        self.with(|m| m.inference_time.observe(d.as_secs_f64()));
    }

    /// One batch of `requests` requests, `inputs` inputs and `tokens` tokens.
    pub fn batch(&self, requests: usize, inputs: usize, tokens: usize) {
        self.with(|m| {
            m.batch_requests.observe(requests as f64);
            m.batch_inputs.observe(inputs as f64);
            m.batch_tokens.observe(tokens as f64);
            m.tokens += tokens as u64;
        });
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let depth = self.queue_depth.load(Ordering::Relaxed);
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        self.with(|m| {
            out.push_str(
                "# HELP bert_requests_total Requests answered, by route and status code.\n",
            );
            out.push_str("# TYPE bert_requests_total counter\n");
            for ((route, code), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "bert_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
                );
            }
            out.push_str("# HELP bert_errors_total Requests answered with an error status.\n");
            out.push_str("# TYPE bert_errors_total counter\n");
            let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
            for ((_, code), n) in &m.requests {
                if *code >= 400 {
                    *errors.entry(*code).or_insert(0) += n;
                }
            }
            for (code, n) in errors {
                let _ = writeln!(out, "bert_errors_total{{code=\"{code}\"}} {n}");
            }
            out.push_str("# HELP bert_request_duration_seconds Request latency, by route.\n");
            out.push_str("# TYPE bert_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                h.write(
                    &mut out,
                    "bert_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
            let _ = writeln!(
                out,
                "# HELP bert_queue_depth Jobs waiting for the model thread.\n\
                 # TYPE bert_queue_depth gauge\nbert_queue_depth {depth}"
            );
            let _ = writeln!(
                out,
                "# HELP bert_requests_in_flight Requests being handled.\n\
                 # TYPE bert_requests_in_flight gauge\nbert_requests_in_flight {in_flight}"
            );
            let hist = [
                (
                    "bert_queue_duration_seconds",
                    "Time jobs waited in the queue.",
                    &m.queue_time,
                ),
                (
                    "bert_inference_duration_seconds",
                    "Time per batch on the model thread.",
                    &m.inference_time,
                ),
                (
                    "bert_batch_requests",
                    "Requests per batch.",
                    &m.batch_requests,
                ),
                ("bert_batch_inputs", "Inputs per batch.", &m.batch_inputs),
                (
                    "bert_batch_tokens",
                    "Real tokens per batch.",
                    &m.batch_tokens,
                ),
            ];
            for (name, help, h) in hist {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
                h.write(&mut out, name, "");
            }
            let _ = writeln!(
                out,
                "# HELP bert_tokens_total Real tokens run through the model.\n\
                 # TYPE bert_tokens_total counter\nbert_tokens_total {}",
                m.tokens
            );
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::new(&SIZE_BUCKETS);
        h.observe(1.0);
        h.observe(3.0);
        h.observe(1e6);
        let mut s = String::new();
        h.write(&mut s, "x", "");
        assert!(s.contains("x_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"4\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 3\n"), "{s}");
        assert!(s.contains("x_count 3\n"), "{s}");
    }
}
