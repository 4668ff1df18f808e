"""Speed of tokenization.FullTokenizer against a literal implementation of the reference algorithm.

Both tokenize the same real text line by line (gensim's lee_background.cor news documents plus the
decompressed enwiki XML sample, about 6 MB) with the released uncased English vocab. The fast
tokenizer is a fresh instance for every timed pass, so filling its caches is part of the time.

The speed of these shared machines drifts by tens of percent within minutes, so the two
implementations are not timed one after the other: each pass cuts the text into 20 segments and
times both on every segment in turn (each keeping its own tokenizer, so the fast one's caches fill
exactly as in one sequential pass), alternating which goes first. Both then see the same machine.
The ratio uses the fastest pass of each. Outputs are compared token for token.

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
from tests import reference_tokenizer  # noqa: E402
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


_SEGMENTS = 20


def _split_into_segments(lines, count):
    """Cuts `lines` into `count` consecutive slices of nearly equal length (in lines)."""
    size = -(-len(lines) // count)
    return [lines[start:start + size] for start in range(0, len(lines), size)]


def _interleaved_pass(make_baseline, make_fast, segments):
    """Times both implementations on every segment in turn, with one fresh instance of each.

    Only the output of the segment being timed is alive while it runs: each output is turned into
    one string (which the garbage collector does not scan) right after it is timed. Otherwise one
    implementation would run while the other's ~2 million token references sit in the heap, and
    every full garbage collection in its time would walk them too.

    Returns:
      dict name -> (wall seconds, CPU seconds of this process, the output as one string: a line
      per input line, tokens separated by spaces; tokens never contain whitespace, so equal strings
      mean equal token lists), for names "baseline" and "fast".
    """
    tokenizers = {"baseline": make_baseline(), "fast": make_fast()}
    wall = dict.fromkeys(tokenizers, 0.0)
    cpu = dict.fromkeys(tokenizers, 0.0)
    outputs = {name: [] for name in tokenizers}
    for index, segment in enumerate(segments):
        order = ("baseline", "fast") if index % 2 == 0 else ("fast", "baseline")
        for name in order:
            tokenize = tokenizers[name].tokenize
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            output = [tokenize(line) for line in segment]
            wall[name] += time.perf_counter() - start_wall
            cpu[name] += time.process_time() - start_cpu
            outputs[name].append("\n".join(map(" ".join, output)))
            del output
    return {name: (wall[name], cpu[name], "\n".join(outputs[name])) for name in tokenizers}


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
    segments = _split_into_segments(lines, _SEGMENTS)
    baseline_wall, baseline_cpu, fast_wall, fast_cpu = [], [], [], []
    identical = True
    tokens = 0
    for _ in range(passes):
        result = _interleaved_pass(
            lambda: reference_tokenizer.FullTokenizer(vocab_file, do_lower_case),
            lambda: tokenization.FullTokenizer(vocab_file, do_lower_case),
            segments)
        wall, cpu, expected = result["baseline"]
        baseline_wall.append(wall)
        baseline_cpu.append(cpu)
        wall, cpu, actual = result["fast"]
        fast_wall.append(wall)
        fast_cpu.append(cpu)
        identical = identical and actual == expected
        tokens = len(actual.split())
        del result, expected, actual
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
