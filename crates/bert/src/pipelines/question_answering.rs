//! transformers' `QuestionAnsweringPipeline` (`pipeline("question-answering")`) with a fast
//! tokenizer: the (question, context) pair cut into overlapping windows of the context, span scores
//! `p_start * p_end` per window, answers aligned to whole words and given as character offsets in
//! the context
//! (<https://github.com/huggingface/transformers/blob/v4.57.6/src/transformers/pipelines/question_answering.py>).

use serde::Serialize;

use super::{char_slice, pad_windows};
use crate::tokenizer::Window;
use crate::{BertForQuestionAnswering, BertTokenizer, Error, ForwardOptions, Result};

/// Options of [`QuestionAnswering::answer`], transformers' defaults.
#[derive(Clone, Debug)]
pub struct QuestionAnsweringOptions {
    /// Answers returned, best first (fewer when the context has fewer). Default 1.
    pub top_k: usize,
    /// Tokens per window, question and special tokens included. `None`: the tokenizer's
    /// `max_length`, at most 384.
    pub max_seq_len: Option<usize>,
    /// Context tokens two consecutive windows share. `None`: `max_seq_len / 2`, at most 128.
    pub doc_stride: Option<usize>,
    /// Longest answer, in tokens. Default 15.
    pub max_answer_len: usize,
    /// Also offer the empty answer (`""` at 0..0), scored by the `[CLS]` span. Default false.
    pub handle_impossible_answer: bool,
}

impl Default for QuestionAnsweringOptions {
    fn default() -> Self {
        QuestionAnsweringOptions {
            top_k: 1,
            max_seq_len: None,
            doc_stride: None,
            max_answer_len: 15,
            handle_impossible_answer: false,
        }
    }
}

/// One answer: `context[start..end]` in characters, and its score.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    pub score: f64,
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// An extractive QA model and its tokenizer.
pub struct QuestionAnswering {
    pub model: BertForQuestionAnswering,
    pub tokenizer: BertTokenizer,
}

impl QuestionAnswering {
    /// Loads the model and tokenizer of a directory or hub id.
    pub fn from_pretrained(model: &str) -> Result<Self> {
        Ok(QuestionAnswering {
            model: BertForQuestionAnswering::from_pretrained(model)?,
            tokenizer: BertTokenizer::from_pretrained(model)?,
        })
    }

    /// The best answers to `question` in `context`. A context longer than a window is covered by
    /// several windows; a question too long to leave room for the context is an error.
    pub fn answer(
        &self,
        question: &str,
        context: &str,
        opts: &QuestionAnsweringOptions,
    ) -> Result<Vec<Answer>> {
        Ok(self.answer_batch(&[(question, context)], opts)?.remove(0))
    }

    /// The answers of each `(question, context)`, with one forward pass over all their windows.
    pub fn answer_batch(
        &self,
        pairs: &[(&str, &str)],
        opts: &QuestionAnsweringOptions,
    ) -> Result<Vec<Vec<Answer>>> {
        let windows = pairs
            .iter()
            .map(|&(q, c)| self.windows(q, c, opts))
            .collect::<Result<Vec<_>>>()?;
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let batch = pad_windows(&self.tokenizer, windows.iter().flatten())?;
        let out = self.model.forward(&batch, &ForwardOptions::default())?;
        let mut row = 0;
        let mut answers = Vec::with_capacity(pairs.len());
        for (&(_, context), windows) in pairs.iter().zip(&windows) {
            answers.push(self.postprocess(
                context,
                windows,
                (&out.start_logits, &out.end_logits, row),
                opts,
            ));
            row += windows.len();
        }
        Ok(answers)
    }

    /// The windows of one (question, context), after checking the inputs and options.
    fn windows(
        &self,
        question: &str,
        context: &str,
        opts: &QuestionAnsweringOptions,
    ) -> Result<Vec<tokenizers::Encoding>> {
        // As transformers' QuestionAnsweringArgumentHandler.
        if question.is_empty() || context.is_empty() {
            return Err(Error::Input(format!(
                "the {} is empty",
                if question.is_empty() {
                    "question"
                } else {
                    "context"
                }
            )));
        }
        if opts.top_k == 0 || opts.max_answer_len == 0 {
            return Err(Error::Input(format!(
                "top_k ({}) and max_answer_len ({}) must be at least 1",
                opts.top_k, opts.max_answer_len
            )));
        }
        let max_seq_len = opts
            .max_seq_len
            .unwrap_or_else(|| self.tokenizer.max_length().min(384));
        let doc_stride = opts.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if doc_stride > max_seq_len {
            return Err(Error::Input(format!(
                "doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})"
            )));
        }
        self.check_question(question, context, max_seq_len, doc_stride)?;
        self.tokenizer.windows(
            question,
            Some(context),
            Window {
                max_length: max_seq_len,
                stride: doc_stride,
                only_second: true,
            },
        )
    }

    /// `postprocess` of one (question, context): its windows' rows `row..` of the logits.
    fn postprocess(
        &self,
        context: &str,
        windows: &[tokenizers::Encoding],
        (start_logits, end_logits, row): (&ndarray::Array2<f32>, &ndarray::Array2<f32>, usize),
        opts: &QuestionAnsweringOptions,
    ) -> Vec<Answer> {
        let chars: Vec<char> = context.chars().collect();
        let cls = self.tokenizer.cls_id();
        let pre_topk = opts.top_k * 2 + 10;
        let mut min_null = 1_000_000f64;
        let mut answers: Vec<Answer> = Vec::new();
        for (i, enc) in windows.iter().enumerate() {
            let w = row + i;
            let n = enc.len();
            // p_mask 0 (allowed) on context tokens and the CLS token ([CLS], <s>); `undesired_tokens` in transformers.
            let allowed: Vec<bool> = enc
                .get_sequence_ids()
                .iter()
                .zip(enc.get_ids())
                .map(|(&seq, &id)| seq == Some(1) || Some(i64::from(id)) == cls)
                .collect();
            let logits = |row: &ndarray::Array2<f32>| -> Vec<f32> {
                (0..n)
                    .map(|t| if allowed[t] { row[[w, t]] } else { -10000.0 })
                    .collect()
            };
            let mut start = normalize(&logits(start_logits));
            let mut end = normalize(&logits(end_logits));
            if opts.handle_impossible_answer {
                min_null = min_null.min(f64::from(start[0] * end[0]));
            }
            start[0] = 0.0;
            end[0] = 0.0;
            for (s, e, score) in decode_spans(&start, &end, pre_topk, opts.max_answer_len) {
                // numpy's isin against `undesired_tokens.nonzero()`, whose row indices (all 0)
                // let position 0 through as well.
                let ok = |i: usize| i == 0 || allowed[i];
                if !(ok(s) && ok(e)) {
                    continue;
                }
                let (a, b) = word_span(enc, s, e);
                let text = char_slice(&chars, a, b);
                let lower = text.to_lowercase();
                match answers
                    .iter_mut()
                    .find(|x| x.answer.to_lowercase() == lower)
                {
                    Some(x) => x.score += f64::from(score),
                    None => answers.push(Answer {
                        score: f64::from(score),
                        start: a,
                        end: b,
                        answer: text,
                    }),
                }
            }
        }
        if opts.handle_impossible_answer {
            answers.push(Answer {
                score: min_null,
                start: 0,
                end: 0,
                answer: String::new(),
            });
        }
        answers.sort_by(|a, b| b.score.total_cmp(&a.score));
        answers.truncate(opts.top_k);
        answers
    }

    /// The question must leave the context more than `doc_stride` tokens of each window (else the
    /// `tokenizers` truncation fails, as in transformers, with a less helpful message).
    fn check_question(
        &self,
        question: &str,
        context: &str,
        max_seq_len: usize,
        doc_stride: usize,
    ) -> Result<()> {
        let q = self.tokenizer.count_tokens(question)?;
        let c = self.tokenizer.count_tokens(context)?;
        let room = max_seq_len.saturating_sub(q + 3);
        if q + c + 3 <= max_seq_len {
            return Ok(());
        }
        if room == 0 {
            return Err(Error::Input(format!(
                "the question is {q} tokens: with [CLS] and two [SEP] it leaves no room for the \
                 context in max_seq_len {max_seq_len}; shorten the question or raise max_seq_len"
            )));
        }
        if room <= doc_stride {
            return Err(Error::Input(format!(
                "the question is {q} tokens and leaves {room} context tokens per window of \
                 max_seq_len {max_seq_len}, not more than doc_stride {doc_stride}; shorten the \
                 question, raise max_seq_len or lower doc_stride"
            )));
        }
        Ok(())
    }
}

/// `exp(x - max) / sum`, as `select_starts_ends` normalizes (f32).
fn normalize(x: &[f32]) -> Vec<f32> {
    super::softmax(x)
}

/// `decode_spans`: the `topk` best (start, end) with `start <= end < start + max_answer_len` by
/// `p_start * p_end`, best first.
fn decode_spans(
    start: &[f32],
    end: &[f32],
    topk: usize,
    max_answer_len: usize,
) -> Vec<(usize, usize, f32)> {
    let n = start.len();
    // Every cell of the (n, n) score matrix, zeros outside the band, as numpy ranks them.
    let mut cells: Vec<(usize, usize, f32)> = Vec::with_capacity(n * n);
    for (s, &ps) in start.iter().enumerate() {
        for (e, &pe) in end.iter().enumerate() {
            let inside = e >= s && e - s < max_answer_len;
            cells.push((s, e, if inside { ps * pe } else { 0.0 }));
        }
    }
    // Stable sort: equal scores keep row-major order, as `argmax` (topk 1) does.
    cells.sort_by(|a, b| b.2.total_cmp(&a.2));
    cells.truncate(topk);
    cells
}

/// `get_indices` with `align_to_words`: the character span of the words holding tokens `s` and
/// `e`; the tokens' own offsets when one of them is not in a word of the context ([CLS]).
fn word_span(enc: &tokenizers::Encoding, s: usize, e: usize) -> (usize, usize) {
    let chars = |t: usize| {
        enc.token_to_word(t)
            .and_then(|(_, w)| enc.word_to_chars(w, 1))
    };
    match (chars(s), chars(e)) {
        (Some(a), Some(b)) => (a.0, b.1),
        _ => (enc.get_offsets()[s].0, enc.get_offsets()[e].1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_respect_order_and_length() {
        // The best product, 0.6 * 0.5 at (2, 1), is out of order; (1, 3) is longer than 2 tokens.
        let start = [0.0, 0.1, 0.6, 0.3];
        let end = [0.0, 0.5, 0.1, 0.4];
        let spans = decode_spans(&start, &end, 3, 2);
        let got: Vec<(usize, usize)> = spans.iter().map(|&(s, e, _)| (s, e)).collect();
        assert_eq!(got, vec![(2, 3), (3, 3), (2, 2)]);
        assert!((spans[0].2 - 0.24).abs() < 1e-7);
        // max_answer_len 1: single tokens only.
        assert!(decode_spans(&start, &end, 16, 1)
            .iter()
            .all(|&(s, e, p)| s == e || p == 0.0));
    }
}
