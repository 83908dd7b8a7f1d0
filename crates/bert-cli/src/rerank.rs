//! `bert rerank`: a cross-encoder (one-label `BertForSequenceClassification`) scores each passage
//! against the query, `sigmoid(logit)` as sentence-transformers' `CrossEncoder.predict`; one
//! `{"corpus_id", "score"}` line per passage, in input order (`sort` them to rank).

use std::io::Write;

use bert::architecture::Class;
use bert::pipelines::CrossEncoder;
use bert::BertForSequenceClassification;

use crate::input::{Item, Source};
use crate::progress::Progress;
use crate::stream::{self, BatchOptions, Tally};
use crate::{task, CliResult, InputArgs};

/// Pairs per forward pass.
const BATCH: usize = 32;

#[derive(clap::Args)]
pub struct RerankArgs {
    /// The query every passage is scored against.
    #[arg(long, short = 'Q')]
    pub query: String,
    /// Passages: the TEXT arguments, then the lines of --input (a `*.jsonl` file's "text").
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
}

#[derive(serde::Serialize)]
struct Scored {
    corpus_id: usize,
    score: f32,
}

pub fn run(args: RerankArgs) -> CliResult {
    let source = Source::new(&args.input);
    let query = args.query.clone();
    // Each passage becomes the pair (query, passage), tokenized on the reader thread.
    let items = source.items()?.map(move |item| {
        item.map(|i| Item {
            text_pair: Some(i.text),
            text: query.clone(),
            ..i
        })
    });
    let model = task::load(
        "rerank",
        &args.input.model,
        &[Class::SequenceClassification],
        |m| BertForSequenceClassification::from_pretrained_with(m, &args.dtype.load_options()),
        |m| m.config(),
    )?;
    let labels = model.config().num_labels();
    if labels != 1 {
        return Err(format!(
            "{}: `bert rerank` needs a cross-encoder (one label), but this classifier has {labels} \
             labels; `bert classify` runs it",
            args.input.model
        )
        .into());
    }
    let positions = model.config().max_input_length();
    let tokenizer = crate::input::tokenizer(&args.input, Some(positions))?;
    let ce = CrossEncoder::new(model, tokenizer.clone())?;
    let tokenizer = std::sync::Arc::new(tokenizer);
    let batching = BatchOptions {
        batch_size: BATCH,
        no_truncation: args.input.no_truncation,
        lowercase: false,
        parallel: false,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    let mut pb = Progress::new(None, args.input.quiet);
    for batch in stream::batches(&tokenizer, items, batching) {
        let batch = batch?;
        for (i, score) in ce
            .score_encodings(&batch.encodings)?
            .into_iter()
            .enumerate()
        {
            let corpus_id = batch.start + i;
            task::write_line(&mut out, &Scored { corpus_id, score })?;
        }
        tally.add(&batch);
        pb.add(&batch);
    }
    pb.finish();
    out.flush()?;
    tally.report_truncation(tokenizer.max_length(), args.input.quiet);
    Ok(())
}
