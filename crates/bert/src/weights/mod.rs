//! Checkpoint loading: every on-disk format is read into one name -> [`RawTensor`] map, whose names are
//! then normalized to bare `BertModel` keys (see [`names`]).
//!
//! Formats: `model.safetensors` (memory-mapped), sharded safetensors with `model.safetensors.index.json`,
//! and `pytorch_model.bin` (the zip + pickle format of `torch.save`, read without Python).

pub(crate) mod names;
pub(crate) mod pytorch;
pub(crate) mod safetensors;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, UncheckedAdvice};

use crate::architecture::Architecture;
use crate::{Error, Result};

/// Element type of a stored tensor. Everything is converted to f32 at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    BF16,
}

impl DType {
    pub(crate) fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::BF16 => 2,
        }
    }
}

/// Where a tensor's little-endian bytes live.
pub(crate) enum Bytes {
    /// A byte range of a memory-mapped file.
    Mapped { map: Arc<Mmap>, range: Range<usize> },
    /// Bytes read into memory.
    Owned(Vec<u8>),
}

impl Bytes {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped { map, range } => &map[range.clone()],
            Bytes::Owned(v) => v,
        }
    }
}

/// One tensor as stored in a checkpoint: contiguous, row-major, little-endian.
pub(crate) struct RawTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Bytes,
}

impl RawTensor {
    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Converts to an owned f32 vector (row-major).
    pub(crate) fn to_f32(&self) -> Vec<f32> {
        let b = self.bytes.as_slice();
        match self.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// f32 values of a tensor: borrowed from the memory map when stored as aligned f32, else owned.
pub(crate) enum F32Tensor {
    Mapped { map: Arc<Mmap>, range: Range<usize> },
    Owned(Vec<f32>),
}

impl std::ops::Deref for F32Tensor {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            // Alignment and length were checked when the variant was built.
            F32Tensor::Mapped { map, range } => bytemuck::cast_slice(&map[range.clone()]),
            F32Tensor::Owned(v) => v,
        }
    }
}

/// All tensors of a checkpoint (possibly several files), under normalized names.
pub(crate) struct Checkpoint {
    tensors: HashMap<String, (RawTensor, Arc<PathBuf>)>,
    files: Vec<PathBuf>,
    arch: &'static Architecture,
}

impl Checkpoint {
    /// Loads the weights of a model directory: `model.safetensors`, else the shards listed in
    /// `model.safetensors.index.json`, else `pytorch_model.bin` (or its shards).
    pub(crate) fn from_dir(dir: &Path, arch: &'static Architecture) -> Result<Self> {
        let files = weight_files(dir)?;
        Self::from_files(&files, arch)
    }

    /// Loads the given checkpoint files of family `arch`; the format is chosen by extension.
    pub(crate) fn from_files(files: &[PathBuf], arch: &'static Architecture) -> Result<Self> {
        let mut checkpoint = Checkpoint {
            tensors: HashMap::new(),
            files: files.to_vec(),
            arch,
        };
        // Normalized name -> the name it had in the file, to report a tensor stored twice.
        let mut original: HashMap<String, String> = HashMap::new();
        for file in files {
            let raw = match file.extension().and_then(|e| e.to_str()) {
                Some("safetensors") => safetensors::load(file)?,
                _ => pytorch::load(file)?,
            };
            checkpoint.add(file, raw, &mut original)?;
        }
        Ok(checkpoint)
    }

    /// The checkpoint of one file already read by its reader (the fuzz targets' entry).
    pub(crate) fn from_raw(
        file: &Path,
        raw: Vec<(String, RawTensor)>,
        arch: &'static Architecture,
    ) -> Result<Self> {
        let mut checkpoint = Checkpoint {
            tensors: HashMap::new(),
            files: vec![file.to_path_buf()],
            arch,
        };
        checkpoint.add(file, raw, &mut HashMap::new())?;
        Ok(checkpoint)
    }

    /// Checks the tensors of one file and adds those `BertModel` uses under their normalized names.
    fn add(
        &mut self,
        file: &Path,
        raw: Vec<(String, RawTensor)>,
        original: &mut HashMap<String, String>,
    ) -> Result<()> {
        let src = Arc::new(file.to_path_buf());
        for (name, t) in raw {
            if t.numel() * t.dtype.size() != t.bytes.as_slice().len() {
                return Err(Error::tensor(
                    &name,
                    file,
                    format!(
                        "shape {:?} needs {} bytes, file holds {}",
                        t.shape,
                        t.numel() * t.dtype.size(),
                        t.bytes.as_slice().len()
                    ),
                ));
            }
            if let Some(key) = names::normalize(self.arch, &name) {
                if let Some(prev) = original.insert(key.clone(), name.clone()) {
                    return Err(Error::tensor(
                        &name,
                        file,
                        format!(
                            "the checkpoint also holds `{prev}`, the same weight `{key}`; \
                             which one to use is ambiguous"
                        ),
                    ));
                }
                self.tensors.insert(key, (t, src.clone()));
            }
        }
        Ok(())
    }

    /// The (normalized) names and shapes of all tensors.
    pub(crate) fn shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.tensors
            .iter()
            .map(|(name, (t, _))| (name.as_str(), t.shape.as_slice()))
    }

    /// Whether a (normalized) tensor name is present.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The stored shape of tensor `name`, if present.
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(t, _)| t.shape.as_slice())
    }

    /// The file tensor `name` was read from, if present.
    pub(crate) fn file_of(&self, name: &str) -> Option<&Path> {
        self.tensors.get(name).map(|(_, p)| p.as_path())
    }

    /// The checkpoint's files, in load order.
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The f32 values of tensor `name`, which must have exactly `shape`, copied out. The pages of
    /// the memory map it was read from are handed back to the OS, so loading a model does not hold
    /// the checkpoint and its converted copy in memory at once.
    pub(crate) fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.raw(name, shape)?;
        let values = t.to_f32();
        if let Bytes::Mapped { map, range } = &t.bytes {
            // SAFETY: the map is a shared, read-only mapping of a file this process never writes,
            // so its pages are clean: MADV_DONTNEED only drops resident pages, which the kernel
            // re-reads from the file if they are touched again (e.g. by a tensor sharing a page).
            let _ = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.len())
            };
        }
        Ok(values)
    }

    /// Tensor `name` (of exactly `shape`) in place in the memory map when it is stored as aligned
    /// f32, so only the pages actually read become resident (embedding tables); otherwise a copy.
    pub(crate) fn get_mapped(&self, name: &str, shape: &[usize]) -> Result<F32Tensor> {
        let t = self.raw(name, shape)?;
        if let (DType::F32, Bytes::Mapped { map, range }) = (t.dtype, &t.bytes) {
            if bytemuck::try_cast_slice::<u8, f32>(&map[range.clone()]).is_ok() {
                return Ok(F32Tensor::Mapped {
                    map: map.clone(),
                    range: range.clone(),
                });
            }
        }
        Ok(F32Tensor::Owned(t.to_f32()))
    }

    fn raw(&self, name: &str, shape: &[usize]) -> Result<&RawTensor> {
        let (t, path) = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            files: self.files.clone(),
        })?;
        if t.shape != shape {
            return Err(Error::tensor(
                name,
                path.as_path(),
                format!("expected shape {shape:?}, found {:?}", t.shape),
            ));
        }
        Ok(t)
    }
}

/// The weight files of a model directory, in load order.
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let index = dir.join(index);
        if index.is_file() {
            return shard_files(dir, &index);
        }
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    Err(Error::MissingFile {
        dir: dir.to_path_buf(),
        what: "weights",
        looked_for: "model.safetensors, model.safetensors.index.json, pytorch_model.bin.index.json, pytorch_model.bin".into(),
    })
}

/// The distinct shard files named by a `*.index.json` (`{"weight_map": {tensor: file}}`), sorted.
fn shard_files(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    shard_names(index, &text)?
        .into_iter()
        .map(|f| {
            let p = dir.join(&f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::checkpoint(
                    index,
                    format!("shard `{f}` listed in the index is missing"),
                ))
            }
        })
        .collect()
}

/// The distinct, sorted shard file names of the index `text` (read from `index`); names that would
/// leave the model directory are refused.
pub(crate) fn shard_names(index: &Path, text: &str) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let parsed: Index = serde_json::from_str(text).map_err(|source| Error::Json {
        path: index.to_path_buf(),
        source,
    })?;
    let mut files: Vec<String> = parsed.weight_map.into_values().collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(Error::checkpoint(index, "weight_map is empty"));
    }
    // Shard names are plain file names; refuse anything that would leave the directory.
    if let Some(f) = files
        .iter()
        .find(|f| f.contains('/') || f.contains('\\') || *f == "..")
    {
        return Err(Error::checkpoint(
            index,
            format!("invalid shard name `{f}`"),
        ));
    }
    Ok(files)
}

/// Memory-maps a checkpoint file.
fn map_file(path: &Path) -> Result<Arc<Mmap>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Err(Error::checkpoint(path, "the file is empty"));
    }
    // SAFETY: memmap2 marks `map` unsafe because another process could modify the file while it is
    // mapped; checkpoints are read-only inputs, and every range taken from the map is bounds-checked.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Arc::new(map))
}
