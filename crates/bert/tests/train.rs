//! Fine-tuning against PyTorch: every parameter's gradient of every head and loss
//! (`loss.backward()`, dropout off), and 20-step AdamW trajectories with warmup, weight decay and
//! clipping, on the tiny head fixtures and on all-MiniLM-L6-v2 (`fixtures/train/`, made by
//! `scripts/make_fixtures.py`).

mod common;

use bert::hub::DEFAULT_MODEL;
use bert::ndarray::{Array2, ArrayD, Ix1, Ix2};
use bert::train::optim::{clip_grad_norm, AdamW, AdamWConfig, Schedule, ScheduleKind};
use bert::train::{logits_loss, HeadInit, Labels, Mode, ParamSet, Precision, Task, TaskModel};
use bert::{BertInputs, ForwardOptions};
use common::{fixtures, Golden};

/// Each gradient within this fraction of its tensor's largest absolute value (the bound).
const TOL_GRAD: f32 = 1e-4;
/// Losses, relative.
const TOL_LOSS: f32 = 1e-5;
/// Trajectories: per-step loss and final weights, relative to the tensor's largest value.
const TOL_TRAJ: f32 = 1e-4;

fn golden(name: &str) -> Golden {
    Golden::load_path(&fixtures().join("train").join(format!("{name}.safetensors")))
}

fn ids2(g: &Golden, key: &str) -> Option<Array2<i64>> {
    g.ids(key)
}

fn inputs(g: &Golden, case: &str) -> BertInputs {
    BertInputs {
        input_ids: ids2(g, &format!("{case}.input_ids")).unwrap(),
        attention_mask: ids2(g, &format!("{case}.attention_mask")).unwrap(),
        token_type_ids: ids2(g, &format!("{case}.token_type_ids")).unwrap(),
    }
}

fn options(g: &Golden, case: &str) -> ForwardOptions {
    ForwardOptions {
        head_mask: g
            .f32s
            .get(&format!("{case}.head_mask"))
            .map(|a| a.clone().into_dimensionality::<Ix2>().unwrap()),
        position_ids: ids2(g, &format!("{case}.position_ids")),
        ..Default::default()
    }
}

fn vec1(a: &ArrayD<i64>) -> Vec<i64> {
    a.clone().into_dimensionality::<Ix1>().unwrap().to_vec()
}

fn labels(g: &Golden, case: &str, kind: &str) -> Labels {
    let key = format!("{case}.labels");
    match kind {
        "seqcls" => Labels::Classes(vec1(&g.i64s[&key])),
        "seqcls-regression" => {
            let v = g.f32s[&key].clone();
            let b = v.len();
            Labels::Scores(Array2::from_shape_vec((b, 1), v.iter().copied().collect()).unwrap())
        }
        "seqcls-multilabel" => Labels::Scores(g.f32s[&key].clone().into_dimensionality().unwrap()),
        "tokcls" => Labels::Tokens(g.ids(&key).unwrap()),
        "qa" => Labels::Spans {
            start: vec1(&g.i64s[&format!("{case}.start_positions")]),
            end: vec1(&g.i64s[&format!("{case}.end_positions")]),
        },
        _ => unreachable!(),
    }
}

/// Tensors whose largest value is below this are compared as if it were this. Some true gradients
/// are exactly 0 and hold rounding noise (~1e-8) on both sides: the attention key biases (below),
/// and the last LayerNorm's bias under the QA loss (softmax gradients sum to 0 over positions).
const SCALE_FLOOR: f32 = 1e-3;

/// The attention key biases' true gradient is exactly 0 (softmax ignores a constant added to every
/// score of a row: `q . b_k`), so both sides hold rounding noise (~1e-8), checked to stay below
/// this instead. AdamW normalizes that noise into full-size steps in PyTorch as here, so a key
/// bias's trajectory is noise in both and is left out of the trajectory comparisons.
const KEY_BIAS_NOISE: f32 = 1e-6;

fn is_key_bias(name: &str) -> bool {
    name.ends_with("attention.self.key.bias")
}

/// Max |ours - theirs| of one tensor, relative to the largest |theirs|.
fn rel_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(SCALE_FLOOR);
    ours.iter()
        .zip(theirs)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn check_grads(kind: &str, model_dir: &str, task: Task) {
    check_grads_in(kind, model_dir, task, Precision::F32, (TOL_LOSS, TOL_GRAD));
}

/// [`check_grads`] with the encoder's products in `prec`, loss and gradients within `tol`
/// (relative, as the f32 bounds).
fn check_grads_in(kind: &str, model_dir: &str, task: Task, prec: Precision, tol: (f32, f32)) {
    let (tol_loss, tol_grad) = tol;
    let g = golden(&format!("grads-{kind}"));
    let dir = fixtures().join("models").join(model_dir);
    let (mut model, params) = TaskModel::from_dir(&dir, task, &HeadInit::default()).unwrap();
    model.set_precision(prec);
    // Same parameters as PyTorch's named_parameters(): no missing or extra tensors.
    let case0 = &g.cases()[0];
    let mut want: Vec<String> = g
        .f32s
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{case0}.grad.")).map(String::from))
        .collect();
    let mut ours: Vec<String> = params.tensors().iter().map(|t| t.name.clone()).collect();
    want.sort();
    ours.sort();
    assert_eq!(ours, want, "{kind}: parameter names");
    for case in g.cases() {
        let mut grads = params.zeros_like();
        let loss = model
            .train_step(
                &params,
                &mut grads,
                &inputs(&g, &case),
                &labels(&g, &case, kind),
                &options(&g, &case),
                Mode::Eval,
                1.0,
            )
            .unwrap();
        let want_loss = g.f32s[&format!("{case}.loss")][[0]];
        assert!(
            (loss - want_loss).abs() <= tol_loss * want_loss.abs().max(1.0),
            "{kind}/{case}: loss {loss} vs {want_loss}"
        );
        let mut worst = (0.0f32, String::new());
        for t in grads.tensors() {
            let theirs = &g.f32s[&format!("{case}.grad.{}", t.name)];
            let theirs: Vec<f32> = theirs.iter().copied().collect();
            if is_key_bias(&t.name) {
                let ours = grads.get(&t.name).unwrap();
                let noise = ours
                    .iter()
                    .chain(&theirs)
                    .fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(
                    noise <= KEY_BIAS_NOISE,
                    "{kind}/{case}: {} = {noise:e}",
                    t.name
                );
                continue;
            }
            let d = rel_diff(grads.get(&t.name).unwrap(), &theirs);
            assert!(
                d <= tol_grad,
                "{kind}/{case}: grad of {} differs by {d:e} of its max (tol {tol_grad:e})",
                t.name
            );
            if d > worst.0 {
                worst = (d, t.name.clone());
            }
        }
        println!(
            "{kind}/{case} {prec:?}: loss {loss} vs {want_loss}; worst grad {} {:e}",
            worst.1, worst.0
        );
    }
}

#[test]
fn sequence_classification_gradients_match_pytorch() {
    check_grads("seqcls", "heads-seqcls", Task::SequenceClassification);
}

/// Mixed precision (bf16 products, f32 sums) against PyTorch's f32 gradients: the difference is
/// bf16's rounding of every product operand, about 2^-9 relative per value. Bounds about 2x the
/// largest measured (loss 1.1e-3, gradients 2.6e-2 of their max, AVX512-BF16; docs/training.md).
#[test]
fn bf16_gradients_stay_close_to_pytorch_f32() {
    let tol = (2.5e-3, 5e-2);
    check_grads_in(
        "seqcls",
        "heads-seqcls",
        Task::SequenceClassification,
        Precision::Bf16,
        tol,
    );
    check_grads_in(
        "tokcls",
        "heads-tokcls",
        Task::TokenClassification,
        Precision::Bf16,
        tol,
    );
}

#[test]
fn trainer_refuses_bf16_args_on_an_f32_model() {
    let dir = fixtures().join("models").join("heads-seqcls");
    let (model, params) =
        TaskModel::from_dir(&dir, Task::SequenceClassification, &HeadInit::default()).unwrap();
    let args = bert::train::TrainingArgs {
        bf16: true,
        ..Default::default()
    };
    let example = bert::train::Example {
        ids: vec![2, 5, 3],
        type_ids: vec![0, 0, 0],
        target: bert::train::Target::Class(0),
    };
    let err = bert::train::Trainer::new(&model, params, vec![example], args, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("bf16"), "{err}");
}

#[test]
fn regression_gradients_match_pytorch() {
    check_grads(
        "seqcls-regression",
        "heads-seqcls-regression",
        Task::SequenceClassification,
    );
}

#[test]
fn multi_label_gradients_match_pytorch() {
    check_grads(
        "seqcls-multilabel",
        "heads-seqcls-multilabel-pytorch",
        Task::SequenceClassification,
    );
}

#[test]
fn token_classification_gradients_match_pytorch() {
    check_grads("tokcls", "heads-tokcls", Task::TokenClassification);
}

/// `logits_loss`, the loss `bert evaluate --dtype int8` computes from an inference head's padded
/// logits, is the training head's loss on the same logits, to the bit.
#[test]
fn logits_loss_is_the_training_heads_loss() {
    let seq = Task::SequenceClassification;
    for (kind, dir, task) in [
        ("seqcls", "heads-seqcls", seq),
        ("seqcls-regression", "heads-seqcls-regression", seq),
        ("seqcls-multilabel", "heads-seqcls-multilabel-pytorch", seq),
        ("tokcls", "heads-tokcls", Task::TokenClassification),
    ] {
        let g = golden(&format!("grads-{kind}"));
        let dir = fixtures().join("models").join(dir);
        let (model, params) = TaskModel::from_dir(&dir, task, &HeadInit::default()).unwrap();
        for case in g.cases() {
            let l = labels(&g, &case, kind);
            let (loss, logits) = model
                .predict_with_loss(&params, &inputs(&g, &case), &l, &options(&g, &case))
                .unwrap();
            let again = logits_loss(model.config(), &logits, &l).unwrap();
            assert_eq!(again, loss, "{kind}/{case}");
        }
    }
}

#[test]
fn question_answering_gradients_match_pytorch() {
    check_grads("qa", "heads-qa", Task::QuestionAnswering);
}

/// Trainer's loop, as the fixture script runs it in PyTorch: forward/backward, clip, AdamW step
/// at the schedule's rate.
fn run_trajectory(
    g: &Golden,
    model: &TaskModel,
    params: &mut ParamSet,
    batches: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let steps: u64 = g.meta["steps"].parse().unwrap();
    let lr: f32 = g.meta["lr"].parse().unwrap();
    let wd: f32 = g.meta["weight_decay"].parse().unwrap();
    let ratio: f64 = g.meta["warmup_ratio"].parse().unwrap();
    let max_norm: f32 = g.meta["max_grad_norm"].parse().unwrap();
    let schedule = Schedule {
        kind: ScheduleKind::Linear,
        base_lr: lr,
        warmup_steps: Schedule::warmup_from_ratio(steps, ratio),
        total_steps: steps,
    };
    assert_eq!(
        schedule.warmup_steps.to_string(),
        g.meta["warmup_steps"],
        "warmup steps from the ratio"
    );
    let mut opt = AdamW::new(
        params,
        AdamWConfig {
            weight_decay: wd,
            ..Default::default()
        },
    );
    let mut grads = params.zeros_like();
    let (mut losses, mut lrs, mut norms) = (vec![], vec![], vec![]);
    for step in 0..steps {
        let b = format!("batch{}", step as usize % batches);
        grads.zero();
        let labels = Labels::Classes(vec1(&g.i64s[&format!("{b}.labels")]));
        let loss = model
            .train_step(
                params,
                &mut grads,
                &inputs(g, &b),
                &labels,
                &ForwardOptions::default(),
                Mode::Eval,
                1.0,
            )
            .unwrap();
        norms.push(clip_grad_norm(&mut grads, max_norm));
        let rate = schedule.lr(step);
        lrs.push(rate);
        losses.push(loss);
        opt.update(params, &grads, rate);
    }
    (losses, lrs, norms)
}

fn check_series(name: &str, ours: &[f32], theirs: &ArrayD<f32>, tol: f32) {
    let theirs: Vec<f32> = theirs.iter().copied().collect();
    assert_eq!(ours.len(), theirs.len(), "{name}: length");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1e-6),
            "{name}[{i}]: {a} vs {b}"
        );
    }
    println!("{name}: ok ({} steps)", ours.len());
}

#[test]
fn adamw_trajectory_on_tiny_classifier_matches_pytorch() {
    let g = golden("trajectory-tiny");
    let dir = fixtures().join("models").join("heads-seqcls");
    let (model, mut params) =
        TaskModel::from_dir(&dir, Task::SequenceClassification, &HeadInit::default()).unwrap();
    let (losses, lrs, norms) = run_trajectory(&g, &model, &mut params, 4);
    check_series("losses", &losses, &g.f32s["losses"], TOL_TRAJ);
    check_series("lrs", &lrs, &g.f32s["lrs"], 1e-6);
    check_series("grad_norms", &norms, &g.f32s["grad_norms"], TOL_TRAJ);
    let mut worst = 0.0f32;
    for t in params.tensors().iter().filter(|t| !is_key_bias(&t.name)) {
        let theirs: Vec<f32> = g.f32s[&format!("final.{}", t.name)]
            .iter()
            .copied()
            .collect();
        let d = rel_diff(params.get(&t.name).unwrap(), &theirs);
        assert!(d <= TOL_TRAJ, "final {}: {d:e}", t.name);
        worst = worst.max(d);
    }
    println!("final weights: worst relative diff {worst:e}");
}

#[test]
fn adamw_trajectory_on_minilm_matches_pytorch() {
    let g = golden("trajectory-minilm");
    let init = HeadInit {
        labels: Some(vec!["LABEL_0".into(), "LABEL_1".into()]),
        ..Default::default()
    };
    let (model, mut params) =
        TaskModel::from_pretrained(DEFAULT_MODEL, Task::SequenceClassification, &init).unwrap();
    // PyTorch's fresh head came from its own generator: start from the same values.
    for name in ["classifier.weight", "classifier.bias"] {
        let v: Vec<f32> = g.f32s[&format!("init.{name}")].iter().copied().collect();
        params.get_mut(name).unwrap().copy_from_slice(&v);
    }
    let before = params.clone();
    let (losses, lrs, norms) = run_trajectory(&g, &model, &mut params, 20);
    check_series("losses", &losses, &g.f32s["losses"], TOL_TRAJ);
    check_series("lrs", &lrs, &g.f32s["lrs"], 1e-6);
    check_series("grad_norms", &norms, &g.f32s["grad_norms"], 1e-3);
    let rows: Vec<usize> = g.meta["rows_word_embeddings"]
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let (mut worst, mut worst_update) = (0.0f32, 0.0f32);
    for t in params.tensors().iter().filter(|t| !is_key_bias(&t.name)) {
        let ours = params.get(&t.name).unwrap();
        if let Some(full) = g.f32s.get(&format!("final.{}", t.name)) {
            let theirs: Vec<f32> = full.iter().copied().collect();
            let d = rel_diff(ours, &theirs);
            assert!(d <= TOL_TRAJ, "final {}: {d:e}", t.name);
            worst = worst.max(d);
        } else {
            let part = &g.f32s[&format!("final_rows.{}", t.name)];
            let cols = t.shape[1];
            let picked: Vec<usize> = if t.name.contains("word_embeddings") {
                rows.clone()
            } else {
                vec![0, t.shape[0] - 1]
            };
            let theirs: Vec<f32> = part.iter().copied().collect();
            let ours: Vec<f32> = picked
                .iter()
                .flat_map(|&r| ours[r * cols..(r + 1) * cols].iter().copied())
                .collect();
            let d = rel_diff(&ours, &theirs);
            assert!(d <= TOL_TRAJ, "final rows of {}: {d:e}", t.name);
            worst = worst.max(d);
        }
        // The size of each tensor's update, which the weights' own scale could hide.
        let upd: f64 = ours
            .iter()
            .zip(before.get(&t.name).unwrap())
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let want = g.f32s[&format!("update_norm.{}", t.name)][[0]] as f64;
        let d = ((upd - want).abs() / want.max(1e-12)) as f32;
        assert!(d <= 2e-2, "update norm of {}: {upd} vs {want}", t.name);
        worst_update = worst_update.max(d);
    }
    println!("final weights: worst relative diff {worst:e}; update norms within {worst_update:e}");
}

/// The custom-head entry points: `Encoder::backward` from gradients with respect to
/// `last_hidden_state` and `pooler_output` (the user's own layer's), against finite differences of
/// `Encoder::forward`, on a padded pair batch with a head mask.
#[test]
fn encoder_backward_from_output_gradients_matches_finite_differences() {
    use bert::train::Encoder;
    let dir = fixtures().join("models").join("heads-seqcls");
    let (enc, mut params) = Encoder::from_dir(&dir, true).unwrap();
    assert!(enc.has_pooler());
    let g = golden("grads-seqcls");
    let (inp, opts) = (inputs(&g, "head_mask"), options(&g, "head_mask"));
    let (out, tape) = enc.forward(&params, &inp, &opts, Mode::Eval).unwrap();
    let (b, t, h) = out.last_hidden_state.dim();
    let wave = |i: usize| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5;
    let r =
        bert::ndarray::Array3::from_shape_fn((b, t, h), |(x, y, z)| wave(x * 1000 + y * 50 + z));
    let s = Array2::from_shape_fn((b, h), |(x, z)| wave(x * 77 + z + 13));
    let mask = inp.attention_mask.clone();
    // loss = sum over real tokens of last_hidden_state * r + sum of pooler_output * s
    let loss = |p: &ParamSet| -> f64 {
        let (o, _) = enc.forward(p, &inp, &opts, Mode::Eval).unwrap();
        let mut l = 0.0f64;
        for ((x, y, z), v) in o.last_hidden_state.indexed_iter() {
            if mask[[x, y]] == 1 {
                l += (*v as f64) * r[[x, y, z]] as f64;
            }
        }
        l + o
            .pooler_output
            .unwrap()
            .iter()
            .zip(s.iter())
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum::<f64>()
    };
    let mut grads = params.zeros_like();
    enc.backward(&params, &tape, &mut grads, Some(&r), Some(&s))
        .unwrap();
    let probes = [
        ("embeddings.word_embeddings.weight", 5 * h + 3),
        ("embeddings.position_embeddings.weight", 2 * h + 1),
        ("embeddings.LayerNorm.weight", 4),
        ("encoder.layer.0.attention.self.query.weight", 17),
        ("encoder.layer.0.attention.self.value.bias", 3),
        ("encoder.layer.1.intermediate.dense.weight", 40),
        ("encoder.layer.1.output.LayerNorm.bias", 9),
        ("pooler.dense.weight", 33),
    ];
    for (name, i) in probes {
        let off = params.tensor(name).unwrap().range.start + i;
        let eps = 1e-2f32;
        let orig = params.data()[off];
        params.data_mut()[off] = orig + eps;
        let hi = loss(&params);
        params.data_mut()[off] = orig - eps;
        let lo = loss(&params);
        params.data_mut()[off] = orig;
        let fd = ((hi - lo) / (2.0 * eps as f64)) as f32;
        let ours = grads.data()[off];
        assert!(
            (fd - ours).abs() <= 1e-2 * fd.abs().max(ours.abs()) + 2e-3,
            "{name}[{i}]: finite difference {fd} vs backward {ours}"
        );
        println!("{name}[{i}]: fd {fd} backward {ours}");
    }
}
