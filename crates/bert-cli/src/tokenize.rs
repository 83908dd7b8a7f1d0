//! `bert tokenize`: one JSON object per input with ids, segment ids, mask and token strings,
//! written as the inputs are read (memory does not grow with the input).

use std::io::Write;

use crate::input::Source;
use crate::progress::Progress;
use crate::stream::{self, BatchOptions, Tally};
use crate::{CliResult, InputArgs};

/// Inputs tokenized together (in parallel) before their lines are written.
const CHUNK: usize = 1024;

#[derive(clap::Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(args: TokenizeArgs) -> CliResult {
    let source = Source::new(&args.input);
    let items = source.items()?;
    let tok = std::sync::Arc::new(crate::input::tokenizer(&args.input, None)?);
    let opts = BatchOptions {
        batch_size: CHUNK,
        no_truncation: args.input.no_truncation,
        lowercase: false,
        parallel: true,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut tally = Tally::default();
    let mut pb = Progress::new(None, args.input.quiet);
    for batch in stream::batches(&tok, items, opts) {
        let batch = batch?;
        for e in &batch.encodings {
            let line = serde_json::json!({
                "input_ids": e.ids,
                "token_type_ids": e.type_ids,
                "attention_mask": vec![1; e.ids.len()],
                "tokens": e.tokens,
            });
            writeln!(out, "{line}")?;
        }
        tally.add(&batch);
        pb.add(&batch);
    }
    pb.finish();
    out.flush()?;
    tally.report_truncation(tok.max_length(), args.input.quiet);
    Ok(())
}
