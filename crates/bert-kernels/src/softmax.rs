//! Numerically stable softmax over a row.

/// `row = exp(row - max) / sum(exp(row - max))`, in place. A row of all `-inf` becomes all zeros.
#[inline]
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    let mut sum = 0.0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    #[test]
    fn matches_reference() {
        for n in [1usize, 2, 7, 8, 9, 64, 129] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 13 % 17) as f32 - 8.0) * 1.3).collect();
            let mut fast = x.clone();
            softmax_row(&mut fast);
            let want = reference::softmax(&x);
            for (a, w) in fast.iter().zip(&want) {
                assert!((a - w).abs() < 1e-6, "n {n}: {a} vs {w}");
            }
        }
        let mut masked = [f32::NEG_INFINITY; 4];
        softmax_row(&mut masked);
        assert_eq!(masked, [0.0; 4]);
    }
}
