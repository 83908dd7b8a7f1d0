//! Evaluation metrics as the usual references compute them: accuracy and macro-F1 (scikit-learn's
//! `f1_score(average="macro")`), and entity-level precision / recall / F1 as `seqeval`'s default
//! (conlleval-style) mode computes them for IOB tags.

use std::collections::BTreeSet;

/// Fraction of equal pairs.
pub fn accuracy(pred: &[i64], gold: &[i64]) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

/// Unweighted mean over the classes `0..classes` of each class's F1 (0 for a class with no
/// predictions and no gold examples is counted, as scikit-learn's default `zero_division`).
pub fn macro_f1(pred: &[i64], gold: &[i64], classes: usize) -> f64 {
    if classes == 0 {
        return 0.0;
    }
    let mut sum = 0.0;
    for c in 0..classes as i64 {
        let tp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g == c)
            .count() as f64;
        let fp = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p == c && **g != c)
            .count() as f64;
        let fn_ = pred
            .iter()
            .zip(gold)
            .filter(|(p, g)| **p != c && **g == c)
            .count() as f64;
        let denom = 2.0 * tp + fp + fn_;
        sum += if denom == 0.0 { 0.0 } else { 2.0 * tp / denom };
    }
    sum / classes as f64
}

/// Entity-level scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntityScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities.
    pub support: usize,
}

/// `seqeval.metrics` precision / recall / F1 (micro over entities) of tag sequences per sentence.
pub fn entity_scores(pred: &[Vec<String>], gold: &[Vec<String>]) -> EntityScores {
    let p = entities(pred);
    let g = entities(gold);
    let correct = p.intersection(&g).count() as f64;
    let precision = if p.is_empty() {
        0.0
    } else {
        correct / p.len() as f64
    };
    let recall = if g.is_empty() {
        0.0
    } else {
        correct / g.len() as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    EntityScores {
        precision,
        recall,
        f1,
        support: g.len(),
    }
}

/// `seqeval.metrics.sequence_labeling.get_entities` over sentences joined with `O` between them:
/// (type, first, last) of every chunk.
pub fn entities(sentences: &[Vec<String>]) -> BTreeSet<(String, usize, usize)> {
    let mut seq: Vec<&str> = Vec::new();
    for s in sentences {
        seq.extend(s.iter().map(String::as_str));
        seq.push("O");
    }
    seq.push("O");
    let mut chunks = BTreeSet::new();
    let (mut prev_tag, mut prev_type) = ('O', String::new());
    let mut begin = 0;
    for (i, chunk) in seq.iter().enumerate() {
        let tag = chunk.chars().next().unwrap_or('O');
        let rest: String = chunk.chars().skip(1).collect();
        let ty = rest.split_once('-').map_or(rest.as_str(), |(_, t)| t);
        let ty = if ty.is_empty() { "_" } else { ty }.to_string();
        if end_of_chunk(prev_tag, tag, &prev_type, &ty) {
            chunks.insert((prev_type.clone(), begin, i - 1));
        }
        if start_of_chunk(prev_tag, tag, &prev_type, &ty) {
            begin = i;
        }
        prev_tag = tag;
        prev_type = ty;
    }
    chunks
}

fn end_of_chunk(prev: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(
        (prev, tag),
        ('E', _) | ('S', _) | ('B', 'B' | 'S' | 'O') | ('I', 'B' | 'S' | 'O')
    ) || (prev != 'O' && prev != '.' && prev_type != ty)
}

fn start_of_chunk(prev: char, tag: char, prev_type: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || matches!((prev, tag), ('E' | 'S' | 'O', 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn seqeval_examples() {
        // seqeval's README example: precision 0.5, recall 0.5, F1 0.5.
        let gold = vec![tags("O O O B-MISC I-MISC I-MISC O"), tags("B-PER I-PER O")];
        let pred = vec![
            tags("O O B-MISC I-MISC I-MISC I-MISC O"),
            tags("B-PER I-PER O"),
        ];
        let s = entity_scores(&pred, &gold);
        assert_eq!((s.precision, s.recall, s.f1, s.support), (0.5, 0.5, 0.5, 2));
        // An I- after O starts an entity (conlleval); a type change splits one.
        let e = entities(&[tags("O I-PER I-PER I-LOC")]);
        let want: BTreeSet<_> = [("PER".to_string(), 1, 2), ("LOC".to_string(), 3, 3)]
            .into_iter()
            .collect();
        assert_eq!(e, want);
    }

    #[test]
    fn accuracy_and_macro_f1() {
        let gold = [0, 0, 1, 1, 2];
        let pred = [0, 1, 1, 1, 0];
        assert!((accuracy(&pred, &gold) - 0.6).abs() < 1e-12);
        // F1: class 0 = 0.5, class 1 = 0.8, class 2 = 0.
        assert!((macro_f1(&pred, &gold, 3) - (0.5 + 0.8) / 3.0).abs() < 1e-12);
    }
}
