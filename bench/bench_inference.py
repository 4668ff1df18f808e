"""Inference benchmark for extract_features.py: bucketing, graph reuse, BERT-Base vs matmul peak.

What it measures, all in one run on the same machine (ratios against baselines of the same run):
1. Sentences/s on real English sentences (gensim's lee_background.cor news corpus split into
   sentences) with the real all-MiniLM-L6-v2 (converted by convert_checkpoint.py) and a randomly
   initialised BERT-Base-sized model (12 layers, hidden 768; fewer sentences): batches bucketed by
   length vs every sentence padded to 128 tokens (the reference).
2. Repeated small requests: the `BertEncoder` (graph built and weights restored once) vs one
   `TPUEstimator.predict` call per request (the reference: graph rebuilt and checkpoint re-read
   per call).
3. BERT-Base forward throughput on full 128-token inputs as a fraction of the machine's fp32
   matmul peak, measured with a large TensorFlow matmul in the same run (22.35 GFLOP per
   128-token sequence), with and without XLA, for a few batch sizes and thread counts.

    .venv/bin/python bench/bench_inference.py          # default, about 3 minutes on 2 idle cores
    .venv/bin/python bench/bench_inference.py --quick  # smoke run, about a minute

The results are printed as a table and written to bench/results/inference.json. Other processes
on the machine slow everything down; the load average is printed next to the numbers.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import modeling  # noqa: E402
import runtime  # noqa: E402
from bench import machine  # noqa: E402
from tasks import features as extract_features  # noqa: E402
from tests import artifacts  # noqa: E402

tf1 = tf.compat.v1

# FLOPs of one BERT-Base forward pass over a 128-token sequence (dense layers + attention; see
# the project's compute notes): 2 * L * (4 H^2 + 2 H I) per token plus 4 * S * H * L for attention.
BERT_BASE_FLOPS_SEQ128 = 22.35e9

BERT_BASE_CONFIG = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072, hidden_act="gelu",
                        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        max_position_embeddings=512,
                        type_vocab_size=2, initializer_range=0.02)

# Sizes of the default and the quick run.
_SIZES = {
    False: dict(minilm_sentences=384, base_sentences=48, calls=4, per_call=16, peak_batches=3,
                peak_batch_sizes=(8, 16), threads=(1, 2)),
    True: dict(minilm_sentences=64, base_sentences=16, calls=2, per_call=8, peak_batches=1,
               peak_batch_sizes=(8,), threads=()),
}


def machine_info():
    """CPU model, core count and load average (other processes distort every number here)."""
    return dict(machine.machine_info(), tensorflow=tf.__version__)

def matmul_peak_gflops(n=2048, repeats=6):
    """fp32 GFLOP/s of [n, n] x [n, n] TensorFlow matmuls (graph mode, default threads).

    Returns:
      `(wall, per_cpu_second)`: the best run's GFLOP per wall-clock second, and GFLOP per second of
      this process's CPU time (all threads), which other processes on the machine distort far less.
    """
    with tf.Graph().as_default():
        a = tf1.get_variable("a", [n, n], initializer=tf1.random_normal_initializer())
        b = tf1.get_variable("b", [n, n], initializer=tf1.random_normal_initializer())
        # Chain two products so that one session run is long compared with its overhead.
        c = tf.reduce_sum(tf.matmul(tf.matmul(a, b), b))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(c)
            best, best_cpu = float("inf"), float("inf")
            for _ in range(repeats):
                start, start_cpu = time.perf_counter(), time.process_time()
                sess.run(c)
                best = min(best, time.perf_counter() - start)
                best_cpu = min(best_cpu, time.process_time() - start_cpu)
    flops = 2 * 2 * n ** 3
    return flops / best / 1e9, flops / best_cpu / 1e9


def real_sentences(limit):
    """The first `limit` sentences (>= 3 words) of gensim's lee_background.cor news documents."""
    sentences = []
    with open(artifacts.news_corpus(), encoding="utf-8", errors="replace") as f:
        for document in f:
            for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", document.strip()):
                if len(sentence.split()) >= 3:
                    sentences.append(sentence)
                if len(sentences) >= limit:
                    return sentences
    return sentences


def convert_minilm(out_dir):
    """Converts all-MiniLM-L6-v2 with convert_checkpoint.py; returns (config, vocab, checkpoint)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "convert_checkpoint.py", "--from_hf", artifacts.minilm_dir(),
                    "--output_dir", out_dir], cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True)
    return _model_paths(out_dir)


def random_checkpoint(out_dir, config):
    """Saves a randomly initialised BERT with `config` (and the English vocab) to `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bert_config.json"), "w") as f:
        json.dump(config, f)
    with open(artifacts.english_vocab(), encoding="utf-8") as src:
        vocab = src.read()
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write(vocab)
    with tf.Graph().as_default():
        input_ids = tf1.placeholder(tf.int32, [None, None])
        modeling.BertModel(modeling.BertConfig.from_dict(config), False, input_ids)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, os.path.join(out_dir, "bert_model.ckpt"))
    return _model_paths(out_dir)


def _model_paths(model_dir):
    return (os.path.join(model_dir, "bert_config.json"), os.path.join(model_dir, "vocab.txt"),
            os.path.join(model_dir, "bert_model.ckpt"))


def _encoder(paths, **kwargs):
    config, vocab, ckpt = paths
    return extract_features.BertEncoder(config, vocab, ckpt, **kwargs)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _timed_cpu(fn):
    """Like _timed, also returning the process CPU seconds (all threads) that `fn` used."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - start_cpu


def bench_bucketing(paths, sentences, batch_size=32):
    """Sentences/s bucketed vs padded to 128, and the largest difference between the two."""
    out = {"sentences": len(sentences)}
    results = {}
    for name, bucket in (("padded_128", False), ("bucketed", True)):
        with _encoder(paths, max_seq_length=128, batch_size=batch_size,
                      bucket_by_length=bucket) as encoder:
            features = encoder.features_from_texts(sentences)
            encoder.encode_features(features[:batch_size], "mean", [-1])  # warm-up
            vectors, seconds = _timed(lambda: encoder.encode_features(features, "mean", [-1]))
        results[name] = vectors
        out[name + "_sentences_per_s"] = len(sentences) / seconds
    lengths = [len(f) for f in features]
    out["mean_tokens"] = float(np.mean(lengths))
    out["speedup"] = out["bucketed_sentences_per_s"] / out["padded_128_sentences_per_s"]
    out["max_abs_diff"] = float(np.abs(results["bucketed"] - results["padded_128"]).max())
    return out


def bench_repeated_calls(paths, sentences, calls, per_call):
    """Seconds per request: encoder reuse vs one TPUEstimator.predict per request (reference)."""
    config, _, ckpt = paths
    bert_config = modeling.BertConfig.from_json_file(config)
    requests = [sentences[i * per_call:(i + 1) * per_call] for i in range(calls)]
    out = {"calls": calls, "sentences_per_call": per_call}

    encoder, build_seconds = _timed(lambda: _encoder(paths, max_seq_length=128))
    out["encoder_build_s"] = build_seconds
    seconds = []
    for request in requests:
        _, s = _timed(lambda: encoder.encode_tokens(request, layers=[-1]))
        seconds.append(s)
    out["encoder_call_s"] = float(np.mean(seconds))
    out["encoder_graph_builds"] = encoder.graph_builds
    out["encoder_checkpoint_restores"] = encoder.checkpoint_restores
    # The encoder without bucketing separates the two savings (rebuild vs padding).
    encoder.bucket_by_length = False
    seconds = []
    for request in requests:
        _, s = _timed(lambda: encoder.encode_tokens(request, layers=[-1]))
        seconds.append(s)
    out["encoder_padded_call_s"] = float(np.mean(seconds))
    tokenizer = encoder.tokenizer
    encoder.close()

    tf1.logging.set_verbosity(tf1.logging.WARN)  # The Estimator logs a lot per call.
    seconds = []
    for request in requests:
        examples = [extract_features.InputExample(i, text, None) for i, text in enumerate(request)]

        def predict_once():
            features = extract_features.convert_examples_to_features(examples, 128, tokenizer,
                                                                     log_examples=0)
            return list(extract_features.estimator_token_outputs(
                features, bert_config, ckpt, [-1], seq_length=128, batch_size=32,
                options=runtime.RuntimeOptions()))

        _, s = _timed(predict_once)
        seconds.append(s)
    tf1.logging.set_verbosity(tf1.logging.INFO)
    out["estimator_call_s"] = float(np.mean(seconds))
    out["speedup"] = out["estimator_call_s"] / out["encoder_call_s"]
    return out


def bench_base_peak(paths, peak_gflops, peak_cpu_gflops, batch_sizes, batches, threads):
    """BERT-Base forward on full 128-token inputs: sequences/s and fraction of the matmul peak.

    Two fractions: wall-clock throughput over the wall-clock matmul peak (what a user sees, only
    meaningful on an otherwise idle machine), and FLOPs per CPU-second over the matmul's FLOPs per
    CPU-second (how well the CPU time this process gets is used, robust to other load).
    """
    rng = np.random.RandomState(0)
    rows = []
    variants = [dict(batch_size=b, use_xla=x, num_threads=0) for b in batch_sizes
                for x in (False, True)]
    variants += [dict(batch_size=batch_sizes[0], use_xla=False, num_threads=t) for t in threads]
    for variant in variants:
        with _encoder(paths, max_seq_length=128, **variant) as encoder:
            n = variant["batch_size"] * batches
            features = [extract_features.InputFeatures(
                i, None, rng.randint(1000, 30000, size=128).tolist(), [1] * 128, [0] * 128)
                for i in range(n)]
            # Warm-up (and XLA compilation) on one batch of the same shape.
            encoder.encode_features(features[:variant["batch_size"]], "cls", [-1])
            _, seconds, cpu_seconds = _timed_cpu(
                lambda: encoder.encode_features(features, "cls", [-1]))
        seq_per_s = n / seconds
        cpu_gflops = n * BERT_BASE_FLOPS_SEQ128 / cpu_seconds / 1e9
        rows.append(dict(variant, sequences_per_s=seq_per_s,
                         gflops=seq_per_s * BERT_BASE_FLOPS_SEQ128 / 1e9,
                         fraction_of_peak=seq_per_s * BERT_BASE_FLOPS_SEQ128 / 1e9 / peak_gflops,
                         gflops_per_cpu_s=cpu_gflops,
                         fraction_of_peak_cpu=cpu_gflops / peak_cpu_gflops))
    return rows


def run(quick=False):
    """Runs the benchmark and returns a dict of all measurements (also printed as a table)."""
    sizes = _SIZES[bool(quick)]
    tf1.logging.set_verbosity(tf1.logging.WARN)
    results = {"machine": machine_info(), "quick": bool(quick)}
    results["matmul_peak_gflops_start"], cpu_start = matmul_peak_gflops()
    sentences = real_sentences(max(sizes["minilm_sentences"], sizes["calls"] * sizes["per_call"]))
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        minilm = convert_minilm(os.path.join(tmp, "minilm"))
        base = random_checkpoint(os.path.join(tmp, "base"), BERT_BASE_CONFIG)
        results["minilm_bucketing"] = bench_bucketing(minilm, sentences[:sizes["minilm_sentences"]])
        results["base_bucketing"] = bench_bucketing(base, sentences[:sizes["base_sentences"]],
                                                    batch_size=16)
        results["minilm_repeated_calls"] = bench_repeated_calls(minilm, sentences, sizes["calls"],
                                                                sizes["per_call"])
        results["matmul_peak_gflops_mid"], cpu_mid = matmul_peak_gflops()
        peak = max(results["matmul_peak_gflops_start"], results["matmul_peak_gflops_mid"])
        results["matmul_peak_gflops"] = peak
        results["matmul_gflops_per_cpu_s"] = max(cpu_start, cpu_mid)
        results["base_seq128"] = bench_base_peak(
            base, peak, results["matmul_gflops_per_cpu_s"], sizes["peak_batch_sizes"],
            sizes["peak_batches"], sizes["threads"])
    results["machine"]["load_average_end"] = list(os.getloadavg())
    print_table(results)
    os.makedirs(os.path.join(REPO_ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(REPO_ROOT, "bench", "results", "inference.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def print_table(r):
    m = r["machine"]
    print("\n== bench_inference (%s) ==" % ("quick" if r["quick"] else "default"))
    print("machine: %s, %d cores, TF %s, load average %.1f at start, %.1f at end"
          % (m["cpu"], m["cores"], m["tensorflow"], m["load_average"][0],
             m["load_average_end"][0]))
    print("fp32 matmul peak (TF, 2048^3): %.1f GFLOP/s at start, %.1f mid-run -> using %.1f; "
          "%.1f GFLOP per CPU-second" % (r["matmul_peak_gflops_start"], r["matmul_peak_gflops_mid"],
                                         r["matmul_peak_gflops"], r["matmul_gflops_per_cpu_s"]))
    print("\n| real sentences | n | mean tokens | padded to 128 (sent/s) | bucketed (sent/s) "
          "| speedup | max |diff| |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, name in (("minilm_bucketing", "MiniLM-L6 (converted)"),
                      ("base_bucketing", "BERT-Base size (random)")):
        b = r[key]
        print("| %s | %d | %.1f | %.1f | %.1f | %.2fx | %.1e |"
              % (name, b["sentences"], b["mean_tokens"], b["padded_128_sentences_per_s"],
                 b["bucketed_sentences_per_s"], b["speedup"], b["max_abs_diff"]))
    c = r["minilm_repeated_calls"]
    print("\n| MiniLM, %d requests of %d sentences | seconds per request |"
          % (c["calls"], c["sentences_per_call"]))
    print("|---|---:|")
    print("| Estimator.predict per request (reference: rebuild + restore + pad 128) | %.2f |"
          % c["estimator_call_s"])
    print("| BertEncoder, padded to 128 | %.3f |" % c["encoder_padded_call_s"])
    print("| BertEncoder, bucketed | %.3f |" % c["encoder_call_s"])
    print("| (BertEncoder one-off build + restore) | %.2f |" % c["encoder_build_s"])
    print("speedup per request: %.1fx; graph builds %d, checkpoint restores %d after %d calls"
          % (c["speedup"], c["encoder_graph_builds"], c["encoder_checkpoint_restores"],
             2 * c["calls"]))
    print("\n| BERT-Base, 128 tokens | batch | XLA | threads | seq/s | GFLOP/s | of wall peak "
          "| GFLOP/CPU-s | of CPU-time peak |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in r["base_seq128"]:
        print("| forward | %d | %s | %s | %.2f | %.1f | %.0f%% | %.1f | %.0f%% |"
              % (row["batch_size"], "on" if row["use_xla"] else "off",
                 row["num_threads"] or "default", row["sequences_per_s"], row["gflops"],
                 100 * row["fraction_of_peak"], row["gflops_per_cpu_s"],
                 100 * row["fraction_of_peak_cpu"]))
    best = max(r["base_seq128"], key=lambda row: row["fraction_of_peak_cpu"])
    print("best: %.2f seq/s, %.0f%% of the wall-clock matmul peak (speed of light %.1f seq/s), "
          "%.0f%% of the matmul's FLOPs per CPU-second"
          % (best["sequences_per_s"], 100 * best["fraction_of_peak"],
             r["matmul_peak_gflops"] * 1e9 / BERT_BASE_FLOPS_SEQ128,
             100 * best["fraction_of_peak_cpu"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller smoke run (< 1 minute)")
    args = parser.parse_args()
    run(quick=args.quick)


if __name__ == "__main__":
    main()
