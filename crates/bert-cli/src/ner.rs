//! `bert ner`: transformers' `pipeline("token-classification")` on each text: one JSON list of
//! entities per line (`{"entity", "score", "index", "word", "start", "end"}` per token with
//! `--aggregation none`, `{"entity_group", "score", "word", "start", "end"}` otherwise), offsets in
//! characters of the text. A text longer than the maximum length is cut into overlapping windows
//! (`--stride`) whose entities are merged, which needs an aggregation other than `none`.

use std::io::Write;

use bert::architecture::Class;
use bert::pipelines::{AggregationStrategy, TokenClassification, TokenClassificationOptions};
use bert::BertForTokenClassification;

use crate::input::Source;
use crate::{progress, task, CliResult, InputArgs};

#[derive(clap::Args)]
pub struct NerArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// How tokens become entities: none (one per token, transformers' default), simple, first,
    /// average or max.
    #[arg(long, value_name = "STRATEGY", default_value = "none")]
    pub aggregation: AggregationStrategy,
    /// Tags left out of the output, comma-separated (default O; an empty value keeps all).
    #[arg(long, value_name = "TAGS", default_value = "O")]
    pub ignore_labels: String,
    /// Tokens shared by consecutive windows of a long text (default: a quarter of the maximum
    /// length).
    #[arg(long, value_name = "N")]
    pub stride: Option<usize>,
}

pub fn run(args: NerArgs) -> CliResult {
    let items = Source::new(&args.input).items()?;
    let model = task::load(
        "ner",
        &args.input.model,
        &[Class::TokenClassification],
        |m| BertForTokenClassification::from_pretrained_with(m, &args.dtype.load_options()),
        |m| m.config(),
    )?;
    let positions = model.config().max_input_length();
    let tokenizer = crate::input::tokenizer(&args.input, Some(positions))?;
    let pipe = TokenClassification { model, tokenizer };
    let opts = TokenClassificationOptions {
        aggregation_strategy: args.aggregation,
        ignore_labels: args
            .ignore_labels
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        stride: args.stride,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let pb = progress::counter("texts", args.input.quiet);
    let texts = items.map(|item| {
        let item = item?;
        match item.text_pair {
            Some(_) => Err(format!(
                "{}: `bert ner` takes single texts, not pairs",
                item.origin
            )),
            None => Ok(item),
        }
    });
    task::in_chunks(
        texts,
        |i| i.origin.to_string(),
        |chunk| {
            let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
            pipe.entities_batch(&texts, &opts)
        },
        |entities| {
            pb.inc(1);
            task::write_line(&mut out, &entities)
        },
    )?;
    pb.finish_and_clear();
    out.flush()?;
    Ok(())
}
