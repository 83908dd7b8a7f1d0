//! `torch.nn.Linear`: `y = x W^T + b`, with the element-wise work that follows it fused in.

use rayon::prelude::*;

use crate::Activation;

/// What happens to `x W^T + b` before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum Epilogue<'a> {
    /// `y = x W^T + b`.
    Bias,
    /// `y = act(x W^T + b)`.
    BiasActivation(Activation),
    /// `y = x W^T + b + residual`, `residual` shaped like `y`.
    BiasResidual(&'a [f32]),
}

/// A Linear layer's weights, prepared once at load for fast products.
pub struct Linear {
    /// (out, in) row-major, as stored in PyTorch checkpoints.
    weight: Vec<f32>,
    bias: Vec<f32>,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// `weight` is (out, in) row-major (PyTorch layout); `bias` has `out` entries.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, out_features: usize, in_features: usize) -> Self {
        assert_eq!(
            weight.len(),
            out_features * in_features,
            "Linear: weight size"
        );
        assert_eq!(bias.len(), out_features, "Linear: bias size");
        Linear {
            weight,
            bias,
            in_features,
            out_features,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The weight in PyTorch layout, (out, in) row-major.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// `y (M, out) = epilogue(x (M, in) W^T + b)`.
    pub fn forward(&self, x: &[f32], y: &mut [f32], epilogue: Epilogue<'_>) {
        let (k, n) = (self.in_features, self.out_features);
        assert_eq!(x.len() % k, 0, "Linear: x is not whole rows");
        let m = x.len() / k;
        assert_eq!(y.len(), m * n, "Linear: y size");
        if m == 0 {
            return;
        }
        let threads = rayon::current_num_threads();
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the strides describe x (m, k) row-major, W^T (k, n) read from W (n, k) row-major and
        // y (m, n) row-major; the asserts above ensure every index is in bounds.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                self.weight.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
        let rows = crate::rows_per_task(m, n);
        match epilogue {
            Epilogue::Bias => y.par_chunks_mut(n * rows).for_each(|c| {
                for row in c.chunks_exact_mut(n) {
                    add(row, &self.bias);
                }
            }),
            Epilogue::BiasActivation(act) => y.par_chunks_mut(n * rows).for_each(|c| {
                for row in c.chunks_exact_mut(n) {
                    for (v, b) in row.iter_mut().zip(&self.bias) {
                        *v = act.apply(*v + b);
                    }
                }
            }),
            Epilogue::BiasResidual(res) => {
                assert_eq!(res.len(), y.len(), "Linear: residual size");
                y.par_chunks_mut(n * rows)
                    .zip(res.par_chunks(n * rows))
                    .for_each(|(c, r)| {
                        for (row, rrow) in c.chunks_exact_mut(n).zip(r.chunks_exact(n)) {
                            for ((v, b), r) in row.iter_mut().zip(&self.bias).zip(rrow) {
                                *v += b + r;
                            }
                        }
                    })
            }
        }
    }
}

#[inline]
fn add(row: &mut [f32], b: &[f32]) {
    for (v, b) in row.iter_mut().zip(b) {
        *v += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5)
            .collect()
    }

    #[test]
    fn matches_reference_on_edge_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 7, 3),
            (3, 32, 37),
            (8, 384, 1152),
            (13, 37, 32),
            (64, 64, 64),
        ] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let res = data(m * n, 4);
            let lin = Linear::new(w.clone(), b.clone(), n, k);
            for epi in [
                Epilogue::Bias,
                Epilogue::BiasActivation(Activation::Gelu),
                Epilogue::BiasResidual(&res),
            ] {
                let mut y = vec![f32::NAN; m * n];
                lin.forward(&x, &mut y, epi);
                let mut want = reference::linear(&x, &w, &b, m, k, n);
                match epi {
                    Epilogue::Bias => {}
                    Epilogue::BiasActivation(a) => want
                        .iter_mut()
                        .for_each(|v| *v = reference::activation(a, *v)),
                    Epilogue::BiasResidual(r) => want.iter_mut().zip(r).for_each(|(v, r)| *v += r),
                }
                for (a, w) in y.iter().zip(&want) {
                    assert!((a - w).abs() < 1e-4, "{m}x{k}x{n} {epi:?}: {a} vs {w}");
                }
            }
        }
    }
}
