//! BERT's embedding sum for training: `out = word[ids] + token_type[types] + position[positions]`,
//! and its backward, a scatter-add of the output gradient into the three tables.

use rayon::prelude::*;

/// The three (rows, H) tables and which word row is padding (gets no gradient, as
/// `nn.Embedding(padding_idx=pad_token_id)`).
#[derive(Clone, Copy, Debug)]
pub struct Tables<'a> {
    pub word: &'a [f32],
    pub token_type: &'a [f32],
    pub position: &'a [f32],
    pub hidden: usize,
}

/// `out (N, H)`, for packed token indices already checked against the table sizes.
pub fn embedding_forward(
    out: &mut [f32],
    t: Tables<'_>,
    ids: &[i64],
    types: &[i64],
    positions: &[i64],
) {
    let h = t.hidden;
    out.par_chunks_mut(h).enumerate().for_each(|(i, row)| {
        let w = &t.word[ids[i] as usize * h..][..h];
        let ty = &t.token_type[types[i] as usize * h..][..h];
        let p = &t.position[positions[i] as usize * h..][..h];
        // transformers' order: (word + token_type) + position.
        for k in 0..h {
            row[k] = (w[k] + ty[k]) + p[k];
        }
    });
}

/// Adds each token's `dout` row into the rows of the tables it read; word row `pad` is skipped.
/// Tokens are visited in order (the sums are reproducible).
#[allow(clippy::too_many_arguments)]
pub fn embedding_backward(
    dword: &mut [f32],
    dtype: &mut [f32],
    dpos: &mut [f32],
    dout: &[f32],
    ids: &[i64],
    types: &[i64],
    positions: &[i64],
    hidden: usize,
    pad: Option<usize>,
) {
    let h = hidden;
    for (i, g) in dout.chunks_exact(h).enumerate() {
        let id = ids[i] as usize;
        if Some(id) != pad {
            add(&mut dword[id * h..(id + 1) * h], g);
        }
        let ty = types[i] as usize;
        add(&mut dtype[ty * h..(ty + 1) * h], g);
        let p = positions[i] as usize;
        add(&mut dpos[p * h..(p + 1) * h], g);
    }
}

fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_add_is_the_transpose_of_the_gather() {
        let h = 3;
        let word: Vec<f32> = (0..5 * h).map(|v| v as f32).collect();
        let ty: Vec<f32> = (0..2 * h).map(|v| v as f32 * 10.0).collect();
        let pos: Vec<f32> = (0..4 * h).map(|v| v as f32 * 100.0).collect();
        let (ids, types, positions) = ([1i64, 0, 1, 4], [0i64, 1, 1, 0], [0i64, 1, 2, 3]);
        let t = Tables {
            word: &word,
            token_type: &ty,
            position: &pos,
            hidden: h,
        };
        let mut out = vec![0.0; 4 * h];
        embedding_forward(&mut out, t, &ids, &types, &positions);
        assert_eq!(out[..3], [3.0, 4.0 + 10.0 + 100.0, 5.0 + 20.0 + 200.0]);
        let dout: Vec<f32> = (0..4 * h).map(|v| v as f32 + 1.0).collect();
        let (mut dw, mut dt, mut dp) = (vec![0.0; 5 * h], vec![0.0; 2 * h], vec![0.0; 4 * h]);
        embedding_backward(
            &mut dw,
            &mut dt,
            &mut dp,
            &dout,
            &ids,
            &types,
            &positions,
            h,
            Some(0),
        );
        // word 1 gets tokens 0 and 2, word 0 (padding) nothing, word 4 token 3.
        assert_eq!(dw[3..6], [1.0 + 7.0, 2.0 + 8.0, 3.0 + 9.0]);
        assert_eq!(dw[0..3], [0.0; 3]);
        assert_eq!(dw[12..15], [10.0, 11.0, 12.0]);
        assert_eq!(dt[0..3], [1.0 + 10.0, 2.0 + 11.0, 3.0 + 12.0]);
        assert_eq!(dp[6..9], [7.0, 8.0, 9.0]);
    }
}
