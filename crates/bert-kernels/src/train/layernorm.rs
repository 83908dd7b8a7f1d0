//! LayerNorm over the last dimension for training: the forward keeps each row's mean and 1/std.

use rayon::prelude::*;

use super::{add_partials, REDUCE_ROWS};
use crate::layernorm::{dot8, sum8};

/// `out[r] = (x[r] - mean) * rstd * gamma + beta`; stores `mean[r]` and `rstd[r]`.
/// Same arithmetic as [`crate::layer_norm`] (two-pass statistics).
pub fn layer_norm_forward(
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let h = gamma.len();
    assert!(h > 0, "layer_norm_forward: empty rows");
    let rows = x.len() / h;
    assert_eq!(x.len(), rows * h, "layer_norm_forward: x is not whole rows");
    assert_eq!(out.len(), x.len(), "layer_norm_forward: out size");
    assert_eq!(mean.len(), rows, "layer_norm_forward: mean size");
    assert_eq!(rstd.len(), rows, "layer_norm_forward: rstd size");
    out.par_chunks_mut(h)
        .zip(x.par_chunks(h))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .for_each(|((o, row), (m, r))| {
            let (mu, rs) = crate::layernorm::row_stats(row, eps);
            for (((o, &x), &g), &b) in o.iter_mut().zip(row).zip(gamma).zip(beta) {
                *o = (x - mu) * rs * g + b;
            }
            *m = mu;
            *r = rs;
        });
}

/// Gradients of [`layer_norm_forward`]: `dx (+)= ...` (overwritten unless `accumulate`),
/// `dgamma += sum_r dy * xhat`, `dbeta += sum_r dy`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    mean: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    accumulate: bool,
) {
    let h = gamma.len();
    assert!(h > 0, "layer_norm_backward: empty rows");
    assert_eq!(dx.len(), x.len(), "layer_norm_backward: dx size");
    assert_eq!(dy.len(), x.len(), "layer_norm_backward: dy size");
    assert_eq!(mean.len() * h, x.len(), "layer_norm_backward: mean size");
    let chunk = REDUCE_ROWS * h;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(chunk)
        .zip(dy.par_chunks(chunk))
        .zip(x.par_chunks(chunk))
        .enumerate()
        .map(|(c, ((dxc, dyc), xc))| {
            let mut dg = vec![0.0f32; h];
            let mut dbv = vec![0.0f32; h];
            let (mut xhat, mut dn) = (vec![0.0f32; h], vec![0.0f32; h]);
            let r0 = c * REDUCE_ROWS;
            for (i, ((dxr, dyr), xr)) in dxc
                .chunks_exact_mut(h)
                .zip(dyc.chunks_exact(h))
                .zip(xc.chunks_exact(h))
                .enumerate()
            {
                let (mu, rs) = (mean[r0 + i], rstd[r0 + i]);
                // dnorm = dy * gamma; dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
                for k in 0..h {
                    xhat[k] = (xr[k] - mu) * rs;
                    dn[k] = dyr[k] * gamma[k];
                    dg[k] += dyr[k] * xhat[k];
                    dbv[k] += dyr[k];
                }
                let m1 = sum8(&dn) / h as f32;
                let m2 = dot8(&dn, &xhat) / h as f32;
                let dx_row = dn
                    .iter()
                    .zip(&xhat)
                    .map(|(&d, &xh)| (d - m1 - xh * m2) * rs);
                if accumulate {
                    dxr.iter_mut().zip(dx_row).for_each(|(o, v)| *o += v);
                } else {
                    dxr.iter_mut().zip(dx_row).for_each(|(o, v)| *o = v);
                }
            }
            (dg, dbv)
        })
        .collect();
    let (dgs, dbs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    add_partials(dgamma, &dgs);
    add_partials(dbeta, &dbs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::reference::test_data;

    #[test]
    fn forward_and_backward_match_reference() {
        for &(rows, h) in &[(1, 1), (1, 7), (3, 8), (70, 33), (130, 16)] {
            let x = test_data(rows * h, 1, 2.0);
            let g = test_data(h, 2, 0.5)
                .iter()
                .map(|v| v + 1.0)
                .collect::<Vec<_>>();
            let b = test_data(h, 3, 0.3);
            let dy = test_data(rows * h, 4, 1.0);
            let (mut y, mut mean, mut rstd) =
                (vec![0.0; rows * h], vec![0.0; rows], vec![0.0; rows]);
            layer_norm_forward(&mut y, &mut mean, &mut rstd, &x, &g, &b, 1e-5);
            let want = reference::layer_norm(&x, &g, &b, 1e-5);
            for (a, w) in y.iter().zip(&want) {
                assert!((a - w).abs() < 1e-5, "forward {rows}x{h}: {a} vs {w}");
            }
            let mut dx = test_data(rows * h, 5, 1.0);
            let (mut dg, mut db) = (test_data(h, 6, 1.0), test_data(h, 7, 1.0));
            let (mut wdx, mut wdg, mut wdb) = (dx.clone(), dg.clone(), db.clone());
            layer_norm_backward(&mut dx, &mut dg, &mut db, &dy, &x, &mean, &rstd, &g, true);
            reference::layer_norm_backward(&mut wdx, &mut wdg, &mut wdb, &dy, &x, &g, 1e-5);
            for (what, a, w) in [
                ("dx", &dx, &wdx),
                ("dgamma", &dg, &wdg),
                ("dbeta", &db, &wdb),
            ] {
                for (p, q) in a.iter().zip(w.iter()) {
                    assert!(
                        (p - q).abs() < 2e-4 * (1.0 + q.abs()),
                        "{what} {rows}x{h}: {p} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let (rows, h) = (3, 10);
        let x = test_data(rows * h, 11, 1.5);
        let g = test_data(h, 12, 0.5)
            .iter()
            .map(|v| v + 1.0)
            .collect::<Vec<_>>();
        let b = test_data(h, 13, 0.3);
        let dy = test_data(rows * h, 14, 1.0);
        let loss = |x: &[f32], g: &[f32], b: &[f32]| -> f64 {
            let y = reference::layer_norm(x, g, b, 1e-5);
            y.iter().zip(&dy).map(|(a, d)| *a as f64 * *d as f64).sum()
        };
        let (mut mean, mut rstd, mut y) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; rows * h]);
        layer_norm_forward(&mut y, &mut mean, &mut rstd, &x, &g, &b, 1e-5);
        let (mut dx, mut dg, mut db) = (vec![0.0; rows * h], vec![0.0; h], vec![0.0; h]);
        layer_norm_backward(&mut dx, &mut dg, &mut db, &dy, &x, &mean, &rstd, &g, false);
        let eps = 1e-2f32;
        for i in 0..x.len() {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&p, &g, &b) - loss(&m, &g, &b)) / (2.0 * eps as f64);
            assert!(
                (fd as f32 - dx[i]).abs() < 2e-2,
                "dx[{i}]: fd {fd} vs {}",
                dx[i]
            );
        }
        for i in 0..h {
            let (mut p, mut m) = (g.clone(), g.clone());
            p[i] += eps;
            m[i] -= eps;
            let fd = (loss(&x, &p, &b) - loss(&x, &m, &b)) / (2.0 * eps as f64);
            assert!(
                (fd as f32 - dg[i]).abs() < 2e-2,
                "dgamma[{i}]: fd {fd} vs {}",
                dg[i]
            );
        }
    }
}
