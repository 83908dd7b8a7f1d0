//! `bert encode`: run the model on a batch and print a summary or save every output.

use std::io::Write;
use std::path::PathBuf;

use bert::ndarray::ArrayD;
use bert::{BertModel, ForwardOptions};
use safetensors::tensor::{Dtype, TensorView};

use crate::{input, CliResult, InputArgs};

#[derive(clap::Args)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Also return the embeddings output and every layer's output.
    #[arg(long)]
    pub hidden_states: bool,
    /// Also return every layer's attention probabilities.
    #[arg(long)]
    pub attentions: bool,
    /// Write inputs and outputs to this safetensors file instead of printing a summary.
    #[arg(long, short = 'o', value_name = "OUT.safetensors")]
    pub output: Option<PathBuf>,
}

pub fn run(args: EncodeArgs) -> CliResult {
    let items = input::read_items(&args.input)?;
    let tok = input::tokenizer(&args.input)?;
    let model = BertModel::from_pretrained(&args.input.model)?;
    let inputs = tok.pad(&input::tokenize(&tok, &items)?)?;
    let opts = ForwardOptions {
        output_hidden_states: args.hidden_states,
        output_attentions: args.attentions,
        ..Default::default()
    };
    let out = model.forward(&inputs, &opts)?;

    let mut tensors: Vec<(String, ArrayD<f32>)> =
        vec![("last_hidden_state".into(), out.last_hidden_state.into_dyn())];
    if let Some(p) = out.pooler_output {
        tensors.push(("pooler_output".into(), p.into_dyn()));
    }
    for (i, h) in out.hidden_states.into_iter().flatten().enumerate() {
        tensors.push((format!("hidden_states.{i}"), h.into_dyn()));
    }
    for (i, a) in out.attentions.into_iter().flatten().enumerate() {
        tensors.push((format!("attentions.{i}"), a.into_dyn()));
    }
    let ints = [
        ("input_ids", inputs.input_ids.into_dyn()),
        ("attention_mask", inputs.attention_mask.into_dyn()),
        ("token_type_ids", inputs.token_type_ids.into_dyn()),
    ];
    match &args.output {
        Some(path) => save(path, &ints, &tensors),
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            print_summary(&mut out, &ints, &tensors)?;
            Ok(out.flush()?)
        }
    }
}

fn print_summary(
    out: &mut impl Write,
    ints: &[(&str, ArrayD<i64>)],
    tensors: &[(String, ArrayD<f32>)],
) -> std::io::Result<()> {
    for (name, a) in ints {
        writeln!(out, "{name}: shape {:?}", a.shape())?;
        for row in a.outer_iter() {
            writeln!(out, "  {:?}", row.iter().collect::<Vec<_>>())?;
        }
    }
    for (name, a) in tensors {
        let first: Vec<String> = a.iter().take(6).map(|v| format!("{v:.6}")).collect();
        let index = vec!["0"; a.ndim() - 1].join(", ");
        writeln!(
            out,
            "{name}: shape {:?}\n  [{index}, :6] = [{}, ...]",
            a.shape(),
            first.join(", ")
        )?;
    }
    Ok(())
}

fn save(
    path: &std::path::Path,
    ints: &[(&str, ArrayD<i64>)],
    tensors: &[(String, ArrayD<f32>)],
) -> CliResult {
    let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, a) in ints {
        let data = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name.to_string(), Dtype::I64, a.shape().to_vec(), data));
    }
    for (name, a) in tensors {
        let data = a.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name.clone(), Dtype::F32, a.shape().to_vec(), data));
    }
    let views = bytes
        .iter()
        .map(|(n, dt, shape, data)| Ok((n.clone(), TensorView::new(*dt, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
