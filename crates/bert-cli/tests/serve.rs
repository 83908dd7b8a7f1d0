//! `bert serve` end to end: the real server on a free port of 127.0.0.1, spoken to over HTTP.
//! Every route against the goldens (sentence-transformers' embeddings, transformers' pipelines),
//! every error status, concurrent requests mixing routes, and SIGTERM while requests are in flight.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Scores against transformers' goldens (as tests/pipelines.rs).
const TOL: f64 = 2e-5;

/// A running `bert serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `bert serve --host 127.0.0.1 --port 0 ARGS` and waits (at most 120 s) for the line
    /// naming the port it listens on.
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bert"))
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bert serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let _ = tx.send(line[at + "listening on http://".len()..].trim().to_string());
                }
                assert!(!line.contains("panicked"), "server panic: {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!("bert serve {args:?} did not start: {:?}", child.try_wait())
            });
        Server { child, addr }
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.raw("POST", path, &body.to_string(), &[])
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (code, body) = request(&self.addr, "GET", path, "", &[]);
        (code, body)
    }

    /// A request with a body as given and extra headers; the answer parsed as JSON (Null when
    /// empty).
    fn raw(&self, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, Value) {
        let (code, text) = request(&self.addr, method, path, body, headers);
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
        };
        (code, v)
    }

    /// SIGTERM, then the exit status (at most 60 s).
    fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        for _ in 0..600 {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("bert serve did not stop within 60 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// One HTTP/1.1 request on its own connection (`Connection: close`): (status, body). A test
/// client only; the server side is hyper's.
fn request(addr: &str, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    (code, body.to_string())
}

fn model(name: &str) -> String {
    root()
        .join("fixtures/models")
        .join(name)
        .display()
        .to_string()
}

fn golden_cases(name: &str) -> Vec<Value> {
    let path = root().join("fixtures/golden").join(format!("{name}.json"));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"].as_array().unwrap().clone()
}

/// Field-by-field equality, numbers within `tol`.
fn same(ours: &Value, theirs: &Value, tol: f64) {
    match (ours, theirs) {
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "ours {ours}\ntheirs {theirs}");
            a.iter().zip(b).for_each(|(x, y)| same(x, y, tol));
        }
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.len(), b.len(), "ours {ours}\ntheirs {theirs}");
            for (k, v) in a {
                same(v, &b[k], tol);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let d = (a.as_f64().unwrap() - b.as_f64().unwrap()).abs();
            assert!(d <= tol, "{a} vs {b}");
        }
        _ => assert_eq!(ours, theirs),
    }
}

/// The texts and embeddings sentence-transformers gave for all-MiniLM-L6-v2.
fn st_golden() -> (Vec<String>, Vec<Vec<f32>>) {
    let bytes =
        std::fs::read(root().join("fixtures/golden/st-all-MiniLM-L6-v2.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let texts: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["texts"]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("embeddings").unwrap();
    let flat: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (
        texts,
        flat.chunks(t.shape()[1]).map(<[f32]>::to_vec).collect(),
    )
}

fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn assert_vectors_close(ours: &[Vec<f32>], want: &[Vec<f32>], tol: f32) {
    assert_eq!(ours.len(), want.len());
    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
        assert_eq!(a.len(), b.len());
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "row {i} dim {j}: {x} vs {y}");
        }
    }
}

fn base64_floats(s: &str) -> Vec<f32> {
    // A decoder for the test only (the server encodes with the `base64` crate).
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut bytes = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        bits = (bits << 6) | table.iter().position(|&t| t == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            bytes.push((bits >> n) as u8);
        }
    }
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A text of about `words` + 2 tokens for the real model.
fn long_text(words: usize) -> String {
    let w = [
        "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog",
    ];
    (0..words)
        .map(|i| w[i % w.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn embeddings_match_sentence_transformers_on_every_embedding_route() {
    // The default model, all-MiniLM-L6-v2; the last golden text is longer than its 256 tokens.
    let s = Server::start(&["--auto-truncate"]);
    let (texts, want) = st_golden();
    let (code, e) = s.post("/embed", &json!({ "inputs": texts, "truncate": false }));
    assert_eq!(code, 413, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("input 5 is longer than the 256 tokens"),
        "{e}"
    );
    let (code, v) = s.post("/embed", &json!({ "inputs": texts }));
    assert_eq!(code, 200, "{v}");
    assert_vectors_close(&vectors(&v), &want, 1e-5);
    // One string: still a list of one vector (TEI); `POST /` is the head's route.
    for path in ["/embed", "/"] {
        let (code, v) = s.post(path, &json!({ "inputs": texts[0] }));
        assert_eq!(code, 200);
        assert_vectors_close(&vectors(&v), &want[..1], 1e-5);
    }
    // normalize false: the same direction, another length (mean pooling is not unit length).
    let (_, raw) = s.post("/embed", &json!({ "inputs": texts[0], "normalize": false }));
    let raw = &vectors(&raw)[0];
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "{norm}");
    assert_vectors_close(&[raw.iter().map(|x| x / norm).collect()], &want[..1], 1e-5);
    // OpenAI, float and base64.
    let (code, o) = s.post("/v1/embeddings", &json!({ "input": texts, "model": "m" }));
    assert_eq!(code, 200, "{o}");
    assert_eq!(o["object"], "list");
    assert_eq!(o["model"], "m");
    let data = o["data"].as_array().unwrap();
    for (i, d) in data.iter().enumerate() {
        assert_eq!(
            (d["object"].as_str(), d["index"].as_u64()),
            (Some("embedding"), Some(i as u64))
        );
    }
    let floats: Vec<Value> = data.iter().map(|d| d["embedding"].clone()).collect();
    assert_vectors_close(&vectors(&Value::Array(floats)), &want, 1e-5);
    let (code, b) = s.post(
        "/v1/embeddings",
        &json!({ "input": texts, "encoding_format": "base64" }),
    );
    assert_eq!(code, 200);
    let decoded: Vec<Vec<f32>> = b["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| base64_floats(d["embedding"].as_str().unwrap()))
        .collect();
    assert_vectors_close(&decoded, &want, 1e-5);
    assert_eq!(b["model"], bert_default_model());
    // Token counts: the tokenizer's, special tokens included.
    let (_, toks) = s.post("/tokenize", &json!({ "inputs": texts }));
    let n: usize = toks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_array().unwrap().len())
        .sum();
    assert_eq!(o["usage"]["prompt_tokens"], n);
    assert_eq!(o["usage"]["total_tokens"], n);
    // embed_all: one 384-vector per real token; their mean, normalized, is the sentence vector.
    let (code, all) = s.post("/embed_all", &json!({ "inputs": [texts[0], texts[3]] }));
    assert_eq!(code, 200);
    for (k, i) in [0, 3].into_iter().enumerate() {
        let rows = vectors(&all[k]);
        assert_eq!(rows.len(), toks[i].as_array().unwrap().len());
        let mut mean = vec![0f32; 384];
        for r in &rows {
            assert_eq!(r.len(), 384);
            mean.iter_mut()
                .zip(r)
                .for_each(|(m, x)| *m += x / rows.len() as f32);
        }
        let norm = mean.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mean: Vec<f32> = mean.iter().map(|x| x / norm).collect();
        assert_vectors_close(&[mean], &want[i..=i], 1e-5);
    }
    // Routes of other heads: 424 naming the head this checkpoint has.
    for (path, body) in [
        ("/predict", json!({"inputs": "x"})),
        ("/rerank", json!({"query": "q", "texts": ["x"]})),
        ("/ner", json!({"inputs": "x"})),
        ("/qa", json!({"question": "q", "context": "c"})),
    ] {
        let (code, e) = s.post(path, &body);
        assert_eq!(code, 424, "{path}: {e}");
        assert_eq!(e["error_type"], "backend");
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains("BertModel (embedding head)"),
            "{e}"
        );
    }
    assert_eq!(s.terminate().code(), Some(0));
}

fn bert_default_model() -> &'static str {
    "sentence-transformers/all-MiniLM-L6-v2"
}

#[test]
fn predict_and_rerank_give_the_pipelines_scores() {
    for name in [
        "pipe-seqcls",
        "pipe-seqcls-multilabel",
        "pipe-seqcls-regression",
    ] {
        let s = Server::start(&["-m", &model(name)]);
        let cases: Vec<Value> = golden_cases(name)
            .into_iter()
            .filter(|c| c["kwargs"] == json!({"top_k": null}))
            .collect();
        let inputs: Vec<Value> = cases
            .iter()
            .map(|c| match c.get("text_pair") {
                Some(p) if !p.is_null() => json!([c["text"], p]),
                _ => json!([c["text"]]),
            })
            .collect();
        let (code, batch) = s.post("/predict", &json!({ "inputs": inputs }));
        assert_eq!(code, 200, "{name}: {batch}");
        for (ours, c) in batch.as_array().unwrap().iter().zip(&cases) {
            same(ours, &c["output"], TOL);
        }
        // One text, and one pair: a single list, not a list of lists. `POST /` is `/predict`.
        for path in ["/predict", "/"] {
            let (_, one) = s.post(path, &json!({ "inputs": cases[0]["text"] }));
            same(&one, &cases[0]["output"], TOL);
        }
        let pair = cases
            .iter()
            .find(|c| c.get("text_pair").is_some_and(|p| !p.is_null()))
            .unwrap();
        let (_, one) = s.post(
            "/predict",
            &json!({ "inputs": [pair["text"], pair["text_pair"]] }),
        );
        same(&one, &pair["output"], TOL);
        // raw_scores: the logits, which the `none` function gives.
        let none = golden_cases(name)
            .into_iter()
            .find(|c| c["kwargs"] == json!({"function_to_apply": "none", "top_k": null}))
            .unwrap();
        let (_, raw) = s.post(
            "/predict",
            &json!({ "inputs": none["text"], "raw_scores": true }),
        );
        same(&raw, &none["output"], TOL);
        // Several labels: not a cross-encoder.
        if name != "pipe-seqcls-regression" {
            let (code, e) = s.post("/rerank", &json!({"query": "q", "texts": ["a"]}));
            assert_eq!(code, 424, "{e}");
            assert!(
                e["error"]
                    .as_str()
                    .unwrap()
                    .contains("labels; use /predict"),
                "{e}"
            );
        }
        assert_eq!(s.terminate().code(), Some(0));
    }
    let cases = golden_cases("pipe-rerank");
    let s = Server::start(&["-m", &model("pipe-rerank")]);
    let texts: Vec<&Value> = cases.iter().map(|c| &c["text_pair"]).collect();
    let (code, ranks) = s.post(
        "/rerank",
        &json!({"query": cases[0]["text"], "texts": texts, "return_text": true}),
    );
    assert_eq!(code, 200, "{ranks}");
    let ranks = ranks.as_array().unwrap();
    assert_eq!(ranks.len(), cases.len());
    for w in ranks.windows(2) {
        assert!(
            w[0]["score"].as_f64() >= w[1]["score"].as_f64(),
            "not sorted: {ranks:?}"
        );
    }
    for r in ranks {
        let c = &cases[r["index"].as_u64().unwrap() as usize];
        assert_eq!(r["text"], c["text_pair"]);
        same(&r["score"], &c["cross_encoder"], TOL);
    }
    // `POST /` with a query is `/rerank`.
    let (_, raw) = s.post(
        "/",
        &json!({"query": cases[0]["text"], "texts": [texts[0]], "raw_scores": true}),
    );
    let p = cases[0]["cross_encoder"].as_f64().unwrap();
    same(&raw[0]["score"], &json!((p / (1.0 - p)).ln()), 1e-4);
    assert!(raw[0].get("text").is_none());
}

#[test]
fn ner_and_qa_give_the_pipelines_answers() {
    let s = Server::start(&["-m", &model("pipe-tokcls")]);
    for agg in ["none", "simple", "first", "average", "max"] {
        let c = golden_cases("pipe-tokcls")
            .into_iter()
            .find(|c| c["kwargs"] == json!({ "aggregation_strategy": agg }))
            .unwrap();
        for path in ["/ner", "/"] {
            let body = json!({"inputs": c["text"], "aggregation_strategy": agg});
            let (code, v) = s.post(path, &body);
            assert_eq!(code, 200, "{v}");
            same(&v, &c["output"], TOL);
        }
        let (_, v) = s.post(
            "/ner",
            &json!({"inputs": [c["text"], c["text"]], "aggregation_strategy": agg}),
        );
        same(&v, &json!([c["output"], c["output"]]), TOL);
    }
    let (code, e) = s.post(
        "/ner",
        &json!({"inputs": "x", "aggregation_strategy": "median"}),
    );
    assert_eq!(code, 422, "{e}");
    let (code, e) = s.post("/embed", &json!({"inputs": "x"}));
    assert_eq!(code, 424);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("BertForTokenClassification"),
        "{e}"
    );
    drop(s);
    let s = Server::start(&["-m", &model("pipe-qa")]);
    for kwargs in [json!({}), json!({"top_k": 3})] {
        let c = golden_cases("pipe-qa")
            .into_iter()
            .find(|c| c["kwargs"] == kwargs)
            .unwrap();
        let mut body = json!({"question": c["question"], "context": c["context"]});
        if let Some(k) = kwargs.get("top_k") {
            body["top_k"] = k.clone();
        }
        let (code, v) = s.post("/qa", &body);
        assert_eq!(code, 200, "{v}");
        same(&v, &c["output"], TOL);
    }
    let (code, e) = s.post("/qa", &json!({"question": "", "context": "c"}));
    assert_eq!(code, 422, "{e}");
    // Tokenize and decode serve every head.
    let (code, t) = s.post(
        "/tokenize",
        &json!({"inputs": "the cat", "add_special_tokens": false}),
    );
    assert_eq!(code, 200);
    let ids: Vec<u64> = t[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(t[0][0]["text"], "the");
    assert_eq!(
        (t[0][1]["start"].as_u64(), t[0][1]["stop"].as_u64()),
        (Some(4), Some(7))
    );
    let (code, d) = s.post("/decode", &json!({ "ids": ids }));
    assert_eq!((code, d), (200, json!(["the cat"])));
    let (_, info) = s.get("/info");
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["head"], "question-answering");
    assert_eq!(info["architecture"], "BertForQuestionAnswering");
}

#[test]
fn every_error_has_its_status_and_a_json_body() {
    let tiny = model("st-tiny-mean-lasttoken"); // max_seq_length 16
    let s = Server::start(&[
        "-m",
        &tiny,
        "--max-client-batch-size",
        "4",
        "--payload-limit",
        "2000",
    ]);
    let long = "word ".repeat(40);
    let cases = [
        ("/embed", r#"{"inputs": "#.to_string(), 422, "validation"),
        ("/embed", r#"{"inputs": 3}"#.to_string(), 422, "validation"),
        ("/embed", r#"{"input": "x"}"#.to_string(), 422, "validation"),
        ("/embed", r#"{"inputs": []}"#.to_string(), 422, "empty"),
        (
            "/embed",
            r#"{"inputs": "x", "normalize": "yes"}"#.to_string(),
            422,
            "validation",
        ),
        (
            "/v1/embeddings",
            r#"{"input": "x", "encoding_format": "hex"}"#.to_string(),
            422,
            "validation",
        ),
        (
            "/embed",
            json!({ "inputs": long }).to_string(),
            413,
            "validation",
        ),
        (
            "/embed",
            json!({ "inputs": ["a", "b", "c", "d", "e"] }).to_string(),
            413,
            "validation",
        ),
        (
            "/embed",
            json!({ "inputs": "x".repeat(3000) }).to_string(),
            413,
            "validation",
        ),
        (
            "/decode",
            r#"{"ids": [100000]}"#.to_string(),
            422,
            "validation",
        ),
        ("/predict", r#"{"inputs": "x"}"#.to_string(), 424, "backend"),
    ];
    for (path, body, code, kind) in cases {
        let (got, e) = s.raw("POST", path, &body, &[]);
        assert_eq!(got, code, "{path} {body}: {e}");
        assert_eq!(e["error_type"], kind, "{path} {body}: {e}");
        assert!(!e["error"].as_str().unwrap().is_empty());
    }
    // truncate: the long input fits.
    let (code, v) = s.post("/embed", &json!({ "inputs": long, "truncate": true }));
    assert_eq!(code, 200, "{v}");
    // The server still answers after all that.
    assert_eq!(s.get("/health").0, 200);
    let (_, m) = s.get("/metrics");
    for needle in [
        "bert_errors_total{code=\"413\"} 3",
        "bert_errors_total{code=\"422\"} 7",
        "bert_requests_total{route=\"/embed\",code=\"200\"} 1",
        "bert_queue_depth 0",
        "bert_batch_tokens_count",
        "bert_request_duration_seconds_bucket{route=\"/embed\"",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    assert_eq!(s.terminate().code(), Some(0));

    // --auto-truncate, and the API key.
    let s = Server::start(&["-m", &tiny, "--auto-truncate", "--api-key", "sesame"]);
    let body = json!({ "inputs": long }).to_string();
    let (code, e) = s.raw("POST", "/embed", &body, &[]);
    assert_eq!(
        (code, e["error_type"].as_str()),
        (401, Some("unauthorized"))
    );
    let (code, _) = s.raw("POST", "/embed", &body, &["Authorization: Bearer nope"]);
    assert_eq!(code, 401);
    assert_eq!(s.get("/health").0, 401);
    let (code, v) = s.raw("POST", "/embed", &body, &["Authorization: Bearer sesame"]);
    assert_eq!(code, 200, "{v}");
    let (code, _) = s.raw(
        "POST",
        "/embed",
        &json!({ "inputs": long, "truncate": false }).to_string(),
        &["Authorization: Bearer sesame"],
    );
    assert_eq!(code, 413);
}

/// `n` requests at once, each on its own thread: (status, body) in order.
fn concurrently(s: &Server, reqs: Vec<(&'static str, Value)>) -> Vec<(u16, Value)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = reqs
            .iter()
            .map(|(path, body)| scope.spawn(move || s.post(path, body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_requests_mixing_routes_are_batched_and_each_answered_right() {
    let s = Server::start(&["--auto-truncate"]);
    let (texts, want) = st_golden();
    let mut reqs = Vec::new();
    for i in 0..48 {
        let t = i % texts.len();
        reqs.push(match i % 4 {
            0 => ("/embed", json!({ "inputs": texts[t] })),
            1 => ("/v1/embeddings", json!({ "input": [texts[t]] })),
            2 => ("/embed", json!({ "inputs": [texts[t], long_text(120)] })),
            _ => ("/tokenize", json!({ "inputs": texts[t] })),
        });
    }
    reqs.push(("/predict", json!({ "inputs": "x" })));
    let answers = concurrently(&s, reqs.clone());
    for (i, ((path, _), (code, v))) in reqs.iter().zip(&answers).enumerate() {
        let t = i % texts.len();
        match *path {
            "/embed" => {
                assert_eq!(*code, 200, "{v}");
                assert_vectors_close(&vectors(v)[..1], &want[t..=t], 1e-5);
            }
            "/v1/embeddings" => {
                assert_eq!(*code, 200, "{v}");
                assert_vectors_close(
                    &vectors(&json!([v["data"][0]["embedding"]])),
                    &want[t..=t],
                    1e-5,
                );
            }
            "/tokenize" => assert_eq!(*code, 200),
            _ => assert_eq!(*code, 424),
        }
    }
    // Dynamic batching: fewer batches than embedding requests.
    let (_, m) = s.get("/metrics");
    let count = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{m}"))
            .parse()
            .unwrap()
    };
    let batches = count("bert_batch_requests_count");
    assert!(
        batches < 36,
        "{batches} batches for 36 embedding requests:\n{m}"
    );
    assert_eq!(s.terminate().code(), Some(0));
}

#[test]
fn past_max_concurrent_requests_the_server_answers_429() {
    let s = Server::start(&["--max-concurrent-requests", "2"]);
    let heavy = json!({ "inputs": vec![long_text(200); 32] });
    let answers = concurrently(&s, vec![("/embed", heavy); 8]);
    let codes: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert!(codes.iter().all(|&c| c == 200 || c == 429), "{codes:?}");
    assert!(codes.contains(&429) && codes.contains(&200), "{codes:?}");
    for (code, v) in &answers {
        if *code == 429 {
            assert_eq!(v["error_type"], "overloaded");
        }
    }
}

#[cfg(unix)]
#[test]
fn sigterm_answers_every_request_in_flight_then_exits_0() {
    let s = Server::start(&[]);
    let addr = s.addr.clone();
    let body = json!({ "inputs": vec![long_text(120); 16] }).to_string();
    let (started, wait_started) = mpsc::channel();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, body, started) = (addr.clone(), body.clone(), started.clone());
            std::thread::spawn(move || {
                started.send(()).unwrap();
                request(&addr, "POST", "/embed", &body, &[])
            })
        })
        .collect();
    for _ in 0..8 {
        wait_started.recv().unwrap();
    }
    // Every request is read by the server (in flight, with this /metrics one) before the signal.
    let in_flight = (0..2000).any(|_| {
        let (_, m) = s.get("/metrics");
        std::thread::sleep(Duration::from_millis(2));
        m.contains("bert_requests_in_flight 9\n")
    });
    assert!(in_flight, "the 8 requests were never in flight together");
    let status = s.terminate();
    for c in clients {
        let (code, body) = c.join().unwrap();
        assert_eq!(code, 200, "{body}");
        assert_eq!(vectors(&serde_json::from_str(&body).unwrap()).len(), 16);
    }
    assert_eq!(status.code(), Some(0));
}

/// The family through the server: a DistilBERT classifier (pairs without token types) and an
/// XLM-R token classifier answer as transformers' pipelines; `/info` names the family's class.
#[test]
fn family_checkpoints_are_served() {
    let family = root().join("fixtures/family");
    let d = family.join("distilbert/seqcls");
    let s = Server::start(&["-m", d.to_str().unwrap()]);
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(family.join("distilbert/pipe-seqcls.json")).unwrap(),
    )
    .unwrap();
    let cases: Vec<&Value> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kwargs"] == json!({"top_k": null}))
        .collect();
    let inputs: Vec<Value> = cases
        .iter()
        .map(|c| match c.get("text_pair") {
            Some(p) => json!([c["text"], p]),
            None => json!([c["text"]]),
        })
        .collect();
    let (code, batch) = s.post("/predict", &json!({ "inputs": inputs }));
    assert_eq!(code, 200, "{batch}");
    for (ours, c) in batch.as_array().unwrap().iter().zip(&cases) {
        same(ours, &c["output"], TOL);
    }
    let (code, info) = s.get("/info");
    assert_eq!(code, 200);
    assert!(
        info.contains("DistilBertForSequenceClassification"),
        "{info}"
    );
    drop(s);
    let d = family.join("xlm-roberta/tokcls");
    let s = Server::start(&["-m", d.to_str().unwrap()]);
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(family.join("xlm-roberta/pipe-tokcls.json")).unwrap(),
    )
    .unwrap();
    let c = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kwargs"] == json!({"aggregation_strategy": "simple"}))
        .unwrap();
    let (code, ours) = s.post(
        "/ner",
        &json!({"inputs": c["text"], "aggregation_strategy": "simple"}),
    );
    assert_eq!(code, 200, "{ours}");
    same(&ours, &c["output"], TOL);
}
