"""Export formats and their verification: every artefact is run and compared with the checkpoint.

`export(spec, export_dir, formats, tolerances)` writes, into a temporary directory renamed at the
end, the formats asked for from one `inference.InferenceModel` of the checkpoint:

  saved_model/    TF Serving SavedModel (the layout of inference.write_saved_model)
  frozen_graph/   model.pb (variables folded into constants, training-only nodes removed,
                  optimize_for_inference applied) and io.txt (tensor names, dtypes, shapes)
  tflite/, tflite_fp16/, tflite_int8/   model.tflite, built-in ops only, from the SavedModel
  tftrt/          TF-TRT FP16 SavedModel (only with a GPU and TensorRT)
  export_report.json   per format: size, largest difference, latency p50/p90/p99

Each artefact is run on sample inputs (real texts, tokenized, and random ids) and compared with the
checkpoint's own outputs; a difference above its tolerance raises VerificationError and nothing is
left at export_dir. `export_model.py` is the command line; runners' `--do_export` call `export`
with the saved_model format.
"""

import contextlib
import json
import os
import shutil
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.tools import optimize_for_inference_lib
from tensorflow.python.training.experimental import mixed_precision_global_state

import cli
import inference
import tokenization

tf1 = tf.compat.v1

INPUT_NAMES = inference.INPUT_NAMES
SERVING_KEY = inference.SERVING_KEY

ALL_FORMATS = ("saved_model", "frozen_graph", "tflite", "tflite_fp16", "tflite_int8", "tftrt")
TFLITE_FORMATS = ("tflite", "tflite_fp16", "tflite_int8")
TOLERANCES = {
    "saved_model": 1e-5,
    "frozen_graph": 1e-5,
    "tflite": 1e-5,
    "tflite_fp16": 1e-2,
    "tflite_int8": 0.1,
    "tftrt": 1e-2,
}
REPORT_FILE = "export_report.json"

SAMPLE_TEXTS = (
    "This film was a delight from start to finish.",
    "The service was slow and the food arrived cold.",
    "这部电影太无聊了。",
    "服务真的令人满意！",
    "Is the hotel close to the station? ||| Yes, it is a five minute walk.",
    " ".join(["A long review that keeps going so that it fills the whole sequence."] * 20),
)


class VerificationError(ValueError):
    """An exported artefact does not reproduce the checkpoint's outputs within its tolerance."""


def parse_formats(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(ALL_FORMATS)
    unknown = [name for name in names if name not in ALL_FORMATS]
    if unknown or not names:
        raise cli.UsageError(
            f"--format={text}: unknown format(s) {unknown}; choose from {', '.join(ALL_FORMATS)} "
            f"(comma-separated) or all")
    return [name for name in ALL_FORMATS if name in names]


def parse_tolerances(text):
    tolerances = dict(TOLERANCES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in TOLERANCES:
            raise cli.UsageError(f"--tolerances: unknown format {name!r}; use e.g. "
                                     f"--tolerances=tflite=1e-4")
        try:
            tolerances[name] = float(value)
        except ValueError:
            raise cli.UsageError(f"--tolerances: {item!r} is not <format>=<number>") from None
    return tolerances


def random_features(num_rows, vocab_size, max_seq_length, seed=12345):
    """Random ids, lengths and segment splits (the first row uses the full length)."""
    rng = np.random.RandomState(seed)
    ids = np.zeros([num_rows, max_seq_length], np.int32)
    mask = np.zeros_like(ids)
    segments = np.zeros_like(ids)
    for row in range(num_rows):
        length = max_seq_length if row == 0 else int(rng.randint(2, max_seq_length + 1))
        ids[row, :length] = rng.randint(0, vocab_size, size=length)
        mask[row, :length] = 1
        split = int(rng.randint(1, length + 1))
        segments[row, split:length] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def sample_features(spec, tokenizer, num_random):
    real = inference.texts_to_features(SAMPLE_TEXTS, tokenizer, spec.max_seq_length)
    if num_random <= 0:
        return real
    rand = random_features(num_random, spec.bert_config.vocab_size, spec.max_seq_length)
    return {name: np.concatenate([real[name], rand[name]]) for name in INPUT_NAMES}


def first_rows(batch, n):
    return {name: values[:n] for name, values in batch.items()}


def load_frozen_graph_runner(pb_path, output_names):
    """Imports model.pb into a fresh graph (no variables, no checkpoint) and runs it."""
    graph_def = tf1.GraphDef()
    with tf.io.gfile.GFile(pb_path, "rb") as f:
        graph_def.ParseFromString(f.read())
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name="")
    session = tf1.Session(graph=graph)
    fetches = {name: graph.get_tensor_by_name(f"{name}:0") for name in output_names}
    feeds = {name: graph.get_tensor_by_name(f"{name}:0") for name in INPUT_NAMES}

    def run(batch):
        return session.run(fetches, feed_dict={feeds[name]: batch[name] for name in INPUT_NAMES})

    return run


def load_tflite_runner(model_path, num_threads=1):
    """Runs a .tflite model through its serving_default signature; the batch size is dynamic."""
    interpreter = tf.lite.Interpreter(model_path=model_path, num_threads=num_threads)
    runner = interpreter.get_signature_runner(SERVING_KEY)

    def run(batch):
        # The signature runner resizes the inputs to each batch and reallocates when they change.
        return runner(**{name: batch[name] for name in INPUT_NAMES})

    return run


def tensor_io_lines(model, spec, graph_def_path):
    """The io.txt text: one line per tensor, `<input|output>\\t<name>\\t<dtype>\\t<shape>`.

    Output dtypes and shapes are read from the model's graph, so every task's head is described
    (-1 = any batch size).
    """
    seq = spec.max_seq_length
    lines = [f"# {os.path.basename(graph_def_path)}: a frozen TensorFlow GraphDef. Feed the inputs "
             f"and fetch the outputs by tensor name (batch dimension -1 = any).",
             "# kind\ttensor\tdtype\tshape"]
    lines += [f"input\t{name}:0\tint32\t[-1, {seq}]" for name in INPUT_NAMES]
    for name in spec.output_names:
        tensor = model.outputs[name]
        shape = [-1 if dim is None else dim for dim in tensor.shape.as_list()]
        lines.append(f"output\t{name}:0\t{tensor.dtype.name}\t{shape}")
    if spec.labels:
        lines.append(f"# labels (output column order): {','.join(spec.labels)}")
    return "\n".join(lines) + "\n"


def frozen_graph_def(model, output_names):
    """The model's GraphDef with variables folded into constants, ready for inference.

    Args:
      model: inference.InferenceModel (its session holds the restored variables).
      output_names: the outputs to keep; everything they do not need is pruned.
    """
    output_names = list(output_names)
    frozen = tf1.graph_util.convert_variables_to_constants(
        model.session, model.graph.as_graph_def(), output_names)
    frozen = tf1.graph_util.extract_sub_graph(frozen, output_names)
    frozen = tf1.graph_util.remove_training_nodes(frozen, protected_nodes=output_names)
    return optimize_for_inference_lib.optimize_for_inference(
        frozen, list(INPUT_NAMES), output_names, [tf.int32.as_datatype_enum] * len(INPUT_NAMES))


def write_frozen_graph(model, spec, export_dir):
    directory = os.path.join(export_dir, "frozen_graph")
    os.makedirs(directory, exist_ok=True)
    graph_def = frozen_graph_def(model, spec.output_names)
    remaining = sorted({node.op for node in graph_def.node} & {"VariableV2", "VarHandleOp",
                                                               "ReadVariableOp", "Assign"})
    if remaining:
        raise VerificationError(f"frozen_graph: variable ops {remaining} survived freezing")
    pb_path = os.path.join(directory, "model.pb")
    with open(pb_path, "wb") as f:
        f.write(graph_def.SerializeToString())
    with open(os.path.join(directory, "io.txt"), "w", encoding="utf-8") as f:
        f.write(tensor_io_lines(model, spec, pb_path))
    tf1.logging.info("frozen_graph: %d nodes, ops: %s", len(graph_def.node),
                     ", ".join(sorted({node.op for node in graph_def.node})))
    return pb_path


def convert_tflite(saved_model_dir, variant):
    """Converts the SavedModel to TFLite with built-in ops only.

    Args:
      saved_model_dir: the exported SavedModel.
      variant: "tflite" (float32), "tflite_fp16" (float16 weights) or "tflite_int8"
        (dynamic-range quantisation: int8 weights, float activations).

    Returns:
      The flatbuffer bytes.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[SERVING_KEY])
    converter.target_spec.supported_ops = {tf.lite.OpsSet.TFLITE_BUILTINS}
    if variant in ("tflite_fp16", "tflite_int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "tflite_fp16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as e:  # pylint: disable=broad-except
        # The converter raises ConverterError with multi-line MLIR diagnostics; keep one line.
        raise VerificationError(f"{variant}: conversion failed: "
                                f"{' '.join(str(e).split())[:300]}") from None


def write_tflite(saved_model_dir, variant, export_dir):
    directory = os.path.join(export_dir, variant)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.tflite")
    content = convert_tflite(saved_model_dir, variant)
    with open(path, "wb") as f:
        f.write(content)
    return path


def tftrt_unavailable_reason():
    """None when TF-TRT can run here, else one line saying why not."""
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU visible (TF-TRT needs a CUDA GPU and TensorRT)"
    if not tf.sysconfig.get_build_info().get("is_tensorrt_build"):
        return "this TensorFlow build has no TensorRT support"
    # TF-TRT loads libnvinfer itself; is_tensorrt_enabled() is False when it cannot.
    from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils
    if not _pywrap_py_utils.is_tensorrt_enabled():
        return ("TensorRT 8.6 (libnvinfer.so.8) is not loadable: tensorflow[and-cuda] does not "
                "install it; put TensorRT's libraries on LD_LIBRARY_PATH or use NVIDIA's "
                "TensorFlow container")
    return None


def write_tftrt(saved_model_dir, export_dir, sample_batch):
    """Converts the SavedModel with TF-TRT in FP16 and pre-builds engines for the sample shapes."""
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    path = os.path.join(export_dir, "tftrt")
    converter = trt.TrtGraphConverterV2(
        input_saved_model_dir=saved_model_dir,
        precision_mode=trt.TrtPrecisionMode.FP16)
    converter.convert()

    def input_fn():
        for n in (1, len(sample_batch["input_ids"])):
            yield tuple(tf.constant(sample_batch[name][:n]) for name in INPUT_NAMES)

    converter.build(input_fn=input_fn)
    converter.save(path)
    return path


def path_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def measure_latency(run, batch, runs, warmup):
    """Returns {"p50", "p90", "p99"} in milliseconds of `run(batch)` after `warmup` calls."""
    for _ in range(warmup):
        run(batch)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def compare_outputs(fmt, head, outputs, reference, tolerance):
    """Compares one artefact's outputs with the checkpoint's; returns the report entry.

    The check: the largest absolute difference over all outputs (int8: over the head's
    `int8_checked` outputs, e.g. probabilities for a classifier, pooled_output for an encoder)
    must not exceed `tolerance`, and every value must be finite.

    Args:
      fmt: format name, for messages.
      head: the inference.Head of the export.
      outputs: the artefact's outputs, dict name -> array.
      reference: the checkpoint's outputs, dict name -> float64 array.
      tolerance: the largest allowed difference.
    """
    missing = sorted(set(reference) - set(outputs))
    if missing:
        raise VerificationError(f"{fmt}: outputs {missing} are missing (got {sorted(outputs)})")
    diffs = {}
    for name, expected in reference.items():
        actual = np.asarray(outputs[name])
        if actual.shape != expected.shape:
            raise VerificationError(f"{fmt}: output {name} has shape {actual.shape}, expected "
                                    f"{expected.shape}")
        if not np.all(np.isfinite(actual)):
            raise VerificationError(f"{fmt}: output {name} holds NaN or infinite values")
        diffs[name] = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    entry = {"max_abs_diff": diffs, "max_diff": max(diffs.values()), "tolerance": tolerance}
    checked = diffs
    if head.label_output:
        label = head.label_output
        entry["label_agreement"] = float(np.mean(np.argmax(outputs[label], -1)
                                                 == np.argmax(reference[label], -1)))
        entry["max_probability_change"] = diffs[label]
    if fmt == "tflite_int8" and head.int8_checked:
        checked = {name: diffs[name] for name in head.int8_checked}
    entry["checked_diff"] = max(checked.values())
    entry["passed"] = entry["checked_diff"] <= tolerance
    return entry


def verify(fmt, spec, run, samples, reference, tolerance, latency_runs, warmup_runs):
    """Runs an artefact on the samples, compares, times it; raises VerificationError on failure."""
    entry = compare_outputs(fmt, spec.head, run(samples), reference, tolerance)
    entry["latency_ms"] = measure_latency(run, first_rows(samples, 1), latency_runs, warmup_runs)
    extra = ""
    if "label_agreement" in entry:
        extra = (f", label agreement {entry['label_agreement']:.0%}, max probability change "
                 f"{entry['max_probability_change']:.2e}")
    latency = entry["latency_ms"]
    tf1.logging.info(
        "%s: max diff %.3e (checked %.3e, tolerance %.0e)%s, latency p50/p90/p99 "
        "%.2f/%.2f/%.2f ms", fmt, entry["max_diff"], entry["checked_diff"], tolerance, extra,
        latency["p50"], latency["p90"], latency["p99"])
    if not entry["passed"]:
        details = ", ".join(f"{name} {value:.3e}" for name, value in entry["max_abs_diff"].items())
        raise VerificationError(
            f"{fmt} does not match the checkpoint: largest difference {entry['checked_diff']:.3e} "
            f"> tolerance {tolerance:.0e} ({details}); nothing was exported (raise it with "
            f"--tolerances={fmt}=<value> if this is expected)")
    return entry


def export(spec, export_dir, formats, tolerances, latency_runs=50, warmup_runs=5, num_random=8,
           tflite_threads=1):
    """Writes and verifies the requested formats; returns the report dict.

    Args:
      spec: ExportSpec (checkpoint already resolved).
      export_dir: final directory; replaced as a whole, only if every check passes.
      formats: format names (ALL_FORMATS order).
      tolerances: format -> tolerance.
      latency_runs, warmup_runs: latency measurement calls per format.
      num_random: random-id rows added to the sample texts.
      tflite_threads: threads of the TFLite interpreters.

    Raises:
      VerificationError: an artefact failed its check (nothing is left at export_dir).
      cli.UsageError: the checkpoint does not match the config or labels.
    """
    with full_float32():
        report = _export_verified(spec, export_dir, formats, tolerances, latency_runs,
                                  warmup_runs, num_random, tflite_threads)
    tf1.logging.info("Export complete: %s", export_dir)
    return report


@contextlib.contextmanager
def full_float32():
    """Float32 math for the checks, whatever the process enabled for training.

    Exports are compared and served in float32: the float16 graph rewrite that --use_amp turns on
    is process-wide (it would reach the checkpoint session and the loaded SavedModel separately),
    and TF32, the default for matmuls on Ampere and later GPUs, rounds their inputs to 10 bits.
    """
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    amp = mixed_precision_global_state.is_mixed_precision_graph_rewrite_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    if amp:
        tf1.mixed_precision.disable_mixed_precision_graph_rewrite()
    try:
        yield
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
        if amp:
            mixed_precision_global_state.set_mixed_precision_graph_rewrite_enabled(True)


def _export_verified(spec, export_dir, formats, tolerances, latency_runs, warmup_runs, num_random,
                     tflite_threads):
    """The body of export(): samples, reference outputs, every format written and checked."""
    tokenizer = tokenization.FullTokenizer(vocab_file=spec.vocab_file,
                                           do_lower_case=spec.do_lower_case)
    samples = sample_features(spec, tokenizer, num_random)
    model = spec.load_model()
    report = {
        "task": spec.task,
        "checkpoint": spec.checkpoint,
        "max_seq_length": spec.max_seq_length,
        "labels": spec.labels,
        "num_samples": int(len(samples["input_ids"])),
        "latency": {"batch_size": 1, "runs": latency_runs, "warmup_runs": warmup_runs,
                    "tflite_threads": tflite_threads},
        "formats": {},
    }
    progress = cli.ProgressLogger(total=len(formats), unit="formats", name="Export",
                                      every_seconds=0.0)
    try:
        reference = {name: value.astype(np.float64) for name, value in model.run(samples).items()}
        report["checkpoint_session"] = {
            "latency_ms": measure_latency(model.run, first_rows(samples, 1), latency_runs,
                                          warmup_runs)}
        tf1.logging.info("checkpoint session (baseline): latency p50 %.2f ms",
                         report["checkpoint_session"]["latency_ms"]["p50"])
        with cli.atomic_output(export_dir) as tmp_dir:
            os.makedirs(tmp_dir)
            scratch = os.path.join(tmp_dir, ".scratch")
            saved_model_dir = inference.write_saved_model(
                model, spec, os.path.join(tmp_dir, "saved_model"), scratch)
            for fmt in formats:
                entry = _export_one(fmt, model, spec, tmp_dir, saved_model_dir, samples,
                                    tflite_threads)
                if entry.get("run") is not None:
                    run = entry.pop("run")
                    path = entry.pop("path")
                    entry = dict(path=os.path.relpath(path, tmp_dir), size_bytes=path_size(path),
                                 **verify(fmt, spec, run, samples, reference, tolerances[fmt],
                                          latency_runs, warmup_runs))
                    tf1.logging.info("%s: wrote %s (%s)", fmt, os.path.join(export_dir,
                                     entry["path"]), cli.human_size(entry["size_bytes"]))
                report["formats"][fmt] = entry
                progress.update()
            shutil.rmtree(scratch)
            if "saved_model" not in formats:
                shutil.rmtree(saved_model_dir)  # Only built to convert from.
            with open(os.path.join(tmp_dir, REPORT_FILE), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, ensure_ascii=False)
    finally:
        model.close()
    progress.done()
    return report


def _export_one(fmt, model, spec, tmp_dir, saved_model_dir, samples, tflite_threads):
    """Writes one format; returns {"run", "path"} to verify, or {"skipped": reason}."""
    start = time.time()
    if fmt == "saved_model":
        path, run = saved_model_dir, inference.load_saved_model_runner(saved_model_dir)
    elif fmt == "frozen_graph":
        path = write_frozen_graph(model, spec, tmp_dir)
        run = load_frozen_graph_runner(path, spec.output_names)
    elif fmt in TFLITE_FORMATS:
        path = write_tflite(saved_model_dir, fmt, tmp_dir)
        run = load_tflite_runner(path, tflite_threads)
    else:
        reason = tftrt_unavailable_reason()
        if reason:
            tf1.logging.warning("tftrt: skipped: %s; the other formats are still written", reason)
            return {"skipped": reason}
        path = write_tftrt(saved_model_dir, tmp_dir, samples)
        run = inference.load_saved_model_runner(path)
    tf1.logging.info("%s: written in %.1f s", fmt, time.time() - start)
    return {"run": run, "path": path}


def format_report_table(report):
    """A plain-text table of the report (one row per format, the checkpoint session first)."""
    rows = [("format", "size", "max diff", "checked", "p50 ms", "p90 ms", "p99 ms", "notes")]
    base = report["checkpoint_session"]["latency_ms"]
    rows.append(("checkpoint", "-", "0 (baseline)", "-", f"{base['p50']:.2f}",
                 f"{base['p90']:.2f}", f"{base['p99']:.2f}", "graph session"))
    for fmt, entry in report["formats"].items():
        if "skipped" in entry:
            rows.append((fmt, "-", "-", "-", "-", "-", "-", "skipped: " + entry["skipped"]))
            continue
        latency = entry["latency_ms"]
        notes = ""
        if "label_agreement" in entry:
            notes = f"labels agree {entry['label_agreement']:.0%}"
        rows.append((fmt, cli.human_size(entry["size_bytes"]), f"{entry['max_diff']:.2e}",
                     f"{entry['checked_diff']:.2e}<={entry['tolerance']:.0e}",
                     f"{latency['p50']:.2f}", f"{latency['p90']:.2f}", f"{latency['p99']:.2f}",
                     notes))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def export_saved_model(spec, export_dir):
    """A runner's --do_export: `<export_dir>/saved_model` exactly as `export_model.py
    --format=saved_model` writes it, verified against the checkpoint; returns its path."""
    spec.checkpoint = cli.resolve_checkpoint(spec.checkpoint, "--do_export")
    export(spec, export_dir, ["saved_model"], dict(TOLERANCES))
    return os.path.join(export_dir, "saved_model")
