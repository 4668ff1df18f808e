"""Benchmark of create_pretraining_data.py: MB of text per second and peak RSS against the baseline.

Corpus: real English text from gensim's test data, converted to the script's input format (one
sentence per line, blank line between documents): the 300 news documents of lee_background.cor and
articles of the enwiki XML extract (markup stripped). Vocab: the released uncased English vocab.
Every run is a fresh subprocess (peak RSS = ru_maxrss of that process and of its forked workers);
the clock starts after Python and TensorFlow are imported.

Measured:
  * baseline: tests/reference_pretraining_data.py, a literal implementation of the reference
    algorithm (same FullTokenizer as the script, so the difference is the data-creation code
    itself);
  * default (reference-exact) mode, checked byte-identical to the baseline;
  * --num_workers 2 (streaming) on the same text split into shards;
  * peak RSS as the input grows 4x (4x as many shards of the same size): flat when streaming,
    growing in the default mode (which holds every instance, as the reference does).

    python bench/bench_pretraining_data.py            # about 2.5 minutes (2 runs per variant)
    python bench/bench_pretraining_data.py --quick    # smaller corpus, a few seconds per run
    BENCH_PRETRAINING_MB=8 python bench/bench_pretraining_data.py   # bigger corpus

`run(quick=False) -> dict` is the entry point for an aggregate runner.
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench import machine  # noqa: E402
from tests import artifacts  # noqa: E402
from tests.corpora import news_documents, wiki_documents, write_corpus, write_shards  # noqa: E402,F401


def _machine():
    return {"cpu": machine.cpu_model(), "cores": os.cpu_count(),
            "python": platform.python_version()}

def _drive(variant, kwargs):
    """Runs one variant in this (fresh) process; prints JSON with timings and peak RSS.

    The clock starts after Python and TensorFlow are imported, so MB/s measures the data creation
    itself (tokenizer loading included). Peak RSS is reported in full and above the RSS right after
    the imports (TensorFlow alone is several hundred MB); forked workers count through
    RUSAGE_CHILDREN once they have exited.
    """
    import tensorflow as tf

    import create_pretraining_data as cpd
    import tokenization
    from tests import reference_pretraining_data as reference

    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.WARN)
    rss_after_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    start = time.time()
    start_cpu = _cpu_seconds()
    if variant == "baseline":
        reference.run(kwargs["input_file"], kwargs["output_file"], kwargs["vocab_file"],
                      dupe_factor=kwargs["dupe_factor"], random_seed=12345)
    else:
        tokenizer = tokenization.FullTokenizer(kwargs["vocab_file"], do_lower_case=True)
        options = cpd.Options(vocab_file=kwargs["vocab_file"], dupe_factor=kwargs["dupe_factor"],
                              num_workers=kwargs.get("num_workers", 0), random_seed=12345)
        input_files = cpd.expand_input_files(kwargs["input_file"])
        if options.num_workers:
            cpd.create_streaming_mode(input_files, kwargs["output_file"], tokenizer, options)
        else:
            cpd.create_reference_mode(input_files, [kwargs["output_file"]], tokenizer, options)
    seconds = time.time() - start
    cpu_seconds = _cpu_seconds() - start_cpu
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak,
                      "rss_above_import_mb": peak - rss_after_import}))


def _cpu_seconds():
    """User + system CPU seconds of this process and of its exited (waited-for) children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _run_measured(variant, **kwargs):
    """Runs `variant` in a fresh subprocess; returns its measurements."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--_drive", variant,
                          json.dumps(kwargs)], env=env, cwd=REPO_ROOT, capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _digest(paths):
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def run(quick=False, corpus_mb=None, dupe_factor=None, repeats=None):
    """Runs the benchmark; returns a dict of results (also printed as a table by main)."""
    repeats = repeats or (1 if quick else 2)
    corpus_mb = corpus_mb or float(os.environ.get("BENCH_PRETRAINING_MB",
                                                  "0.4" if quick else "1.5"))
    dupe_factor = dupe_factor or (2 if quick else 5)
    vocab = artifacts.english_vocab()
    news = news_documents()
    wiki = wiki_documents(max_bytes=max(0, corpus_mb * 1e6 - 360e3))
    documents = news + wiki
    results = {"machine": _machine(), "dupe_factor": dupe_factor}
    with tempfile.TemporaryDirectory(prefix="bench_pretraining_") as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        corpus_bytes = write_corpus(corpus, documents)
        shard_dir = os.path.join(tmp, "shards")
        os.makedirs(shard_dir)
        write_shards(shard_dir, documents, 4)
        mb = corpus_bytes / 1e6
        results["corpus_mb"] = round(mb, 3)
        common = {"vocab_file": vocab, "dupe_factor": dupe_factor}
        variants = [
            ("baseline", dict(input_file=corpus, output_file=f"{tmp}/baseline.tfrecord")),
            ("default", dict(input_file=corpus, output_file=f"{tmp}/default.tfrecord")),
            ("workers_2", dict(input_file=f"{shard_dir}/shard-*.txt",
                               output_file=f"{tmp}/streaming.tfrecord", num_workers=2)),
        ]
        # Each variant runs `repeats` times, interleaved, and keeps its fastest run (as
        # bench_tokenizer.py does): on a shared machine one slow run says more about the other jobs
        # than about the code, and all variants get the same chance.
        runs = {name: [] for name, _ in variants}
        for _ in range(repeats):
            for name, kwargs in variants:
                runs[name].append(_run_measured("baseline" if name == "baseline" else "script",
                                                **kwargs, **common))
        for name, _ in variants:
            r = min(runs[name], key=lambda run: run["seconds"])
            results[name] = {"seconds": round(r["seconds"], 2),
                             "mb_per_s": round(mb / r["seconds"], 3),
                             "cpu_seconds": round(min(x["cpu_seconds"] for x in runs[name]), 2),
                             "all_seconds": [round(x["seconds"], 2) for x in runs[name]],
                             "peak_rss_mb": round(r["peak_rss_mb"], 1),
                             "rss_above_import_mb": round(r["rss_above_import_mb"], 1)}
        results["default_identical_to_baseline"] = (
            _digest([f"{tmp}/default.tfrecord"]) == _digest([f"{tmp}/baseline.tfrecord"]))
        base = results["baseline"]["mb_per_s"]
        for name in ("default", "workers_2"):
            results[name]["speedup"] = round(results[name]["mb_per_s"] / base, 2)
            # Total CPU (all processes): how much less work than the baseline, whatever the load.
            results[name]["cpu_ratio"] = round(
                results["baseline"]["cpu_seconds"] / results[name]["cpu_seconds"], 2)

        # Memory as the input grows 4x (4x as many shards of the same size): flat when streaming;
        # the default mode holds every instance, so it grows.
        growth = {}
        for factor in (1, 4):
            grow_dir = os.path.join(tmp, f"grow{factor}")
            os.makedirs(grow_dir)
            for copy in range(factor):
                write_shards(grow_dir, documents, 2, prefix=f"copy{copy}")
            for name, workers in (("workers_2", 2), ("default", 0)):
                if name == "default" and quick:
                    continue
                r = _run_measured("script", input_file=f"{grow_dir}/*.txt",
                                  output_file=f"{tmp}/grow{factor}_{name}.tfrecord",
                                  num_workers=workers, **common)
                growth[f"{name}_{factor}x"] = {
                    "input_mb": round(mb * factor, 3), "seconds": round(r["seconds"], 2),
                    "mb_per_s": round(mb * factor / r["seconds"], 3),
                    "peak_rss_mb": round(r["peak_rss_mb"], 1),
                    "rss_above_import_mb": round(r["rss_above_import_mb"], 1)}
        results["rss_growth"] = growth
        results["streaming_rss_ratio_4x_over_1x"] = round(
            growth["workers_2_4x"]["peak_rss_mb"] / growth["workers_2_1x"]["peak_rss_mb"], 3)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, for a smoke run")
    parser.add_argument("--corpus_mb", type=float, default=None, help="corpus size in MB")
    parser.add_argument("--dupe_factor", type=int, default=None, help="passes over the corpus")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per variant, fastest kept (default 2, 1 with --quick)")
    parser.add_argument("--_drive", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._drive:
        _drive(args._drive[0], json.loads(args._drive[1]))
        return
    results = run(quick=args.quick, corpus_mb=args.corpus_mb, dupe_factor=args.dupe_factor,
                  repeats=args.repeats)
    machine = results["machine"]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"corpus: {results['corpus_mb']} MB of text, dupe_factor {results['dupe_factor']}, "
          "seq 128, 20 predictions; clock starts after the imports")
    print(f"{'variant':<12}{'seconds':>9}{'MB/s':>9}{'speedup':>9}{'CPU s':>8}{'CPU ratio':>11}"
          f"{'peak RSS MB':>13}{'above import':>14}")
    for name in ("baseline", "default", "workers_2"):
        r = results[name]
        print(f"{name:<12}{r['seconds']:>9}{r['mb_per_s']:>9}{r.get('speedup', 1.0):>9}"
              f"{r['cpu_seconds']:>8}{r.get('cpu_ratio', 1.0):>11}"
              f"{r['peak_rss_mb']:>13}{r['rss_above_import_mb']:>14}")
    print(f"speedup = wall-clock throughput ratio (fastest of {len(r['all_seconds'])} runs); CPU "
          "ratio = baseline CPU seconds / all processes' CPU seconds")
    print(f"default output byte-identical to baseline: {results['default_identical_to_baseline']}")
    for key, r in results["rss_growth"].items():
        print(f"{key:<16} input {r['input_mb']:>7} MB: {r['mb_per_s']} MB/s, peak RSS "
              f"{r['peak_rss_mb']} MB ({r['rss_above_import_mb']} above import)")
    print(f"streaming peak RSS ratio 4x/1x input: {results['streaming_rss_ratio_4x_over_1x']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
