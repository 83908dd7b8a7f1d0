//! `bert embed`: sentence embeddings as sentence-transformers computes them, for a corpus of any
//! size. Inputs stream through batches in input order; each batch's embeddings are written as it
//! completes, so memory stays flat however many lines the file has.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bert::ndarray::{ArrayView1, ArrayView2};
use bert::SentenceEmbeddings;
use safetensors::Dtype;

use crate::input::Source;
use crate::output::{self, TempFile, TensorSpec};
use crate::progress::Progress;
use crate::stream::{self, BatchOptions, Tally};
use crate::{CliResult, InputArgs};

#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Write the embeddings to this file instead of standard output: `.jsonl` (one
    /// `{"embedding": [...]}` per input), `.npy` (float32, (inputs, dim)) or `.safetensors`
    /// (tensor `embeddings`, (inputs, dim)); `-` is standard output (JSON lines).
    #[arg(long, short = 'o', value_name = "OUT.{jsonl,npy,safetensors}")]
    pub output: Option<PathBuf>,
    /// Inputs per forward pass (sentence-transformers' default 32).
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
}

/// Header space reserved for the safetensors header, rewritten once the row count is known.
const SAFETENSORS_RESERVE: usize = 256;

/// Where embeddings go, one batch of rows at a time.
enum Sink {
    JsonLines(Box<dyn Write>),
    JsonFile(TempFile),
    Npy(TempFile),
    Safetensors(TempFile),
}

impl Sink {
    fn open(output: Option<&Path>, dim: usize) -> CliResult<Sink> {
        let path = match output {
            Some(p) if p.as_os_str() != "-" => p,
            _ => {
                let out = std::io::BufWriter::new(std::io::stdout().lock());
                return Ok(Sink::JsonLines(Box::new(out)));
            }
        };
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let mut sink = match ext {
            "jsonl" => Sink::JsonFile(TempFile::beside(path)?),
            "npy" => Sink::Npy(TempFile::beside(path)?),
            "safetensors" => Sink::Safetensors(TempFile::beside(path)?),
            _ => {
                return Err(format!(
                    "{}: unknown output format `.{ext}`: use .jsonl, .npy or .safetensors",
                    path.display()
                )
                .into())
            }
        };
        // Room for the header, rewritten by `finish` once the number of rows is known.
        sink.write_header(0, dim)?;
        Ok(sink)
    }

    fn write_header(&mut self, rows: u64, dim: usize) -> CliResult {
        let (file, bytes) = match self {
            Sink::Npy(f) => (f, output::npy_header(rows, dim)),
            Sink::Safetensors(f) => (f, safetensors_header(rows, dim)?),
            Sink::JsonLines(_) | Sink::JsonFile(_) => return Ok(()),
        };
        let path = file.path().display().to_string();
        let w = file.writer();
        w.seek(SeekFrom::Start(0))
            .and_then(|_| w.write_all(&bytes))
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(())
    }

    fn write(&mut self, emb: ArrayView2<'_, f32>) -> CliResult {
        let json = matches!(self, Sink::JsonFile(_));
        let f = match self {
            Sink::JsonLines(w) => {
                // A closed stdout ends the job quietly.
                return Ok(emb
                    .rows()
                    .into_iter()
                    .try_for_each(|row| json_line(w, row))?);
            }
            Sink::JsonFile(f) | Sink::Npy(f) | Sink::Safetensors(f) => f,
        };
        let path = f.path().display().to_string();
        let w = f.writer();
        let written = if json {
            emb.rows().into_iter().try_for_each(|row| json_line(w, row))
        } else {
            let bytes: Vec<u8> = emb.iter().flat_map(|v| v.to_le_bytes()).collect();
            w.write_all(&bytes)
        };
        written.map_err(|e| format!("{path}: {e}"))?;
        Ok(())
    }

    /// Completes the file: the header gets the row count, then the file takes its name.
    fn finish(mut self, rows: u64, dim: usize, dest: Option<&Path>) -> CliResult {
        self.write_header(rows, dim)?;
        match (self, dest) {
            (Sink::JsonLines(mut w), _) => Ok(w.flush()?),
            (Sink::JsonFile(f) | Sink::Npy(f) | Sink::Safetensors(f), Some(dest)) => {
                f.persist(dest)
            }
            (_, None) => Err("an output file without a destination".into()),
        }
    }
}

/// `{"embedding":[...]}` and a newline, floats in their shortest f32 form.
fn json_line(w: &mut dyn Write, row: ArrayView1<'_, f32>) -> std::io::Result<()> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        embedding: &'a [f32],
    }
    let row = row.to_vec();
    serde_json::to_writer(&mut *w, &Line { embedding: &row })?;
    w.write_all(b"\n")
}

fn safetensors_header(rows: u64, dim: usize) -> CliResult<Vec<u8>> {
    let spec = TensorSpec {
        name: "embeddings".into(),
        dtype: Dtype::F32,
        shape: vec![rows as usize, dim],
    };
    output::header(&[spec], SAFETENSORS_RESERVE)
}

pub fn run(args: EmbedArgs) -> CliResult {
    let source = Source::new(&args.input);
    let items = source.items()?;
    let st =
        SentenceEmbeddings::from_pretrained_with(&args.input.model, &args.dtype.load_options())?;
    let quiet = args.input.quiet;
    if let (Some(note), false) = (st.notice(), quiet) {
        eprintln!("note: {note}");
    }
    // sentence-transformers' max_seq_length, unless --max-length says otherwise.
    let positions = st.model().config().max_input_length();
    let tok = st.tokenizer().clone();
    let default = tok.max_length();
    let tok = crate::input::with_max_length(tok, &args.input, default, Some(positions))?;
    let tok = std::sync::Arc::new(tok);
    let opts = BatchOptions {
        batch_size: args.batch_size as usize,
        no_truncation: args.input.no_truncation,
        lowercase: st.lowercases(),
        parallel: false,
    };
    let dim = st.dimension();
    let mut sink = Sink::open(args.output.as_deref(), dim)?;
    let mut tally = Tally::default();
    let mut tokens = 0;
    let mut pb = Progress::new(None, quiet);
    let start = Instant::now();
    for batch in stream::batches(&tok, items, opts) {
        let batch = batch?;
        if let Some((item, _)) = batch
            .origins
            .iter()
            .zip(&batch.encodings)
            .find(|(_, e)| e.type_ids.iter().any(|&t| t != 0))
        {
            return Err(format!("{item}: `embed` takes single texts, not text pairs").into());
        }
        let inputs = tok.pad(&batch.encodings)?;
        let emb = st
            .embed(&inputs)
            .map_err(|e| format!("{}: {e}", batch.span()))?;
        sink.write(emb.view())?;
        tokens += batch.tokens();
        tally.add(&batch);
        pb.add(&batch);
    }
    pb.finish();
    sink.finish(tally.inputs as u64, dim, args.output.as_deref())?;
    tally.report_truncation(tok.max_length(), quiet);
    if !quiet {
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "embedded {} inputs ({tokens} tokens) in {secs:.2} s: {:.0} tokens/s",
            tally.inputs,
            tokens as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}
