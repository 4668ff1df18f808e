"""SQuAD feature conversion: tasks/squad.py against the reference algorithm, in the same run.

The input is SQuAD-format data built from real text (gensim's news corpus, lee_background.cor, cut
into paragraphs of about 120 words with up to five questions each, like SQuAD's ~4.6). Each pass
reads the json file, converts every question into windows and writes the TFRecord file:

  reference   tests/reference_squad.py (the reference algorithm: every question re-tokenizes its
              paragraph, per-token loops over all windows, a tf.train.Example per feature) with
              the literal reference tokenizer (tests/reference_tokenizer.py): what the reference
              run_squad.py costs
  ref+fast    the same algorithm with our tokenization.FullTokenizer: how much of the gain is the
              conversion itself rather than the tokenizer
  ours        tasks/squad.py: read_squad_examples, convert_examples_to_features, FeatureWriter

Two window settings: the reference defaults (max_seq_length 384, doc_stride 128, mostly one window
per question) and max_seq_length 128 / doc_stride 64 (several windows per question). Passes of the
implementations alternate, the fastest pass of each counts, and both wall and CPU time of this
process are reported (CPU time is steadier when other work shares the machine). The records are
checked to be equal (parsed) to the reference's.

Then each implementation also converts the predict set once in a child process,
keeping every feature as run_squad.py's prediction does (write_predictions needs them); the growth
of each child's resident memory (VmRSS) during the conversion is reported.

Usage:
  python bench/bench_squad.py            # ~2,900 questions, 3 passes (a few minutes)
  python bench/bench_squad.py --quick    # 600 questions, 1 pass
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import tokenization  # noqa: E402
from bench import machine  # noqa: E402
from tasks import squad  # noqa: E402
from tests import artifacts, reference_tokenizer  # noqa: E402
from tests import reference_squad as ref  # noqa: E402

CONFIGS = {"384/128": (384, 128, 64), "128/64": (128, 64, 64)}


def build_data(path, num_questions):
    """Writes the benchmark's SQuAD json; returns (questions, paragraphs, megabytes of context)."""
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        documents = f.read().splitlines()
    data = ref.cloze_squad(documents, num_questions, seed=12345, max_words=120,
                           questions_per_paragraph=5)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    questions = sum(len(p["qas"]) for p in paragraphs)
    megabytes = sum(len(p["context"].encode("utf-8")) for p in paragraphs) / 1e6
    return questions, len(paragraphs), megabytes


def run_reference(path, output, tokenizer, config):
    """The reference pipeline; returns the number of features."""
    max_seq_length, doc_stride, max_query_length = config
    examples, _ = ref.read_squad_examples(path, True)
    with tf.io.TFRecordWriter(output) as writer:
        count = [0]

        def output_fn(feature):
            writer.write(ref.feature_to_example(feature, True).SerializeToString())
            count[0] += 1

        ref.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                         max_query_length, True, output_fn)
    return count[0]


def run_ours(path, output, tokenizer, config):
    """tasks/squad.py; returns the number of features."""
    max_seq_length, doc_stride, max_query_length = config
    examples = squad.read_squad_examples(path, True)
    writer = squad.FeatureWriter(output, is_training=True)
    squad.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                       max_query_length, True, writer.process_feature,
                                       log_examples=0, progress_name=None)
    writer.close()
    return writer.num_features


def _records(path):
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def time_config(path, vocab, config, passes, workdir):
    """Times the three implementations on one window setting; returns the measurements."""
    implementations = {
        "reference": (run_reference, lambda: reference_tokenizer.FullTokenizer(vocab, True)),
        "ref+fast": (run_reference, lambda: tokenization.FullTokenizer(vocab, True)),
        "ours": (run_ours, lambda: tokenization.FullTokenizer(vocab, True)),
    }
    best = {name: (float("inf"), float("inf")) for name in implementations}
    features = {}
    names = list(implementations)
    for index in range(passes):
        for name in names if index % 2 == 0 else names[::-1]:
            run, make_tokenizer = implementations[name]
            output = os.path.join(workdir, f"{name}.tf_record")
            tokenizer = make_tokenizer()  # Fresh: filling its caches is part of the time.
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            features[name] = run(path, output, tokenizer, config)
            wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
    reference_records = _records(os.path.join(workdir, "reference.tf_record"))
    equal = all(_records(os.path.join(workdir, f"{name}.tf_record")) == reference_records
                for name in ("ref+fast", "ours"))
    return {"features": features["ours"], "best": best, "equal": equal}


def _rss_mb():
    """This process's resident memory now (VmRSS), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child_main(which, path, vocab, config):
    """Child process: convert the predict set keeping every feature; print the RSS growth."""
    max_seq_length, doc_stride, max_query_length = config
    tokenizer = tokenization.FullTokenizer(vocab, True)
    kept = []
    if which == "reference":
        examples, _ = ref.read_squad_examples(path, False)
        before = _rss_mb()
        ref.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                         max_query_length, False, kept.append)
    else:
        examples = squad.read_squad_examples(path, False)
        before = _rss_mb()
        squad.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                           max_query_length, False, kept.append, log_examples=0,
                                           progress_name=None)
    print(json.dumps({"rss_growth_mb": _rss_mb() - before, "kept": len(kept)}))


def measure_memory(path, vocab, config_name):
    """RSS growth (MB) while converting and keeping the predict set: reference, ours."""
    result = {}
    for which in ("reference", "ours"):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", which, "--data", path,
             "--config", config_name], capture_output=True, text=True, check=True,
            env=dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2"))
        result[which] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 questions, 1 pass.")
    parser.add_argument("--no_memory", action="store_true",
                        help="Skip the memory measurement (two child processes).")
    parser.add_argument("--passes", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--config", default="384/128", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    vocab = artifacts.english_vocab()
    if args.child:
        _child_main(args.child, args.data, vocab, CONFIGS[args.config])
        return 0

    passes = args.passes or (1 if args.quick else 3)
    print("# SQuAD feature conversion: ours vs the reference algorithm\n")
    print(f"Machine: {machine.machine_description()}, load average "
          f"{', '.join('%.1f' % x for x in os.getloadavg())}\n")
    failures = 0
    with tempfile.TemporaryDirectory() as workdir:
        path = os.path.join(workdir, "squad.json")
        questions, paragraphs, megabytes = build_data(path, 600 if args.quick else 100000)
        print(f"Data: {questions:,} questions on {paragraphs:,} paragraphs ({megabytes:.2f} MB of "
              f"context) from lee_background.cor; read + convert + write train.tf_record; "
              f"fastest of {passes} pass(es).\n")
        print("| max_seq_length/doc_stride | features | implementation | wall s | questions/s "
              "| CPU s | ours faster (wall) | ours faster (CPU) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for config_name, config in CONFIGS.items():
            result = time_config(path, vocab, config, passes, workdir)
            ours_wall, ours_cpu = result["best"]["ours"]
            for name, (wall, cpu) in result["best"].items():
                print(f"| {config_name} | {result['features']:,} | {name} | {wall:.2f} | "
                      f"{questions / wall:,.0f} | {cpu:.2f} | {wall / ours_wall:.1f}x | "
                      f"{cpu / ours_cpu:.1f}x |")
            if not result["equal"]:
                failures += 1
                print(f"| {config_name} | | RECORDS DIFFER from the reference's | | | | | |")
        print("\nRecords equal to the reference's (parsed tf.train.Example): "
              f"{'yes' if not failures else 'NO'}")
        if not args.no_memory:
            memory = measure_memory(path, vocab, "128/64")
            growth = {which: memory[which]["rss_growth_mb"] for which in memory}
            ratio = growth["reference"] / max(growth["ours"], 0.1)
            print(f"\nPredict-set features kept in memory (128/64, {memory['ours']['kept']:,} "
                  "features, as prediction keeps them), resident memory growth during the "
                  f"conversion: reference +{growth['reference']:.1f} MB, ours "
                  f"+{growth['ours']:.1f} MB ({ratio:.1f}x less)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
