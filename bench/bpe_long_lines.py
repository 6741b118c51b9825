"""BPE training and encoding time on 20 MB texts: normal lines, one long line, one giant word.

    python bench/bpe_long_lines.py [--mb 20] [--timeout 300] [--vocab-size 512]

Each case runs in a fresh process, killed after `--timeout` seconds (issue 27, item 9: a 20 MB
one-line text was still training after 300 s). Texts are built from Shakespeare (`load_corpus`):
- lines: the plays as they are, repeated to the size (about 160k lines);
- one line: the same with every line break made a space (one 20 MB line, ordinary words);
- no spaces: the same with all whitespace removed (one line; words glued between punctuation);
- letters only: only its letters (one pre-token of 20 MB: the worst case of the old trainer);
and the letters-only text at a few small sizes, to show how the time grows with a word's length.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASE = r"""
import re, sys, time
from lesson_lib.data import load_corpus
from lesson_lib.tokenizers import BPETokenizer
kind, chars, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = load_corpus("shakespeare").text
text = (text * (chars // len(text) + 1))
if kind == "one line":
    text = text.replace("\n", " ")
elif kind == "no spaces":
    text = re.sub(r"\s+", "", text)
elif kind == "letters only":
    text = re.sub(r"[^A-Za-z]+", "", text)
text = text[:chars]
start = time.perf_counter()
tok = BPETokenizer.train(text, vocab_size=vocab)
trained = time.perf_counter() - start
start = time.perf_counter()
ids = tok.encode(text)
encoded = time.perf_counter() - start
print(f"{trained:.2f} {encoded:.2f} {len(ids)}")
"""


def run(kind: str, chars: int, vocab: int, timeout: float) -> str:
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", CASE, kind, str(chars), str(vocab)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"still running after {timeout:.0f} s (killed)"
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    trained, encoded, n = done.stdout.split()
    return (f"train {float(trained):7.2f} s, encode {float(encoded):6.2f} s ({int(n):,} ids); "
            f"process {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--skip-big", action="store_true", help="only the small letters-only sizes")
    args = parser.parse_args()
    chars = int(args.mb * 1e6)
    print(f"BPE, vocab {args.vocab_size}, each case in a fresh process (timeout {args.timeout:.0f} s)")
    for n in (50_000, 100_000, 200_000, 400_000):
        print(f"letters only, {n:>10,} chars: {run('letters only', n, args.vocab_size, args.timeout)}", flush=True)
    if not args.skip_big:
        for kind in ("lines", "one line", "no spaces", "letters only"):
            print(f"{kind:>12}, {chars:>10,} chars: {run(kind, chars, args.vocab_size, args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
