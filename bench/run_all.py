"""Runs every benchmark in bench/ and collects their tables into one report (`make bench`).

Each bench script measures our code and its baseline in the same run and prints ratios, because
these machines are noisy and absolute times drift. This runner only starts them one after the other
(so they don't compete for the cores), echoes what they print, and writes everything, with the
machine it ran on, to bench/results/latest.md.

    python bench/run_all.py            # the default sizes (about 15 minutes on 2 cores)
    python bench/run_all.py --quick    # smaller inputs, for a smoke run
    python bench/run_all.py --only tokenizer,inference
"""

import argparse
import datetime
import os
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.machine import machine_description  # noqa: E402

# (name, script, what it compares)
BENCHES = [
    ("tokenizer", "bench_tokenizer.py", "FullTokenizer vs a literal reference tokenizer, MB/s"),
    ("pretraining_data", "bench_pretraining_data.py",
     "create_pretraining_data.py default and --num_workers 2 vs the reference algorithm: "
     "MB/s, peak RSS"),
    ("training", "bench_training.py",
     "training examples/s: our Estimator path vs the reference setup"),
    ("inference", "bench_inference.py",
     "sentences/s: bucketed vs padded, encoder vs estimator.predict, BERT-Base FLOP efficiency"),
    ("export", "bench_export.py", "latency and size of each export format vs the checkpoint"),
    ("squad", "bench_squad.py",
     "SQuAD feature conversion vs the reference algorithm: questions/s, kept-feature memory"),
    ("serve", "bench_serve.py",
     "serve.py + bert-serving-client vs one in-process encoder: sentences/s, per core, "
     "p50/p90/p99 latency and sentences per CPU-second at 1/4/16 concurrent clients"),
]



def run_bench(script, quick):
    """Runs one bench script; returns (exit code, its output, seconds)."""
    cmd = [sys.executable, os.path.join(BENCH_DIR, script)] + (["--quick"] if quick else [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    start = time.time()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller inputs, for a smoke run.")
    parser.add_argument("--only", default="", help="Comma-separated bench names to run.")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    report = ["# Benchmark report", "",
              "Run %s on: %s" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                                 machine_description()), ""]
    failures = 0
    for name, script, what in BENCHES:
        if only and name not in only:
            continue
        if not os.path.exists(os.path.join(BENCH_DIR, script)):
            continue
        print("=== %s: %s" % (name, what), flush=True)
        code, output, seconds = run_bench(script, args.quick)
        # Keep the bench's own table; drop TensorFlow's log noise.
        lines = [line for line in output.splitlines()
                 if not line.startswith(("WARNING", "I0", "W0", "INFO:"))]
        print("\n".join(lines), flush=True)
        status = "ok" if code == 0 else "FAILED (exit %d)" % code
        failures += code != 0
        report += ["## %s" % name, "", what + " (%s, %.0f s)" % (status, seconds), "", "```"]
        report += lines + ["```", ""]

    os.makedirs(os.path.join(BENCH_DIR, "results"), exist_ok=True)
    path = os.path.join(BENCH_DIR, "results", "latest.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(report) + "\n")
    os.replace(path + ".tmp", path)
    print("Report written to %s" % os.path.relpath(path, REPO_ROOT))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
