//! `BertTokenizer`: text to [`BertInputs`] with the ids of transformers' `BertTokenizerFast` (and
//! `BertTokenizer`), built on the `tokenizers` crate, the Rust core of `BertTokenizerFast`.
//!
//! A directory with `tokenizer.json` is read as is (with transformers 4.x's override of the
//! `BertNormalizer` flags by `tokenizer_config.json`); otherwise the pipeline is assembled exactly as
//! transformers' converters do: RoBERTa's byte-level BPE from `vocab.json` and `merges.txt`
//! (`RobertaConverter`), else BERT's WordPiece from `vocab.txt` (`BertConverter`), with
//! `tokenizer_config.json`'s settings.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, EncodeInput, NormalizerWrapper, PostProcessor, Tokenizer, TruncationParams,
    TruncationStrategy,
};

use crate::{BertInputs, Error, Result};

/// `model_max_length` when `tokenizer_config.json` does not set a usable one.
pub const DEFAULT_MAX_LENGTH: usize = 512;

/// One tokenized text (or pair), before padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    /// Vocabulary ids, `[CLS]` and `[SEP]` included.
    pub ids: Vec<i64>,
    /// Segment ids: 0 for the first text and its special tokens, 1 for the second of a pair.
    pub type_ids: Vec<i64>,
    /// The token strings (`##` marks word continuations).
    pub tokens: Vec<String>,
    /// Byte offsets `(start, end)` of each token in its source text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// 1 for special tokens (`[CLS]`, `[SEP]`), 0 for text tokens.
    pub special_tokens_mask: Vec<u8>,
    /// Whether tokens were cut off to fit the tokenizer's `max_length`.
    pub truncated: bool,
}

/// The special tokens and flags of `tokenizer_config.json` (and `special_tokens_map.json`), with
/// transformers' `BertTokenizer` defaults.
#[derive(Clone, Debug)]
struct TokenizerConfig {
    do_lower_case: bool,
    strip_accents: Option<bool>,
    tokenize_chinese_chars: bool,
    model_max_length: Option<usize>,
    /// transformers' whole-string `clean_up_tokenization` after decoding (4.57 default: false).
    clean_up_tokenization_spaces: bool,
    unk_token: String,
    sep_token: String,
    pad_token: String,
    cls_token: String,
    mask_token: String,
    /// Whether the tokenizer class returns `token_type_ids` (`model_input_names`; DistilBERT's
    /// does not, and its model takes none).
    token_types: bool,
    /// RoBERTa's `add_prefix_space` (byte-level BPE built from vocab.json and merges.txt).
    add_prefix_space: bool,
}

impl TokenizerConfig {
    /// Merges the JSON objects of `files` (path, text), later files winning, over the defaults.
    fn parse(files: &[(PathBuf, String)]) -> Result<Self> {
        let mut map = serde_json::Map::new();
        for (path, text) in files {
            match serde_json::from_str::<Value>(text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })? {
                Value::Object(o) => map.extend(o),
                _ => {
                    return Err(Error::Tokenizer(format!(
                        "{}: not a JSON object",
                        path.display()
                    )))
                }
            }
        }
        let token = |key: &str, default: &str| -> String {
            match map.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(o)) => o
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string(),
                _ => default.to_string(),
            }
        };
        let flag =
            |key: &str, default: bool| map.get(key).and_then(Value::as_bool).unwrap_or(default);
        // transformers writes `int(1e30)` (VERY_LARGE_INTEGER) when a tokenizer has no limit.
        let model_max_length = map
            .get("model_max_length")
            .and_then(Value::as_f64)
            .filter(|v| (1.0..=1e7).contains(v))
            .map(|v| v as usize);
        Ok(TokenizerConfig {
            do_lower_case: flag("do_lower_case", true),
            strip_accents: map.get("strip_accents").and_then(Value::as_bool),
            tokenize_chinese_chars: flag("tokenize_chinese_chars", true),
            model_max_length,
            clean_up_tokenization_spaces: flag("clean_up_tokenization_spaces", false),
            unk_token: token("unk_token", "[UNK]"),
            sep_token: token("sep_token", "[SEP]"),
            pad_token: token("pad_token", "[PAD]"),
            cls_token: token("cls_token", "[CLS]"),
            mask_token: token("mask_token", "[MASK]"),
            add_prefix_space: flag("add_prefix_space", false),
            token_types: match map.get("model_input_names").and_then(Value::as_array) {
                Some(names) => names.iter().any(|n| n == "token_type_ids"),
                // transformers' classes whose model_input_names lack token_type_ids.
                None => !map
                    .get("tokenizer_class")
                    .and_then(Value::as_str)
                    .is_some_and(|c| {
                        ["DistilBert", "Roberta", "XLMRoberta", "Camembert"]
                            .iter()
                            .any(|p| c.starts_with(p))
                    }),
            },
        })
    }

    fn normalizer(&self) -> BertNormalizer {
        BertNormalizer::new(
            true,
            self.tokenize_chinese_chars,
            self.strip_accents,
            self.do_lower_case,
        )
    }
}

/// The files a tokenizer is built from, as (path, contents); the paths only name them in errors.
pub(crate) struct TokenizerFiles {
    /// `special_tokens_map.json` then `tokenizer_config.json`, those present.
    pub configs: Vec<(PathBuf, Vec<u8>)>,
    pub tokenizer_json: Option<(PathBuf, Vec<u8>)>,
    pub vocab: Option<(PathBuf, Vec<u8>)>,
    /// RoBERTa's `vocab.json` and `merges.txt`, when there is no `tokenizer.json`.
    pub bpe: Option<[(PathBuf, Vec<u8>); 2]>,
}

/// transformers' `BertTokenizerFast`: normalization, WordPiece, `[CLS] A [SEP] (B [SEP])`,
/// truncation (longest first) and padding to the longest sequence of a batch.
#[derive(Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: i64,
    unk_id: Option<i64>,
    cls_id: Option<i64>,
    mask_token: String,
    /// `[UNK]`, `[SEP]`, `[PAD]`, `[CLS]` (or `<unk>`, `</s>`, `<pad>`, `<s>`).
    special: [String; 4],
    clean_up_tokenization_spaces: bool,
    /// `false`: every `type_ids` is 0 (the tokenizer returns no `token_type_ids`).
    token_types: bool,
}

impl std::fmt::Debug for BertTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("max_length", &self.max_length)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}

impl BertTokenizer {
    /// Loads the tokenizer of a model directory or Hugging Face hub id (see [`crate::hub`]).
    pub fn from_pretrained(model: &str) -> Result<Self> {
        let dir = crate::hub::resolve(model, crate::hub::Need::Tokenizer)?;
        Self::from_dir(&dir)
    }

    /// Loads `tokenizer.json` when present, otherwise builds the tokenizer from `vocab.txt`;
    /// `tokenizer_config.json` and `special_tokens_map.json` are read when present.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |name: &str| -> Result<Option<(PathBuf, Vec<u8>)>> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            Ok(Some((path, bytes)))
        };
        // special_tokens_map.json first so tokenizer_config.json wins, as transformers merges them.
        let configs = ["special_tokens_map.json", "tokenizer_config.json"]
            .into_iter()
            .filter_map(|name| read(name).transpose())
            .collect::<Result<_>>()?;
        let tokenizer_json = read("tokenizer.json")?;
        let bpe = match (&tokenizer_json, read("vocab.json")?, read("merges.txt")?) {
            (None, Some(v), Some(m)) => Some([v, m]),
            _ => None,
        };
        let vocab = match (&tokenizer_json, &bpe) {
            (None, None) => read("vocab.txt")?,
            _ => None,
        };
        let files = TokenizerFiles {
            configs,
            tokenizer_json,
            vocab,
            bpe,
        };
        if files.tokenizer_json.is_none() && files.vocab.is_none() && files.bpe.is_none() {
            return Err(Error::MissingFile {
                dir: dir.to_path_buf(),
                what: "tokenizer",
                looked_for: "tokenizer.json, vocab.json + merges.txt, vocab.txt".into(),
            });
        }
        Self::from_files(files)
    }

    /// Builds the tokenizer from the contents of its files, as [`from_dir`](Self::from_dir) read
    /// them: `tokenizer.json` when given, else `vocab.json` + `merges.txt`, else `vocab.txt`.
    pub(crate) fn from_files(files: TokenizerFiles) -> Result<Self> {
        let configs = files
            .configs
            .into_iter()
            .map(|(path, bytes)| {
                String::from_utf8(bytes)
                    .map(|text| (path.clone(), text))
                    .map_err(|e| {
                        Error::io(
                            &path,
                            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let config = TokenizerConfig::parse(&configs)?;
        let mut inner = match (files.tokenizer_json, files.vocab, files.bpe) {
            (Some((path, bytes)), _, _) => from_tokenizer_json(&path, &bytes, &config)?,
            (None, _, Some([vocab, merges])) => from_bpe(&vocab, &merges, &config)?,
            (None, Some((path, bytes)), None) => from_vocab(&path, &bytes, &config)?,
            (None, None, None) => {
                return Err(Error::Tokenizer(
                    "neither tokenizer.json nor vocab.txt given".into(),
                ))
            }
        };
        // Padding and truncation are set per call below, as transformers does; tokenizer.json of
        // sentence-transformers models carries a fixed 128 that must not leak through.
        inner.with_padding(None);
        let pad_id = inner
            .token_to_id(&config.pad_token)
            .map_or(0, |id| id as i64);
        let unk_id = inner.token_to_id(&config.unk_token).map(i64::from);
        let cls_id = inner.token_to_id(&config.cls_token).map(i64::from);
        let mut tok = BertTokenizer {
            inner,
            max_length: 0,
            pad_id,
            unk_id,
            cls_id,
            mask_token: config.mask_token.clone(),
            special: [
                config.unk_token.clone(),
                config.sep_token.clone(),
                config.pad_token.clone(),
                config.cls_token.clone(),
            ],
            clean_up_tokenization_spaces: config.clean_up_tokenization_spaces,
            token_types: config.token_types,
        };
        tok = tok.with_max_length(config.model_max_length.unwrap_or(DEFAULT_MAX_LENGTH));
        Ok(tok)
    }

    /// Truncates every text (or pair, longest first) to at most `max_length` tokens, special tokens
    /// included. The default is `model_max_length` of `tokenizer_config.json`, else 512. A length too
    /// small to hold the special tokens makes encoding fail.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length;
        // Below the special-token count the `tokenizers` check would underflow; such lengths are
        // refused at encode time instead.
        let params = (max_length >= self.special_tokens(false)).then(|| TruncationParams {
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            ..Default::default()
        });
        self.inner
            .with_truncation(params)
            .expect("stride 0 fits any max_length that holds the special tokens");
        self
    }

    /// How many special tokens the post-processor adds to a single text or a pair.
    fn special_tokens(&self, pair: bool) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair))
    }

    /// The truncation length in tokens.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The id used for padding.
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    /// The id of the unknown token (`[UNK]`), if the vocabulary has it.
    pub fn unk_id(&self) -> Option<i64> {
        self.unk_id
    }

    /// The id of the classifier token (`cls_token` of `tokenizer_config.json`: `[CLS]`, `<s>`),
    /// if the vocabulary has it.
    pub fn cls_id(&self) -> Option<i64> {
        self.cls_id
    }

    /// The unknown, separator, padding and classifier tokens of `tokenizer_config.json`
    /// (defaults `[UNK]`, `[SEP]`, `[PAD]`, `[CLS]`; RoBERTa's `<unk>`, `</s>`, `<pad>`, `<s>`).
    pub fn special_token_strings(&self) -> [&str; 4] {
        let [u, s, p, c] = &self.special;
        [u, s, p, c]
    }

    /// The mask token of `tokenizer_config.json` (default `[MASK]`).
    pub fn mask_token(&self) -> &str {
        &self.mask_token
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// The token string of `id`.
    pub fn id_to_token(&self, id: i64) -> Option<String> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.inner.id_to_token(id))
    }

    /// The underlying `tokenizers` pipeline (padding and truncation disabled).
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenizes one text.
    pub fn tokenize(&self, text: &str) -> Result<Encoding> {
        Ok(self.tokenize_inputs(vec![text.into()])?.remove(0))
    }

    /// Tokenizes one pair (`token_type_ids` 0 for `a`, 1 for `b`). As transformers' single call
    /// `tokenizer(a, b)` does, an empty `b` is no pair at all: `[CLS] a [SEP]`.
    pub fn tokenize_pair(&self, a: &str, b: &str) -> Result<Encoding> {
        Ok(self.tokenize_inputs(vec![input(a, Some(b))])?.remove(0))
    }

    /// Tokenizes texts in parallel.
    pub fn tokenize_batch(&self, texts: &[&str]) -> Result<Vec<Encoding>> {
        self.tokenize_inputs(texts.iter().map(|&t| t.into()).collect())
    }

    /// Tokenizes pairs in parallel, as transformers' batch call `tokenizer(texts, text_pairs)`
    /// does: an empty second text stays a (empty) second segment, `[CLS] a [SEP] [SEP]`.
    pub fn tokenize_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<Encoding>> {
        self.tokenize_inputs(pairs.iter().map(|&(a, b)| (a, b).into()).collect())
    }

    /// Tokenizes a batch mixing single texts (`None` second part) and pairs, in parallel, each
    /// as [`tokenize`](Self::tokenize) or [`tokenize_pair`](Self::tokenize_pair) would (an
    /// empty second text is no pair).
    pub fn tokenize_mixed(&self, inputs: &[(&str, Option<&str>)]) -> Result<Vec<Encoding>> {
        self.tokenize_inputs(inputs.iter().map(|&(a, b)| input(a, b)).collect())
    }

    /// Tokenizes words already split (transformers' `is_split_into_words=True`, as `run_ner.py`
    /// calls it): each word is tokenized on its own. Returns the encoding and, per token, the index
    /// of the word it came from (`None` for `[CLS]` and `[SEP]`).
    pub fn tokenize_words(&self, words: &[&str]) -> Result<(Encoding, Vec<Option<u32>>)> {
        if self.max_length < 2 {
            return Err(Error::Tokenizer(format!(
                "max_length {} cannot hold the 2 special tokens ([CLS], [SEP]) of a text",
                self.max_length
            )));
        }
        let what = format!("cannot encode with max_length {}", self.max_length);
        let input = EncodeInput::Single(tokenizers::InputSequence::PreTokenized(
            std::borrow::Cow::Borrowed(words),
        ));
        let e = guarded(&what, || self.inner.encode(input, true))?;
        Ok((self.to_encoding(&e), e.get_word_ids().to_vec()))
    }

    /// A batch of one text.
    pub fn encode(&self, text: &str) -> Result<BertInputs> {
        self.encode_batch(&[text])
    }

    /// Texts padded to the longest.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<BertInputs> {
        self.pad(&self.tokenize_batch(texts)?)
    }

    /// Pairs padded to the longest, `token_type_ids` 0 then 1 (as [`tokenize_pairs`](Self::tokenize_pairs)).
    pub fn encode_pairs(&self, pairs: &[(&str, &str)]) -> Result<BertInputs> {
        self.pad(&self.tokenize_pairs(pairs)?)
    }

    /// Pads encodings to the longest with this tokenizer's pad id.
    pub fn pad(&self, encodings: &[Encoding]) -> Result<BertInputs> {
        self.pad_to(encodings, 0)
    }

    /// Pads encodings to `length` positions, or to the longest if that is longer.
    pub fn pad_to(&self, encodings: &[Encoding], length: usize) -> Result<BertInputs> {
        if encodings.is_empty() {
            return Err(Error::Input("no texts to encode".into()));
        }
        let rows: Vec<(Vec<i64>, Vec<i64>)> = encodings
            .iter()
            .map(|e| (e.ids.clone(), e.type_ids.clone()))
            .collect();
        BertInputs::from_rows_padded(&rows, self.pad_id, length)
    }

    /// Turns ids back into text; `skip_special_tokens` drops `[CLS]`, `[SEP]`, `[PAD]` and the like.
    pub fn decode(&self, ids: &[i64], skip_special_tokens: bool) -> Result<String> {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&id| {
                u32::try_from(id)
                    .ok()
                    .filter(|&i| (i as usize) < self.vocab_size())
                    .ok_or_else(|| {
                        Error::Input(format!(
                            "id {id} is out of range for a vocabulary of {}",
                            self.vocab_size()
                        ))
                    })
            })
            .collect::<Result<_>>()?;
        let text = guarded("decode failed", || {
            self.inner.decode(&ids, skip_special_tokens)
        })?;
        Ok(if self.clean_up_tokenization_spaces {
            clean_up_tokenization(&text)
        } else {
            text
        })
    }

    /// transformers' `convert_tokens_to_string` for a fast tokenizer: the `tokenizer.json` decoder
    /// (WordPiece: `##` pieces glued to the previous token, spaces before punctuation removed) over
    /// token strings, or the tokens joined with spaces when there is no decoder.
    pub fn convert_tokens_to_string(&self, tokens: &[String]) -> Result<String> {
        use tokenizers::Decoder;
        match self.inner.get_decoder() {
            Some(d) => d
                .decode(tokens.to_vec())
                .map_err(|e| Error::Tokenizer(format!("decode failed: {e}"))),
            None => Ok(tokens.join(" ")),
        }
    }

    /// One text (or pair) cut into windows of at most `window.max_length` tokens that overlap by
    /// `window.stride` tokens, with *character* offsets (transformers' fast tokenizer call with
    /// `return_overflowing_tokens=True, stride=..., return_offsets_mapping=True`): the first window,
    /// then the overflowing ones. `only_second` truncates only the second text of a pair (the QA
    /// context), as `truncation="only_second"`.
    pub(crate) fn windows(
        &self,
        text: &str,
        pair: Option<&str>,
        window: Window,
    ) -> Result<Vec<tokenizers::Encoding>> {
        // `tokenizers` asserts (panics) unless each window keeps more than `stride` tokens.
        let specials = self.special_tokens(pair.is_some());
        if window.max_length <= specials + window.stride {
            return Err(Error::Tokenizer(format!(
                "windows of {} tokens cannot hold the {specials} special tokens and more than \
                 the stride of {} tokens",
                window.max_length, window.stride
            )));
        }
        let mut inner = self.inner.clone();
        let strategy = if window.only_second {
            TruncationStrategy::OnlySecond
        } else {
            TruncationStrategy::LongestFirst
        };
        inner
            .with_truncation(Some(TruncationParams {
                max_length: window.max_length,
                strategy,
                stride: window.stride,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(format!("max_length {}: {e}", window.max_length)))?;
        let input: EncodeInput<'_> = match pair {
            Some(b) => (text, b).into(),
            None => text.into(),
        };
        let mut first = inner.encode_char_offsets(input, true).map_err(|e| {
            Error::Tokenizer(format!(
                "cannot split into windows of {} tokens with stride {}: {e}",
                window.max_length, window.stride
            ))
        })?;
        let rest = first.take_overflowing();
        let mut windows: Vec<tokenizers::Encoding> = std::iter::once(first).chain(rest).collect();
        if !self.token_types {
            // As `to_encoding`: a tokenizer without token_type_ids (DistilBERT's) gives none.
            for w in &mut windows {
                w.set_type_ids(vec![0; w.len()]);
            }
        }
        Ok(windows)
    }

    /// The number of tokens of `text` without special tokens, untruncated.
    pub(crate) fn count_tokens(&self, text: &str) -> Result<usize> {
        let mut inner = self.inner.clone();
        inner
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner
            .encode(text, false)
            .map(|e| e.len())
            .map_err(|e| Error::Tokenizer(format!("cannot encode: {e}")))
    }

    /// The first token id of `text` without special tokens (transformers' fill-mask target lookup).
    pub(crate) fn first_id(&self, text: &str) -> Result<Option<i64>> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().first().map(|&i| i64::from(i)))
            .map_err(|e| Error::Tokenizer(format!("cannot encode `{text}`: {e}")))
    }

    fn tokenize_inputs(&self, inputs: Vec<EncodeInput<'_>>) -> Result<Vec<Encoding>> {
        let pair = inputs.iter().any(|i| matches!(i, EncodeInput::Dual(..)));
        let specials = self.special_tokens(pair);
        if self.max_length < specials.max(1) {
            return Err(Error::Tokenizer(format!(
                "max_length {} cannot hold the {specials} special tokens ([CLS], [SEP]) of {}",
                self.max_length,
                if pair { "a pair" } else { "a text" }
            )));
        }
        let what = format!("cannot encode with max_length {}", self.max_length);
        let encodings = guarded(&what, || {
            if inputs.len() == 1 {
                let input = inputs.into_iter().next().expect("one input");
                self.inner.encode(input, true).map(|e| vec![e])
            } else {
                self.inner.encode_batch(inputs, true)
            }
        })?;
        Ok(encodings.iter().map(|e| self.to_encoding(e)).collect())
    }

    /// Our [`Encoding`] of a `tokenizers` encoding; segment ids zeroed for a tokenizer that
    /// returns no `token_type_ids`.
    fn to_encoding(&self, e: &tokenizers::Encoding) -> Encoding {
        let mut out = to_encoding(e);
        if !self.token_types {
            out.type_ids.fill(0);
        }
        out
    }

    /// Whether the tokenizer returns `token_type_ids` (transformers' `model_input_names`):
    /// DistilBERT's does not, and every `type_ids` of its encodings is 0.
    pub fn returns_token_type_ids(&self) -> bool {
        self.token_types
    }
}

/// Our [`Encoding`] of a `tokenizers` encoding.
fn to_encoding(e: &tokenizers::Encoding) -> Encoding {
    Encoding {
        ids: e.get_ids().iter().map(|&i| i64::from(i)).collect(),
        type_ids: e.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
        tokens: e.get_tokens().to_vec(),
        offsets: e.get_offsets().to_vec(),
        special_tokens_mask: e
            .get_special_tokens_mask()
            .iter()
            .map(|&m| m as u8)
            .collect(),
        // With stride 0, `tokenizers` keeps whatever truncation cut off (of either text of a
        // pair) as overflowing pieces; nothing else produces them here.
        truncated: !e.get_overflowing().is_empty(),
    }
}

/// How [`BertTokenizer::windows`] cuts a long input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub max_length: usize,
    pub stride: usize,
    pub only_second: bool,
}

/// A text or a pair; transformers' single call treats an empty `text_pair` as no pair at all.
fn input<'s>(a: &'s str, b: Option<&'s str>) -> EncodeInput<'s> {
    match b {
        Some(b) if !b.is_empty() => (a, b).into(),
        _ => a.into(),
    }
}

/// transformers' `clean_up_tokenization`: removes spaces before punctuation and contractions.
fn clean_up_tokenization(text: &str) -> String {
    text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}

/// Reads `tokenizer.json`; a `BertNormalizer` gets the flags of `tokenizer_config.json` (or their
/// defaults), as transformers 4.x `BertTokenizerFast.__init__` does.
fn from_tokenizer_json(path: &Path, bytes: &[u8], config: &TokenizerConfig) -> Result<Tokenizer> {
    let mut tok = parse_tokenizer_json(path, bytes)?;
    if let Some(NormalizerWrapper::BertNormalizer(n)) = tok.get_normalizer() {
        let wanted = BertNormalizer::new(
            n.clean_text,
            config.tokenize_chinese_chars,
            config.strip_accents,
            config.do_lower_case,
        );
        if n.handle_chinese_chars != wanted.handle_chinese_chars
            || n.strip_accents != wanted.strip_accents
            || n.lowercase != wanted.lowercase
        {
            tok.with_normalizer(Some(wanted));
        }
    }
    Ok(tok)
}

/// Deserializes `tokenizer.json`. The `tokenizers` crate panics on some malformed files (0.22:
/// `expect("Helper")` on a JSON syntax error inside `decoder`, `expect("Precompiled")` on a bad
/// `precompiled_charsmap`), so the JSON is parsed first, which turns every syntax error into an
/// error, and a panic of the typed pass is caught and reported as one.
fn parse_tokenizer_json(path: &Path, bytes: &[u8]) -> Result<Tokenizer> {
    let bad = |msg: String| Error::Tokenizer(format!("{}: {msg}", path.display()));
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(post) = value.get("post_processor") {
        check_templates(post).map_err(bad)?;
    }
    std::panic::catch_unwind(move || serde_json::from_value::<Tokenizer>(value))
        .map_err(|panic| bad(format!("malformed tokenizer ({})", panic_message(&*panic))))?
        .map_err(|e| bad(e.to_string()))
}

/// Calls into the `tokenizers` crate with a panic turned into an error: it panics on some
/// pipelines it accepts from a tokenizer.json (see [`check_templates`] for the one known), and a
/// file must not be able to bring the caller down.
fn guarded<T>(what: &str, f: impl FnOnce() -> tokenizers::Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| Error::Tokenizer(format!("{what}: {e}"))),
        Err(panic) => Err(Error::Tokenizer(format!(
            "{what}: the tokenizer panicked ({})",
            panic_message(&*panic)
        ))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message")
}

/// Checks what the `tokenizers` crate does not when it reads a `TemplateProcessing` (0.22): that
/// every special token its templates name is among its `special_tokens`, with as many ids as
/// tokens. It indexes that map without a check when it encodes, so a dangling name panicked at
/// the first `encode`.
fn check_templates(post: &Value) -> std::result::Result<(), String> {
    // `PostProcessorWrapper` is untagged: a processor is read by its shape, whatever its "type".
    for p in post
        .get("processors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        check_templates(p)?;
    }
    let specials = post.get("special_tokens").and_then(Value::as_object);
    for (name, t) in specials.into_iter().flatten() {
        let n = |k: &str| t.get(k).and_then(Value::as_array).map(Vec::len);
        if n("ids") != n("tokens") {
            return Err(format!(
                "post_processor: special token `{name}` has {:?} ids but {:?} tokens",
                n("ids"),
                n("tokens")
            ));
        }
    }
    for template in ["single", "pair"] {
        let pieces = post.get(template).and_then(Value::as_array);
        for piece in pieces.into_iter().flatten() {
            let Some(id) = piece.pointer("/SpecialToken/id") else {
                continue;
            };
            let known = id
                .as_str()
                .is_some_and(|id| specials.is_some_and(|s| s.contains_key(id)));
            if !known {
                return Err(format!(
                    "post_processor: the `{template}` template names special token {id}, which \
                     is not in its special_tokens"
                ));
            }
        }
    }
    Ok(())
}

/// Builds the pipeline of transformers' `BertConverter` from `vocab.txt`.
fn from_vocab(path: &Path, bytes: &[u8], config: &TokenizerConfig) -> Result<Tokenizer> {
    let vocab = read_vocab(path, bytes)?;
    let id = |token: &str| -> Result<u32> {
        vocab.get(token).copied().ok_or_else(|| {
            Error::Tokenizer(format!(
                "{}: special token `{token}` is not in the vocabulary",
                path.display()
            ))
        })
    };
    let (cls, sep) = (id(&config.cls_token)?, id(&config.sep_token)?);
    id(&config.unk_token)?;
    let model = WordPiece::builder()
        .vocab(vocab.into_iter().collect::<ahash::AHashMap<String, u32>>())
        .unk_token(config.unk_token.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
    let mut tok = Tokenizer::new(model);
    tok.with_normalizer(Some(config.normalizer()));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        (config.sep_token.clone(), sep),
        (config.cls_token.clone(), cls),
    )));
    tok.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    add_specials(
        &mut tok,
        &[
            (&config.pad_token, false),
            (&config.unk_token, false),
            (&config.cls_token, false),
            (&config.sep_token, false),
            (&config.mask_token, false),
        ],
    );
    Ok(tok)
}

/// transformers' `RobertaConverter`: byte-level BPE from `vocab.json` and `merges.txt` (no prefix
/// or suffix, no unknown-token fusion), the byte-level pre-tokenizer and decoder,
/// `<s> A </s></s> B </s>` with trimmed offsets, and the special tokens as transformers' slow
/// `RobertaTokenizer` adds them (the mask token strips the space before it).
fn from_bpe(
    (vocab_path, vocab): &(PathBuf, Vec<u8>),
    (merges_path, merges): &(PathBuf, Vec<u8>),
    config: &TokenizerConfig,
) -> Result<Tokenizer> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;
    let bad = |p: &Path, msg: String| Error::Tokenizer(format!("{}: {msg}", p.display()));
    let vocab: ahash::AHashMap<String, u32> =
        serde_json::from_slice(vocab).map_err(|e| bad(vocab_path, e.to_string()))?;
    // merges.txt: a `#version` line, then one "a b" pair per line (the slow tokenizer reads it
    // with errors="replace").
    let text = String::from_utf8_lossy(merges);
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.is_empty() {
            continue;
        }
        match line.split_once(' ') {
            Some((a, b)) if !b.contains(' ') => pairs.push((a.to_string(), b.to_string())),
            _ => {
                return Err(bad(
                    merges_path,
                    format!("line {}: not a pair: {line:?}", i + 1),
                ))
            }
        }
    }
    let id = |token: &str| -> Result<u32> {
        vocab.get(token).copied().ok_or_else(|| {
            bad(
                vocab_path,
                format!("special token `{token}` is not in the vocabulary"),
            )
        })
    };
    let (cls, sep) = (id(&config.cls_token)?, id(&config.sep_token)?);
    let model = BPE::builder()
        .vocab_and_merges(vocab, pairs)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()
        .map_err(|e| bad(merges_path, e.to_string()))?;
    let mut tok = Tokenizer::new(model);
    let prefix = config.add_prefix_space;
    tok.with_pre_tokenizer(Some(ByteLevel::new(prefix, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.with_post_processor(Some(
        RobertaProcessing::new(
            (config.sep_token.clone(), sep),
            (config.cls_token.clone(), cls),
        )
        .trim_offsets(true)
        .add_prefix_space(prefix),
    ));
    add_specials(
        &mut tok,
        &[
            (&config.cls_token, false),
            (&config.pad_token, false),
            (&config.sep_token, false),
            (&config.unk_token, false),
            (&config.mask_token, true),
        ],
    );
    Ok(tok)
}

/// Marks the `(token, lstrip)` of `tokens` that the vocabulary holds as special, in that order, as
/// transformers' converted tokenizers have them (`lstrip`: the token takes the space before it,
/// RoBERTa's `<mask>`).
fn add_specials(tok: &mut Tokenizer, tokens: &[(&String, bool)]) {
    let specials: Vec<AddedToken> = tokens
        .iter()
        .filter(|(t, _)| tok.token_to_id(t).is_some())
        .map(|&(t, lstrip)| AddedToken::from(t.clone(), true).lstrip(lstrip))
        .collect();
    tok.add_special_tokens(&specials);
}

/// `vocab.txt`: one token per line, id = line number, as transformers' `load_vocab` reads it
/// (universal newlines, nothing else stripped; a later duplicate wins).
fn read_vocab(path: &Path, bytes: &[u8]) -> Result<std::collections::HashMap<String, u32>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::Tokenizer(format!(
            "{}: not valid UTF-8 (byte {})",
            path.display(),
            e.valid_up_to()
        ))
    })?;
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    if lines.is_empty() {
        return Err(Error::Tokenizer(format!(
            "{}: empty vocabulary",
            path.display()
        )));
    }
    Ok(lines
        .into_iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(json: &str) -> String {
        match parse_tokenizer_json(Path::new("tokenizer.json"), json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn malformed_tokenizer_json_is_an_error_not_a_panic() {
        // tokenizers 0.22 panics (`expect("Helper")`) on a syntax error inside `decoder`.
        let e = parse_err(r#"{"model": {"type": "WordPiece"}, "decoder": {"type": "WordPiece"#);
        assert!(e.contains("tokenizer.json"), "{e}");
        // ... and (`expect("Precompiled")`) on a precompiled normalizer it cannot read.
        let e = parse_err(
            r###"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
                "normalizer": {"type": "Precompiled", "precompiled_charsmap": 7},
                "pre_tokenizer": null, "post_processor": null, "decoder": null,
                "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                          "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0}}}"###,
        );
        assert!(e.contains("malformed tokenizer"), "{e}");
    }

    #[test]
    fn a_template_naming_an_unknown_special_token_is_refused_at_load() {
        // tokenizers 0.22 accepts it, then panics at the first encode of a pair.
        let e = parse_err(
            r#"{"post_processor": {"type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "[SEP8", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"[SEP]": {"id": "[SEP]", "ids": [102], "tokens": ["[SEP]"]}}}}"#,
        );
        assert!(e.contains("`pair` template") && e.contains("[SEP8"), "{e}");
    }
}
