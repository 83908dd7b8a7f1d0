//! Entry points of the fuzz targets (`fuzz/`) and of the corpus replay test
//! (`tests/fuzz_corpus.rs`): one function per reader of a file a user downloads, each running the
//! code a real load runs, from bytes instead of a path. Not part of the supported API.
//!
//! Checkpoint bytes are copied into an anonymous memory map, so the readers see exactly the
//! `Mmap` a real file gives them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapMut};

use crate::architecture::ARCHITECTURES;
use crate::model::BertModel;
use crate::tokenizer::TokenizerFiles;
use crate::weights::{self, Checkpoint};
use crate::{BertConfig, BertTokenizer, Error, Result};

/// What a checkpoint reader made of one file.
pub struct CheckpointRun {
    /// The number of tensors `BertModel` would use, or why the file was refused.
    pub result: Result<usize>,
    /// Bytes the file declares: its tensors (`numel * dtype size`) and, in `pytorch_model.bin`, the
    /// storages up to the last byte its tensors reach. Beyond the file itself, a load may allocate
    /// these (stored bytes, and their f32 copy), and only these.
    pub declared_bytes: usize,
}

/// `pytorch_model.bin`: the zip container, the pickle VM, the storages, then every tensor converted
/// to f32 as the model's loaders convert them.
pub fn pytorch_bin(data: &[u8]) -> CheckpointRun {
    let path = Path::new("pytorch_model.bin");
    let map = match map_bytes(path, data) {
        Ok(map) => map,
        Err(e) => return refused(e),
    };
    CheckpointRun {
        declared_bytes: weights::pytorch::declared_bytes(path, &map),
        result: weights::pytorch::from_map(path, &map).and_then(|raw| convert(path, raw)),
    }
}

/// `data.pkl` alone (the zip's CRC hides most pickle mutations from [`pytorch_bin`]): the number of
/// state-dict entries.
pub fn pickle(data: &[u8]) -> Result<usize> {
    weights::pytorch::state_dict_len(data).map_err(|msg| Error::checkpoint("data.pkl", msg))
}

/// `model.safetensors`: the header, then every tensor converted to f32.
pub fn safetensors(data: &[u8]) -> CheckpointRun {
    let path = Path::new("model.safetensors");
    let map = match map_bytes(path, data) {
        Ok(map) => map,
        Err(e) => return refused(e),
    };
    match weights::safetensors::from_map(path, &map) {
        Ok(raw) => CheckpointRun {
            declared_bytes: raw
                .iter()
                .map(|(_, t)| t.bytes.as_slice().len())
                .fold(0, usize::saturating_add),
            result: convert(path, raw),
        },
        Err(e) => refused(e),
    }
}

/// `model.safetensors.index.json` (or `pytorch_model.bin.index.json`): the shard names.
pub fn shard_index(data: &[u8]) -> Result<Vec<String>> {
    let path = Path::new("model.safetensors.index.json");
    weights::shard_names(path, utf8(path, data)?)
}

/// `config.json`: parsed, validated, then used to load `weights` as [`BertModel::from_dir`] does.
pub fn config_json(data: &[u8], weights: &Weights) -> Result<BertModel> {
    let path = Path::new("config.json");
    let config = BertConfig::from_json_str(utf8(path, data)?)?;
    BertModel::load(config, &weights.0, &crate::LoadOptions::default())
}

/// A checkpoint loaded once, for [`config_json`].
pub struct Weights(Checkpoint);

impl Weights {
    /// The weights of a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Checkpoint::from_dir(dir, &ARCHITECTURES[0]).map(Weights)
    }
}

/// A tokenizer from the contents of its files, as [`BertTokenizer::from_dir`] builds it:
/// `tokenizer.json` when given, else `vocab.txt`; `tokenizer_config.json` when given.
pub fn tokenizer(
    tokenizer_json: Option<&[u8]>,
    vocab: Option<&[u8]>,
    tokenizer_config: Option<&[u8]>,
) -> Result<BertTokenizer> {
    let file = |name: &str, data: &[u8]| (PathBuf::from(name), data.to_vec());
    BertTokenizer::from_files(TokenizerFiles {
        configs: tokenizer_config
            .map(|d| file("tokenizer_config.json", d))
            .into_iter()
            .collect(),
        tokenizer_json: tokenizer_json.map(|d| file("tokenizer.json", d)),
        vocab: vocab.map(|d| file("vocab.txt", d)),
        bpe: None,
    })
}

fn refused(e: Error) -> CheckpointRun {
    CheckpointRun {
        result: Err(e),
        declared_bytes: 0,
    }
}

/// What `std::fs::read_to_string` makes of `data`.
fn utf8<'a>(path: &Path, data: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(data).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

fn map_bytes(path: &Path, data: &[u8]) -> Result<Arc<Mmap>> {
    if data.is_empty() {
        // A real empty file is refused before it is mapped (it cannot be).
        return Err(Error::checkpoint(path, "the file is empty"));
    }
    let mut map = MmapMut::map_anon(data.len()).map_err(|e| Error::io(path, e))?;
    map.copy_from_slice(data);
    Ok(Arc::new(
        map.make_read_only().map_err(|e| Error::io(path, e))?,
    ))
}

/// The checks of [`Checkpoint::from_files`], then every tensor to f32, one at a time.
fn convert(path: &Path, raw: Vec<(String, weights::RawTensor)>) -> Result<usize> {
    let checkpoint = Checkpoint::from_raw(path, raw, &ARCHITECTURES[0])?;
    let shapes: Vec<(String, Vec<usize>)> = checkpoint
        .shapes()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect();
    for (name, shape) in &shapes {
        checkpoint.get(name, shape)?;
    }
    Ok(shapes.len())
}
