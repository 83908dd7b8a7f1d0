//! `bert qa`: transformers' `pipeline("question-answering")` on one `--question`/`--context` or on
//! each `{"question", "context"}` line of a JSONL file. As transformers returns it, a line holds
//! the answer `{"score", "start", "end", "answer"}` when there is one, else a list of them, best
//! first; `start`/`end` are character offsets in the context.

use std::io::Write;

use bert::architecture::Class;
use bert::pipelines::{QuestionAnswering, QuestionAnsweringOptions};
use bert::BertForQuestionAnswering;

use crate::input::Source;
use crate::{progress, task, CliResult, InputArgs};

#[derive(clap::Args)]
pub struct QaArgs {
    /// The question (with --context).
    #[arg(long, requires = "context", conflicts_with = "input")]
    pub question: Option<String>,
    /// The text the answer is taken from (with --question).
    #[arg(long, requires = "question")]
    pub context: Option<String>,
    /// A `*.jsonl` file of `{"question": ..., "context": ...}` lines; `-` reads standard input.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// Model directory or Hugging Face hub id.
    #[arg(long, short = 'm', default_value = bert::hub::DEFAULT_MODEL)]
    pub model: String,
    #[command(flatten)]
    pub dtype: crate::DtypeArgs,
    /// Tokens per window, question included (transformers' max_seq_len; default: the
    /// tokenizer's model_max_length, at most 384). A longer context is split into windows.
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,
    /// Context tokens shared by consecutive windows (default: half a window, at most 128).
    #[arg(long, value_name = "N")]
    pub doc_stride: Option<usize>,
    /// Answers per question, best first.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub top_k: usize,
    /// Longest answer, in tokens.
    #[arg(long, value_name = "N", default_value_t = 15)]
    pub max_answer_len: usize,
    /// Also offer the empty answer ("" at 0..0).
    #[arg(long)]
    pub handle_impossible_answer: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(args: QaArgs) -> CliResult {
    let input = InputArgs {
        texts: Vec::new(),
        input: args.input.clone(),
        model: args.model.clone(),
        max_length: args.max_length,
        no_truncation: false,
        quiet: args.quiet,
    };
    let items: Box<dyn Iterator<Item = Result<(String, String, String), String>>> =
        match (&args.question, &args.context) {
            (Some(q), Some(c)) => Box::new(std::iter::once(Ok((
                "--question".to_string(),
                q.clone(),
                c.clone(),
            )))),
            _ if args.input.is_none() => {
                return Err("no input: give --question and --context, or --input FILE.jsonl".into())
            }
            _ => Box::new(Source::new(&input).items()?.map(|item| {
                let item = item?;
                match item.text_pair {
                    Some(c) => Ok((item.origin.to_string(), item.text, c)),
                    None => Err(format!(
                        "{}: expected a {{\"question\": ..., \"context\": ...}} object",
                        item.origin
                    )),
                }
            })),
        };
    let model = task::load(
        "qa",
        &args.model,
        &[Class::QuestionAnswering],
        |m| BertForQuestionAnswering::from_pretrained_with(m, &args.dtype.load_options()),
        |m| m.config(),
    )?;
    let positions = model.config().max_input_length();
    let tokenizer = crate::input::tokenizer(&input, Some(positions))?;
    let pipe = QuestionAnswering { model, tokenizer };
    let opts = QuestionAnsweringOptions {
        top_k: args.top_k,
        max_seq_len: args.max_length,
        doc_stride: args.doc_stride,
        max_answer_len: args.max_answer_len,
        handle_impossible_answer: args.handle_impossible_answer,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let pb = progress::counter("questions", args.quiet);
    task::in_chunks(
        items,
        |(origin, _, _)| origin.clone(),
        |chunk| {
            let pairs: Vec<(&str, &str)> = chunk
                .iter()
                .map(|(_, q, c)| (q.as_str(), c.as_str()))
                .collect();
            pipe.answer_batch(&pairs, &opts)
        },
        |answers| {
            pb.inc(1);
            // As transformers: one answer, the answer itself; several, their list.
            match answers.as_slice() {
                [one] => task::write_line(&mut out, one),
                _ => task::write_line(&mut out, &answers),
            }
        },
    )?;
    pb.finish_and_clear();
    out.flush()?;
    Ok(())
}
