//! `train` / `evaluate`: the `bert train` / `bert evaluate` jobs (`bert::train::run_train`,
//! `run_evaluate`) from Python.
//!
//! The job runs on a worker thread inside its own pool while the calling thread keeps the GIL
//! released, wakes every 100 ms to check for Ctrl-C and prints progress; a KeyboardInterrupt
//! stops the job at the next step and is raised once the worker has stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::time::Duration;

use bert::train::optim::ScheduleKind;
use bert::train::{run_evaluate, run_train, Columns, EvalJob, JobEvent, JobTask, TrainJob};
use bert::ProblemType;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pythonize::pythonize;

use crate::errors::{guarded, IntoPy};
use crate::model::{parse_dtype, threads};
use crate::pool::Pool;

fn task(name: &str) -> PyResult<JobTask> {
    match name {
        "sequence-classification" | "text-classification" => Ok(JobTask::SequenceClassification),
        "token-classification" | "ner" => Ok(JobTask::TokenClassification),
        _ => Err(PyValueError::new_err(format!(
            "task `{name}` is not sequence-classification or token-classification"
        ))),
    }
}

fn schedule(name: &str) -> PyResult<ScheduleKind> {
    match name {
        "linear" => Ok(ScheduleKind::Linear),
        "cosine" => Ok(ScheduleKind::Cosine),
        "constant" | "constant_with_warmup" => Ok(ScheduleKind::Constant),
        _ => Err(PyValueError::new_err(format!(
            "lr_scheduler_type `{name}` is not linear, cosine or constant"
        ))),
    }
}

fn problem(name: &str) -> PyResult<ProblemType> {
    match name {
        "regression" => Ok(ProblemType::Regression),
        "single_label_classification" => Ok(ProblemType::SingleLabelClassification),
        "multi_label_classification" => Ok(ProblemType::MultiLabelClassification),
        _ => Err(PyValueError::new_err(format!(
            "problem_type `{name}` is not regression, single_label_classification or \
             multi_label_classification"
        ))),
    }
}

/// A progress line, as the worker reports it to the calling thread.
struct Progress {
    step: u64,
    max_steps: u64,
    epoch: f64,
    loss: f32,
    learning_rate: f32,
    tokens_per_second: f64,
}

/// Fine-tunes `model` on `train_file` as `bert train` does (same options, same defaults, same
/// files written to `output_dir`) and returns the eval_results.json object.
#[pyfunction]
#[pyo3(signature = (train_file, output_dir, *, task_name="sequence-classification",
    model=None, eval_file=None, epochs=3, learning_rate=5e-5, batch_size=32, max_length=128,
    warmup_ratio=0.0, warmup_steps=None, weight_decay=0.0, grad_accum=1, max_grad_norm=1.0,
    lr_scheduler="linear", seed=42, save_steps=None, resume=None, problem_type=None,
    text_column=None, text_pair_column=None, label_column=None, log=None, num_threads=None,
    logging_steps=50, quiet=false, bf16=false))]
#[allow(clippy::too_many_arguments)]
pub fn train<'py>(
    py: Python<'py>,
    train_file: PathBuf,
    output_dir: PathBuf,
    task_name: &str,
    model: Option<String>,
    eval_file: Option<PathBuf>,
    epochs: usize,
    learning_rate: f32,
    batch_size: usize,
    max_length: usize,
    warmup_ratio: f64,
    warmup_steps: Option<u64>,
    weight_decay: f32,
    grad_accum: usize,
    max_grad_norm: f32,
    lr_scheduler: &str,
    seed: u64,
    save_steps: Option<u64>,
    resume: Option<PathBuf>,
    problem_type: Option<&str>,
    text_column: Option<String>,
    text_pair_column: Option<String>,
    label_column: Option<String>,
    log: Option<PathBuf>,
    num_threads: Option<usize>,
    logging_steps: u64,
    quiet: bool,
    bf16: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let defaults = TrainJob::default();
    let job = TrainJob {
        task: task(task_name)?,
        model: model.unwrap_or(defaults.model),
        train: train_file,
        eval: eval_file,
        output: output_dir,
        epochs,
        learning_rate,
        batch_size,
        max_length,
        warmup_ratio,
        warmup_steps,
        weight_decay,
        grad_accum,
        max_grad_norm,
        lr_scheduler: schedule(lr_scheduler)?,
        seed,
        save_steps,
        bf16,
        resume,
        problem_type: problem_type.map(problem).transpose()?,
        columns: Columns {
            text: text_column,
            text_pair: text_pair_column,
            label: label_column,
        },
        log,
    };
    let pool = Pool::new(threads(num_threads)?);
    let result = py.detach(|| {
        guarded("training", || {
            run_interruptible(&job, &pool, logging_steps, quiet)
        })
    })?;
    pythonize(py, &result).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn run_interruptible(
    job: &TrainJob,
    pool: &Pool,
    logging_steps: u64,
    quiet: bool,
) -> PyResult<serde_json::Value> {
    let stop = AtomicBool::new(false);
    let (tx, rx) = channel::<Progress>();
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let tx = tx;
            let mut max_steps = 0;
            let mut events = |e: JobEvent<'_>| -> bert::Result<()> {
                match e {
                    JobEvent::Started { max_steps: m, .. } => max_steps = m,
                    JobEvent::Step {
                        log,
                        tokens_per_second,
                    } => {
                        let _ = tx.send(Progress {
                            step: log.step,
                            max_steps,
                            epoch: log.epoch,
                            loss: log.loss,
                            learning_rate: log.learning_rate,
                            tokens_per_second,
                        });
                    }
                    _ => {}
                }
                if stop.load(Ordering::Relaxed) {
                    return Err(bert::Error::Input("training interrupted".into()));
                }
                Ok(())
            };
            pool.install(|| run_train(job, &mut events))
        });
        let mut interrupted = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(p) => {
                    let every = logging_steps.max(1);
                    if !quiet && (p.step % every == 0 || p.step == p.max_steps) {
                        eprintln!(
                            "step {}/{} epoch {:.2} loss {:.4} lr {:.2e} {:.0} tokens/s",
                            p.step,
                            p.max_steps,
                            p.epoch,
                            p.loss,
                            p.learning_rate,
                            p.tokens_per_second
                        );
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break, // the worker is done
            }
            if interrupted.is_none() {
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    stop.store(true, Ordering::Relaxed);
                    interrupted = Some(e);
                }
            }
        }
        let result = worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match interrupted {
            Some(e) => Err(e),
            None => result?.py(),
        }
    })
}

/// Scores a fine-tuned sequence / token classifier on a labelled file as `bert evaluate` does.
#[pyfunction]
#[pyo3(signature = (model, data_file, *, batch_size=32, max_length=128, dtype="float32",
    text_column=None, text_pair_column=None, label_column=None, num_threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    model: String,
    data_file: PathBuf,
    batch_size: usize,
    max_length: usize,
    dtype: &str,
    text_column: Option<String>,
    text_pair_column: Option<String>,
    label_column: Option<String>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let job = EvalJob {
        model,
        data: data_file,
        batch_size,
        max_length,
        columns: Columns {
            text: text_column,
            text_pair: text_pair_column,
            label: label_column,
        },
        dtype: parse_dtype(dtype)?,
    };
    let pool = Pool::new(threads(num_threads)?);
    let result =
        py.detach(|| guarded("evaluation", || pool.install(|| run_evaluate(&job))?.py()))?;
    pythonize(py, &result).map_err(|e| PyValueError::new_err(e.to_string()))
}
