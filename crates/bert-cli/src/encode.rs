//! `bert encode`: run the model on the inputs in batches, and print a summary of the outputs or
//! stream them into a safetensors file. Peak memory is set by the batch, not by the input count.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bert::ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};
use bert::{BertInputs, BertModel, BertModelOutput, BertTokenizer, ForwardOptions};
use safetensors::Dtype;

use crate::input::{Items, Source};
use crate::memory::{self, human};
use crate::output::{self, SafetensorsWriter, TempFile, TensorSpec};
use crate::progress::Progress;
use crate::stream::{self, Batch, BatchOptions, Tally};
use crate::summary::{Rows, Summary};
use crate::{CliResult, InputArgs};

#[derive(clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Also return the embeddings output and every layer's output.
    #[arg(long)]
    pub hidden_states: bool,
    /// Also return every layer's attention probabilities.
    #[arg(long)]
    pub attentions: bool,
    /// Write inputs and outputs to this safetensors file (`-`: standard output) instead of printing
    /// a summary. Every tensor is (inputs, ...) padded to the longest input of the whole job; the
    /// file is written as batches complete, under a temporary name renamed when done.
    #[arg(long, short = 'o', value_name = "OUT.safetensors")]
    pub output: Option<PathBuf>,
    /// Inputs per forward pass (sentence-transformers' and the W3 benchmark's 32). Memory grows
    /// with it, not with the number of inputs.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
}

/// The model, its tokenizer and what to compute, for every batch of a job.
struct Job {
    model: BertModel,
    tok: Arc<BertTokenizer>,
    opts: ForwardOptions,
    batch: BatchOptions,
    quiet: bool,
}

pub fn run(args: EncodeArgs) -> CliResult {
    let mut source = Source::new(&args.input);
    if args.output.is_some() {
        source.make_rereadable()?; // the file is sized by a first pass over the inputs
    }
    let items = source.items()?; // no input: say so before loading anything
    let model = BertModel::from_pretrained_with(&args.input.model, &args.dtype.load_options())?;
    let tok = crate::input::tokenizer(&args.input, Some(model.config().max_input_length()))?;
    let job = Job {
        model,
        tok: Arc::new(tok),
        opts: ForwardOptions {
            output_hidden_states: args.hidden_states,
            output_attentions: args.attentions,
            ..Default::default()
        },
        batch: BatchOptions {
            batch_size: args.batch_size as usize,
            no_truncation: args.input.no_truncation,
            lowercase: false,
            parallel: false,
        },
        quiet: args.input.quiet,
    };
    let tally = match &args.output {
        None => job.summarize(items)?,
        Some(path) => job.save(items, &source, path)?,
    };
    tally.report_truncation(job.tok.max_length(), job.quiet);
    Ok(())
}

impl Job {
    /// Runs every batch and prints the summary at the end.
    fn summarize(&self, items: Items) -> CliResult<Tally> {
        let mut summary = Summary::default();
        let mut tally = Tally::default();
        let mut pb = Progress::new(None, self.quiet);
        for batch in stream::batches(&self.tok, items, self.batch) {
            let batch = batch?;
            check_memory(&self.model, &self.opts, &batch)?;
            let (inputs, out) = self.forward(&batch)?;
            summary.add(batch.start, &tensors(inputs, out, self.tok.pad_id()));
            tally.add(&batch);
            pb.add(&batch);
        }
        pb.finish();
        let shapes: Vec<Vec<usize>> = specs(&self.model, &self.opts, tally.inputs, tally.max_len)
            .into_iter()
            .map(|s| s.shape)
            .collect();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        summary.print(&mut out, &shapes)?;
        out.flush()?;
        Ok(tally)
    }

    /// Sizes the output in a first pass over `items` (tokenization only), then reads `source`
    /// again, runs every batch and writes its rows into the file.
    fn save(&self, items: Items, source: &Source, path: &Path) -> CliResult<Tally> {
        let plan = self.plan(items)?;
        let specs = specs(&self.model, &self.opts, plan.inputs, plan.max_len);
        let to_stdout = path.as_os_str() == "-";
        let file = if to_stdout {
            TempFile::create_in(&std::env::temp_dir(), "bert-encode.safetensors")?
        } else {
            TempFile::beside(path)?
        };
        check_disk(&self.opts, &specs, &file, path)?;
        let mut writer = SafetensorsWriter::new(file, specs.clone())?;
        let mut tally = Tally::default();
        let mut pb = Progress::new(Some(plan.inputs as u64), self.quiet);
        let mut buf = Vec::new();
        for batch in stream::batches(&self.tok, source.items()?, self.batch) {
            let batch = batch?;
            if batch.start + batch.encodings.len() > plan.inputs || batch.max_len() > plan.max_len {
                return Err(changed(&batch));
            }
            let (inputs, out) = self.forward(&batch)?;
            for (index, (name, rows)) in tensors(inputs, out, self.tok.pad_id()).iter().enumerate()
            {
                let spec = &specs[index];
                debug_assert_eq!(&spec.name, name);
                for r in 0..rows.batch() {
                    padded_row_bytes(rows, r, &spec.shape[1..], &mut buf);
                    writer.write_rows(index, batch.start + r, &buf)?;
                }
            }
            tally.add(&batch);
            pb.add(&batch);
        }
        pb.finish();
        if tally.inputs != plan.inputs {
            return Err(format!(
                "the inputs changed while they were read: {} at first, {} now",
                plan.inputs, tally.inputs
            )
            .into());
        }
        let file = writer.finish();
        if to_stdout {
            file.copy_to_stdout()?;
        } else {
            file.persist(path)?;
            if !self.quiet {
                eprintln!("wrote {}", path.display());
            }
        }
        Ok(tally)
    }

    /// The first pass of [`save`](Self::save): how many inputs, how long the longest, and whether
    /// every batch's outputs fit in memory.
    fn plan(&self, items: Items) -> CliResult<Tally> {
        let mut tally = Tally::default();
        let mut pb = Progress::new(None, self.quiet);
        let parallel = BatchOptions {
            parallel: true,
            ..self.batch
        };
        for batch in stream::batches(&self.tok, items, parallel) {
            let batch = batch?;
            check_memory(&self.model, &self.opts, &batch)?;
            tally.add(&batch);
            pb.add(&batch);
        }
        pb.finish();
        Ok(tally)
    }

    fn forward(&self, batch: &Batch) -> CliResult<(BertInputs, BertModelOutput)> {
        let inputs = self.tok.pad(&batch.encodings)?;
        let out = self
            .model
            .forward(&inputs, &self.opts)
            .map_err(|e| format!("{}: {e}", batch.span()))?;
        Ok((inputs, out))
    }
}

fn changed(batch: &Batch) -> Box<dyn std::error::Error> {
    format!(
        "{}: the inputs changed between the pass that sized the output and the pass that writes it",
        batch.span()
    )
    .into()
}

/// A batch's inputs and outputs in file order: ids and masks, then the model's outputs.
fn tensors(inputs: BertInputs, out: BertModelOutput, pad_id: i64) -> Vec<(String, Rows)> {
    let mut t = vec![
        (
            "input_ids".into(),
            Rows::Int(inputs.input_ids.into_dyn(), pad_id),
        ),
        (
            "attention_mask".into(),
            Rows::Int(inputs.attention_mask.into_dyn(), 0),
        ),
        (
            "token_type_ids".into(),
            Rows::Int(inputs.token_type_ids.into_dyn(), 0),
        ),
        (
            "last_hidden_state".into(),
            Rows::Float(out.last_hidden_state.into_dyn()),
        ),
    ];
    if let Some(p) = out.pooler_output {
        t.push(("pooler_output".into(), Rows::Float(p.into_dyn())));
    }
    for (i, h) in out.hidden_states.into_iter().flatten().enumerate() {
        t.push((format!("hidden_states.{i}"), Rows::Float(h.into_dyn())));
    }
    for (i, a) in out.attentions.into_iter().flatten().enumerate() {
        t.push((format!("attentions.{i}"), Rows::Float(a.into_dyn())));
    }
    t
}

/// The tensors of [`tensors`] for `b` inputs padded to `t` tokens.
fn specs(model: &BertModel, opts: &ForwardOptions, b: usize, t: usize) -> Vec<TensorSpec> {
    let c = model.config();
    let (h, nh, l) = (c.hidden_size, c.num_attention_heads, c.num_hidden_layers);
    let spec = |name: String, dtype, shape: Vec<usize>| TensorSpec { name, dtype, shape };
    let mut s = vec![
        spec("input_ids".into(), Dtype::I64, vec![b, t]),
        spec("attention_mask".into(), Dtype::I64, vec![b, t]),
        spec("token_type_ids".into(), Dtype::I64, vec![b, t]),
        spec("last_hidden_state".into(), Dtype::F32, vec![b, t, h]),
    ];
    if model.has_pooler() {
        s.push(spec("pooler_output".into(), Dtype::F32, vec![b, h]));
    }
    if opts.output_hidden_states {
        s.extend((0..=l).map(|i| spec(format!("hidden_states.{i}"), Dtype::F32, vec![b, t, h])));
    }
    if opts.output_attentions {
        s.extend((0..l).map(|i| spec(format!("attentions.{i}"), Dtype::F32, vec![b, nh, t, t])));
    }
    s
}

/// Row `r` of `rows`, padded to `shape` with the tensor's padding value, as little-endian bytes.
fn padded_row_bytes(rows: &Rows, r: usize, shape: &[usize], buf: &mut Vec<u8>) {
    buf.clear();
    match rows {
        Rows::Int(a, pad) => {
            let row = pad_to(a.index_axis(Axis(0), r), shape, *pad);
            buf.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
        Rows::Float(a) => {
            let row = pad_to(a.index_axis(Axis(0), r), shape, 0.0);
            buf.extend(row.iter().flat_map(|v| v.to_le_bytes()));
        }
    }
}

fn pad_to<T: Copy>(row: ArrayViewD<'_, T>, shape: &[usize], pad: T) -> ArrayD<T> {
    if row.shape() == shape {
        return row.to_owned();
    }
    let mut out = ArrayD::from_elem(IxDyn(shape), pad);
    out.slice_each_axis_mut(|ax| Slice::from(0..row.len_of(ax.axis)))
        .assign(&row);
    out
}

/// Sizes of the parts a user can leave out, for messages: `attentions 4.5 GB, hidden_states 1.2 GB`.
fn parts(specs: &[TensorSpec]) -> String {
    let sum = |prefix: &str| -> u64 {
        specs
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(TensorSpec::bytes)
            .sum()
    };
    let mut v = Vec::new();
    for (prefix, name) in [
        ("attentions.", "attentions"),
        ("hidden_states.", "hidden_states"),
    ] {
        let bytes = sum(prefix);
        if bytes > 0 {
            v.push(format!("{name} {}", human(bytes)));
        }
    }
    if v.is_empty() {
        String::new()
    } else {
        format!(" ({})", v.join(", "))
    }
}

/// What to leave out or lower when an output is too big.
fn advice(opts: &ForwardOptions, batch_size: bool) -> String {
    let mut v = Vec::new();
    if batch_size {
        v.push("a smaller --batch-size");
    } else {
        v.push("fewer inputs");
    }
    if opts.output_attentions {
        v.push("no --attentions");
    }
    if opts.output_hidden_states {
        v.push("no --hidden-states");
    }
    v.push("a smaller --max-length");
    let last = v.pop().expect("at least one");
    format!("{}, or {last}", v.join(", "))
}

/// Refuses a batch whose outputs and working buffers would not fit in the memory this process may
/// still allocate (an allocation failure would abort the process).
fn check_memory(model: &BertModel, opts: &ForwardOptions, batch: &Batch) -> CliResult {
    let c = model.config();
    let (b, t, n) = (batch.encodings.len(), batch.max_len(), batch.tokens());
    let specs = specs(model, opts, b, t);
    let outputs: u64 = specs.iter().map(TensorSpec::bytes).sum();
    // The encoder keeps what it returns packed (real tokens only) before padding it, and works in
    // buffers of a few rows of H and I per token.
    let (h, i, nh, l) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        c.num_attention_heads as u64,
        c.num_hidden_layers as u64,
    );
    let n = n as u64;
    let packed = if opts.output_hidden_states {
        (l + 1) * n * h * 4
    } else {
        0
    } + if opts.output_attentions {
        l * nh * n * t as u64 * 4
    } else {
        0
    };
    let work = n * (8 * h + 2 * i + nh * t as u64) * 4;
    let need = outputs + packed + work;
    match memory::available() {
        Some(avail) if need > avail => Err(format!(
            "{}: a batch of {b} inputs of up to {t} tokens needs about {} of memory{}, more than \
             the {} this process can still allocate; use {}",
            batch.span(),
            human(need),
            parts(&specs),
            human(avail),
            advice(opts, true)
        )
        .into()),
        _ => Ok(()),
    }
}

/// Refuses an output file that would not fit on its file system, before any work.
fn check_disk(
    opts: &ForwardOptions,
    specs: &[TensorSpec],
    file: &TempFile,
    dest: &Path,
) -> CliResult {
    let size = output::file_size(specs)?;
    let dir = file.path().parent().unwrap_or(Path::new("."));
    match output::available_space(dir) {
        Some(free) if size > free => Err(format!(
            "{}: the output would take {}{} but {} has {} free; use {}",
            dest.display(),
            human(size),
            parts(specs),
            dir.display(),
            human(free),
            advice(opts, false)
        )
        .into()),
        _ => Ok(()),
    }
}
