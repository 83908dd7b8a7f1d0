//! `bert fill-mask`: transformers' `pipeline("fill-mask")` on each text: the best tokens for its
//! `[MASK]` as a JSON list of `{"score", "token", "token_str", "sequence"}`, or, for a text with
//! several masks, a list of such lists (one per mask), as transformers returns them.

use std::io::Write;

use bert::architecture::Class;
use bert::pipelines::{FillMask, FillMaskOptions};
use bert::BertForMaskedLM;

use crate::input::Source;
use crate::{progress, task, CliResult, InputArgs};

#[derive(clap::Args)]
pub struct FillMaskArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Candidates per mask, best first.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub top_k: usize,
    /// Only score these words, comma-separated (a word not in the vocabulary stands for its
    /// first token).
    #[arg(long, value_name = "W,...", value_delimiter = ',')]
    pub targets: Option<Vec<String>>,
}

pub fn run(args: FillMaskArgs) -> CliResult {
    let items = Source::new(&args.input).items()?;
    let model = task::load(
        "fill-mask",
        &args.input.model,
        &[Class::MaskedLM, Class::PreTraining],
        |m| BertForMaskedLM::from_pretrained_with(m, &args.dtype.load_options()),
        |m| m.config(),
    )?;
    let positions = model.config().max_input_length();
    let tokenizer = crate::input::tokenizer(&args.input, Some(positions))?;
    let pipe = FillMask { model, tokenizer };
    let opts = FillMaskOptions {
        top_k: args.top_k,
        targets: args.targets.clone(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let pb = progress::counter("texts", args.input.quiet);
    let tok = &pipe.tokenizer;
    let texts = items.map(|item| {
        let item = item?;
        if item.text_pair.is_some() {
            return Err(format!(
                "{}: `bert fill-mask` takes single texts",
                item.origin
            ));
        }
        if args.input.no_truncation
            && tok
                .tokenize(&item.text)
                .map_err(|e| format!("{}: {e}", item.origin))?
                .truncated
        {
            return Err(format!(
                "{}: longer than {} tokens, the maximum length (--no-truncation is set)",
                item.origin,
                tok.max_length()
            ));
        }
        Ok(item)
    });
    task::in_chunks(
        texts,
        |i| i.origin.to_string(),
        |chunk| {
            let texts: Vec<&str> = chunk.iter().map(|i| i.text.as_str()).collect();
            pipe.fill_batch(&texts, &opts)
        },
        |mut masks| {
            pb.inc(1);
            // As transformers: one mask, its list; several, a list per mask.
            if masks.len() == 1 {
                task::write_line(&mut out, &masks.remove(0))
            } else {
                task::write_line(&mut out, &masks)
            }
        },
    )?;
    pb.finish_and_clear();
    out.flush()?;
    Ok(())
}
