//! `bert tokenize`: one JSON object per input with ids, segment ids, mask and token strings.

use std::io::Write;

use crate::{input, CliResult, InputArgs};

#[derive(clap::Args)]
pub struct TokenizeArgs {
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(args: TokenizeArgs) -> CliResult {
    let items = input::read_items(&args.input)?;
    let tok = input::tokenizer(&args.input)?;
    let encodings = input::tokenize(&tok, &items)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for e in encodings {
        let line = serde_json::json!({
            "input_ids": e.ids,
            "token_type_ids": e.type_ids,
            "attention_mask": vec![1; e.ids.len()],
            "tokens": e.tokens,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
