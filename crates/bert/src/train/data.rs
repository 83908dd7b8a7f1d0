//! Tokenized training examples and their collation into padded batches, as transformers'
//! `DataCollatorWithPadding` / `DataCollatorForTokenClassification` (labels padded with -100).

use ndarray::Array2;

use super::heads::Labels;
use super::loss::IGNORE_INDEX;
use crate::{BertInputs, Error, Result};

/// What one example is labelled with.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A class id (single-label classification).
    Class(i64),
    /// Regression values, or 0/1 per class (multi-label); `num_labels` long.
    Scores(Vec<f32>),
    /// One class id per token (-100 on sub-words and special tokens).
    Tokens(Vec<i64>),
    /// Start and end token of the answer.
    Span(i64, i64),
}

/// One tokenized example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
    pub target: Target,
}

impl Example {
    /// Real tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// `run_ner.py`'s alignment (`label_all_tokens=False`): each word's label on its first token,
/// -100 on its other tokens and on special tokens. `word_ids` is per token (`None` = special).
pub fn align_word_labels(word_ids: &[Option<u32>], word_labels: &[i64]) -> Vec<i64> {
    let mut prev = None;
    word_ids
        .iter()
        .map(|w| {
            let label = match *w {
                Some(w) if Some(w) != prev => {
                    word_labels.get(w as usize).copied().unwrap_or(IGNORE_INDEX)
                }
                _ => IGNORE_INDEX,
            };
            prev = *w;
            label
        })
        .collect()
}

/// Pads a batch to its longest example and stacks its labels.
pub fn collate(batch: &[&Example], pad_id: i64) -> Result<(BertInputs, Labels)> {
    let first = batch
        .first()
        .ok_or_else(|| Error::Input("an empty batch".into()))?;
    let rows: Vec<(Vec<i64>, Vec<i64>)> = batch
        .iter()
        .map(|e| (e.ids.clone(), e.type_ids.clone()))
        .collect();
    let inputs = BertInputs::from_rows(&rows, pad_id)?;
    let (b, t) = inputs.input_ids.dim();
    let mixed = || Error::Input("a batch mixes examples of different kinds of labels".into());
    let labels = match &first.target {
        Target::Class(_) => Labels::Classes(
            batch
                .iter()
                .map(|e| match e.target {
                    Target::Class(c) => Ok(c),
                    _ => Err(mixed()),
                })
                .collect::<Result<_>>()?,
        ),
        Target::Scores(s) => {
            let width = s.len();
            let mut a = Array2::zeros((b, width));
            for (i, e) in batch.iter().enumerate() {
                match &e.target {
                    Target::Scores(v) if v.len() == width => {
                        a.row_mut(i).iter_mut().zip(v).for_each(|(d, s)| *d = *s)
                    }
                    _ => return Err(mixed()),
                }
            }
            Labels::Scores(a)
        }
        Target::Tokens(_) => {
            let mut a = Array2::from_elem((b, t), IGNORE_INDEX);
            for (i, e) in batch.iter().enumerate() {
                match &e.target {
                    Target::Tokens(v) if v.len() == e.ids.len() => {
                        a.row_mut(i).iter_mut().zip(v).for_each(|(d, s)| *d = *s)
                    }
                    Target::Tokens(v) => {
                        return Err(Error::Input(format!(
                            "example {i}: {} token labels for {} tokens",
                            v.len(),
                            e.ids.len()
                        )))
                    }
                    _ => return Err(mixed()),
                }
            }
            Labels::Tokens(a)
        }
        Target::Span(..) => {
            let (mut start, mut end) = (Vec::with_capacity(b), Vec::with_capacity(b));
            for e in batch {
                match e.target {
                    Target::Span(s, t) => {
                        start.push(s);
                        end.push(t);
                    }
                    _ => return Err(mixed()),
                }
            }
            Labels::Spans { start, end }
        }
    };
    Ok((inputs, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_labels_go_to_first_sub_tokens() {
        let w = [None, Some(0), Some(1), Some(1), Some(2), None];
        assert_eq!(
            align_word_labels(&w, &[3, 1, 2]),
            vec![-100, 3, 1, -100, 2, -100]
        );
    }

    #[test]
    fn token_labels_pad_with_ignore_index() {
        let a = Example {
            ids: vec![101, 5, 102],
            type_ids: vec![0; 3],
            target: Target::Tokens(vec![-100, 1, -100]),
        };
        let b = Example {
            ids: vec![101, 102],
            type_ids: vec![0; 2],
            target: Target::Tokens(vec![-100, -100]),
        };
        let (inputs, labels) = collate(&[&a, &b], 0).unwrap();
        assert_eq!(inputs.input_ids.dim(), (2, 3));
        let Labels::Tokens(l) = labels else { panic!() };
        assert_eq!(l.row(1).to_vec(), vec![-100, -100, -100]);
        let c = Example {
            target: Target::Class(1),
            ..b.clone()
        };
        assert!(collate(&[&a, &c], 0).is_err());
    }
}
