#!/usr/bin/env bash
# Real clients nobody here wrote against `bert serve`: the OpenAI Python client's
# `embeddings.create(...)` on /v1/embeddings (base64, its default, and float), compared with
# `bert embed` on the same texts within 1e-6; then `curl` on the TEI routes.
#
#   scripts/serve_clients.sh                 # all-MiniLM-L6-v2, target/release/bert
#   BERT_BIN=target/debug/bert MODEL=dir scripts/serve_clients.sh
#
# Needs python3 with venv and pip (the openai package is installed into $VENV, default
# target/openai-venv). Not part of CI: it downloads from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
BERT_BIN=${BERT_BIN:-target/release/bert}
MODEL=${MODEL:-sentence-transformers/all-MiniLM-L6-v2}
VENV=${VENV:-target/openai-venv}
work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet openai numpy
fi
"$VENV/bin/python" -c 'import openai; print("openai", openai.__version__)'

# Texts: the first 16 corpus lines (truncated to the model's length, as `bert embed` does).
head -n 16 scripts/peers/data/fortunes-en.txt | grep -v '^[[:space:]]*$' > "$work/texts.txt"
"$BERT_BIN" embed --quiet --model "$MODEL" --input "$work/texts.txt" > "$work/embed.jsonl"

"$BERT_BIN" serve --model "$MODEL" --host 127.0.0.1 --port 0 --auto-truncate 2> "$work/serve.log" &
server=$!
for _ in $(seq 600); do
  grep -q "listening on http://" "$work/serve.log" && break
  kill -0 "$server" || { cat "$work/serve.log"; exit 1; }
  sleep 0.1
done
addr=$(grep -o 'listening on http://[^ ]*' "$work/serve.log" | head -1 | sed 's/listening on //')
echo "bert serve at $addr"

"$VENV/bin/python" - "$addr" "$MODEL" "$work/texts.txt" "$work/embed.jsonl" <<'PY'
import json, sys
import numpy as np
from openai import OpenAI

addr, model, texts_path, embed_path = sys.argv[1:]
texts = [l.rstrip("\n") for l in open(texts_path, encoding="utf-8")]
want = np.array([json.loads(l)["embedding"] for l in open(embed_path)], dtype=np.float32)
client = OpenAI(base_url=f"{addr}/v1", api_key="unused")
for fmt in (None, "float"):
    kw = {} if fmt is None else {"encoding_format": fmt}
    r = client.embeddings.create(input=texts, model=model, **kw)
    got = np.array([d.embedding for d in r.data], dtype=np.float32)
    assert [d.index for d in r.data] == list(range(len(texts)))
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float(np.abs(got - want).max())
    print(f"openai {fmt or 'default (base64)'}: {got.shape[0]} x {got.shape[1]}, "
          f"max |diff| vs bert embed = {diff:.2e}, usage {r.usage.prompt_tokens} tokens")
    assert diff <= 1e-6, diff
one = client.embeddings.create(input=texts[0], model=model).data[0].embedding
assert float(np.abs(np.array(one, dtype=np.float32) - want[0]).max()) <= 1e-6
print("openai client: OK")
PY

# curl on the TEI routes (status and a look at the body).
for req in \
  "/embed" '{"inputs": "Hello, my dog is cute"}' \
  "/embed" '{"inputs": ["a", "b"], "normalize": false}' \
  "/embed_all" '{"inputs": "Hello"}' \
  "/tokenize" '{"inputs": "Hello, my dog is cute"}' \
  "/decode" '{"ids": [101, 7592, 102]}' \
  "/predict" '{"inputs": "x"}' \
  "/embed" '{"inputs": []}' \
  "/embed" '{"inputs": ' ; do
  if [ "${path:-}" = "" ]; then path=$req; continue; fi
  printf '%-10s %-46s -> ' "$path" "$req"
  curl -s -o "$work/out" -w '%{http_code} ' -H 'Content-Type: application/json' -d "$req" "$addr$path"
  cut -c1-70 "$work/out"
  path=""
done
printf '%-10s %-46s -> ' /health "" ; curl -s -o /dev/null -w '%{http_code}\n' "$addr/health"
printf '%-10s %-46s -> ' /info "" ; curl -s "$addr/info" | cut -c1-90; echo
kill -TERM "$server"; wait "$server"; echo "bert serve exited with status $?"; server=""
