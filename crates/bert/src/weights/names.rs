//! Checkpoint key normalization: the `bert.` prefix of `BertFor*` checkpoints and the TF-era
//! `LayerNorm.gamma` / `LayerNorm.beta` names map onto bare `BertModel` keys
//! (transformers does the same in `PreTrainedModel._fix_state_dict_key_on_load`).

/// Maps a stored tensor name to the `BertModel` key it holds, or `None` for tensors that are not part
/// of `BertModel` (task heads such as `cls.*`, `classifier.*`, `qa_outputs.*`, and buffers such as
/// `embeddings.position_ids`).
pub(crate) fn normalize(name: &str) -> Option<String> {
    let bare = name.strip_prefix("bert.").unwrap_or(name);
    if !(bare.starts_with("embeddings.")
        || bare.starts_with("encoder.")
        || bare.starts_with("pooler."))
    {
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
        assert_eq!(normalize("cls.predictions.bias"), None);
        assert_eq!(normalize("bert.embeddings.position_ids"), None);
        assert_eq!(normalize("classifier.weight"), None);
    }
}
