"""Export benchmark: size, batch-1 latency and largest difference of every export format.

For a BERT-Base-sized classifier (random weights, 12 layers, hidden 768, sequence length 128, the
real 30,522-token uncased vocab) and the tiny sample model (2 layers, hidden 64), both with a
2-class head, exporting.export writes saved_model, frozen_graph, tflite, tflite_fp16 and
tflite_int8 (tftrt only on a GPU with TensorRT) and verifies each against the checkpoint's own
graph session, which is also timed as the baseline in the same run. Latency is the p50 of
batch-1 calls after a warm-up; the ratio column is format latency / checkpoint-session latency.
TensorFlow runs with its default thread pools, TFLite with one thread (XNNPACK's pool slows down
sharply on a busy machine; pass more threads through exporting.export for an idle one).

The bench loosens the tolerances so that every format is written and measured, then reports
whether each difference is within export_model's default tolerance (the script itself would
exit 1 otherwise).

    .venv/bin/python bench/bench_export.py          # both models, about 3-4 minutes on 2 idle cores
    .venv/bin/python bench/bench_export.py --quick  # tiny model only, fewer calls, < 1 minute

Results: printed as a table and written to bench/results/export.json. Other processes on the
machine distort the latencies; the load average is printed next to them.
"""

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import tensorflow as tf  # noqa: E402

import exporting  # noqa: E402
import inference  # noqa: E402
import modeling  # noqa: E402
from bench import machine  # noqa: E402
from tasks import classifier  # noqa: E402
from tests import artifacts  # noqa: E402

tf1 = tf.compat.v1

BERT_BASE_CONFIG = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02)
TINY_CONFIG_FILE = os.path.join(REPO_ROOT, "sample_data", "pretraining", "bert_config_tiny.json")
TINY_VOCAB_FILE = os.path.join(REPO_ROOT, "sample_data", "pretraining", "vocab.txt")
LABELS = ["negative", "positive"]
LOOSE_TOLERANCES = {name: float("inf") for name in exporting.TOLERANCES}


def machine_info():
    """CPU model, core count and load average (other processes distort every latency)."""
    return dict(machine.machine_info(), tensorflow=tf.__version__)

def random_classifier_checkpoint(directory, config, seed=1):
    """Writes a classifier checkpoint with freshly initialised (random) weights.

    Returns:
      (bert_config, checkpoint prefix).
    """
    bert_config = modeling.BertConfig.from_dict(config)
    with tf.Graph().as_default():
        tf1.set_random_seed(seed)
        inputs = {name: tf1.placeholder(tf.int32, [None, 8], name=name)
                  for name in inference.INPUT_NAMES}
        classifier.CLASSIFIER_HEAD.build(bert_config, inputs, len(LABELS))
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            checkpoint = saver.save(session, os.path.join(directory, "model.ckpt"))
    return bert_config, checkpoint


def bench_model(name, config, vocab_file, max_seq_length, work_dir, latency_runs, warmup_runs,
                num_random):
    """Exports one model in every format; returns its rows and timings."""
    model_dir = os.path.join(work_dir, name)
    os.makedirs(model_dir)
    start = time.time()
    bert_config, checkpoint = random_classifier_checkpoint(model_dir, config)
    spec = inference.ExportSpec(task="classifier", bert_config=bert_config,
                                   checkpoint=checkpoint, vocab_file=vocab_file,
                                   do_lower_case=True, max_seq_length=max_seq_length,
                                   labels=LABELS)
    checkpoint_seconds = time.time() - start
    start = time.time()
    formats = list(exporting.ALL_FORMATS)
    report = exporting.export(spec, os.path.join(model_dir, "export"), formats,
                                 LOOSE_TOLERANCES, latency_runs=latency_runs,
                                 warmup_runs=warmup_runs, num_random=num_random,
                                 tflite_threads=1)
    export_seconds = time.time() - start
    baseline = report["checkpoint_session"]["latency_ms"]["p50"]
    rows = [{"format": "checkpoint (session)", "size_bytes": None, "max_diff": 0.0,
             "latency_p50_ms": baseline, "ratio": 1.0, "within_default_tolerance": None}]
    for fmt, entry in report["formats"].items():
        if "skipped" in entry:
            rows.append({"format": fmt, "skipped": entry["skipped"]})
            continue
        tolerance = exporting.TOLERANCES[fmt]
        rows.append({
            "format": fmt,
            "size_bytes": entry["size_bytes"],
            "max_diff": entry["max_diff"],
            "checked_diff": entry["checked_diff"],
            "default_tolerance": tolerance,
            "within_default_tolerance": entry["checked_diff"] <= tolerance,
            "label_agreement": entry.get("label_agreement"),
            "latency_p50_ms": entry["latency_ms"]["p50"],
            "latency_p90_ms": entry["latency_ms"]["p90"],
            "ratio": entry["latency_ms"]["p50"] / baseline,
        })
    return {"model": name, "max_seq_length": max_seq_length,
            "parameters": modeling.count_parameters(bert_config),
            "num_samples": report["num_samples"], "latency_runs": latency_runs,
            "tflite_threads": 1,
            "checkpoint_seconds": checkpoint_seconds, "export_seconds": export_seconds,
            "rows": rows}


def format_table(result):
    lines = [f"{result['model']} (seq {result['max_seq_length']}, {result['num_samples']} "
             f"verification rows, p50 of {result['latency_runs']} batch-1 calls, TFLite "
             f"{result['tflite_threads']} thread(s); export took {result['export_seconds']:.0f} s)",
             f"  {'format':<22}{'size':>11}{'max diff':>11}{'ok':>5}{'p50 ms':>10}{'x ckpt':>8}"
             f"  notes"]
    for row in result["rows"]:
        if "skipped" in row:
            lines.append(f"  {row['format']:<22}{'-':>11}{'-':>11}{'-':>5}{'-':>10}{'-':>8}  "
                         f"skipped: {row['skipped']}")
            continue
        size = "-" if row["size_bytes"] is None else f"{row['size_bytes'] / 2**20:.1f} MB"
        ok = {None: "-", True: "yes", False: "NO"}[row["within_default_tolerance"]]
        notes = ""
        if row.get("label_agreement") is not None:
            notes = f"labels agree {row['label_agreement']:.0%}"
        if row.get("default_tolerance") is not None:
            notes = f"tol {row['default_tolerance']:.0e}; " + notes
        lines.append(f"  {row['format']:<22}{size:>11}{row['max_diff']:>11.2e}{ok:>5}"
                     f"{row['latency_p50_ms']:>10.2f}{row['ratio']:>8.2f}  {notes}")
    return "\n".join(lines)


def run(quick=False):
    """Runs the bench; returns a dict with the machine and one result per model."""
    tf1.logging.set_verbosity(tf1.logging.INFO)  # export_model logs each step and its time
    with open(TINY_CONFIG_FILE, encoding="utf-8") as f:
        tiny_config = json.load(f)
    # (name, config, vocab, seq, latency runs, warm-up runs, random verification rows). BERT-Base
    # keeps its calls few: one batch-1 forward pass costs about 0.1-0.4 s here.
    models = [("tiny (L=2, H=64)", tiny_config, TINY_VOCAB_FILE, 64, 30 if quick else 100, 3, 2)]
    if not quick:
        models.append(("BERT-Base size (L=12, H=768, random weights)", BERT_BASE_CONFIG,
                       artifacts.english_vocab(), 128, 7, 2, 0))
    results = {"machine": machine_info(), "quick": quick, "models": []}
    with tempfile.TemporaryDirectory(prefix="bench_export_") as work_dir:
        for i, (name, config, vocab, seq, runs, warmup, num_random) in enumerate(models):
            result = bench_model(f"model{i}", config, vocab, seq, work_dir, runs, warmup,
                                 num_random)
            result["model"] = name
            results["models"].append(result)
            print(format_table(result), flush=True)
    results["machine"]["load_average_after"] = list(os.getloadavg())
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Tiny model only, fewer calls.")
    args = parser.parse_args()
    machine = machine_info()
    print(f"Machine: {machine['cpu']}, {machine['cores']} cores, TF {machine['tensorflow']}, "
          f"load average {machine['load_average'][0]:.1f}", flush=True)
    start = time.time()
    results = run(quick=args.quick)
    results["seconds"] = time.time() - start
    print(f"Load average after: {results['machine']['load_average_after'][0]:.1f}; "
          f"total {results['seconds']:.0f} s")
    out_dir = os.path.join(REPO_ROOT, "bench", "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "export.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"Results written to {os.path.relpath(path, REPO_ROOT)}")


if __name__ == "__main__":
    main()
