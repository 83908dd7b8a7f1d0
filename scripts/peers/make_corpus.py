#!/usr/bin/env python3
"""Extract the benchmark corpus: the first N English fortune entries, one per line.

Source: Debian package `fortunes` (/usr/share/games/fortunes). Rules (deterministic):
  * files in sorted name order; skip *.dat index files, *.u8 symlinks (aliases of the
    plain files), any symlink, and sub-directories (e.g. the offensive 'off' folder);
  * decode as UTF-8 (strict); skip whole files that are not English: more than 5% of
    their characters non-ASCII (this drops the fortunes-zh files 'chinese', 'song100', 'tang300');
  * entries are separated by lines holding only '%';
  * clean: drop ANSI escape sequences, resolve backspace overstriking ("_\\bx" -> "x"),
    drop other control characters, collapse all whitespace to single spaces;
  * keep an entry only if non-empty and it is text rather than a picture: letters make up
    at least 50% of its non-space characters (drops ASCII-art entries).

Usage: python3 make_corpus.py [--n 2048] [--src /usr/share/games/fortunes] [--out data/fortunes-en.txt]
"""
import argparse
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OVERSTRIKE = re.compile(r".\x08")
CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(entry: str) -> str:
    s = ANSI.sub("", entry)
    while "\x08" in s:
        s2 = OVERSTRIKE.sub("", s)
        if s2 == s:
            s2 = s.replace("\x08", "")
        s = s2
    s = CTRL.sub(" ", s)
    return " ".join(s.split())


def is_text(s: str) -> bool:
    chars = [c for c in s if not c.isspace()]
    return bool(chars) and sum(c.isalpha() for c in chars) >= 0.5 * len(chars)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="/usr/share/games/fortunes")
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--out", default=os.path.join(HERE, "data", "fortunes-en.txt"))
    a = ap.parse_args()

    out, report = [], []
    for name in sorted(os.listdir(a.src)):
        p = os.path.join(a.src, name)
        if name.endswith((".dat", ".u8")) or os.path.islink(p) or not os.path.isfile(p):
            continue
        with open(p, "rb") as f:
            text = f.read().decode("utf-8")
        non_ascii = sum(ord(c) > 127 for c in text) / max(1, len(text))
        if non_ascii > 0.05:
            report.append(f"skip file {name}: {non_ascii:.0%} non-ASCII")
            continue
        kept = dropped = 0
        for entry in re.split(r"^%$", text, flags=re.M):
            s = clean(entry)
            if not s:
                continue
            if not is_text(s):
                dropped += 1
                continue
            if len(out) < a.n:
                out.append(s)
                kept += 1
        report.append(f"{name}: kept {kept}, dropped {dropped} non-text")
        if len(out) >= a.n:
            break
    if len(out) < a.n:
        raise SystemExit(f"only {len(out)} entries found")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for s in out:
            f.write(s + "\n")
    print("\n".join(report))
    n_ascii = sum(all(ord(c) < 128 for c in s) for s in out)
    print(f"wrote {len(out)} entries ({n_ascii} pure ASCII) to {a.out}")


if __name__ == "__main__":
    main()
