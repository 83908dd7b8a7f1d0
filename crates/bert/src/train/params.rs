//! The parameters of a model in training: one flat f32 buffer, each tensor at a fixed offset under its
//! transformers name. The same layout holds the weights, their gradients and AdamW's two moments
//! (llm.c's `ParameterTensors`), so the optimizer, gradient clipping and checkpointing are loops
//! over one slice.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crate::{Error, Result};

/// One tensor of a [`ParamSet`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParamTensor {
    /// transformers' name (`bert.encoder.layer.0.attention.self.query.weight`, `classifier.bias`).
    pub name: String,
    pub shape: Vec<usize>,
    /// Where its values are in [`ParamSet::data`].
    pub range: Range<usize>,
}

impl ParamTensor {
    /// Whether `transformers.Trainer` applies weight decay to it: not to biases and LayerNorm
    /// weights (`Trainer.get_decay_parameter_names`).
    pub fn decays(&self) -> bool {
        let lower = self.name.to_ascii_lowercase();
        !(lower.contains("bias") || lower.contains("layernorm") || lower.contains("rmsnorm"))
    }
}

/// Named tensors in one flat buffer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamSet {
    tensors: Vec<ParamTensor>,
    index: HashMap<String, usize>,
    data: Vec<f32>,
}

impl ParamSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a tensor; returns its range in [`ParamSet::data`].
    pub fn push(&mut self, name: &str, shape: &[usize], values: Vec<f32>) -> Result<Range<usize>> {
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(Error::Input(format!(
                "parameter `{name}`: shape {shape:?} needs {n} values, got {}",
                values.len()
            )));
        }
        if self.index.contains_key(name) {
            return Err(Error::Input(format!("parameter `{name}` added twice")));
        }
        let range = self.data.len()..self.data.len() + n;
        self.data.extend(values);
        self.index.insert(name.to_string(), self.tensors.len());
        self.tensors.push(ParamTensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            range: range.clone(),
        });
        Ok(range)
    }

    /// The same tensors, all zero (a gradient buffer or an optimizer moment). The zeros are
    /// written, not taken from `calloc`'s untouched pages: those map the shared zero page on
    /// AdamW's first read and fault again, copy and flush the other cores' TLBs on its first
    /// write, page by page (MiniLM's first training step took ~290k page faults).
    pub fn zeros_like(&self) -> ParamSet {
        let mut data = Vec::with_capacity(self.data.len());
        data.resize(self.data.len(), 0.0);
        ParamSet {
            tensors: self.tensors.clone(),
            index: self.index.clone(),
            data,
        }
    }

    pub fn tensors(&self) -> &[ParamTensor] {
        &self.tensors
    }

    /// Total number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&ParamTensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The values of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensor(name).map(|t| &self.data[t.range.clone()])
    }

    /// The values of tensor `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [f32]> {
        let r = self.tensor(name)?.range.clone();
        Some(&mut self.data[r])
    }

    /// Sets every value to 0 (between optimizer steps).
    pub fn zero(&mut self) {
        self.data.fill(0.0);
    }

    /// Writes every tensor, f32, under its name, to a safetensors file (through a temporary name,
    /// renamed when complete).
    pub fn save_safetensors(
        &self,
        path: &Path,
        metadata: Option<HashMap<String, String>>,
    ) -> Result<()> {
        self.save_safetensors_as(path, metadata, str::to_string)
    }

    /// As [`ParamSet::save_safetensors`], each tensor under `name(its name)`.
    pub fn save_safetensors_as(
        &self,
        path: &Path,
        metadata: Option<HashMap<String, String>>,
        name: impl Fn(&str) -> String,
    ) -> Result<()> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|t| {
                let bytes: &[u8] = bytemuck::cast_slice(&self.data[t.range.clone()]);
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    t.shape.clone(),
                    bytes,
                )
                .map(|v| (name(&t.name), v))
                .map_err(|e| Error::Input(format!("tensor `{}`: {e}", t.name)))
            })
            .collect::<Result<_>>()?;
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::serialize_to_file(views, metadata, &tmp)
            .map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a file written by [`ParamSet::save_safetensors`] into a set with the same tensors.
    pub fn load_values(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        for t in &self.tensors {
            let view = st.tensor(&t.name).map_err(|_| Error::MissingTensor {
                name: t.name.clone(),
                files: vec![path.to_path_buf()],
            })?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != t.shape.as_slice() {
                return Err(Error::tensor(
                    &t.name,
                    path,
                    format!(
                        "expected f32 {:?}, found {:?} {:?}",
                        t.shape,
                        view.dtype(),
                        view.shape()
                    ),
                ));
            }
            for (d, c) in self.data[t.range.clone()]
                .iter_mut()
                .zip(view.data().chunks_exact(4))
            {
                *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Ok(())
    }
}
