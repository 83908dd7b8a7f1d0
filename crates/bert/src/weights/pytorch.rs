//! `pytorch_model.bin`: the zip + pickle format written by `torch.save` (PyTorch >= 1.6), read without
//! Python.
//!
//! The archive holds `<prefix>/data.pkl` (a pickle of the state dict), `<prefix>/data/<key>` (one raw
//! storage per key) and `<prefix>/byteorder`. The pickle is run by a small VM that understands the
//! opcodes `torch.save` emits and only the callables that build dicts and tensors; any other object is
//! kept as an opaque value and never executed. Tensors of stored (uncompressed) entries stay in a
//! memory map when they are contiguous; everything else is copied.
//!
//! Untrusted input: every size and offset is checked against the file before it is used, so a
//! malformed file gives an [`Error`] naming the file, never a panic or a huge allocation.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive};

mod pickle;

use super::{Bytes, DType, RawTensor};
use crate::{Error, Result};
use pickle::{Elem, Leaf, TensorSpec, Vm};

/// Reads every floating-point tensor of a `torch.save` state dict.
///
/// Nested dicts are flattened with `.`-joined names; non-tensor values are ignored. Non-float tensors
/// (int64 buffers, bool masks, ...) are skipped unless their name is a `BertModel` weight. `float64`
/// tensors are converted to `float32`.
pub(crate) fn load(path: &Path) -> Result<Vec<(String, RawTensor)>> {
    let map = super::map_file(path)?;
    from_map(path, &map)
}

/// [`load`] of a file already mapped; `path` names it in errors.
pub(crate) fn from_map(path: &Path, map: &Arc<Mmap>) -> Result<Vec<(String, RawTensor)>> {
    Archive::open(path, map)?.tensors(path, map)
}

/// Bytes the state dict of a mapped file says it holds: every storage up to the last byte its
/// tensors reach, plus every tensor's own `numel * element size`; 0 when the archive or its pickle is
/// unreadable. The fuzz targets bound what a load may allocate with it.
pub(crate) fn declared_bytes(path: &Path, map: &Arc<Mmap>) -> usize {
    let Ok(archive) = Archive::open(path, map) else {
        return 0;
    };
    let tensors = archive.entries.iter().map(|(_, leaf)| match leaf {
        Leaf::Tensor(t) => t
            .size
            .iter()
            .try_fold(t.elem.size(), |acc, &d| acc.checked_mul(d))
            .unwrap_or(usize::MAX),
        Leaf::Unsupported(_) => 0,
    });
    archive
        .need
        .values()
        .copied()
        .chain(tensors)
        .fold(0usize, usize::saturating_add)
}

/// A `torch.save` archive whose pickle has been run: what the state dict holds, not yet read.
struct Archive<'m> {
    zip: ZipArchive<Cursor<&'m [u8]>>,
    prefix: String,
    big_endian: bool,
    entries: Vec<(String, Leaf)>,
    /// Bytes of each storage the state dict's tensors reach.
    need: HashMap<String, usize>,
}

impl<'m> Archive<'m> {
    fn open(path: &Path, map: &'m Mmap) -> Result<Self> {
        if map.is_empty() {
            return Err(Error::checkpoint(path, "the file is empty"));
        }
        check_magic(path, map)?;
        let mut zip = ZipArchive::new(Cursor::new(&map[..])).map_err(|e| {
            Error::checkpoint(
                path,
                format!("not a valid zip archive ({e}); the file may be truncated or corrupt"),
            )
        })?;
        let prefix = find_prefix(&zip).ok_or_else(|| {
            Error::checkpoint(
                path,
                "zip archive without `data.pkl`: not a torch.save file",
            )
        })?;

        let pickle = read_entry(&mut zip, &format!("{prefix}data.pkl"), MAX_PICKLE_BYTES)
            .map_err(|e| Error::checkpoint(path, format!("cannot read `{prefix}data.pkl`: {e}")))?
            .ok_or_else(|| {
                Error::checkpoint(
                    path,
                    format!("`{prefix}data.pkl` is larger than {MAX_PICKLE_BYTES} bytes"),
                )
            })?;
        let big_endian = match read_entry(&mut zip, &format!("{prefix}byteorder"), 16) {
            Err(ZipError::FileNotFound) => false,
            Ok(Some(b)) if b == b"little" => false,
            Ok(Some(b)) if b == b"big" => true,
            Ok(b) => {
                let shown = b
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                return Err(Error::checkpoint(
                    path,
                    format!("unknown byteorder record `{shown}`"),
                ));
            }
            Err(e) => {
                return Err(Error::checkpoint(
                    path,
                    format!("cannot read `{prefix}byteorder`: {e}"),
                ));
            }
        };

        let (entries, need) = state_dict(&pickle)
            .map_err(|msg| Error::checkpoint(path, format!("`{prefix}data.pkl`: {msg}")))?;
        Ok(Archive {
            zip,
            prefix,
            big_endian,
            entries,
            need,
        })
    }

    /// Reads the floating-point tensors of the state dict.
    fn tensors(mut self, path: &Path, map: &Arc<Mmap>) -> Result<Vec<(String, RawTensor)>> {
        let big_endian = self.big_endian;
        let mut reader = Storages {
            map,
            zip: &mut self.zip,
            prefix: &self.prefix,
            need: std::mem::take(&mut self.need),
            cache: HashMap::new(),
        };
        let mut out = Vec::with_capacity(self.entries.len());
        for (name, value) in self.entries {
            let spec = match value {
                Leaf::Tensor(spec) => spec,
                Leaf::Unsupported(what) => {
                    if !super::names::read_by_any(&name) {
                        continue;
                    }
                    return Err(Error::tensor(
                        &name,
                        path,
                        format!("unsupported tensor ({what})"),
                    ));
                }
            };
            let dtype = match spec.elem {
                Elem::F32 => DType::F32,
                Elem::F16 => DType::F16,
                Elem::BF16 => DType::BF16,
                Elem::F64 => DType::F32,
                Elem::Other => {
                    // Integer buffers (e.g. `embeddings.position_ids`) are not weights; skip them unless
                    // the model needs them.
                    if !super::names::read_by_any(&name) {
                        continue;
                    }
                    return Err(Error::tensor(
                        &name,
                        path,
                        format!(
                            "unsupported dtype {} (expected float32, float16 or bfloat16)",
                            spec.elem_name
                        ),
                    ));
                }
            };
            let bytes = reader
                .tensor_bytes(&spec, big_endian)
                .map_err(|msg| Error::tensor(&name, path, msg))?;
            let shape = spec.size.clone();
            out.push((
                name,
                RawTensor {
                    dtype,
                    shape,
                    bytes,
                },
            ));
        }
        Ok(out)
    }
}

/// Runs `data.pkl` as [`load`] does; the number of state-dict entries (the fuzz targets' entry).
pub(crate) fn state_dict_len(pickle: &[u8]) -> std::result::Result<usize, String> {
    state_dict(pickle).map(|(entries, _)| entries.len())
}

/// Runs `data.pkl`: the state dict's entries, and the bytes of each storage its tensors reach.
type StateDict = (Vec<(String, Leaf)>, HashMap<String, usize>);
fn state_dict(pickle: &[u8]) -> std::result::Result<StateDict, String> {
    let entries = Vm::run(pickle)?.state_dict()?;
    let mut need: HashMap<String, usize> = HashMap::new();
    for (_, leaf) in &entries {
        if let Leaf::Tensor(t) = leaf {
            let n = need.entry(t.key.clone()).or_default();
            *n = (*n).max(extent(t).unwrap_or(0)); // an overflow is reported per tensor
        }
    }
    Ok((entries, need))
}

/// Largest `data.pkl` accepted (a BERT-large state dict pickles to ~40 KB). A deflated one is
/// inflated up to this size however small the file, so it is also what a zip bomb can cost.
const MAX_PICKLE_BYTES: u64 = 4 << 20;
/// Copies made for strided views may exceed the file size by broadcasting (stride 0); cap them.
const MIN_GATHER_CAP: usize = 1 << 20;

/// Recognizes files that are not zip archives and says what they are.
fn check_magic(path: &Path, data: &[u8]) -> Result<()> {
    // torch.save before 1.6 (or with `_use_new_zipfile_serialization=False`) starts with a pickled
    // magic number: PROTO 2, LONG1 10 bytes 0x1950a86a20f9469cfc6c.
    const LEGACY: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
    if data.starts_with(b"PK") {
        return Ok(());
    }
    let msg = if data.starts_with(LEGACY) {
        "legacy torch.save format (PyTorch < 1.6, not a zip archive) is not supported; re-save it with \
         torch >= 1.6 or convert it to safetensors"
    } else if data.starts_with(b"version https://git-lfs") {
        "this is a Git LFS pointer, not the weights; fetch the real file (git lfs pull)"
    } else if data.first() == Some(&0x80) {
        "a bare pickle, not a torch.save zip archive; re-save it with torch >= 1.6 or convert it to \
         safetensors"
    } else {
        "not a zip archive, so not a torch.save (PyTorch >= 1.6) file"
    };
    Err(Error::checkpoint(path, msg))
}

/// The directory prefix (`archive/`, or the file stem) of the archive's `data.pkl`.
fn find_prefix<R: Read + std::io::Seek>(zip: &ZipArchive<R>) -> Option<String> {
    zip.file_names().flatten().find_map(|n| {
        let n: &str = &n;
        if n == "data.pkl" {
            Some(String::new())
        } else {
            n.strip_suffix("data.pkl")
                .filter(|p| p.ends_with('/') && !p[..p.len() - 1].contains('/'))
                .map(str::to_string)
        }
    })
}

/// Reads a whole zip entry, or `Ok(None)` when it is larger than `limit` bytes. The buffer grows with
/// the data actually read, never with the size the archive claims.
fn read_entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    limit: u64,
) -> std::result::Result<Option<Vec<u8>>, ZipError> {
    let entry = zip.by_name(name)?;
    let mut buf = Vec::new();
    entry.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 <= limit).then_some(buf))
}

/// Where a storage's bytes are: a range of the mapped file, or a decompressed copy.
enum Storage {
    Mapped(Range<usize>),
    Owned(Arc<Vec<u8>>),
}

/// Resolves `data/<key>` entries, each read at most once.
struct Storages<'a, 'z> {
    map: &'a Arc<Mmap>,
    zip: &'a mut ZipArchive<Cursor<&'z [u8]>>,
    prefix: &'a str,
    /// Bytes of each storage the state dict's tensors reach.
    need: HashMap<String, usize>,
    cache: HashMap<String, Storage>,
}

/// Bytes from the start of the storage to the end of the last element `t` touches; `None` on
/// overflow. An empty tensor touches nothing.
fn extent(t: &TensorSpec) -> Option<usize> {
    if t.size.contains(&0) {
        return Some(0);
    }
    t.size
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &s)| {
            acc.checked_add(d.checked_sub(1)?.checked_mul(s)?)
        })
        .and_then(|i| i.checked_add(1)?.checked_mul(t.elem.size()))
}

impl Storages<'_, '_> {
    fn storage(&mut self, key: &str) -> std::result::Result<&Storage, String> {
        if !self.cache.contains_key(key) {
            let need = self.need.get(key).copied().unwrap_or(0);
            let storage = self.open(key, need)?;
            self.cache.insert(key.to_string(), storage);
        }
        self.cache
            .get(key)
            .ok_or_else(|| format!("storage `{key}` vanished"))
    }

    /// The storage `data/<key>`; of a compressed one, only the first `need` bytes are inflated.
    fn open(&mut self, key: &str, need: usize) -> std::result::Result<Storage, String> {
        let name = format!("{}data/{key}", self.prefix);
        let file_len = self.map.len();
        let entry = self.zip.by_name(&name).map_err(|e| match e {
            ZipError::FileNotFound => format!("storage `{name}` is missing from the archive"),
            e => format!("cannot read storage `{name}`: {e}"),
        })?;
        if entry.compression() == CompressionMethod::Stored && !entry.encrypted() {
            let start = entry.data_start().and_then(|s| usize::try_from(s).ok());
            let size = usize::try_from(entry.size()).ok();
            let range = start
                .zip(size)
                .filter(|_| entry.compressed_size() == entry.size())
                .and_then(|(s, n)| Some(s..s.checked_add(n)?))
                .filter(|r| r.end <= file_len);
            return range.map(Storage::Mapped).ok_or_else(|| {
                format!(
                    "storage `{name}` has an invalid extent or lies outside the file (truncated?)"
                )
            });
        }
        // Compressed: inflate up to the bytes the tensors reach. The buffer grows with the data
        // actually produced, so neither a lying header nor a zip bomb makes it allocate more than
        // the pickle's tensors need.
        let mut buf = Vec::new();
        entry
            .take(need as u64)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot decompress storage `{name}`: {e}"))?;
        Ok(Storage::Owned(Arc::new(buf)))
    }

    /// The tensor's contiguous little-endian bytes (f64 converted to f32).
    fn tensor_bytes(
        &mut self,
        t: &TensorSpec,
        big_endian: bool,
    ) -> std::result::Result<Bytes, String> {
        let es = t.elem.size();
        let numel = t
            .size
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or("element count overflows")?;
        let map = self.map.clone();
        let file_len = map.len();
        let storage = self.storage(&t.key)?;
        let (base, data): (usize, &[u8]) = match storage {
            Storage::Mapped(r) => (
                r.start,
                map.get(r.clone()).ok_or("storage out of file bounds")?,
            ),
            Storage::Owned(v) => (0, v.as_slice()),
        };
        let out_len = numel.checked_mul(es).ok_or("byte count overflows")?;
        if numel == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        let last = extent(t).ok_or("storage offset or strides overflow")?;
        if last > data.len() {
            return Err(format!(
                "storage `{}` holds {} bytes but the tensor (size {:?}, stride {:?}, offset {}) needs {last}",
                t.key,
                data.len(),
                t.size,
                t.stride,
                t.offset
            ));
        }
        let start = t.offset * es; // cannot overflow: offset * es <= last
        let contiguous = is_contiguous(&t.size, &t.stride);
        let mut bytes = if contiguous {
            if !big_endian && t.elem != Elem::F64 {
                if let Storage::Mapped(_) = storage {
                    return Ok(Bytes::Mapped {
                        map,
                        range: base + start..base + start + out_len,
                    });
                }
            }
            data.get(start..start + out_len)
                .ok_or("storage range out of bounds")?
                .to_vec()
        } else {
            if out_len > file_len.max(MIN_GATHER_CAP) {
                return Err(format!(
                    "strided view of {out_len} bytes is larger than the file; refusing to expand it"
                ));
            }
            gather(data, es, t.offset, &t.size, &t.stride, out_len)?
        };
        if big_endian {
            bytes.chunks_exact_mut(es).for_each(|c| c.reverse());
        }
        if t.elem == Elem::F64 {
            bytes = bytes
                .chunks_exact(8)
                .flat_map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    (f64::from_le_bytes(a) as f32).to_le_bytes()
                })
                .collect();
        }
        Ok(Bytes::Owned(bytes))
    }
}

/// Whether a view with these sizes and strides is row-major contiguous (dims of size 1 may have any
/// stride).
fn is_contiguous(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Copies a strided view into a contiguous buffer. Bounds were checked by the caller; reads still go
/// through checked arithmetic and `get`, so a mistake there is an error, not a panic.
fn gather(
    src: &[u8],
    es: usize,
    offset: usize,
    size: &[usize],
    stride: &[usize],
    out_len: usize,
) -> std::result::Result<Vec<u8>, String> {
    // `n` elements starting at element index `at`.
    let read = |at: usize, n: usize| {
        let from = at.checked_mul(es)?;
        let to = n.checked_mul(es)?.checked_add(from)?;
        src.get(from..to)
    };
    let oob = || "strided read out of bounds".to_string();
    let mut out = Vec::with_capacity(out_len);
    let (Some((&inner, outer)), Some((&inner_stride, outer_stride))) =
        (size.split_last(), stride.split_last())
    else {
        out.extend_from_slice(read(offset, 1).ok_or_else(oob)?);
        return Ok(out);
    };
    if outer.len() != outer_stride.len() {
        return Err("size and stride differ in rank".into());
    }
    let mut idx = vec![0usize; outer.len()];
    let mut pos = offset; // element index of the current row's first element
    loop {
        if inner_stride == 1 {
            out.extend_from_slice(read(pos, inner).ok_or_else(oob)?);
        } else {
            for i in 0..inner {
                let at = i.checked_mul(inner_stride).and_then(|o| o.checked_add(pos));
                out.extend_from_slice(at.and_then(|at| read(at, 1)).ok_or_else(oob)?);
            }
        }
        // Odometer over the outer dims; wrapping arithmetic is exact modulo 2^64, so `pos` is the
        // right index again whenever a row starts.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            idx[d] += 1;
            pos = pos.wrapping_add(outer_stride[d]);
            if idx[d] < outer[d] {
                break;
            }
            pos = pos.wrapping_sub(outer_stride[d].wrapping_mul(outer[d]));
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pytorch")
            .join(name)
    }

    /// A scratch file under the system temp dir, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, bytes: &[u8]) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("bert-pytorch-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn err_of(path: &Path) -> String {
        match load(path) {
            Ok(_) => panic!("{} loaded without error", path.display()),
            Err(e) => e.to_string(),
        }
    }

    /// Loads `bin` and checks it holds exactly the tensors of `expected` (a safetensors file written
    /// by make.py), with the same dtype, shape and bytes. Returns the loaded tensors.
    fn check_against(bin: &str, expected: &str) -> HashMap<String, RawTensor> {
        let got: HashMap<String, RawTensor> = load(&data(bin)).unwrap().into_iter().collect();
        let want = crate::weights::safetensors::load(&data(expected)).unwrap();
        let mut want_names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
        let mut got_names: Vec<&str> = got.keys().map(String::as_str).collect();
        want_names.sort();
        got_names.sort();
        assert_eq!(got_names, want_names);
        for (name, w) in &want {
            let g = &got[name];
            assert_eq!(g.dtype, w.dtype, "{name}");
            assert_eq!(g.shape, w.shape, "{name}");
            assert_eq!(g.bytes.as_slice(), w.bytes.as_slice(), "{name}");
            assert_eq!(
                g.numel() * g.dtype.size(),
                g.bytes.as_slice().len(),
                "{name}"
            );
        }
        got
    }

    #[test]
    fn state_dict_matches_expected_values() {
        let got = check_against("state_dict.bin", "state_dict.safetensors");
        // Contiguous tensors of stored entries stay in the map; views are copied.
        let mapped = |n: &str| matches!(got[n].bytes, Bytes::Mapped { .. });
        assert!(mapped("embeddings.word_embeddings.weight"));
        assert!(mapped("half"));
        assert!(mapped("param"));
        assert!(mapped("nested.deeper.leaf"));
        assert!(!mapped("encoder.layer.0.attention.self.query.weight"));
        assert!(!mapped("encoder.layer.0.attention.self.key.weight"));
        assert!(!mapped("double"));
        assert_eq!(got["scalar"].shape, Vec::<usize>::new());
        assert_eq!(got["scalar"].to_f32(), vec![2.5]);
        assert_eq!(got["empty"].shape, vec![0, 3]);
        assert_eq!(got["double"].dtype, DType::F32);
        // Non-float buffers are skipped.
        for skipped in ["embeddings.position_ids", "mask", "u16", "step"] {
            assert!(!got.contains_key(skipped), "{skipped}");
        }
    }

    #[test]
    fn deflated_entries_are_decompressed() {
        let got = check_against("deflated.bin", "state_dict.safetensors");
        assert!(got.values().all(|t| matches!(t.bytes, Bytes::Owned(_))));
    }

    #[test]
    fn a_compressed_storage_is_inflated_only_as_far_as_the_tensors_reach() {
        // 64 MiB of zeros deflate to ~64 KB: a zip bomb if inflated whole.
        let zipped = write_zip_with(
            &[("archive/data/0".to_string(), vec![0u8; 64 << 20])],
            CompressionMethod::Deflated,
        );
        assert!(zipped.len() < 1 << 20);
        let f = Scratch::new("bomb.zip", &zipped);
        let file = std::fs::File::open(&f.0).unwrap();
        // SAFETY: a scratch file nothing else writes.
        let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
        let mut zip = ZipArchive::new(Cursor::new(&map[..])).unwrap();
        let mut storages = Storages {
            map: &map,
            zip: &mut zip,
            prefix: "archive/",
            need: HashMap::from([("0".to_string(), 400)]),
            cache: HashMap::new(),
        };
        match storages.storage("0").unwrap() {
            Storage::Owned(buf) => assert_eq!(buf.len(), 400),
            Storage::Mapped(_) => panic!("a deflated entry cannot be mapped"),
        }
    }

    #[test]
    fn a_pickle_bomb_is_refused_before_it_is_run() {
        // 5 MB of EMPTY_TUPLE deflate to 5 KB; run, they were 5 million objects (~600 MB).
        let mut pickle = b"\x80\x02".to_vec();
        pickle.extend(std::iter::repeat_n(b')', 5 << 20));
        pickle.push(b'.');
        let zipped = write_zip_with(
            &[("archive/data.pkl".to_string(), pickle)],
            CompressionMethod::Deflated,
        );
        let f = Scratch::new("pickle-bomb.bin", &zipped);
        let e = err_of(&f.0);
        assert!(
            e.contains("pickle-bomb.bin") && e.contains("larger than"),
            "{e}"
        );
    }

    #[test]
    fn big_endian_storages_are_swapped() {
        check_against("big_endian.bin", "big_endian.safetensors");
    }

    #[test]
    fn integer_weight_is_an_error() {
        let e = err_of(&data("int_weight.bin"));
        assert!(
            e.contains("encoder.layer.0.attention.self.query.weight"),
            "{e}"
        );
        assert!(e.contains("LongStorage"), "{e}");
    }

    #[test]
    fn storage_out_of_bounds_is_an_error() {
        let e = err_of(&data("oob.bin"));
        assert!(e.contains("embeddings.word_embeddings.weight"), "{e}");
        assert!(e.contains("holds 20 bytes"), "{e}");
    }

    #[test]
    fn legacy_format_is_an_error() {
        let e = err_of(&data("legacy.bin"));
        assert!(
            e.contains("legacy.bin") && e.contains("legacy torch.save format"),
            "{e}"
        );
    }

    #[test]
    fn list_root_is_an_error() {
        let e = err_of(&data("list_root.bin"));
        assert!(
            e.contains("list_root.bin") && e.contains("expected a dict of tensors"),
            "{e}"
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        let bytes = std::fs::read(data("state_dict.bin")).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 1, 10, 1] {
            let f = Scratch::new(&format!("truncated-{cut}.bin"), &bytes[..cut]);
            let e = err_of(&f.0);
            assert!(e.contains(&f.0.display().to_string()), "{e}");
            assert!(e.contains("truncated") || e.contains("not a zip"), "{e}");
        }
    }

    #[test]
    fn every_prefix_and_corruption_fails_cleanly() {
        // No panic whatever the damage: cut at every length, and flip bytes of the pickle and data.
        let bytes = std::fs::read(data("state_dict.bin")).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let f = Scratch::new("cut.bin", &bytes[..cut]);
            assert!(load(&f.0).is_err());
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let f = Scratch::new("flip.bin", &b);
            let _ = load(&f.0);
        }
    }

    #[test]
    fn garbage_empty_and_lfs_files_are_errors() {
        let f = Scratch::new(
            "garbage.bin",
            b"\x13\x37 this is not a checkpoint at all \xff\xfe",
        );
        let e = err_of(&f.0);
        assert!(
            e.contains("garbage.bin") && e.contains("not a zip archive"),
            "{e}"
        );

        let f = Scratch::new("empty.bin", b"");
        let e = err_of(&f.0);
        assert!(e.contains("empty.bin") && e.contains("empty"), "{e}");

        let f = Scratch::new(
            "lfs.bin",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 440473133\n",
        );
        assert!(err_of(&f.0).contains("Git LFS pointer"));

        // A valid but empty zip archive (end-of-central-directory record only).
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend([0u8; 18]);
        let f = Scratch::new("emptyzip.bin", &eocd);
        let e = err_of(&f.0);
        assert!(e.contains("without `data.pkl`"), "{e}");

        let e = err_of(&data("does-not-exist.bin"));
        assert!(e.contains("does-not-exist.bin"), "{e}");
    }

    /// The entries of a zip archive, in order.
    fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        let mut zip = ZipArchive::new(Cursor::new(&bytes[..])).unwrap();
        (0..zip.len())
            .map(|i| {
                let mut f = zip.by_index(i).unwrap();
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).unwrap();
                (f.name().unwrap().into_owned(), buf)
            })
            .collect()
    }

    fn write_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
        write_zip_with(entries, CompressionMethod::Stored)
    }

    fn write_zip_with(entries: &[(String, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, data) in entries {
            w.start_file(name.as_str(), opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn mutated_pickles_fail_cleanly() {
        // The zip CRC guards data.pkl against the byte flips above, so mutate the pickle itself and
        // re-zip it with valid CRCs: the VM and the tensor checks must reject or accept, never panic.
        let original = entries(&data("state_dict.bin"));
        let pkl = original
            .iter()
            .position(|(n, _)| n.ends_with("/data.pkl"))
            .unwrap();
        let pickle = original[pkl].1.clone();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..600 {
            let mut p = pickle.clone();
            if round % 4 == 0 {
                p.truncate(rand() as usize % p.len());
            } else {
                for _ in 0..1 + round % 3 {
                    let at = rand() as usize % p.len();
                    p[at] = if round % 2 == 0 {
                        rand() as u8
                    } else {
                        p[at].wrapping_add(1)
                    };
                }
            }
            let mut e = original.clone();
            e[pkl].1 = p;
            let f = Scratch::new(&format!("mutated-{round}.bin"), &write_zip(&e));
            if let Ok(tensors) = load(&f.0) {
                for (_, t) in tensors {
                    assert_eq!(t.numel() * t.dtype.size(), t.bytes.as_slice().len());
                }
            }
        }
        // The unmutated re-zip loads like the original.
        let f = Scratch::new("rezipped.bin", &write_zip(&original));
        assert_eq!(
            load(&f.0).unwrap().len(),
            load(&data("state_dict.bin")).unwrap().len()
        );
    }

    #[test]
    fn gather_and_contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(is_contiguous(&[1, 3], &[0, 1]));
        assert!(is_contiguous(&[], &[]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(!is_contiguous(&[2, 3], &[0, 1]));
        let src: Vec<u8> = (0u8..12).collect();
        // 3x2 transposed view of a 2x3 matrix of u8 "elements".
        assert_eq!(
            gather(&src, 1, 0, &[3, 2], &[1, 3], 6).unwrap(),
            vec![0, 3, 1, 4, 2, 5]
        );
        // Broadcast row (stride 0) with an offset.
        assert_eq!(
            gather(&src, 2, 1, &[2, 2], &[0, 1], 8).unwrap(),
            vec![2, 3, 4, 5, 2, 3, 4, 5]
        );
        // 0-dim.
        assert_eq!(gather(&src, 4, 2, &[], &[], 4).unwrap(), vec![8, 9, 10, 11]);
        // Out of bounds is an error, not a panic.
        assert!(gather(&src, 4, 2, &[2], &[5], 8).is_err());
    }
}
