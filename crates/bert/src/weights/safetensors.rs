//! `*.safetensors`: memory-mapped; the header is parsed and bounds-checked by the `safetensors` crate.

use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors};

use super::{Bytes, DType, RawTensor};
use crate::{Error, Result};

/// Reads every tensor of a safetensors file; the data stays in the memory map.
pub(crate) fn load(path: &Path) -> Result<Vec<(String, RawTensor)>> {
    let map = super::map_file(path)?;
    from_map(path, &map)
}

/// [`load`] of a file already mapped; `path` names it in errors.
pub(crate) fn from_map(path: &Path, map: &Arc<Mmap>) -> Result<Vec<(String, RawTensor)>> {
    let st = SafeTensors::deserialize(&map[..])
        .map_err(|e| Error::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    let base = map.as_ptr() as usize;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                // Integer buffers (e.g. `embeddings.position_ids`) are not weights; skip them unless
                // the model needs them, in which case the loader reports the dtype.
                if !super::names::read_by_any(&name) {
                    continue;
                }
                return Err(Error::tensor(
                    &name,
                    path,
                    format!("unsupported dtype {other:?} (expected F32, F16 or BF16)"),
                ));
            }
        };
        let data = view.data();
        let start = data.as_ptr() as usize - base;
        out.push((
            name,
            RawTensor {
                dtype,
                shape: view.shape().to_vec(),
                bytes: Bytes::Mapped {
                    map: map.clone(),
                    range: start..start + data.len(),
                },
            },
        ));
    }
    Ok(out)
}
