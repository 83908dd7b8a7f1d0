//! `bert classify`: transformers' `pipeline("text-classification")` on each input (a text or a
//! `{"text", "text_pair"}` pair), one JSON list of `{"label", "score"}` per line, best first.

use std::io::Write;

use bert::architecture::Class;
use bert::pipelines::{ClassificationFunction, TextClassification, TextClassificationOptions};
use bert::BertForSequenceClassification;

use crate::input::Source;
use crate::progress::Progress;
use crate::stream::{self, BatchOptions, Tally};
use crate::task::{self, TopK};
use crate::{CliResult, InputArgs};

/// Inputs per forward pass.
const BATCH: usize = 32;

#[derive(clap::Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Labels per input, best first: a count, or `all` (default 1, the best label).
    #[arg(long, value_name = "K", default_value = "1")]
    pub top_k: TopK,
    /// Turn logits into scores with sigmoid, softmax or none (default: as transformers picks it
    /// from config.json: none for regression, sigmoid for multi-label or one label, else softmax).
    #[arg(long, value_name = "FUNCTION")]
    pub function_to_apply: Option<ClassificationFunction>,
}

pub fn run(args: ClassifyArgs) -> CliResult {
    let source = Source::new(&args.input);
    let items = source.items()?;
    let model = task::load(
        "classify",
        &args.input.model,
        &[Class::SequenceClassification],
        |m| BertForSequenceClassification::from_pretrained_with(m, &args.dtype.load_options()),
        |m| m.config(),
    )?;
    let positions = model.config().max_input_length();
    let tokenizer = crate::input::tokenizer(&args.input, Some(positions))?;
    let pipe = TextClassification { model, tokenizer };
    let opts = TextClassificationOptions {
        top_k: args.top_k.0,
        function_to_apply: args.function_to_apply,
        ..Default::default()
    };
    let batching = BatchOptions {
        batch_size: BATCH,
        no_truncation: args.input.no_truncation,
        lowercase: false,
        parallel: false,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    let mut pb = Progress::new(None, args.input.quiet);
    // The reader thread tokenizes with its own handle on the tokenizer.
    let tokenizer = std::sync::Arc::new(pipe.tokenizer.clone());
    for batch in stream::batches(&tokenizer, items, batching) {
        let batch = batch?;
        for labels in pipe.classify_encodings(&batch.encodings, &opts)? {
            task::write_line(&mut out, &labels)?;
        }
        tally.add(&batch);
        pb.add(&batch);
    }
    pb.finish();
    out.flush()?;
    tally.report_truncation(pipe.tokenizer.max_length(), args.input.quiet);
    Ok(())
}
