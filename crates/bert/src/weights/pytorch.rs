//! `pytorch_model.bin`: the zip + pickle format written by `torch.save` (PyTorch >= 1.6), read without
//! Python.

use std::path::Path;

use super::RawTensor;
use crate::{Error, Result};

/// Reads every floating-point tensor of a `torch.save` state dict.
pub(crate) fn load(path: &Path) -> Result<Vec<(String, RawTensor)>> {
    Err(Error::checkpoint(
        path,
        "pytorch_model.bin is not supported yet",
    ))
}
