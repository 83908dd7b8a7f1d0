"""Threads, fork and the GIL: each model owns its pool (num_threads, else RAYON_NUM_THREADS, else
OMP_NUM_THREADS, else the CPU affinity), many Python threads may call one model, a forked child
can use a model its parent loaded, other Python threads run while the engine works, and Ctrl-C
interrupts a long encode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import bert_rs
from conftest import model_dir


def test_num_threads_rule():
    code = "import bert_rs; print(bert_rs.default_num_threads())"
    env = {k: v for k, v in os.environ.items() if k not in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS")}

    def run(**extra):
        return int(subprocess.check_output([sys.executable, "-c", code], env={**env, **extra}).strip())

    assert run(OMP_NUM_THREADS="3") == 3
    assert run(OMP_NUM_THREADS="3", RAYON_NUM_THREADS="5") == 5
    assert run() == len(os.sched_getaffinity(0))
    m = bert_rs.BertModel.from_pretrained(model_dir("tiny-gelu"), num_threads=1)
    assert m.num_threads == 1


def test_many_threads_call_one_model(minilm_dir):
    tok = bert_rs.BertTokenizer.from_pretrained(minilm_dir)
    model = bert_rs.BertModel.from_pretrained(minilm_dir, num_threads=2)
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'dogs'}" for i in range(24)]
    serial = [model(**tok([t], return_tensors="np")).last_hidden_state for t in texts]
    with ThreadPoolExecutor(8) as ex:
        parallel = list(ex.map(lambda t: model(**tok([t], return_tensors="np")).last_hidden_state, texts))
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_fork_after_use_works_in_the_child(minilm_dir):
    st = bert_rs.SentenceTransformer(minilm_dir, num_threads=2)
    want = st.encode(["hello there", "general kenobi"])  # the parent's pool now has threads
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's pool threads do not exist here
        try:
            got = st.encode(["hello there", "general kenobi"])
            os.write(w, b"ok" if np.array_equal(got, want) else b"differ")
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.read(r, 16) == b"ok"
    assert np.array_equal(st.encode(["hello there", "general kenobi"]), want)


def test_gil_is_released_during_encode(minilm_dir):
    st = bert_rs.SentenceTransformer(minilm_dir, num_threads=1)
    texts = ["a fairly long sentence about nothing in particular " * 4] * 256
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    start = time.perf_counter()
    st.encode(texts)
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    # Were the GIL held through each batch, the ticking thread would run only between the
    # 8 batches (a tick or two each); released, it ticks about once per millisecond throughout.
    batches = len(texts) // 32
    assert ticks > 10 * batches, (ticks, elapsed)


def test_ctrl_c_interrupts_a_long_encode(minilm_dir, tmp_path):
    script = tmp_path / "long.py"
    script.write_text(
        "import sys, bert_rs\n"
        f"st = bert_rs.SentenceTransformer({minilm_dir!r}, num_threads=1)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    st.encode(['a long sentence to embed again and again ' * 8] * 200000, batch_size=32)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    # The child must not inherit an ignored SIGINT (a parent started in the background, or a
    # library's handler, may have set SIG_IGN): Python then never installs KeyboardInterrupt.
    p = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out.strip() == "interrupted"
