//! Checkpoint key normalization: the `bert.` prefix of `BertFor*` checkpoints and the TF-era
//! `LayerNorm.gamma` / `LayerNorm.beta` names map onto bare `BertModel` keys, task-head tensors keep
//! their `BertFor*` names (transformers does the same in `PreTrainedModel._fix_state_dict_key_on_load`).

/// Top-level modules of the `BertFor*` classes besides `bert`: `cls.predictions.*` and
/// `cls.seq_relationship.*` (pre-training heads), `classifier.*`, `qa_outputs.*`.
const HEAD_PREFIXES: [&str; 3] = ["cls.", "classifier.", "qa_outputs."];

/// Maps a stored tensor name to the key it is looked up by: the bare `BertModel` key for the encoder,
/// the `BertFor*` name (`classifier.weight`, `cls.predictions.bias`, ...) for a task head, or `None`
/// for anything else (buffers such as `embeddings.position_ids`, other models' tensors).
pub(crate) fn normalize(name: &str) -> Option<String> {
    let bare = name.strip_prefix("bert.").unwrap_or(name);
    let base = bare.starts_with("embeddings.")
        || bare.starts_with("encoder.")
        || bare.starts_with("pooler.");
    // A head tensor never carries the `bert.` prefix: `bert.classifier.weight` is not one.
    let head = HEAD_PREFIXES.iter().any(|p| name.starts_with(p));
    if !(base || head) {
        return None;
    }
    if bare == "embeddings.position_ids" {
        return None;
    }
    let key = if let Some(stem) = bare.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = bare.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        bare.to_string()
    };
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn prefixes_and_legacy_names() {
        assert_eq!(
            normalize("bert.encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("encoder.layer.0.output.LayerNorm.weight")
        );
        assert_eq!(
            normalize("embeddings.LayerNorm.beta").as_deref(),
            Some("embeddings.LayerNorm.bias")
        );
        assert_eq!(
            normalize("pooler.dense.weight").as_deref(),
            Some("pooler.dense.weight")
        );
        assert_eq!(normalize("bert.embeddings.position_ids"), None);
        assert_eq!(normalize("bert.classifier.weight"), None);
        assert_eq!(normalize("lm_head.weight"), None);
    }

    #[test]
    fn head_tensors_keep_their_names() {
        assert_eq!(
            normalize("cls.predictions.bias").as_deref(),
            Some("cls.predictions.bias")
        );
        assert_eq!(
            normalize("classifier.weight").as_deref(),
            Some("classifier.weight")
        );
        assert_eq!(
            normalize("qa_outputs.bias").as_deref(),
            Some("qa_outputs.bias")
        );
        assert_eq!(
            normalize("cls.predictions.transform.LayerNorm.gamma").as_deref(),
            Some("cls.predictions.transform.LayerNorm.weight")
        );
    }
}
