//! `Model`: `BertModel` or any `BertFor*` head, numpy in, numpy out. Outputs are handed to numpy
//! without a copy: each `ndarray` the engine returns becomes the array's buffer.

use bert::architecture::{self, Class};
use bert::heads::AutoModel;
use bert::ndarray::{Array2, Array3, Array4};
use bert::{BertInputs, Dtype, ForwardOptions, LoadOptions};
use numpy::{IntoPyArray, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::{check_memory, guarded, IntoPy};
use crate::pool::{default_threads, Pool};

/// The dtype named as the Python API names it (`float32`, `float16`, `bfloat16`, `int8`) or as the
/// CLI does.
pub fn parse_dtype(name: &str) -> PyResult<Dtype> {
    let n = match name.trim().to_ascii_lowercase().as_str() {
        "float32" | "fp32" | "f32" => "f32",
        "float16" | "fp16" | "f16" | "half" => "f16",
        "bfloat16" | "bf16" => "bf16",
        "int8" | "qint8" => "int8",
        other => {
            return Err(PyValueError::new_err(format!(
                "dtype `{other}` is not one of float32, float16, bfloat16, int8"
            )))
        }
    };
    Dtype::parse(n).py()
}

/// Threads for a pool: `num_threads`, else the environment ([`default_threads`]).
pub fn threads(num_threads: Option<usize>) -> PyResult<usize> {
    match num_threads {
        Some(0) => Err(PyValueError::new_err("num_threads must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default_threads()),
    }
}

/// Resolves `model` (a directory or hub id), then runs `load` on a new pool of `num_threads` (as
/// the Python API names them) with the GIL released: loading packs every weight in parallel.
/// Returns what `load` built, the pool and the directory.
pub fn load_on_pool<T: Send>(
    py: Python<'_>,
    model: &str,
    dtype: &str,
    num_threads: Option<usize>,
    load: impl FnOnce(&str, &LoadOptions) -> bert::Result<T> + Send,
) -> PyResult<(T, Pool, String)> {
    let opts = LoadOptions::dtype(parse_dtype(dtype)?);
    let pool = Pool::new(threads(num_threads)?);
    py.detach(|| {
        guarded("loading the model", || {
            let dir = bert::hub::resolve(model, bert::hub::Need::Model).py()?;
            let dir = dir.display().to_string();
            let loaded = pool.install(|| load(&dir, &opts))?.py()?;
            Ok((loaded, pool, dir))
        })
    })
}

#[pyclass(module = "bert_rs._native", frozen)]
pub struct Model {
    model: AutoModel,
    pool: Pool,
    dir: String,
}

/// What one forward pass gives back, before conversion to numpy (named as transformers names it).
struct Output {
    tensors: Vec<(&'static str, Tensor)>,
    hidden_states: Option<Vec<Array3<f32>>>,
    attentions: Option<Vec<Array4<f32>>>,
}

enum Tensor {
    D2(Array2<f32>),
    D3(Array3<f32>),
}

/// The inputs of one call, copied out of numpy while the GIL is held.
struct Call {
    inputs: BertInputs,
    opts: ForwardOptions,
    num_choices: usize,
}

#[pymethods]
impl Model {
    /// Loads `model` (a directory or hub id) as `class` with its encoder's Linear layers in `dtype`.
    #[new]
    #[pyo3(signature = (model, class_name="AutoModel", dtype="float32", num_threads=None))]
    fn new(
        py: Python<'_>,
        model: String,
        class_name: &str,
        dtype: &str,
        num_threads: Option<usize>,
    ) -> PyResult<Self> {
        // `AutoModel` picks the class config.json names; `AutoModelForX` the family's X class;
        // any other name is a transformers class (`RobertaForMaskedLM`).
        let auto = match class_name {
            "AutoModel" => None,
            "AutoModelForSequenceClassification" => Some(Class::SequenceClassification),
            "AutoModelForTokenClassification" => Some(Class::TokenClassification),
            "AutoModelForQuestionAnswering" => Some(Class::QuestionAnswering),
            "AutoModelForMultipleChoice" => Some(Class::MultipleChoice),
            "AutoModelForMaskedLM" => Some(Class::MaskedLM),
            "AutoModelForNextSentencePrediction" => Some(Class::NextSentencePrediction),
            "AutoModelForPreTraining" => Some(Class::PreTraining),
            "AutoModelForBase" => Some(Class::Model),
            class if architecture::find_class(class).is_some() => None,
            class => {
                return Err(PyValueError::new_err(format!(
                    "class `{class}` is not AutoModel or one of {}",
                    architecture::class_names().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        let (model, pool, dir) =
            load_on_pool(py, &model, dtype, num_threads, |dir, opts| {
                match (class_name, auto) {
                    ("AutoModel", _) => AutoModel::from_pretrained_with(dir, opts),
                    (_, Some(class)) => AutoModel::from_pretrained_for(class, dir, opts),
                    (class, None) => AutoModel::from_pretrained_as(class, dir, opts),
                }
            })?;
        Ok(Model { model, pool, dir })
    }

    /// The directory the checkpoint was read from.
    #[getter]
    fn directory(&self) -> String {
        self.dir.clone()
    }

    /// The transformers class of the loaded model.
    #[getter]
    fn architecture(&self) -> &'static str {
        self.model.architecture()
    }

    #[getter]
    fn num_threads(&self) -> usize {
        self.pool.threads()
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        match self.model.bert().dtype() {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::Bf16 => "bfloat16",
            Dtype::Int8 => "int8",
        }
    }

    /// (layers, heads, hidden size) of the encoder.
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let c = self.model.bert().config();
        (c.num_hidden_layers, c.num_attention_heads, c.hidden_size)
    }

    #[getter]
    fn has_pooler(&self) -> bool {
        self.model.bert().has_pooler()
    }

    /// Bytes of weights held in memory (see `BertModel::memory_bytes`).
    #[getter]
    fn memory_bytes(&self) -> usize {
        self.model.bert().memory_bytes()
    }

    /// One forward pass. Every input is (B, T) int64 (`head_mask` (L, NH) float32); for
    /// `BertForMultipleChoice` the rows are B·C choices, `num_choices` = C. Returns a dict of
    /// transformers' output names; `hidden_states` / `attentions` are tuples when asked for.
    #[pyo3(signature = (input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                        head_mask=None, output_hidden_states=false, output_attentions=false,
                        num_choices=1))]
    #[allow(clippy::too_many_arguments)]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        token_type_ids: Option<PyReadonlyArray2<'py, i64>>,
        position_ids: Option<PyReadonlyArray2<'py, i64>>,
        head_mask: Option<PyReadonlyArray2<'py, f32>>,
        output_hidden_states: bool,
        output_attentions: bool,
        num_choices: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let ids = input_ids.as_array().to_owned();
        let mut inputs = BertInputs::from_ids(ids);
        if let Some(m) = attention_mask {
            inputs.attention_mask = m.as_array().to_owned();
        }
        if let Some(t) = token_type_ids {
            inputs.token_type_ids = t.as_array().to_owned();
        }
        let call = Call {
            inputs,
            opts: ForwardOptions {
                output_hidden_states,
                output_attentions,
                head_mask: head_mask.map(|m| m.as_array().to_owned()),
                position_ids: position_ids.map(|p| p.as_array().to_owned()),
            },
            num_choices,
        };
        self.check_output_size(&call)?;
        let out = py.detach(|| guarded("the forward pass", || self.run(call)))?;
        to_dict(py, out)
    }
}

impl Model {
    /// Refuses, with `MemoryError`, outputs larger than the memory available.
    fn check_output_size(&self, call: &Call) -> PyResult<()> {
        let c = self.model.bert().config();
        let (b, t) = call.inputs.input_ids.dim();
        let (b, t, h, l, nh) = (
            b as u64,
            t as u64,
            c.hidden_size as u64,
            c.num_hidden_layers as u64,
            c.num_attention_heads as u64,
        );
        let mut floats = b * t * h;
        if call.opts.output_hidden_states {
            floats += (l + 1) * b * t * h;
        }
        if call.opts.output_attentions {
            floats += l * b * nh * t * t;
        }
        if matches!(
            self.model,
            AutoModel::MaskedLM(_) | AutoModel::PreTraining(_)
        ) {
            floats += b * t * c.vocab_size as u64;
        }
        check_memory(floats.saturating_mul(4), "this forward pass's output")
    }

    fn run(&self, call: Call) -> PyResult<Output> {
        let Call {
            inputs,
            opts,
            num_choices,
        } = call;
        let out = self
            .pool
            .install(|| forward(&self.model, &inputs, &opts, num_choices))?;
        out.py()
    }
}

fn forward(
    model: &AutoModel,
    inputs: &BertInputs,
    opts: &ForwardOptions,
    num_choices: usize,
) -> bert::Result<Output> {
    use Tensor::{D2, D3};
    Ok(match model {
        AutoModel::Bert(m) => {
            let o = m.forward(inputs, opts)?;
            let mut tensors = vec![("last_hidden_state", D3(o.last_hidden_state))];
            if let Some(p) = o.pooler_output {
                tensors.push(("pooler_output", D2(p)));
            }
            Output {
                tensors,
                hidden_states: o.hidden_states,
                attentions: o.attentions,
            }
        }
        AutoModel::SequenceClassification(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![("logits", D2(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::TokenClassification(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![("logits", D3(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::QuestionAnswering(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![
                    ("start_logits", D2(o.start_logits)),
                    ("end_logits", D2(o.end_logits)),
                ],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::MultipleChoice(m) => {
            let o = m.forward(inputs, num_choices, opts)?;
            output(
                vec![("logits", D2(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::MaskedLM(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![("logits", D3(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::NextSentencePrediction(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![("logits", D2(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::Discriminator(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![("logits", D2(o.logits))],
                o.hidden_states,
                o.attentions,
            )
        }
        AutoModel::PreTraining(m) => {
            let o = m.forward(inputs, opts)?;
            output(
                vec![
                    ("prediction_logits", D3(o.prediction_logits)),
                    ("seq_relationship_logits", D2(o.seq_relationship_logits)),
                ],
                o.hidden_states,
                o.attentions,
            )
        }
    })
}

fn output(
    tensors: Vec<(&'static str, Tensor)>,
    hidden_states: Option<Vec<Array3<f32>>>,
    attentions: Option<Vec<Array4<f32>>>,
) -> Output {
    Output {
        tensors,
        hidden_states,
        attentions,
    }
}

/// The outputs as numpy arrays that own the engine's buffers (no copy).
fn to_dict(py: Python<'_>, out: Output) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (name, t) in out.tensors {
        match t {
            Tensor::D2(a) => d.set_item(name, a.into_pyarray(py))?,
            Tensor::D3(a) => d.set_item(name, a.into_pyarray(py))?,
        }
    }
    if let Some(hs) = out.hidden_states {
        let items: Vec<_> = hs.into_iter().map(|a| a.into_pyarray(py)).collect();
        d.set_item("hidden_states", PyTuple::new(py, items)?)?;
    }
    if let Some(at) = out.attentions {
        let items: Vec<_> = at.into_iter().map(|a| a.into_pyarray(py)).collect();
        d.set_item("attentions", PyTuple::new(py, items)?)?;
    }
    Ok(d)
}
