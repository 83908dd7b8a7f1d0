//! Each model's own thread pool: sized once, safe across `fork`, shared by every Python thread
//! that calls the model.
//!
//! The engine's kernels use whatever rayon pool they run in; running every call inside
//! [`Pool::install`] keeps them on the model's pool (never rayon's global one), so two models in one
//! process, or a Ray worker given one CPU, do not oversubscribe the cores.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::PyResult;

/// How many threads a model's pool gets when `num_threads` is not given: `RAYON_NUM_THREADS`,
/// else `OMP_NUM_THREADS` (what Ray sets for a worker from its `num_cpus`), else the CPUs this
/// process may run on (its affinity mask and cgroup quota, as `available_parallelism` reads them).
pub fn default_threads() -> usize {
    ["RAYON_NUM_THREADS", "OMP_NUM_THREADS"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find_map(|s| s.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// A rayon pool of a fixed size, built on first use and again in a forked child: a child inherits
/// the pool's memory but none of its threads, so a job sent to the parent's pool would wait
/// forever (the hang `tokenizers` guards against with its atfork hook).
pub struct Pool {
    threads: usize,
    /// The pool and the process that built it.
    inner: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>>,
}

impl Pool {
    pub fn new(threads: usize) -> Self {
        Pool {
            threads: threads.max(1),
            inner: Mutex::new(None),
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on this pool (the calling thread waits; the GIL should be released around it).
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> PyResult<R> {
        Ok(self.get()?.install(f))
    }

    fn get(&self) -> PyResult<Arc<rayon::ThreadPool>> {
        let pid = std::process::id();
        // Held only while a pool is looked up or built (never while it runs a job), so a fork
        // lands inside it only if it happens during one of those few microseconds.
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some((owner, pool)) if *owner == pid => return Ok(Arc::clone(pool)),
            Some(_) => {
                // The parent's pool: its threads do not exist here, and dropping it would signal
                // them; leak it instead (one small struct per fork).
                std::mem::forget(guard.take());
            }
            None => {}
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("bert-rs-{i}"))
            .build()
            .map(Arc::new)
            .map_err(|e| {
                PyRuntimeError::new_err(format!("cannot start {} threads: {e}", self.threads))
            })?;
        *guard = Some((pid, Arc::clone(&pool)));
        Ok(pool)
    }
}
