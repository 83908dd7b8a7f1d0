//! Shared helpers of the golden tests: read a golden safetensors file written by
//! `scripts/make_fixtures.py` and compare our outputs with transformers' on real positions.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bert::ndarray::{Array2, ArrayD, Dimension, IxDyn};
use bert::{BertInputs, BertModel, BertModelOutput, ForwardOptions};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

/// Max abs difference allowed for hidden states, `last_hidden_state` and `pooler_output`.
pub const TOL_HIDDEN: f32 = 1e-4;
/// Max abs difference allowed for attention probabilities.
pub const TOL_ATTN: f32 = 1e-5;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures() -> PathBuf {
    repo_root().join("fixtures")
}

/// The tensors and metadata of one golden file.
pub struct Golden {
    pub f32s: HashMap<String, ArrayD<f32>>,
    pub i64s: HashMap<String, ArrayD<i64>>,
    pub meta: HashMap<String, String>,
}

impl Golden {
    pub fn load(name: &str) -> Golden {
        Self::load_path(
            &fixtures()
                .join("golden")
                .join(format!("{name}.safetensors")),
        )
    }

    /// A golden file anywhere (e.g. `fixtures/train/`).
    pub fn load_path(path: &Path) -> Golden {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("golden header");
        let meta = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).expect("golden file");
        let (mut f32s, mut i64s) = (HashMap::new(), HashMap::new());
        for (name, view) in st.tensors() {
            let shape = IxDyn(view.shape());
            match view.dtype() {
                Dtype::F32 => {
                    let v: Vec<f32> = view
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    f32s.insert(name, ArrayD::from_shape_vec(shape, v).unwrap());
                }
                Dtype::I64 => {
                    let v: Vec<i64> = view
                        .data()
                        .chunks_exact(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                        .collect();
                    i64s.insert(name, ArrayD::from_shape_vec(shape, v).unwrap());
                }
                other => panic!("unexpected dtype {other:?} in golden {name}"),
            }
        }
        Golden { f32s, i64s, meta }
    }

    pub fn cases(&self) -> Vec<String> {
        self.meta["cases"].split(',').map(String::from).collect()
    }

    pub fn ids(&self, key: &str) -> Option<Array2<i64>> {
        self.i64s
            .get(key)
            .map(|a| a.clone().into_dimensionality().expect("2-d ids"))
    }

    pub fn inputs(&self, case: &str) -> BertInputs {
        BertInputs {
            input_ids: self.ids(&format!("{case}.input_ids")).unwrap(),
            attention_mask: self.ids(&format!("{case}.attention_mask")).unwrap(),
            token_type_ids: self.ids(&format!("{case}.token_type_ids")).unwrap(),
        }
    }

    pub fn options(&self, case: &str) -> ForwardOptions {
        ForwardOptions {
            output_hidden_states: true,
            output_attentions: true,
            head_mask: self
                .f32s
                .get(&format!("{case}.head_mask"))
                .map(|a| a.clone().into_dimensionality().unwrap()),
            position_ids: self.ids(&format!("{case}.position_ids")),
        }
    }
}

/// Largest |a - b| over the entries where `keep(index)` holds (a NaN counts as infinite), and
/// its index.
pub fn max_diff(
    ours: &ArrayD<f32>,
    want: &ArrayD<f32>,
    keep: impl Fn(&[usize]) -> bool,
) -> (f32, Vec<usize>) {
    assert_eq!(ours.shape(), want.shape(), "shapes differ");
    let mut worst = (0.0f32, vec![]);
    for (idx, &w) in want.indexed_iter() {
        let idx = idx.slice().to_vec();
        if !keep(&idx) {
            continue;
        }
        let d = (ours[IxDyn(&idx)] - w).abs();
        if d > worst.0 || d.is_nan() {
            worst = (if d.is_nan() { f32::INFINITY } else { d }, idx);
        }
    }
    worst
}

/// Compares every output of `out` with the golden case; panics on any mismatch above tolerance.
/// Only real positions (attention_mask 1) are compared; padded positions must be zero in ours.
/// `pooler_output` is compared for rows whose first position is real (transformers pools position
/// 0 even when it is padding; this crate pools the first real token).
pub fn check_case(label: &str, g: &Golden, case: &str, out: &BertModelOutput) {
    let mask = g.ids(&format!("{case}.attention_mask")).unwrap();
    let real = |b: usize, t: usize| mask[[b, t]] == 1;
    let check = |name: &str, ours: ArrayD<f32>, tol: f32, keep: &dyn Fn(&[usize]) -> bool| {
        let want = &g.f32s[&format!("{case}.{name}")];
        let (d, at) = max_diff(&ours, want, keep);
        assert!(
            d <= tol,
            "{label} {case}.{name}: max abs diff {d:e} at {at:?} exceeds {tol:e}"
        );
    };
    let hidden_keep = |i: &[usize]| real(i[0], i[1]);
    check(
        "last_hidden_state",
        out.last_hidden_state.clone().into_dyn(),
        TOL_HIDDEN,
        &hidden_keep,
    );
    assert_zero_at_padding(
        label,
        case,
        &out.last_hidden_state.clone().into_dyn(),
        &mask,
    );
    match (
        &out.pooler_output,
        g.f32s.contains_key(&format!("{case}.pooler_output")),
    ) {
        (Some(p), true) => check(
            "pooler_output",
            p.clone().into_dyn(),
            TOL_HIDDEN,
            &|i: &[usize]| real(i[0], 0),
        ),
        (None, false) => {}
        (ours, _) => panic!(
            "{label} {case}: pooler_output presence differs (ours: {})",
            ours.is_some()
        ),
    }
    let hs = out.hidden_states.as_ref().expect("hidden_states requested");
    let n_layers = g
        .f32s
        .keys()
        .filter(|k| k.starts_with(&format!("{case}.attentions.")))
        .count();
    assert_eq!(
        hs.len(),
        n_layers + 1,
        "{label} {case}: hidden_states count"
    );
    for (i, h) in hs.iter().enumerate() {
        check(
            &format!("hidden_states.{i}"),
            h.clone().into_dyn(),
            TOL_HIDDEN,
            &hidden_keep,
        );
        assert_zero_at_padding(label, case, &h.clone().into_dyn(), &mask);
    }
    let atts = out.attentions.as_ref().expect("attentions requested");
    assert_eq!(atts.len(), n_layers, "{label} {case}: attentions count");
    for (i, a) in atts.iter().enumerate() {
        // Rows of real queries, every key column (padded keys are 0 in both).
        check(
            &format!("attentions.{i}"),
            a.clone().into_dyn(),
            TOL_ATTN,
            &|idx: &[usize]| real(idx[0], idx[2]),
        );
        for ((b, h, q, k), &v) in a.indexed_iter() {
            if !real(b, q) || !real(b, k) {
                assert_eq!(
                    v, 0.0,
                    "{label} {case}: attentions.{i}[{b},{h},{q},{k}] not zero"
                );
            }
        }
    }
}

fn assert_zero_at_padding(label: &str, case: &str, a: &ArrayD<f32>, mask: &Array2<i64>) {
    for (idx, &v) in a.indexed_iter() {
        let (b, t) = (idx[0], idx[1]);
        if mask[[b, t]] == 0 {
            assert_eq!(v, 0.0, "{label} {case}: padded position {b},{t} not zero");
        }
    }
}

/// Runs every case of golden `golden` through `model`.
pub fn check_model(label: &str, model: &BertModel, golden: &str) {
    let g = Golden::load(golden);
    for case in g.cases() {
        let out = model
            .forward(&g.inputs(&case), &g.options(&case))
            .unwrap_or_else(|e| panic!("{label} {case}: forward failed: {e}"));
        check_case(label, &g, &case, &out);
    }
}
