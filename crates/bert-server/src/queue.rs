//! The queue between the HTTP handlers and the model thread (text-embeddings-inference's shape):
//! handlers send jobs through a channel; one thread owns the [`Backend`] and, each time it is
//! free, takes every queued job that fits the token budget and runs them as one batch. It never
//! waits for more work than is already queued, so a lone request runs at once, and under load
//! batches grow by themselves.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bert::pipelines::{
    AggregationStrategy, Answer, Entity, QuestionAnsweringOptions, TokenClassificationOptions,
};
use bert::Encoding;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, EmbedWant, Embedded};
use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;

/// The work of one request.
pub enum Work {
    /// Embeddings of tokenized texts, each as `want` says.
    Embed {
        encodings: Vec<Encoding>,
        want: EmbedWant,
    },
    /// Classifier logits of tokenized texts or pairs.
    Logits { encodings: Vec<Encoding> },
    /// Entities of texts.
    Ner {
        texts: Vec<String>,
        aggregation: AggregationStrategy,
    },
    /// Answers to (question, context) pairs.
    Qa {
        pairs: Vec<(String, String)>,
        top_k: usize,
    },
    /// A one-token forward pass.
    Health,
}

/// The answer to one [`Work`], in the same variant.
pub enum Output {
    Embed(Vec<Embedded>),
    Logits(Vec<Vec<f32>>),
    Ner(Vec<Vec<Entity>>),
    Qa(Vec<Vec<Answer>>),
    Health,
}

struct Job {
    work: Work,
    /// Real tokens (an estimate for NER and QA: the truncated length of each text).
    tokens: usize,
    /// Inputs (rows of the padded batch).
    inputs: usize,
    /// Longest input, in tokens.
    longest: usize,
    queued: Instant,
    reply: oneshot::Sender<Result<Output, ApiError>>,
}

impl Job {
    /// Whether two jobs can share a forward pass (same kind, same options).
    fn compatible(&self, other: &Job) -> bool {
        match (&self.work, &other.work) {
            (Work::Embed { .. }, Work::Embed { .. })
            | (Work::Logits { .. }, Work::Logits { .. }) => true,
            (Work::Ner { aggregation: a, .. }, Work::Ner { aggregation: b, .. }) => a == b,
            (Work::Qa { top_k: a, .. }, Work::Qa { top_k: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// The handlers' side of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    metrics: Arc<Metrics>,
}

/// How batches are formed.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    /// Real tokens per batch (a single larger request still runs, alone).
    pub max_batch_tokens: usize,
}

impl Queue {
    /// Starts the model thread, which owns `backend` until every [`Queue`] handle is dropped.
    pub fn start(
        backend: Backend,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Queue, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let m = metrics.clone();
        let handle = std::thread::Builder::new()
            .name("bert-model".into())
            .spawn(move || model_loop(backend, rx, limits, &m))?;
        Ok((Queue { tx, metrics }, handle))
    }

    /// Queues `work` and waits for its answer.
    pub async fn run(&self, work: Work) -> Result<Output, ApiError> {
        let (tokens, inputs, longest) = size(&work);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            work,
            tokens,
            inputs,
            longest,
            queued: Instant::now(),
            reply,
        };
        self.metrics.queue_add(1);
        if self.tx.send(job).is_err() {
            self.metrics.queue_add(-1);
            return Err(gone());
        }
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> ApiError {
    ApiError::new(ErrorKind::Unhealthy, "the model thread has stopped")
}

/// (real tokens, inputs, longest input) of a job.
fn size(work: &Work) -> (usize, usize, usize) {
    match work {
        Work::Embed { encodings, .. } | Work::Logits { encodings } => {
            let lens = encodings.iter().map(|e| e.ids.len());
            (lens.clone().sum(), encodings.len(), lens.max().unwrap_or(0))
        }
        // Characters / 4 stands in for tokens: the pipelines tokenize (and window) themselves.
        Work::Ner { texts, .. } => {
            let lens = texts.iter().map(|t| t.len() / 4 + 2);
            (lens.clone().sum(), texts.len(), lens.max().unwrap_or(0))
        }
        Work::Qa { pairs, .. } => {
            let lens = pairs.iter().map(|(q, c)| (q.len() + c.len()) / 4 + 3);
            (lens.clone().sum(), pairs.len(), lens.max().unwrap_or(0))
        }
        Work::Health => (1, 1, 1),
    }
}

/// The model thread: take a batch, run it, answer, until the handlers are gone.
fn model_loop(
    backend: Backend,
    mut rx: mpsc::UnboundedReceiver<Job>,
    limits: BatchLimits,
    metrics: &Metrics,
) {
    let mut held: Option<Job> = None;
    loop {
        let first = match held.take() {
            Some(j) => j,
            None => match rx.blocking_recv() {
                Some(j) => {
                    metrics.queue_add(-1);
                    j
                }
                None => return,
            },
        };
        let mut tokens = first.tokens;
        let mut rows = first.inputs;
        let mut longest = first.longest;
        let mut batch = vec![first];
        // Take what is already queued, no waiting: batches fill under load only.
        while let Ok(next) = rx.try_recv() {
            metrics.queue_add(-1);
            let fits = next.compatible(&batch[0])
                && tokens + next.tokens <= limits.max_batch_tokens
                // The padded outputs are (rows, longest, H): bound them too.
                && (rows + next.inputs) * longest.max(next.longest) <= 2 * limits.max_batch_tokens;
            if !fits {
                held = Some(next);
                break;
            }
            tokens += next.tokens;
            rows += next.inputs;
            longest = longest.max(next.longest);
            batch.push(next);
        }
        let start = Instant::now();
        for job in &batch {
            metrics.queue_time(start.duration_since(job.queued));
        }
        metrics.batch(batch.len(), rows, tokens);
        run_batch(&backend, batch);
        metrics.inference_time(start.elapsed());
    }
}

/// Runs a batch and answers each job. When the batch fails, each job is run alone, so that one
/// bad input fails only its own request; a panic fails the jobs it hit, never the thread.
fn run_batch(backend: &Backend, batch: Vec<Job>) {
    if batch.len() > 1 {
        let works: Vec<&Work> = batch.iter().map(|j| &j.work).collect();
        if let Ok(outputs) = guarded(|| run_works(backend, &works)) {
            for (job, out) in batch.into_iter().zip(outputs) {
                let _ = job.reply.send(Ok(out));
            }
            return;
        }
    }
    for job in batch {
        let result = guarded(|| run_works(backend, &[&job.work])).map(|mut v| v.remove(0));
        // The client may have gone away: nothing to do then.
        let _ = job.reply.send(result);
    }
}

/// `f()`, with a panic turned into a backend error.
fn guarded<T>(f: impl FnOnce() -> Result<T, ApiError>) -> Result<T, ApiError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %what, "the model panicked on a batch");
        Err(ApiError::new(
            ErrorKind::Backend,
            format!("the model failed on this input: {what}"),
        ))
    })
}

/// One forward pass over the inputs of compatible works; one output per work.
fn run_works(backend: &Backend, works: &[&Work]) -> Result<Vec<Output>, ApiError> {
    match works[0] {
        Work::Embed { .. } => {
            let mut encodings = Vec::new();
            let mut want = Vec::new();
            for w in works {
                if let Work::Embed {
                    encodings: e,
                    want: k,
                } = w
                {
                    encodings.extend(e.iter().cloned());
                    want.extend(std::iter::repeat_n(*k, e.len()));
                }
            }
            let mut all = backend.embed(&encodings, &want)?.into_iter();
            Ok(works
                .iter()
                .map(|w| Output::Embed(all.by_ref().take(count(w)).collect()))
                .collect())
        }
        Work::Logits { .. } => {
            let encodings: Vec<Encoding> = works
                .iter()
                .flat_map(|w| match w {
                    Work::Logits { encodings } => encodings.clone(),
                    _ => Vec::new(),
                })
                .collect();
            let mut all = backend.logits(&encodings)?.into_iter();
            Ok(works
                .iter()
                .map(|w| Output::Logits(all.by_ref().take(count(w)).collect()))
                .collect())
        }
        Work::Ner { aggregation, .. } => {
            let texts: Vec<&str> = works
                .iter()
                .flat_map(|w| match w {
                    Work::Ner { texts, .. } => texts.iter().map(String::as_str).collect(),
                    _ => Vec::new(),
                })
                .collect();
            let opts = TokenClassificationOptions {
                aggregation_strategy: *aggregation,
                ..Default::default()
            };
            let mut all = backend.entities(&texts, &opts)?.into_iter();
            Ok(works
                .iter()
                .map(|w| Output::Ner(all.by_ref().take(count(w)).collect()))
                .collect())
        }
        Work::Qa { top_k, .. } => {
            let pairs: Vec<(&str, &str)> = works
                .iter()
                .flat_map(|w| match w {
                    Work::Qa { pairs, .. } => pairs
                        .iter()
                        .map(|(q, c)| (q.as_str(), c.as_str()))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect();
            let opts = QuestionAnsweringOptions {
                top_k: *top_k,
                ..Default::default()
            };
            let mut all = backend.answers(&pairs, &opts)?.into_iter();
            Ok(works
                .iter()
                .map(|w| Output::Qa(all.by_ref().take(count(w)).collect()))
                .collect())
        }
        Work::Health => {
            backend.health()?;
            Ok(works.iter().map(|_| Output::Health).collect())
        }
    }
}

/// Inputs of a work.
fn count(work: &Work) -> usize {
    match work {
        Work::Embed { encodings, .. } | Work::Logits { encodings } => encodings.len(),
        Work::Ner { texts, .. } => texts.len(),
        Work::Qa { pairs, .. } => pairs.len(),
        Work::Health => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models")
            .join(name)
    }

    fn start(name: &str) -> (Queue, Arc<Metrics>) {
        let (backend, _) = Backend::load(&fixture(name)).unwrap();
        let metrics = Arc::new(Metrics::default());
        let limits = BatchLimits {
            max_batch_tokens: 16384,
        };
        let (queue, _thread) = Queue::start(backend, limits, metrics.clone()).unwrap();
        (queue, metrics)
    }

    fn qa(question: &str) -> Work {
        Work::Qa {
            pairs: vec![(question.into(), "the cat sat on the mat.".into())],
            top_k: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_input_fails_only_its_own_request() {
        let (queue, _) = start("pipe-qa");
        // Queued together, they may share a batch: the empty question must not fail the others.
        let (a, b, c) = tokio::join!(
            queue.run(qa("where is the cat?")),
            queue.run(qa("")),
            queue.run(qa("where is the cat?")),
        );
        let answer = |o: Result<Output, ApiError>| match o {
            Ok(Output::Qa(v)) => v[0][0].answer.clone(),
            _ => panic!("no answer"),
        };
        let (a, c) = (answer(a), answer(c));
        assert_eq!(a, c);
        assert_eq!(b.err().map(|e| e.kind), Some(ErrorKind::Unprocessable));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_embeddings_equal_single_ones() {
        let (queue, metrics) = start("st-tiny-mean-lasttoken");
        let (backend, info) = Backend::load(&fixture("st-tiny-mean-lasttoken")).unwrap();
        let texts = [
            "hello my dog is cute",
            "the cat",
            "",
            "how old is the brownest fox",
        ];
        let enc = |t: &str| info.tokenizer.tokenize(t).unwrap();
        let want = EmbedWant::Pooled { normalize: true };
        let alone: Vec<Vec<Embedded>> = texts
            .iter()
            .map(|t| backend.embed(&[enc(t)], &[want]).unwrap())
            .collect();
        let jobs = texts.map(|t| {
            queue.run(Work::Embed {
                encodings: vec![enc(t)],
                want,
            })
        });
        let outs = futures_join(jobs).await;
        for (out, alone) in outs.into_iter().zip(alone) {
            let (Ok(Output::Embed(v)), Embedded::Pooled(w)) = (out, &alone[0]) else {
                panic!("no embedding")
            };
            let Embedded::Pooled(v) = &v[0] else {
                panic!("not pooled")
            };
            for (x, y) in v.iter().zip(w) {
                assert!((x - y).abs() <= 1e-6, "{x} vs {y}");
            }
        }
        assert!(metrics.render().contains("bert_queue_depth 0"));
    }

    /// Awaits four futures at once.
    async fn futures_join<F: std::future::Future>(f: [F; 4]) -> Vec<F::Output> {
        let [a, b, c, d] = f;
        let (a, b, c, d) = tokio::join!(a, b, c, d);
        vec![a, b, c, d]
    }
}
