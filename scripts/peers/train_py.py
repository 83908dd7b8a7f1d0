"""Training peer for T1/T2 (see common.py): transformers BertForSequenceClassification (2 labels,
fresh head), model.train() (dropout on), torch.optim.AdamW (lr 2e-5, weight decay 0.01, torch's
default single-tensor path on CPU), dynamic padding per batch. Tokenization is untimed.

Per timed step: forward (model(**batch, labels=...) incl. the loss), backward (loss.backward()),
optimizer (opt.step(); opt.zero_grad(set_to_none=True)), each timed with perf_counter.

With bf16 (the torch-bf16 peer) the forward runs under torch.autocast("cpu", dtype=torch.bfloat16):
f32 master weights and AdamW, bf16 Linear products forward and backward, PyTorch's mixed precision
recipe on CPU (no loss scaling: bf16 has f32's exponent range)."""
import contextlib
import resource
import time

import common


def run_training(model_dir, workload, corpus, attn, threads, iters=None, warmup=None, bf16=False):
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    w0, i0 = common.DEFAULTS[workload]
    warmup = w0 if warmup is None else warmup
    iters = i0 if iters is None else iters
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2, attn_implementation=attn)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=common.T_LR, weight_decay=common.T_WEIGHT_DECAY)
    tok = common.make_tokenizer(model_dir, common.T_MAXLEN)
    if workload == "T1":
        batches = []
        for b in common.sst2_batches(corpus, warmup + iters):
            feed, real = common.encode(tok, [s for s, _ in b])
            batches.append((feed, [y for _, y in b], real))
    else:
        tok = common.make_tokenizer(model_dir, common.W2F_LEN, common.W2F_LEN)
        feed, real = common.encode(tok, common.w2f_lines(model_dir, common.DEFAULT_CORPUS))
        batches = [(feed, [r % 2 for r in range(feed["input_ids"].shape[0])], real)]
    batches = [({k: torch.from_numpy(v) for k, v in f.items()}, torch.tensor(y), r) for f, y, r in batches]
    pc = time.perf_counter
    times, phases = [], {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    real = padded = nseq = 0
    for step in range(warmup + iters):
        feed, labels, r = batches[step % len(batches)]
        t0 = pc()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = model(**feed, labels=labels).loss
        t1 = pc()
        loss.backward()
        t2 = pc()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = pc()
        if step < warmup:
            continue
        times.append((t3 - t0) * 1e3)
        phases["forward"] += (t1 - t0) * 1e3
        phases["backward"] += (t2 - t1) * 1e3
        phases["optimizer"] += (t3 - t2) * 1e3
        real += r
        padded += feed["input_ids"].numel()
        nseq += feed["input_ids"].shape[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    desc = f"torch {torch.__version__} BertForSequenceClassification attn={attn} train() AdamW"
    if bf16:
        desc += " autocast(bf16)"
    return dict(times_ms=times, n_seqs=nseq, real_tokens=real, padded_tokens=padded,
                phases_ms=phases, peak_rss_mb=round(peak, 1)), desc
