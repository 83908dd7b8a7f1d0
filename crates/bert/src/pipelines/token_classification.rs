//! transformers' `TokenClassificationPipeline` (`pipeline("ner")`): per-token tags, grouped into
//! entities by `aggregation_strategy`, with character offsets into the text; long texts are cut into
//! overlapping windows whose entities are merged
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/pipelines/token_classification.py>).

use serde::Serialize;

use super::{argmax, char_slice, label, pad_windows, softmax};
use crate::tokenizer::Window;
use crate::{BertForTokenClassification, BertTokenizer, Error, ForwardOptions, Result};

/// How tokens become entities (transformers' `AggregationStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AggregationStrategy {
    /// One entity per token, with its tag (`entity`) and `index`.
    #[default]
    None,
    /// Adjacent tokens with the same tag (B- starts a new one) form an entity; sub-words may differ.
    Simple,
    /// Each word takes its first sub-word's tag, then as `Simple`.
    First,
    /// Each word takes the tag of its averaged sub-word scores, then as `Simple`.
    Average,
    /// Each word takes the tag of its most confident sub-word, then as `Simple`.
    Max,
}

impl std::str::FromStr for AggregationStrategy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => AggregationStrategy::None,
            "simple" => AggregationStrategy::Simple,
            "first" => AggregationStrategy::First,
            "average" => AggregationStrategy::Average,
            "max" => AggregationStrategy::Max,
            _ => {
                return Err(format!(
                    "unknown aggregation strategy `{s}` (none, simple, first, average, max)"
                ))
            }
        })
    }
}

/// Options of [`TokenClassification::entities`], transformers' defaults.
#[derive(Clone, Debug)]
pub struct TokenClassificationOptions {
    pub aggregation_strategy: AggregationStrategy,
    /// Tags (or groups) left out of the result. Default `["O"]`.
    pub ignore_labels: Vec<String>,
    /// Overlap, in tokens, of the windows a text longer than the tokenizer's `max_length` is cut
    /// into (transformers' `stride`). `None`: a quarter of `max_length` when a text needs windows.
    /// A text that fits is one window whatever the stride, as in transformers.
    pub stride: Option<usize>,
}

impl Default for TokenClassificationOptions {
    fn default() -> Self {
        TokenClassificationOptions {
            aggregation_strategy: AggregationStrategy::None,
            ignore_labels: vec!["O".to_string()],
            stride: None,
        }
    }
}

/// One tagged token (`entity`, `index`: strategy `None`) or entity (`entity_group`), with its
/// character span `start..end` in the text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entity {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    pub score: f32,
    /// Token position in its window (strategy `None` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// A token classifier and its tokenizer.
pub struct TokenClassification {
    pub model: BertForTokenClassification,
    pub tokenizer: BertTokenizer,
}

/// A text token with its scores (transformers' `pre_entity`).
struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

/// A tagged token or word before grouping.
struct Tagged {
    entity: String,
    score: f32,
    index: usize,
    word: String,
    start: usize,
    end: usize,
}

impl TokenClassification {
    /// Loads the model and tokenizer of a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Ok(TokenClassification {
            model: BertForTokenClassification::from_pretrained(model)?,
            tokenizer: BertTokenizer::from_pretrained(model)?,
        })
    }

    /// The entities of one text, in text order.
    pub fn entities(&self, text: &str, opts: &TokenClassificationOptions) -> Result<Vec<Entity>> {
        Ok(self.entities_batch(&[text], opts)?.remove(0))
    }

    /// The entities of each text, with one forward pass over all their windows.
    pub fn entities_batch(
        &self,
        texts: &[&str],
        opts: &TokenClassificationOptions,
    ) -> Result<Vec<Vec<Entity>>> {
        let windows = texts
            .iter()
            .map(|t| self.windows(t, opts))
            .collect::<Result<Vec<_>>>()?;
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = pad_windows(&self.tokenizer, windows.iter().flatten())?;
        let logits = self
            .model
            .forward(&batch, &ForwardOptions::default())?
            .logits;
        let mut row = 0;
        let mut out = Vec::with_capacity(texts.len());
        for (text, windows) in texts.iter().zip(&windows) {
            let chars: Vec<char> = text.chars().collect();
            let mut all = Vec::new();
            for window in windows {
                let pre = self.pre_entities(window, &chars, |t| {
                    softmax(
                        logits
                            .slice(ndarray::s![row, t, ..])
                            .as_slice()
                            .expect("standard-layout logits"),
                    )
                });
                row += 1;
                let grouped = self.aggregate(pre, opts.aggregation_strategy)?;
                all.extend(grouped.into_iter().filter(|e| {
                    let tag = e.entity_group.as_ref().or(e.entity.as_ref());
                    !tag.is_some_and(|t| opts.ignore_labels.contains(t))
                }));
            }
            out.push(if windows.len() > 1 {
                merge_overlapping(all)
            } else {
                all
            });
        }
        Ok(out)
    }

    /// One window for a text that fits `max_length`, else windows overlapping by the stride.
    fn windows(
        &self,
        text: &str,
        opts: &TokenClassificationOptions,
    ) -> Result<Vec<tokenizers::Encoding>> {
        let max_length = self.tokenizer.max_length();
        let window = |stride| Window {
            max_length,
            stride,
            only_second: false,
        };
        let windows = self.tokenizer.windows(text, None, window(0))?;
        if windows.len() == 1 {
            return Ok(windows);
        }
        if opts.aggregation_strategy == AggregationStrategy::None {
            // transformers refuses `stride` with strategy none: token indices of overlapping
            // windows cannot be merged.
            return Err(Error::Input(format!(
                "the text is longer than {max_length} tokens (the tokenizer's max_length); \
                 aggregation strategy none cannot merge windows: use simple, first, average \
                 or max, or shorten the text"
            )));
        }
        let stride = opts.stride.unwrap_or(max_length / 4);
        self.tokenizer.windows(text, None, window(stride))
    }

    /// `gather_pre_entities`: text tokens with their scores, offsets and whether they continue a
    /// word (a token string longer or shorter than its text span, like `##ing` for `ing`; for a
    /// tokenizer without a continuation prefix, a token not preceded by a space).
    fn pre_entities(
        &self,
        window: &tokenizers::Encoding,
        chars: &[char],
        scores: impl Fn(usize) -> Vec<f32>,
    ) -> Vec<PreEntity> {
        let unk_id = self.tokenizer.unk_id();
        let word_aware = match self.tokenizer.inner().get_model() {
            tokenizers::ModelWrapper::WordPiece(m) => !m.continuing_subword_prefix.is_empty(),
            tokenizers::ModelWrapper::BPE(m) => m
                .continuing_subword_prefix
                .as_ref()
                .is_some_and(|p| !p.is_empty()),
            _ => false,
        };
        let mut out = Vec::new();
        for (idx, (&id, &(start, end))) in window
            .get_ids()
            .iter()
            .zip(window.get_offsets())
            .enumerate()
        {
            if window.get_special_tokens_mask()[idx] != 0 {
                continue;
            }
            let word_ref = char_slice(chars, start, end);
            let mut word = self
                .tokenizer
                .id_to_token(i64::from(id))
                .unwrap_or_default();
            // transformers: a word-aware model (WordPiece's `##`) tells by the token's length;
            // the others (byte-level BPE, Unigram) by the text: no space before the token.
            let mut is_subword = if word_aware {
                word.chars().count() != word_ref.chars().count()
            } else {
                start > 0 && !chars[start - 1..(start + 1).min(chars.len())].contains(&' ')
            };
            if Some(i64::from(id)) == unk_id {
                word = word_ref;
                is_subword = false;
            }
            out.push(PreEntity {
                word,
                scores: scores(idx),
                start,
                end,
                index: idx,
                is_subword,
            });
        }
        out
    }

    /// `aggregate`: tags per token (none, simple) or per word, then grouped unless `None`.
    fn aggregate(&self, pre: Vec<PreEntity>, strategy: AggregationStrategy) -> Result<Vec<Entity>> {
        let config = self.model.config();
        let tagged: Vec<Tagged> = match strategy {
            AggregationStrategy::None | AggregationStrategy::Simple => pre
                .into_iter()
                .map(|p| {
                    let i = argmax(&p.scores);
                    Ok(Tagged {
                        entity: label(config, i)?,
                        score: p.scores[i],
                        index: p.index,
                        word: p.word,
                        start: p.start,
                        end: p.end,
                    })
                })
                .collect::<Result<_>>()?,
            _ => self.aggregate_words(pre, strategy)?,
        };
        if strategy == AggregationStrategy::None {
            return Ok(tagged
                .into_iter()
                .map(|t| Entity {
                    entity_group: None,
                    entity: Some(t.entity),
                    score: t.score,
                    index: Some(t.index),
                    word: t.word,
                    start: t.start,
                    end: t.end,
                })
                .collect());
        }
        self.group_entities(tagged)
    }

    /// `aggregate_words`: sub-words join the word before them; each word gets one tag.
    fn aggregate_words(
        &self,
        pre: Vec<PreEntity>,
        strategy: AggregationStrategy,
    ) -> Result<Vec<Tagged>> {
        let mut words: Vec<Vec<PreEntity>> = Vec::new();
        for p in pre {
            match words.last_mut() {
                Some(w) if p.is_subword => w.push(p),
                _ => words.push(vec![p]),
            }
        }
        words
            .into_iter()
            .map(|w| self.aggregate_word(&w, strategy))
            .collect()
    }

    fn aggregate_word(
        &self,
        tokens: &[PreEntity],
        strategy: AggregationStrategy,
    ) -> Result<Tagged> {
        let words: Vec<String> = tokens.iter().map(|t| t.word.clone()).collect();
        let word = self.tokenizer.convert_tokens_to_string(&words)?;
        let (idx, score) = match strategy {
            AggregationStrategy::First => {
                let s = &tokens[0].scores;
                let i = argmax(s);
                (i, s[i])
            }
            AggregationStrategy::Max => {
                // Python's max(): the first token with the largest top score.
                let mut best = &tokens[0];
                for t in &tokens[1..] {
                    if max(&t.scores) > max(&best.scores) {
                        best = t;
                    }
                }
                let i = argmax(&best.scores);
                (i, best.scores[i])
            }
            _ => {
                let n = tokens[0].scores.len();
                let avg: Vec<f32> = (0..n)
                    .map(|k| tokens.iter().map(|t| t.scores[k]).sum::<f32>() / tokens.len() as f32)
                    .collect();
                let i = argmax(&avg);
                (i, avg[i])
            }
        };
        Ok(Tagged {
            entity: label(self.model.config(), idx)?,
            score,
            index: tokens[0].index,
            word,
            start: tokens[0].start,
            end: tokens[tokens.len() - 1].end,
        })
    }

    /// `group_entities`: adjacent tokens of the same tag join unless the next one is `B-`.
    fn group_entities(&self, tagged: Vec<Tagged>) -> Result<Vec<Entity>> {
        let mut groups: Vec<Entity> = Vec::new();
        let mut current: Vec<Tagged> = Vec::new();
        for t in tagged {
            if let Some(last) = current.last() {
                let (bi, tag) = get_tag(&t.entity);
                let (_, last_tag) = get_tag(&last.entity);
                if !(tag == last_tag && bi != "B") {
                    groups.push(self.group_sub_entities(&current)?);
                    current.clear();
                }
            }
            current.push(t);
        }
        if !current.is_empty() {
            groups.push(self.group_sub_entities(&current)?);
        }
        Ok(groups)
    }

    fn group_sub_entities(&self, tokens: &[Tagged]) -> Result<Entity> {
        let first = &tokens[0].entity;
        let group = first.split_once('-').map_or(first.as_str(), |(_, g)| g);
        let words: Vec<String> = tokens.iter().map(|t| t.word.clone()).collect();
        Ok(Entity {
            entity_group: Some(group.to_string()),
            entity: None,
            score: tokens.iter().map(|t| t.score).sum::<f32>() / tokens.len() as f32,
            index: None,
            word: self.tokenizer.convert_tokens_to_string(&words)?,
            start: tokens[0].start,
            end: tokens[tokens.len() - 1].end,
        })
    }
}

fn max(x: &[f32]) -> f32 {
    x.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// `get_tag`: (`B` | `I`, tag) of `B-PER`, `I-PER`; any other label is an `I` of itself.
fn get_tag(label: &str) -> (&str, &str) {
    if let Some(t) = label.strip_prefix("B-") {
        ("B", t)
    } else if let Some(t) = label.strip_prefix("I-") {
        ("I", t)
    } else {
        ("I", label)
    }
}

/// `aggregate_overlapping_entities`: entities of overlapping windows sorted by start; of two that
/// overlap, the longer (then the higher-scoring) one stays.
fn merge_overlapping(mut entities: Vec<Entity>) -> Vec<Entity> {
    if entities.is_empty() {
        return entities;
    }
    entities.sort_by_key(|e| e.start);
    let mut out = Vec::new();
    let mut iter = entities.into_iter();
    let mut prev = iter.next().expect("not empty");
    for e in iter {
        if prev.start <= e.start && e.start < prev.end {
            let (cur_len, prev_len) = (e.end - e.start, prev.end - prev.start);
            if cur_len > prev_len || (cur_len == prev_len && e.score > prev.score) {
                prev = e;
            }
        } else {
            out.push(std::mem::replace(&mut prev, e));
        }
    }
    out.push(prev);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(start: usize, end: usize, score: f32) -> Entity {
        Entity {
            entity_group: Some("PER".into()),
            entity: None,
            score,
            index: None,
            word: String::new(),
            start,
            end,
        }
    }

    #[test]
    fn tags() {
        assert_eq!(get_tag("B-PER"), ("B", "PER"));
        assert_eq!(get_tag("I-LOC"), ("I", "LOC"));
        assert_eq!(get_tag("O"), ("I", "O"));
        assert_eq!(get_tag("B-"), ("B", ""));
    }

    #[test]
    fn overlapping_entities_keep_the_longer_then_the_surer() {
        let merged = merge_overlapping(vec![
            ent(10, 14, 0.9),
            ent(0, 3, 0.5),
            ent(10, 20, 0.1), // longer than (10, 14): wins
            ent(0, 3, 0.6),   // same span, higher score: wins
            ent(30, 31, 0.2),
        ]);
        let spans: Vec<(usize, usize, f32)> =
            merged.iter().map(|e| (e.start, e.end, e.score)).collect();
        assert_eq!(spans, vec![(0, 3, 0.6), (10, 20, 0.1), (30, 31, 0.2)]);
        assert!(merge_overlapping(vec![]).is_empty());
    }
}
