//! The losses transformers' heads use, each returning the mean loss and its gradient with respect to
//! the logits (`torch.nn.functional` semantics, reduction `mean`).

use crate::{Error, Result};

/// The label that `CrossEntropyLoss` ignores.
pub const IGNORE_INDEX: i64 = -100;

/// Cross-entropy of `logits` (R, C) against class ids `labels` (R); rows labelled
/// [`IGNORE_INDEX`] count neither in the loss nor in the mean. Returns (loss, dlogits (R, C)).
/// When every row is ignored the loss is 0 with zero gradients (PyTorch gives NaN).
pub fn cross_entropy(logits: &[f32], labels: &[i64], classes: usize) -> Result<(f32, Vec<f32>)> {
    assert_eq!(
        logits.len(),
        labels.len() * classes,
        "cross_entropy: logits size"
    );
    let mut grad = vec![0.0f32; logits.len()];
    let counted = labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
    if counted == 0 {
        return Ok((0.0, grad));
    }
    let mut total = 0.0f64;
    for (r, (&label, row)) in labels.iter().zip(logits.chunks_exact(classes)).enumerate() {
        if label == IGNORE_INDEX {
            continue;
        }
        if label < 0 || label as usize >= classes {
            return Err(Error::Input(format!(
                "label {label} at row {r} is out of range: the head has {classes} classes \
                 (use {IGNORE_INDEX} to ignore a position)"
            )));
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&x| ((x - max) as f64).exp()).sum();
        let lse = max as f64 + sum.ln();
        total += lse - row[label as usize] as f64;
        let g = &mut grad[r * classes..(r + 1) * classes];
        for (k, (g, &x)) in g.iter_mut().zip(row).enumerate() {
            let p = ((x as f64 - lse).exp()) as f32;
            *g = (p - f32::from(u8::from(k == label as usize))) / counted as f32;
        }
    }
    Ok(((total / counted as f64) as f32, grad))
}

/// Mean squared error of `pred` against `target` (same length). Returns (loss, dpred).
pub fn mse(pred: &[f32], target: &[f32]) -> (f32, Vec<f32>) {
    assert_eq!(pred.len(), target.len(), "mse: sizes");
    let n = pred.len().max(1) as f32;
    let loss: f64 = pred
        .iter()
        .zip(target)
        .map(|(p, t)| ((p - t) as f64).powi(2))
        .sum();
    let grad = pred
        .iter()
        .zip(target)
        .map(|(p, t)| 2.0 * (p - t) / n)
        .collect();
    ((loss / n as f64) as f32, grad)
}

/// `BCEWithLogitsLoss`: mean of `max(x, 0) - x t + log(1 + exp(-|x|))`. Returns (loss, dlogits).
pub fn bce_with_logits(logits: &[f32], target: &[f32]) -> (f32, Vec<f32>) {
    assert_eq!(logits.len(), target.len(), "bce_with_logits: sizes");
    let n = logits.len().max(1) as f32;
    let mut loss = 0.0f64;
    let grad = logits
        .iter()
        .zip(target)
        .map(|(&x, &t)| {
            loss += (x.max(0.0) - x * t) as f64 + ((-x.abs()) as f64).exp().ln_1p();
            let s = 1.0 / (1.0 + (-x).exp());
            (s - t) / n
        })
        .collect();
    ((loss / n as f64) as f32, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd(f: impl Fn(&[f32]) -> f32, x: &[f32], grad: &[f32]) {
        for i in 0..x.len() {
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += 1e-2;
            b[i] -= 1e-2;
            let d = (f(&a) - f(&b)) / 2e-2;
            assert!((d - grad[i]).abs() < 2e-3, "[{i}]: fd {d} vs {}", grad[i]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let logits = [0.3f32, -1.2, 2.0, 0.5, 0.1, -0.4, 1.0, 1.0, 1.0];
        let labels = [2i64, IGNORE_INDEX, 0];
        let (loss, g) = cross_entropy(&logits, &labels, 3).unwrap();
        assert!(loss > 0.0);
        assert!(g[3..6].iter().all(|&v| v == 0.0));
        fd(|x| cross_entropy(x, &labels, 3).unwrap().0, &logits, &g);
        let t = [0.5f32, -1.0, 2.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let (_, g) = mse(&logits, &t);
        fd(|x| mse(x, &t).0, &logits, &g);
        let bt = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        let (_, g) = bce_with_logits(&logits, &bt);
        fd(|x| bce_with_logits(x, &bt).0, &logits, &g);
    }

    #[test]
    fn out_of_range_labels_and_all_ignored() {
        assert!(cross_entropy(&[0.0, 1.0], &[2], 2).is_err());
        assert!(cross_entropy(&[0.0, 1.0], &[-3], 2).is_err());
        let (l, g) = cross_entropy(&[0.0, 1.0], &[IGNORE_INDEX], 2).unwrap();
        assert_eq!((l, g), (0.0, vec![0.0, 0.0]));
    }
}
