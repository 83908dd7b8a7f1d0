//! What the pipeline commands (`classify`, `ner`, `qa`, `fill-mask`, `rerank`) share: checking that
//! a checkpoint carries the head a command needs, and writing one JSON line per input.

use std::io::Write;

use bert::architecture::{self, Architecture, Class};

use crate::CliResult;

/// Fails unless the checkpoint's `config.json` `architectures` name a class of `wanted`, in any
/// family (a checkpoint without `architectures` is let through: loading its head then says what
/// is missing). A sequence classifier's `classifier.*` would load as a token classifier's, so the
/// tensors alone cannot tell them apart.
pub fn check_head(
    command: &str,
    config: &bert::BertConfig,
    wanted: &[Class],
    model: &str,
) -> CliResult {
    let Some(archs) = config.architectures.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let class = |a: &String| architecture::find_class(a).map(|(_, c)| c);
    if archs
        .iter()
        .any(|a| class(a).is_some_and(|c| wanted.contains(&c)))
    {
        return Ok(());
    }
    let hint = archs
        .iter()
        .find_map(|a| class(a).and_then(command_for))
        .map(|c| format!("; {c} runs it"))
        .unwrap_or_default();
    // The checkpoint's family: by its class (a config rebuilt from an error has only that).
    let family = archs
        .iter()
        .find_map(|a| architecture::find_class(a))
        .map_or_else(|| Architecture::of(config), |(a, _)| a);
    let names: Vec<&str> = wanted
        .iter()
        .filter_map(|&c| family.class_name(c))
        .collect();
    Err(format!(
        "{model}: `bert {command}` needs a {} checkpoint, but this one is {} (config.json \
         architectures){hint}",
        if names.is_empty() {
            format!(
                "{:?} (which {} models do not have)",
                wanted[0], family.model_type
            )
        } else {
            names.join(" or ")
        },
        archs.join(", ")
    )
    .into())
}

/// The command that runs a head.
fn command_for(class: Class) -> Option<&'static str> {
    Some(match class {
        Class::SequenceClassification => "`bert classify` (or `bert rerank`, with one label)",
        Class::TokenClassification => "`bert ner`",
        Class::QuestionAnswering => "`bert qa`",
        Class::MaskedLM | Class::PreTraining => "`bert fill-mask`",
        Class::Model => "`bert encode`",
        _ => return None,
    })
}

/// Loads a head, after checking the checkpoint's `architectures` ([`check_head`]).
pub fn load<T>(
    command: &str,
    model: &str,
    wanted: &[Class],
    from_pretrained: impl Fn(&str) -> bert::Result<T>,
    config: impl Fn(&T) -> &bert::BertConfig,
) -> CliResult<T> {
    let head = from_pretrained(model).map_err(|e| -> Box<dyn std::error::Error> {
        // A missing head is best explained by the head the checkpoint has instead.
        if let bert::Error::MissingHead { architectures, .. } = &e {
            let config = bert::BertConfig {
                architectures: Some(architectures.clone()),
                ..Default::default()
            };
            if let Err(wrong) = check_head(command, &config, wanted, model) {
                return wrong;
            }
        }
        e.into()
    })?;
    check_head(command, config(&head), wanted, model)?;
    Ok(head)
}

/// `--top-k`: a count, or `all` (`None`).
#[derive(Clone, Copy, Debug)]
pub struct TopK(pub Option<usize>);

impl std::str::FromStr for TopK {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(TopK(None)),
            _ => match s.parse::<usize>() {
                Ok(0) | Err(_) => Err(format!("`{s}` is not a count of 1 or more, nor `all`")),
                Ok(k) => Ok(TopK(Some(k))),
            },
        }
    }
}

/// Writes `value` as one line of JSON.
pub fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> CliResult {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Inputs per forward pass of the pipeline commands.
pub const BATCH: usize = 32;

/// Runs `run` on consecutive chunks of [`BATCH`] inputs (one forward pass each) and hands each
/// result to `emit`, in input order. When a chunk fails, its inputs are run one by one: the results
/// before the input at fault are written, and the error names it (`corpus.txt:17: ...`).
pub fn in_chunks<I, T>(
    items: impl Iterator<Item = Result<I, String>>,
    origin: impl Fn(&I) -> String,
    run: impl Fn(&[I]) -> bert::Result<Vec<T>>,
    mut emit: impl FnMut(T) -> CliResult,
) -> CliResult {
    let mut items = items.peekable();
    while items.peek().is_some() {
        let chunk = items
            .by_ref()
            .take(BATCH)
            .collect::<Result<Vec<I>, String>>()?;
        match run(&chunk) {
            Ok(results) => results.into_iter().try_for_each(&mut emit)?,
            Err(_) => {
                for item in &chunk {
                    let one = run(std::slice::from_ref(item))
                        .map_err(|e| format!("{}: {e}", origin(item)))?;
                    one.into_iter().try_for_each(&mut emit)?;
                }
            }
        }
    }
    Ok(())
}
