#!/usr/bin/env python3
"""Print the paths of one package's integration-test executables, as `cargo test` (all default
members, so the same features) built them; builds nothing that `cargo test` has not.

    scripts/test_binaries.py PACKAGE TEST...
"""
import json
import subprocess
import sys

package, tests = sys.argv[1], sys.argv[2:]
if not tests:
    sys.exit("usage: test_binaries.py PACKAGE TEST...")
args = ["cargo", "test", "--no-run", "--message-format=json"]
for t in tests:
    args += ["--test", t]
out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
found = {}
for line in out.splitlines():
    msg = json.loads(line)
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    name = msg["target"]["name"]
    # package_id: "path+file:///…/crates/bert#0.1.0" (or "…#bert@0.1.0" for a renamed package).
    pid = msg["package_id"].split("#", 1)
    pkg = pid[1].split("@")[0] if "@" in pid[1] else pid[0].rstrip("/").rsplit("/", 1)[-1]
    if pkg == package and name in tests:
        found[name] = msg["executable"]
missing = [t for t in tests if t not in found]
if missing:
    sys.exit(f"test_binaries.py: no test executable for {package}: {', '.join(missing)}")
print("\n".join(found[t] for t in tests))
