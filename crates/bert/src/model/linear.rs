//! The encoder's `nn.Linear` in the dtype it was loaded with: an enum over bert-kernels' f32, f16,
//! bf16 and int8 layers, so the f32 path calls `Linear::forward` as before behind one predictable
//! branch.

use bert_kernels::{Bf16Linear, Epilogue, F16Linear, Int8Linear, Linear};

use crate::Dtype;

pub(crate) enum ModelLinear {
    F32(Linear),
    F16(F16Linear),
    Bf16(Bf16Linear),
    Int8(Int8Linear),
}

impl ModelLinear {
    /// `weight` (out, in) row-major, `bias` (out), converted to `dtype`.
    pub fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        dtype: Dtype,
    ) -> Self {
        match dtype {
            Dtype::F32 => ModelLinear::F32(Linear::new(weight, bias, out_features, in_features)),
            Dtype::F16 => {
                ModelLinear::F16(F16Linear::new(&weight, bias, out_features, in_features))
            }
            Dtype::Bf16 => {
                ModelLinear::Bf16(Bf16Linear::new(&weight, bias, out_features, in_features))
            }
            Dtype::Int8 => {
                ModelLinear::Int8(Int8Linear::new(&weight, bias, out_features, in_features))
            }
        }
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`.
    #[inline]
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        match self {
            ModelLinear::F32(l) => l.forward(x, y, epilogue),
            ModelLinear::F16(l) => l.forward(x, y, epilogue),
            ModelLinear::Bf16(l) => l.forward(x, y, epilogue),
            ModelLinear::Int8(l) => l.forward(x, y, epilogue),
        }
    }

    /// Bytes of weights and bias held.
    pub fn memory_bytes(&self) -> usize {
        match self {
            ModelLinear::F32(l) => l.memory_bytes(),
            ModelLinear::F16(l) => l.memory_bytes(),
            ModelLinear::Bf16(l) => l.memory_bytes(),
            ModelLinear::Int8(l) => l.memory_bytes(),
        }
    }
}
