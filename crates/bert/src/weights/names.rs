//! Checkpoint key normalization: each family's stored names map onto canonical keys (bare
//! `BertModel` keys for the encoder, the class's names for a task head) as the
//! [`Architecture`] table describes; TF-era `LayerNorm.gamma` / `LayerNorm.beta` become
//! `weight` / `bias` (transformers does the same in `PreTrainedModel._fix_state_dict_key_on_load`).

use crate::architecture::{Architecture, ARCHITECTURES};

/// The canonical key of stored tensor `name` in a checkpoint of family `arch`, or `None` for
/// anything its model does not read.
pub(crate) fn normalize(arch: &Architecture, name: &str) -> Option<String> {
    arch.canonical(name)
}

/// Whether any family reads `name` (the file readers skip other tensors of dtypes they cannot
/// convert, such as integer buffers, before the family is known).
pub(crate) fn read_by_any(name: &str) -> bool {
    ARCHITECTURES.iter().any(|a| a.canonical(name).is_some())
}
