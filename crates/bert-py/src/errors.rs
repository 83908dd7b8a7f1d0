//! Rust errors and panics as Python exceptions of the fitting class, with the engine's message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyError, PyMemoryError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::PyErr;

/// The exception a `bert::Error` becomes:
/// - a file or model that is not there: `FileNotFoundError` (an `OSError`, as transformers raises);
/// - any other I/O failure: `OSError`;
/// - a tensor or task head missing from a checkpoint: `KeyError`;
/// - everything else (a malformed file, a bad config, bad inputs): `ValueError`.
pub fn to_py(e: bert::Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        bert::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        bert::Error::Io { .. } => PyOSError::new_err(msg),
        bert::Error::MissingFile { .. } | bert::Error::Hub { .. } => {
            PyFileNotFoundError::new_err(msg)
        }
        bert::Error::MissingTensor { .. } | bert::Error::MissingHead { .. } => {
            PyKeyError::new_err(msg)
        }
        _ => PyValueError::new_err(msg),
    }
}

/// `Result<T, bert::Error>` to `PyResult<T>`.
pub trait IntoPy<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> IntoPy<T> for bert::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}

/// Runs `f`, turning a panic (an engine bug) into `RuntimeError` instead of letting it cross into
/// Python as pyo3's `PanicException`, which `except Exception` does not catch.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> pyo3::PyResult<T>) -> pyo3::PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in {what} (a bug in bert-rs, please report it): {detail}"
            )))
        }
    }
}

/// `MemoryError` when `bytes` of output would not fit in the memory the system has available
/// (Rust aborts the process on a failed allocation; Python code expects an exception).
pub fn check_memory(bytes: u64, what: &str) -> pyo3::PyResult<()> {
    match available_memory() {
        Some(avail) if bytes > avail => Err(PyMemoryError::new_err(format!(
            "{what} needs {:.1} GiB but only {:.1} GiB of memory is available; use a smaller batch \
             or leave out output_hidden_states / output_attentions",
            bytes as f64 / (1u64 << 30) as f64,
            avail as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

/// `MemAvailable` of /proc/meminfo, in bytes (None where it cannot be read).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
