//! Output files: written under a temporary name and renamed when complete (an interrupted run
//! leaves no half file, and the temporary file is removed on Ctrl-C or SIGTERM), created with the
//! default mode (0666 less the umask); and a safetensors writer that takes its tensors in row blocks
//! as batches complete, so that no output is held in memory whole.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use safetensors::Dtype;

use crate::CliResult;

/// Temporary files not yet renamed into place or removed.
static PARTIAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the temporary files on SIGINT, SIGTERM and SIGHUP, then exits with status 130.
pub fn remove_partial_files_on_signal() {
    // Failing to install the handler only loses the clean-up.
    let _ = ctrlc::set_handler(|| {
        if let Ok(paths) = PARTIAL.lock() {
            for p in paths.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        std::process::exit(130);
    });
}

/// A file being written under a temporary name; removed on drop unless [`persist`](Self::persist)ed.
pub struct TempFile {
    path: PathBuf,
    file: BufWriter<File>,
}

impl TempFile {
    /// A new hidden file in `dir`.
    pub fn create_in(dir: &Path, tag: &str) -> CliResult<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{tag}.{}-{n}.partial", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        PARTIAL
            .lock()
            .map_err(|_| "poisoned lock")?
            .push(path.clone());
        Ok(TempFile {
            path,
            file: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// A temporary file next to `dest`, to be renamed to it.
    pub fn beside(dest: &Path) -> CliResult<Self> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| format!("{}: not a file name", dest.display()))?;
        Self::create_in(dir, &name.to_string_lossy())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.file
    }

    pub fn flush(&mut self) -> CliResult {
        self.file
            .flush()
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(())
    }

    /// Flushes the file and renames it to `dest`.
    pub fn persist(mut self, dest: &Path) -> CliResult {
        self.flush()?;
        std::fs::rename(&self.path, dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        forget(&self.path);
        Ok(())
    }

    /// Flushes the file and copies it to standard output (then drops it).
    pub fn copy_to_stdout(mut self) -> CliResult {
        self.flush()?;
        let f = self.file.get_mut();
        f.seek(SeekFrom::Start(0))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut out = std::io::stdout().lock();
        // A closed stdout surfaces as the io::Error itself, which main reports quietly.
        std::io::copy(f, &mut out)?;
        out.flush()?;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.path.exists() {
            let _ = std::fs::remove_file(&self.path);
        }
        forget(&self.path);
    }
}

fn forget(path: &Path) {
    if let Ok(mut paths) = PARTIAL.lock() {
        paths.retain(|p| p != path);
    }
}

/// Bytes free for an unprivileged writer on the file system of `dir`, when it can be told.
pub fn available_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// One tensor of a safetensors file: name, dtype and shape (B first).
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Bytes of one row (all but the first axis).
    pub fn row_bytes(&self) -> u64 {
        self.shape[1..].iter().product::<usize>() as u64 * (self.dtype.bitsize() / 8) as u64
    }

    pub fn bytes(&self) -> u64 {
        self.shape[0] as u64 * self.row_bytes()
    }
}

/// The header of a safetensors file holding `specs` in this order: 8-byte length, then JSON padded
/// with spaces to a multiple of 8 bytes (so that every tensor stays aligned), and to at least
/// `reserve` bytes (so that a header rewritten with larger numbers keeps its length).
pub fn header(specs: &[TensorSpec], reserve: usize) -> CliResult<Vec<u8>> {
    let mut map = serde_json::Map::new();
    let mut offset = 0u64;
    for s in specs {
        let end = offset + s.bytes();
        map.insert(
            s.name.clone(),
            serde_json::json!({
                "dtype": s.dtype,
                "shape": s.shape,
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&map)?;
    if json.len() > reserve.max(json.len().next_multiple_of(8)) {
        return Err("safetensors header larger than its reserved space".into());
    }
    json.resize(reserve.max(json.len()).next_multiple_of(8), b' ');
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend(json);
    Ok(bytes)
}

/// Total size of a safetensors file of `specs`.
pub fn file_size(specs: &[TensorSpec]) -> CliResult<u64> {
    Ok(header(specs, 0)?.len() as u64 + specs.iter().map(TensorSpec::bytes).sum::<u64>())
}

/// A safetensors file whose tensors arrive in row blocks, in any order.
pub struct SafetensorsWriter {
    file: TempFile,
    specs: Vec<TensorSpec>,
    /// Absolute file offset of each tensor's data.
    starts: Vec<u64>,
}

impl SafetensorsWriter {
    pub fn new(mut file: TempFile, specs: Vec<TensorSpec>) -> CliResult<Self> {
        let head = header(&specs, 0)?;
        let mut starts = Vec::with_capacity(specs.len());
        let mut at = head.len() as u64;
        for s in &specs {
            starts.push(at);
            at += s.bytes();
        }
        let path = file.path().display().to_string();
        let w = file.writer();
        w.write_all(&head).map_err(|e| format!("{path}: {e}"))?;
        // The full length at once: running out of space shows now on file systems that reserve,
        // and rows can be written in any order.
        w.get_ref()
            .set_len(at)
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(SafetensorsWriter {
            file,
            specs,
            starts,
        })
    }

    /// Writes rows `row0..` of tensor `index` (`bytes` holds whole rows, little-endian).
    pub fn write_rows(&mut self, index: usize, row0: usize, bytes: &[u8]) -> CliResult {
        let spec = &self.specs[index];
        let row = spec.row_bytes();
        debug_assert_eq!(bytes.len() as u64 % row.max(1), 0);
        debug_assert!(row0 as u64 * row + bytes.len() as u64 <= spec.bytes());
        let at = self.starts[index] + row0 as u64 * row;
        let path = self.file.path().display().to_string();
        let w = self.file.writer();
        w.seek(SeekFrom::Start(at))
            .and_then(|_| w.write_all(bytes))
            .map_err(|e| format!("{path}: {e}"))?;
        Ok(())
    }

    pub fn finish(self) -> TempFile {
        self.file
    }
}

/// The header of a `.npy` file (format 1.0) of float32 `(rows, cols)`, always 128 bytes so that it
/// can be rewritten in place once `rows` is known.
pub fn npy_header(rows: u64, cols: usize) -> Vec<u8> {
    const LEN: usize = 128;
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend(((LEN - 10) as u16).to_le_bytes());
    let mut d = dict.into_bytes();
    d.resize(LEN - 10 - 1, b' ');
    d.push(b'\n');
    h.extend(d);
    h
}
