"""The jobs bench/gpu_check.py runs in a worker process: speed rows and random checkpoints.

    python bench/gpu_speed.py --jobs=jobs.json --results=results.jsonl [--deadline=UNIX_TIME]

`jobs.json` is a list of dicts, each with an `id` and a `kind`; one JSON line per job is appended
to `results.jsonl` as soon as the job ends (so a crash loses only the job that crashed, and
gpu_check starts a new worker for the rest). A job whose `estimate_s` does not fit before the
deadline is written as skipped. Before each job the worker prints `gpu_speed: start <id>` on
stderr, which lets gpu_check attribute TensorFlow's C++ log lines (the float16 rewrite's
"Converted N/M nodes") to a row.

Kinds:
* `checkpoint`: a classifier (BERT + the run_classifier head) with random weights, saved as a
  checkpoint: the init checkpoint of the correctness fine-tunes and the model the export rows use.
* `train` / `infer`: one training step (loss, gradients, the project's optimizer with its AMP
  loss scaling) or one forward pass of BERT on synthetic full-length inputs, built from
  modeling.py, optimization.py and the classifier or pretraining heads, in a tf1 graph session.
  Precision: `fp32` (TF32 off), `tf32` (TensorFlow's default on Ampere and newer), `amp` (the
  float16 graph rewrite); `xla` adds XLA auto-clustering (global_jit_level ON_1).
* `saved_model`: the `serving_default` signature of an export (SavedModel or TF-TRT).
* `bucketing`: real sentences, each batch padded to the longest member (rounded up to a
  multiple of 8) against every batch padded to max_seq_length, in one session.

Timing: `warmup` untimed steps (graph optimisation, autotuning and XLA compilation happen
there), then steps until `steps` or `max_seconds`; sequences/s is the batch over the median step.
Inputs are constants in the graph, so no input pipeline is measured.
"""

import argparse
import json
import os
import statistics
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import rewriter_config_pb2  # noqa: E402

import modeling  # noqa: E402
import optimization  # noqa: E402
import tokenization  # noqa: E402
from bench import gpu_flops  # noqa: E402

tf1 = tf.compat.v1

LEARNING_RATE = 1e-4
SEED = 12345


def task_library(name):
    """The task module with `create_model`: tasks/classifier.py or tasks/pretraining.py."""
    if name == "classifier":
        from tasks import classifier as library
    else:
        from tasks import pretraining as library
    return library


# ------------------------------------------------------------------------------------------------
# Sessions, precision, timing
# ------------------------------------------------------------------------------------------------


def session_config(precision, xla):
    """A session config that states the float16 rewrite and XLA explicitly, whatever ran before.

    An explicit OFF matters: optimization.create_optimizer(use_amp=True) switches the rewrite on for
    every later session of the process (TensorFlow's global mixed-precision flag).
    """
    config = tf1.ConfigProto(allow_soft_placement=True)
    rewrite = config.graph_options.rewrite_options
    on, off = rewriter_config_pb2.RewriterConfig.ON, rewriter_config_pb2.RewriterConfig.OFF
    rewrite.auto_mixed_precision = on if precision == "amp" else off
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def set_tf32(precision):
    """TF32 matmuls for every precision but fp32 (TensorFlow enables them by default)."""
    tf.config.experimental.enable_tensor_float_32_execution(precision != "fp32")


def effective_precision(precision, xla):
    """What the row really ran, in words (float16 and TF32 need a GPU that has them)."""
    words = precision
    if precision != "fp32" and not tf.config.list_physical_devices("GPU"):
        words = "fp32 (no GPU: no float16 rewrite, no TF32)"
    if xla:
        words += " + XLA"
    return words


def time_steps(run_step, warmup, steps, max_seconds):
    """Runs `run_step` `warmup` times untimed, then times up to `steps` calls (at least 3).

    Returns:
      list of seconds per timed call.
    """
    for _ in range(warmup):
        run_step()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < steps and time.perf_counter() - start < max_seconds):
        begin = time.perf_counter()
        run_step()
        times.append(time.perf_counter() - begin)
    return times


def reset_memory_stats():
    if tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.reset_memory_stats("GPU:0")
        except (ValueError, RuntimeError):
            pass


def peak_memory_mb():
    """Peak GPU memory of this row (the process-wide allocator), or None without a GPU."""
    if not tf.config.list_physical_devices("GPU"):
        return None
    try:
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2.0 ** 20
    except (ValueError, RuntimeError):
        return None


def rate_result(times, batch):
    median = statistics.median(times)
    return {"sequences_per_s": batch / median, "median_step_s": median,
            "timed_steps": len(times), "timed_seconds": sum(times)}


# ------------------------------------------------------------------------------------------------
# Graphs
# ------------------------------------------------------------------------------------------------


def synthetic_features(config, batch, seq_len, masked_positions, seed=SEED):
    """Full-length random inputs as graph constants (every token real, two segments).

    Returns:
      dict of int32 constants input_ids, input_mask, segment_ids [batch, seq_len], label_ids
      [batch], next_sentence_labels [batch], and with masked_positions P > 0
      masked_lm_positions / masked_lm_ids [batch, P] and float32 masked_lm_weights [batch, P].
    """
    rng = np.random.RandomState(seed)
    segments = np.zeros([batch, seq_len], np.int32)
    segments[:, seq_len // 2:] = 1
    values = {
        "input_ids": rng.randint(1, config.vocab_size, size=[batch, seq_len]).astype(np.int32),
        "input_mask": np.ones([batch, seq_len], np.int32),
        "segment_ids": segments,
        "label_ids": rng.randint(0, 2, size=[batch]).astype(np.int32),
        "next_sentence_labels": rng.randint(0, 2, size=[batch]).astype(np.int32),
    }
    if masked_positions:
        positions = np.stack([np.sort(rng.choice(np.arange(1, seq_len), masked_positions, False))
                              for _ in range(batch)]).astype(np.int32)
        values["masked_lm_positions"] = positions
        values["masked_lm_ids"] = rng.randint(1, config.vocab_size,
                                              size=positions.shape).astype(np.int32)
        values["masked_lm_weights"] = np.ones(positions.shape, np.float32)
    return {name: tf.constant(value, name=name) for name, value in values.items()}


def build_model(job, is_training, features):
    """The model of a job: (scalar loss, small output tensor to fetch for inference)."""
    config = modeling.BertConfig.from_dict(job["config"])
    if job.get("head", "classifier") == "pretraining":
        outputs = task_library("pretraining").create_model(config, is_training, features, False)
        return outputs[0], outputs[0]
    outputs = task_library("classifier").create_model(
        config, is_training, features["input_ids"], features["input_mask"],
        features["segment_ids"], features["label_ids"], job.get("num_labels", 2), False)
    return outputs[0], outputs[3]  # (loss, per_example_loss, logits, probabilities)


def run_graph_job(job):
    """A `train` or `infer` job: builds the graph, times session runs, returns the result dict."""
    training = job["kind"] == "train"
    precision, xla = job.get("precision", "fp32"), bool(job.get("xla"))
    set_tf32(precision)
    reset_memory_stats()
    with tf.Graph().as_default():
        tf1.set_random_seed(SEED)
        config = modeling.BertConfig.from_dict(job["config"])
        features = synthetic_features(config, job["batch"], job["seq_len"],
                                      job.get("masked_positions", 0))
        loss, output = build_model(job, training, features)
        fetch = output
        if training:
            train_op = optimization.create_optimizer(
                loss, LEARNING_RATE, 100000, 1000, False,
                optimizer_name=job.get("optimizer", "adamw"), use_amp=precision == "amp")
            fetch = (train_op, loss)
        with tf1.Session(config=session_config(precision, xla)) as session:
            session.run(tf1.global_variables_initializer())
            times = time_steps(lambda: session.run(fetch), job.get("warmup", 3),
                               job.get("steps", 20), job.get("max_seconds", 5.0))
            final_loss = float(session.run(loss)) if training else None
    if precision == "amp":
        # The training graph switched the process-wide rewrite on; later rows state their own.
        tf1.mixed_precision.disable_mixed_precision_graph_rewrite()
    result = rate_result(times, job["batch"])
    result.update(precision_effective=effective_precision(precision, xla),
                  peak_memory_mb=peak_memory_mb())
    if training:
        if not np.isfinite(final_loss):
            raise FloatingPointError(f"training loss is {final_loss} after the timed steps")
        result["final_loss"] = final_loss
    return result


def run_checkpoint_job(job):
    """Saves a classifier with random weights (every variable, head included) to job["path"]."""
    with tf.Graph().as_default():
        tf1.set_random_seed(job.get("seed", SEED))
        config = modeling.BertConfig.from_dict(job["config"])
        ids = tf1.placeholder(tf.int32, [None, None])
        task_library("classifier").create_model(config, False, ids, ids, ids, ids[:, 0],
                                                job.get("num_labels", 2), False)
        with tf1.Session(config=session_config("fp32", False)) as session:
            session.run(tf1.global_variables_initializer())
            os.makedirs(os.path.dirname(job["path"]), exist_ok=True)
            tf1.train.Saver().save(session, job["path"])
    return {"path": job["path"]}


# ------------------------------------------------------------------------------------------------
# Exports and bucketing
# ------------------------------------------------------------------------------------------------


def run_saved_model_job(job):
    """Times the serving_default signature of an export at batch 1 and at job["batch"]."""
    set_tf32(job.get("precision", "tf32"))
    reset_memory_stats()
    signature = tf.saved_model.load(job["path"]).signatures["serving_default"]
    rng = np.random.RandomState(SEED)
    seq_len = job["seq_len"]
    result = {"by_batch": {}}
    for batch in sorted({1, job["batch"]}):
        inputs = {
            "input_ids": tf.constant(rng.randint(1, job["vocab_size"], size=[batch, seq_len]),
                                     tf.int32),
            "input_mask": tf.ones([batch, seq_len], tf.int32),
            "segment_ids": tf.zeros([batch, seq_len], tf.int32),
        }

        def run_step(inputs=inputs):
            # Reading the values back waits for the device (eager calls return before it ends).
            return [value.numpy() for value in signature(**inputs).values()]

        times = time_steps(run_step, job.get("warmup", 3), job.get("steps", 50),
                           job.get("max_seconds", 5.0))
        result["by_batch"][str(batch)] = rate_result(times, batch)
    result.update(result["by_batch"][str(job["batch"])])
    what = job.get("what", "saved_model")
    words = "TensorRT FP16" if what == "tftrt" else effective_precision(
        job.get("precision", "tf32"), False)
    result.update(precision_effective=f"{what}: {words}", peak_memory_mb=peak_memory_mb(),
                  batch1_ms=1000.0 * result["by_batch"]["1"]["median_step_s"])
    return result


def read_sentences(paths, limit):
    """Non-empty lines of the given text files (one sentence per line), up to `limit`."""
    sentences = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            sentences.extend(line.strip() for line in f if line.strip())
    return sentences[:limit]


def encode_sentences(sentences, vocab_file, max_seq_length):
    """[CLS] tokens [SEP] ids of each sentence, truncated to max_seq_length."""
    tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file, do_lower_case=True)
    encoded = []
    for sentence in sentences:
        tokens = ["[CLS]"] + tokenizer.tokenize(sentence)[:max_seq_length - 2] + ["[SEP]"]
        encoded.append(tokenizer.convert_tokens_to_ids(tokens))
    return encoded


def make_batches(encoded, batch, max_seq_length, bucketed, multiple=8):
    """Splits id lists into padded batches.

    Args:
      encoded: list of id lists (each at most max_seq_length long).
      batch: sentences per batch.
      max_seq_length: the reference's padded length.
      bucketed: False: input order, every batch padded to max_seq_length (the reference).
        True: sorted by length, each batch padded to its longest member rounded up to `multiple`.
      multiple: bucket granularity (multiples of 8 keep float16 matmuls on tensor cores).

    Returns:
      list of (ids, mask): int32 arrays [batch_size, padded_length].
    """
    order = list(range(len(encoded)))
    if bucketed:
        order.sort(key=lambda i: len(encoded[i]))
    batches = []
    for start in range(0, len(order), batch):
        members = [encoded[i] for i in order[start:start + batch]]
        length = max_seq_length
        if bucketed:
            length = min(max_seq_length, gpu_flops.round_up(max(map(len, members)), multiple))
        ids = np.zeros([len(members), length], np.int32)
        for row, member in enumerate(members):
            ids[row, :len(member)] = member
        batches.append((ids, (ids > 0).astype(np.int32)))
    return batches


def run_bucketing_job(job):
    """Sentences/s of padded and bucketed batches in one session, and the shapes they ran."""
    precision = job.get("precision", "fp32")
    set_tf32(precision)
    encoded = encode_sentences(read_sentences(job["sentence_files"], job.get("limit", 512)),
                               job["vocab_file"], job["max_seq_length"])
    result = {"sentences": len(encoded), "mean_tokens": float(np.mean([len(e) for e in encoded])),
              "precision_effective": effective_precision(precision, False)}
    with tf.Graph().as_default():
        ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
        mask = tf1.placeholder(tf.int32, [None, None], name="input_mask")
        features = {"input_ids": ids, "input_mask": mask, "segment_ids": tf.zeros_like(ids),
                    "label_ids": tf.zeros_like(ids[:, 0])}
        _, probabilities = build_model(job, False, features)
        with tf1.Session(config=session_config(precision, False)) as session:
            session.run(tf1.global_variables_initializer())
            for name, bucketed in (("padded", False), ("bucketed", True)):
                batches = make_batches(encoded, job["batch"], job["max_seq_length"], bucketed)

                def one_pass(batches=batches):
                    for batch_ids, batch_mask in batches:
                        session.run(probabilities, {ids: batch_ids, mask: batch_mask})

                times = time_steps(one_pass, 1, job.get("passes", 5), job.get("max_seconds", 5.0))
                result[name] = {"sentences_per_s": len(encoded) / statistics.median(times),
                                "passes": len(times),
                                "shapes": [list(b[0].shape) for b in batches]}
    result["sequences_per_s"] = result["bucketed"]["sentences_per_s"]
    result["speedup"] = result["bucketed"]["sentences_per_s"] / result["padded"]["sentences_per_s"]
    return result


# ------------------------------------------------------------------------------------------------
# Main loop
# ------------------------------------------------------------------------------------------------

RUNNERS = {"train": run_graph_job, "infer": run_graph_job, "checkpoint": run_checkpoint_job,
           "saved_model": run_saved_model_job, "bucketing": run_bucketing_job}


def one_line_error(error):
    message = error.message if isinstance(error, tf.errors.OpError) else str(error)
    return f"{type(error).__name__}: {' '.join(message.split())[:400]}"


def run_job(job, deadline):
    """Runs one job; returns its result line (a failing job is a result, not an exception)."""
    base = {"id": job["id"], "kind": job["kind"]}
    left = deadline - time.time() if deadline else float("inf")
    if job.get("estimate_s", 0) > left:
        note = f"budget: needs about {job['estimate_s']:.0f} s, {max(left, 0):.0f} s left"
        return dict(base, status="skipped", note=note)
    sys.stderr.write(f"gpu_speed: start {job['id']}\n")
    sys.stderr.flush()
    start = time.time()
    try:
        result, status = RUNNERS[job["kind"]](job), "ok"
    except Exception as e:  # pylint: disable=broad-except
        # The row failed; the next rows still run.
        result, status = {"error": one_line_error(e)}, "failed"
    sys.stderr.write(f"gpu_speed: end {job['id']}\n")
    sys.stderr.flush()
    return dict(base, status=status, wall_s=time.time() - start, **result)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", required=True, help="JSON file with the list of jobs.")
    parser.add_argument("--results", required=True, help="JSON-lines file results are added to.")
    parser.add_argument("--deadline", type=float, default=0.0,
                        help="Unix time after which no job starts (0: none).")
    args = parser.parse_args(argv)
    with open(args.jobs, encoding="utf-8") as f:
        jobs = json.load(f)
    tf1.logging.set_verbosity(tf1.logging.WARN)
    for job in jobs:
        line = run_job(job, args.deadline)
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
