//! The summary `bert encode` prints without `--output`: each tensor's shape and the first values of
//! its first rows, sliced and labelled by the real extent of the last axis. It keeps only what it
//! prints, so its memory does not grow with the number of inputs.

use std::io::Write;

use bert::ndarray::{ArrayD, ArrayViewD, Axis};

/// Rows (inputs) shown per tensor.
const ROWS: usize = 3;

/// One batch's tensor, B first, padded to the batch's own length.
pub enum Rows {
    /// Token ids and masks, and the value that pads them.
    Int(ArrayD<i64>, i64),
    Float(ArrayD<f32>),
}

impl Rows {
    pub fn batch(&self) -> usize {
        match self {
            Rows::Int(a, _) => a.len_of(Axis(0)),
            Rows::Float(a) => a.len_of(Axis(0)),
        }
    }
}

struct Shown {
    name: String,
    /// Values shown per row: 8 ids, 6 floats.
    width: usize,
    /// The padding value as printed.
    pad: String,
    /// The first values of the last axis at index [r, 0, ..., 0] of each of the first rows.
    rows: Vec<Vec<String>>,
}

/// What the summary has seen: the first rows of every tensor.
#[derive(Default)]
pub struct Summary {
    shown: Vec<Shown>,
}

impl Summary {
    /// Records the rows of a batch whose first input is input number `start`.
    pub fn add(&mut self, start: usize, tensors: &[(String, Rows)]) {
        if start >= ROWS {
            return;
        }
        if self.shown.is_empty() {
            self.shown = tensors
                .iter()
                .map(|(name, rows)| Shown {
                    name: name.clone(),
                    width: if matches!(rows, Rows::Int(..)) { 8 } else { 6 },
                    pad: match rows {
                        Rows::Int(_, pad) => pad.to_string(),
                        Rows::Float(_) => format!("{:.6}", 0.0),
                    },
                    rows: Vec::new(),
                })
                .collect();
        }
        for (shown, (_, rows)) in self.shown.iter_mut().zip(tensors) {
            let take = (ROWS - start).min(rows.batch());
            for r in 0..take {
                let first = match rows {
                    Rows::Int(a, _) => {
                        first_values(a.index_axis(Axis(0), r), shown.width, |v| v.to_string())
                    }
                    Rows::Float(a) => {
                        first_values(a.index_axis(Axis(0), r), shown.width, |v| format!("{v:.6}"))
                    }
                };
                shown.rows.push(first);
            }
        }
    }

    /// Prints every tensor with its final shape (`shapes` in the order of the tensors added).
    pub fn print(&self, out: &mut impl Write, shapes: &[Vec<usize>]) -> std::io::Result<()> {
        for (s, shape) in self.shown.iter().zip(shapes) {
            writeln!(out, "{}: shape {shape:?}", s.name)?;
            let last = shape.last().copied().unwrap_or(0);
            let n = s.width.min(last);
            for (r, values) in s.rows.iter().enumerate() {
                // Inputs of a later, longer batch padded this row further: show the padding.
                let mut v: Vec<&str> = values.iter().take(n).map(String::as_str).collect();
                v.resize(n, &s.pad);
                let mut index = vec![r.to_string()];
                index.extend(vec!["0".to_string(); shape.len().saturating_sub(2)]);
                let more = if last > n { ", ..." } else { "" };
                writeln!(
                    out,
                    "  [{}, :{n}] = [{}{more}]",
                    index.join(", "),
                    v.join(", ")
                )?;
            }
            let rest = shape[0].saturating_sub(s.rows.len());
            if rest > 0 {
                writeln!(out, "  ({rest} more rows)")?;
            }
        }
        Ok(())
    }
}

/// The first `n` values of the last axis of `row` at index [0, ..., 0].
fn first_values<T: Copy>(
    row: ArrayViewD<'_, T>,
    n: usize,
    fmt: impl Fn(T) -> String,
) -> Vec<String> {
    let mut v = row;
    while v.ndim() > 1 {
        v = v.index_axis_move(Axis(0), 0);
    }
    v.iter().take(n).map(|&x| fmt(x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bert::ndarray::IxDyn;

    #[test]
    fn slices_by_the_real_extent() {
        // (B 2, NH 1, T 4, T 4), as attentions of "hi there" have a last axis of 4.
        let a = ArrayD::from_shape_fn(IxDyn(&[2, 1, 4, 4]), |i| (i[2] * 4 + i[3]) as f32);
        let mut s = Summary::default();
        s.add(0, &[("att".into(), Rows::Float(a))]);
        let mut out = Vec::new();
        s.print(&mut out, &[vec![2, 1, 4, 4]]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("[0, 0, 0, :4] = [0.000000, 1.000000, 2.000000, 3.000000]\n"),
            "{text}"
        );
        // A later batch made the inputs longer: the row shows its padding and says there is more.
        let mut out = Vec::new();
        s.print(&mut out, &[vec![5, 1, 9, 9]]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "[1, 0, 0, :6] = [0.000000, 1.000000, 2.000000, 3.000000, 0.000000, 0.000000, ...]"
            ),
            "{text}"
        );
        assert!(text.contains("(3 more rows)"), "{text}");
    }
}
