"""Speed of tokenization.FullTokenizer against a literal implementation of the reference algorithm.

Both tokenize the same real text line by line (gensim's lee_background.cor news documents plus the
decompressed enwiki XML sample, about 6 MB) with the released uncased English vocab. The fast
tokenizer is a fresh instance for every timed pass, so filling its caches is part of the time.
Passes alternate between the two implementations and the ratio uses the fastest pass of each, which
keeps the comparison fair on a busy machine. Outputs are compared token for token.

Usage:
  python bench/bench_tokenizer.py            # full text, 2 passes each (about 1 minute)
  python bench/bench_tokenizer.py --quick    # first ~1 MB, 1 pass each
  python bench/bench_tokenizer.py --cased    # do_lower_case=False
"""

import argparse
import bz2
import os
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import tokenization  # noqa: E402
from bench import machine  # noqa: E402
from bench import reference_tokenizer  # noqa: E402
from tests import artifacts  # noqa: E402

_ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_QUICK_CHARS = 1_000_000


def machine_description():
    """Returns e.g. 'AMD EPYC 7B13, 2 cores'."""
    return f"{machine.cpu_model()}, {os.cpu_count()} cores"

def load_lines(quick=False):
    """The benchmark text as a list of lines: lee_background.cor then the enwiki XML sample."""
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        lines = f.read().splitlines()
    with bz2.open(os.path.join(artifacts.gensim_test_data(), _ENWIKI)) as f:
        lines += f.read().decode("utf-8").splitlines()
    if quick:
        kept, total = [], 0
        for line in lines:
            if total >= _QUICK_CHARS:
                break
            kept.append(line)
            total += len(line)
        lines = kept
    return lines


def _timed_pass(make_tokenizer, lines):
    """Constructs a tokenizer (not timed), then times tokenizing every line.

    Returns:
      (wall seconds, CPU seconds of this process, list of token lists).
    """
    tokenizer = make_tokenizer()
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    output = [tokenizer.tokenize(line) for line in lines]
    return time.perf_counter() - start_wall, time.process_time() - start_cpu, output


def run(quick=False, do_lower_case=True, passes=None):
    """Runs the benchmark and returns its measurements.

    Args:
      quick: bool, use the first ~1 MB of text and one pass each.
      do_lower_case: bool, passed to both tokenizers (the vocab is the uncased English one).
      passes: int, timed passes per implementation (default 1 if quick else 2).

    Returns:
      dict with keys name, machine, chars, megabytes, lines, tokens, baseline_s, fast_s,
      baseline_mb_s, fast_mb_s, ratio (wall time), baseline_cpu_s, fast_cpu_s, cpu_ratio (process
      CPU time), identical.
    """
    passes = passes or (1 if quick else 2)
    vocab_file = artifacts.english_vocab()
    lines = load_lines(quick)
    megabytes = sum(len(line.encode("utf-8")) + 1 for line in lines) / 1e6
    baseline_wall, baseline_cpu, fast_wall, fast_cpu = [], [], [], []
    identical = True
    tokens = 0
    for _ in range(passes):
        wall, cpu, expected = _timed_pass(
            lambda: reference_tokenizer.FullTokenizer(vocab_file, do_lower_case), lines)
        baseline_wall.append(wall)
        baseline_cpu.append(cpu)
        wall, cpu, actual = _timed_pass(
            lambda: tokenization.FullTokenizer(vocab_file, do_lower_case), lines)
        fast_wall.append(wall)
        fast_cpu.append(cpu)
        identical = identical and actual == expected
        tokens = sum(map(len, actual))
        del expected, actual
    baseline_s, fast_s = min(baseline_wall), min(fast_wall)
    return {
        "name": "tokenizer (FullTokenizer.tokenize vs literal reference)",
        "machine": machine_description(),
        "chars": sum(map(len, lines)),
        "megabytes": megabytes,
        "lines": len(lines),
        "tokens": tokens,
        "do_lower_case": do_lower_case,
        "baseline_s": baseline_s,
        "fast_s": fast_s,
        "baseline_mb_s": megabytes / baseline_s,
        "fast_mb_s": megabytes / fast_s,
        "ratio": baseline_s / fast_s,
        # CPU time of this process: the same comparison, less disturbed by other jobs on the box.
        "baseline_cpu_s": min(baseline_cpu),
        "fast_cpu_s": min(fast_cpu),
        "cpu_ratio": min(baseline_cpu) / min(fast_cpu),
        "identical": identical,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first ~1 MB of text, one pass each")
    parser.add_argument("--cased", action="store_true", help="do_lower_case=False")
    parser.add_argument("--passes", type=int, default=None, help="timed passes per implementation")
    args = parser.parse_args()
    result = run(quick=args.quick, do_lower_case=not args.cased, passes=args.passes)
    print(f"machine:        {result['machine']}")
    print(f"text:           {result['megabytes']:.2f} MB, {result['lines']:,} lines, "
          f"{result['tokens']:,} tokens (lee_background.cor + enwiki XML sample), "
          f"do_lower_case={result['do_lower_case']}")
    print(f"literal:        {result['baseline_mb_s']:.2f} MB/s ({result['baseline_s']:.2f} s)")
    print(f"FullTokenizer:  {result['fast_mb_s']:.2f} MB/s ({result['fast_s']:.2f} s, "
          f"fresh instance, cold caches)")
    print(f"ratio:          {result['ratio']:.1f}x wall time, {result['cpu_ratio']:.1f}x CPU time "
          f"({result['baseline_cpu_s']:.2f} s / {result['fast_cpu_s']:.2f} s)")
    print(f"identical:      {result['identical']}")
    if not result["identical"]:
        print("ERROR: the outputs differ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
