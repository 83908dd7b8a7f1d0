//! `bert_rs._native`: the Python extension module of the `bert` crate. Conversions only — numpy
//! in and out, errors to exceptions, the GIL released around every engine call, each model on its
//! own thread pool. The Python package above it (python/bert_rs) gives transformers' and
//! sentence-transformers' names.

mod errors;
mod model;
mod pipelines;
mod pool;
mod sentence;
mod tokenizer;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tokenizer::Tokenizer>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<sentence::Embedder>()?;
    m.add_class::<sentence::Reranker>()?;
    m.add_class::<pipelines::Pipeline>()?;
    m.add_function(wrap_pyfunction!(default_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::evaluate, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The thread count a model gets without `num_threads`: `RAYON_NUM_THREADS`, else
/// `OMP_NUM_THREADS`, else the CPUs this process may run on.
#[pyfunction]
fn default_num_threads() -> usize {
    pool::default_threads()
}
