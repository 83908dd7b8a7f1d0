//! The number format a model's Linear layers compute in, chosen at load ([`LoadOptions`]).
//! docs/quantization.md has the design and the accuracy and speed measured.

use crate::{Error, Result};

/// The weights and arithmetic of the encoder's Linear layers (Q/K/V, attention output, feed-forward,
/// pooler). Embeddings, LayerNorm, the softmax and the task heads stay f32 in every dtype, and so
/// do attention's two products except under bf16 and int8 on AMX ([`Dtype::attention_in_bf16`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// f32 weights and arithmetic: exact to transformers within docs/numerics.md's tolerances.
    #[default]
    F32,
    /// Weights rounded at load to f16 (round to nearest even; half the bytes of f32), widened to f32
    /// in the product: f32 activations, sums, bias / GELU / residual.
    F16,
    /// Weights rounded at load to bf16 (half the bytes of f32), activations rounded to bf16 at each
    /// product's input, f32 sums and bias / GELU / residual, as
    /// `torch.autocast("cpu", dtype=torch.bfloat16)` runs `nn.Linear`. Native `vdpbf16ps` products
    /// where the CPU has AVX512-BF16, elsewhere emulated on the f32 kernels (the bf16 weights
    /// widened as they are read) with the same numbers, at about f32's speed on large batches and
    /// faster on a few tokens ([`Dtype::is_native`]).
    Bf16,
    /// Weights quantized at load to int8 per output channel (symmetric), activations quantized per
    /// row at each call, int32 accumulation, bias / GELU / residual in f32 after dequantization.
    Int8,
}

impl Dtype {
    /// Every dtype, in the order `--help` lists them.
    pub const ALL: [Dtype; 4] = [Dtype::F32, Dtype::F16, Dtype::Bf16, Dtype::Int8];

    /// The lower-case name [`Dtype::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::Int8 => "int8",
        }
    }

    /// Whether this CPU runs the dtype's products with the instructions they were designed for:
    /// false only for bf16 on a CPU without AVX512-BF16, which emulates it on the f32 kernels (the
    /// same numbers and memory, about f32's speed; `bert` says so on stderr).
    /// (`BERT_KERNELS_ISA=avx2` emulates bf16 on an AVX512-BF16 CPU too.)
    pub fn is_native(self) -> bool {
        self != Dtype::Bf16 || bert_kernels::Bf16Linear::native_on(bert_kernels::Isa::selected())
    }

    /// Whether self-attention's two products (`Q K^T`, `P V`) may run in bf16 with f32 sums
    /// ([`bert_kernels::AttentionArgs::allow_bf16`]): for bf16 (as autocast runs them) and int8.
    /// They do where that is faster ([`bert_kernels::attention::uses_bf16`]): on AMX tiles, for
    /// sequences of more than [`bert_kernels::attention::AMX_MIN_TOKENS`] tokens, when the CPU has
    /// AMX-BF16; with `vdpbf16ps`, for more than [`bert_kernels::attention::DP_MIN_TOKENS`], on
    /// AVX512-BF16 CPUs without AMX (AMD Zen 4 and 5; `BERT_KERNELS_AMX=0` sends an AMX CPU
    /// there too); elsewhere they stay f32.
    pub fn attention_in_bf16(self) -> bool {
        matches!(self, Dtype::Bf16 | Dtype::Int8)
    }

    /// Parses `f32`, `f16`, `bf16` or `int8` (case-insensitive).
    pub fn parse(name: &str) -> Result<Dtype> {
        Dtype::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                Error::Input(format!(
                    "dtype `{name}` is not one of {}",
                    Dtype::ALL.map(Dtype::name).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dtype {
    type Err = Error;
    fn from_str(s: &str) -> Result<Dtype> {
        Dtype::parse(s)
    }
}

/// How a model is loaded. `Default` is f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub dtype: Dtype,
}

impl LoadOptions {
    /// Options with `dtype`, the rest default.
    pub fn dtype(dtype: Dtype) -> Self {
        LoadOptions { dtype }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        for d in Dtype::ALL {
            assert_eq!(Dtype::parse(d.name()).unwrap(), d);
            assert_eq!(d.to_string().to_uppercase().parse::<Dtype>().unwrap(), d);
        }
        let err = Dtype::parse("int4").unwrap_err().to_string();
        assert!(err.contains("f32, f16, bf16, int8"), "{err}");
    }
}
