//! Ragged packing: the real tokens of a padded (B, T) batch become one (N, ...) matrix, sequence `s`
//! owning rows `cu_seqlens[s]..cu_seqlens[s + 1]`, so no layer does work on padding. Outputs are
//! re-padded only at the public boundary, with zeros where `attention_mask` is 0.

use ndarray::{Array2, Array3, Array4};

/// Where each packed token came from.
#[derive(Clone, Debug)]
pub(crate) struct Packing {
    pub batch: usize,
    pub seq_len: usize,
    /// B + 1 offsets into the packed tokens.
    pub cu_seqlens: Vec<usize>,
    /// (N): the position `t` of each packed token within its sequence.
    pub cols: Vec<usize>,
}

impl Packing {
    /// Packs the positions where `mask` is non-zero, row by row.
    pub fn from_mask(mask: &Array2<i64>) -> Self {
        let (batch, seq_len) = mask.dim();
        let mut cu_seqlens = Vec::with_capacity(batch + 1);
        let mut cols = Vec::new();
        cu_seqlens.push(0);
        for row in mask.rows() {
            for (t, &m) in row.iter().enumerate() {
                if m != 0 {
                    cols.push(t);
                }
            }
            cu_seqlens.push(cols.len());
        }
        Packing {
            batch,
            seq_len,
            cu_seqlens,
            cols,
        }
    }

    /// Number of real tokens N.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// (sequence, position) of every packed token, in packed order.
    pub fn positions(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.batch).flat_map(move |b| {
            self.cols[self.cu_seqlens[b]..self.cu_seqlens[b + 1]]
                .iter()
                .map(move |&t| (b, t))
        })
    }

    /// The packed (N) values of a (B, T) array.
    pub fn gather(&self, a: &Array2<i64>) -> Vec<i64> {
        self.positions().map(|(b, t)| a[[b, t]]).collect()
    }

    /// Re-pads packed rows (N, W) to (B, T, W), zeros at padding.
    pub fn unpack_rows(&self, packed: &[f32], width: usize) -> Array3<f32> {
        debug_assert_eq!(packed.len(), self.len() * width);
        let mut out = Array3::zeros((self.batch, self.seq_len, width));
        let dst = out
            .as_slice_mut()
            .expect("freshly allocated arrays are contiguous");
        for ((b, t), row) in self.positions().zip(packed.chunks_exact(width.max(1))) {
            let off = (b * self.seq_len + t) * width;
            dst[off..off + width].copy_from_slice(row);
        }
        out
    }

    /// Re-pads packed attention probabilities (per sequence (NH, T_s, T_s), as
    /// `bert_kernels::attention::probs_offsets` lays them out) to (B, NH, T, T), zeros at padding.
    pub fn unpack_probs(&self, packed: &[f32], num_heads: usize) -> Array4<f32> {
        let t_max = self.seq_len;
        let mut out = Array4::zeros((self.batch, num_heads, t_max, t_max));
        let dst = out
            .as_slice_mut()
            .expect("freshly allocated arrays are contiguous");
        let mut off = 0;
        for b in 0..self.batch {
            let cols = &self.cols[self.cu_seqlens[b]..self.cu_seqlens[b + 1]];
            let t = cols.len();
            for h in 0..num_heads {
                for (i, &ti) in cols.iter().enumerate() {
                    let src = &packed[off + (h * t + i) * t..][..t];
                    let row = ((b * num_heads + h) * t_max + ti) * t_max;
                    for (j, &tj) in cols.iter().enumerate() {
                        dst[row + tj] = src[j];
                    }
                }
            }
            off += num_heads * t * t;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn packs_holes_and_empty_rows() {
        let mask = array![[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]];
        let p = Packing::from_mask(&mask);
        assert_eq!(p.cu_seqlens, vec![0, 3, 3, 6]);
        assert_eq!(p.cols, vec![0, 1, 3, 1, 2, 3]);
        let ids = array![[10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]];
        assert_eq!(p.gather(&ids), vec![10, 11, 13, 31, 32, 33]);
        let packed: Vec<f32> = (0..6).map(|v| v as f32 + 1.0).collect();
        let out = p.unpack_rows(&packed, 1);
        assert_eq!(out[[0, 3, 0]], 3.0);
        assert_eq!(out[[0, 2, 0]], 0.0);
        assert_eq!(out[[1, 0, 0]], 0.0);
        assert_eq!(out[[2, 1, 0]], 4.0);
    }
}
