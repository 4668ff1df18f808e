"""Exports a BERT checkpoint for serving, verifies every artefact, and predicts with the export.

The reference has no export step. This script turns a fine-tuned classifier checkpoint (written by
run_classifier.py) or any BERT checkpoint (`--task=encoder`, for embeddings) into:

  <export_dir>/saved_model/         TF Serving SavedModel, signature `serving_default`:
                                    int32 input_ids, input_mask, segment_ids [batch, seq] ->
                                    probabilities, logits [batch, num_labels] (classifier) or
                                    pooled_output [batch, hidden], sequence_output
                                    [batch, seq, hidden] (encoder); assets/vocab.txt,
                                    assets/labels.txt (classifier), assets/export_config.json
  <export_dir>/frozen_graph/        model.pb (variables folded into constants, training-only nodes
                                    removed, optimize_for_inference applied) and io.txt (input and
                                    output tensor names, dtypes, shapes) for Java/C++
  <export_dir>/tflite/model.tflite        float32, built-in ops only, from the SavedModel
  <export_dir>/tflite_fp16/model.tflite   float16 weights
  <export_dir>/tflite_int8/model.tflite   dynamic-range int8 weights
  <export_dir>/tftrt/               TF-TRT FP16 SavedModel (only with a GPU and TensorRT)
  <export_dir>/export_report.json   per format: size, largest difference, latency p50/p90/p99

Every artefact is run after it is written on sample inputs (a few real texts, tokenized, and
random ids) and compared with the checkpoint's own outputs computed in a graph session. Checks:
the largest absolute difference over all outputs must stay within TOLERANCES (1e-5 for the float
formats, 1e-2 for float16); for int8 the agreement of predicted labels and the largest
probability change are reported and the probability change must stay within 0.1 (see
TOLERANCES; override with --tolerances). A failed check exits 1, and since everything is written
into a temporary directory renamed at the end, no half-written export is left. An existing
--export_dir is replaced as a whole.

Latency: batch 1 (the first sample), --warmup_runs calls, then the percentiles of --latency_runs
calls. The checkpoint's graph session is measured the same way, as the baseline. TensorFlow uses
its default thread pools; TFLite interpreters use --tflite_threads (default 1).

Sample command lines:

  python export_model.py --task=classifier --init_checkpoint=/tmp/out/model.ckpt-343 \\
    --bert_config_file=$BERT_BASE_DIR/bert_config.json --vocab_file=$BERT_BASE_DIR/vocab.txt \\
    --do_lower_case=True --max_seq_length=128 --export_dir=/tmp/export \\
    --format=saved_model,frozen_graph,tflite,tflite_int8

  printf 'A great film.\\nThe plot ||| The story\\n' | \\
    python export_model.py --predict_saved_model=/tmp/export/saved_model --input_file=-

Prediction output (--output_file, default stdout): a classifier writes a TSV with the header
`text<TAB>label<TAB><one probability column per label>`; an encoder writes one JSON object per
line, `{"text": ..., "pooled_output": [...]}`. `A ||| B` lines are sentence pairs.

In Python, `Predictor(saved_model_dir)` loads the export once and `predict(texts)` classifies or
encodes raw texts as often as asked, in batches of any size.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time

from absl import flags
import numpy as np
import tensorflow as tf
from tensorflow.python.tools import optimize_for_inference_lib

import modeling
import run_classifier
import runtime
import tokenization

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

# Importing run_classifier defined the shared model flags (bert_config_file, vocab_file,
# init_checkpoint, do_lower_case, max_seq_length, labels, export_dir, predict_batch_size, ...).
# Only the ones it lacks are defined here.


def _define_if_missing(define_fn, name, *args, **kwargs):
    if name not in FLAGS:
        define_fn(name, *args, **kwargs)


_define_if_missing(
    flags.DEFINE_enum, "task", "classifier", ["classifier", "encoder"],
    "classifier: a checkpoint fine-tuned by run_classifier.py (outputs probabilities, logits). "
    "encoder: any BERT checkpoint (outputs pooled_output, sequence_output).")
_define_if_missing(
    flags.DEFINE_string, "format", "saved_model,frozen_graph,tflite,tflite_fp16,tflite_int8,tftrt",
    "Comma-separated formats to export: saved_model, frozen_graph, tflite, tflite_fp16, "
    "tflite_int8, tftrt (skipped with a message without a GPU and TensorRT), or all.")
_define_if_missing(
    flags.DEFINE_string, "predict_saved_model", None,
    "Predict instead of exporting: the SavedModel directory written by this script "
    "(<export_dir>/saved_model). Texts come from --input_file, predictions go to --output_file.")
_define_if_missing(
    flags.DEFINE_string, "input_file", None,
    "With --predict_saved_model: texts, one per line (`A ||| B` for a pair); `-` is stdin.")
_define_if_missing(
    flags.DEFINE_string, "output_file", None,
    "With --predict_saved_model: where predictions go (default: stdout).")
_define_if_missing(
    flags.DEFINE_integer, "latency_runs", 50,
    "Timed calls per format (batch 1) after the warm-up, for the latency percentiles.")
_define_if_missing(
    flags.DEFINE_integer, "warmup_runs", 5, "Untimed calls per format before the timed ones.")
_define_if_missing(
    flags.DEFINE_integer, "num_random_samples", 8,
    "Random-id sample rows added to the real sample texts for the verification.")
_define_if_missing(
    flags.DEFINE_integer, "tflite_threads", 1,
    "Threads of the TFLite interpreters in the verification and latency runs. 1 (mobile-like) is "
    "also the robust choice on a busy machine, where XNNPACK's thread pool slows down sharply.")
_define_if_missing(
    flags.DEFINE_string, "tolerances", "",
    "Override check tolerances, e.g. `tflite=1e-4,tflite_int8=0.2` (see TOLERANCES).")

ALL_FORMATS = ("saved_model", "frozen_graph", "tflite", "tflite_fp16", "tflite_int8", "tftrt")
TFLITE_FORMATS = ("tflite", "tflite_fp16", "tflite_int8")

# Largest allowed absolute difference from the checkpoint's outputs (over all outputs). For int8
# it bounds the change of a probability (classifier) or of a pooled_output value (encoder, both
# live in [0, 1] / [-1, 1]); the sequence_output of an int8 encoder is reported, not checked.
TOLERANCES = {
    "saved_model": 1e-5,
    "frozen_graph": 1e-5,
    "tflite": 1e-5,
    "tflite_fp16": 1e-2,
    "tflite_int8": 0.1,
    "tftrt": 1e-2,
}

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = {
    "classifier": ("probabilities", "logits"),
    "encoder": ("pooled_output", "sequence_output"),
}
EXPORT_CONFIG_FILE = "export_config.json"
VOCAB_FILE = "vocab.txt"
LABELS_FILE = run_classifier.LABELS_FILE
REPORT_FILE = "export_report.json"
SERVING_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
EXPORT_FORMAT_VERSION = 1

# Real texts tokenized for the verification (English, Chinese, a pair, a long one that is
# truncated); random ids are added to reach vocabulary entries these never use.
SAMPLE_TEXTS = (
    "This film was a delight from start to finish.",
    "The service was slow and the food arrived cold.",
    "这部电影太无聊了。",
    "服务真的令人满意！",
    "Is the hotel close to the station? ||| Yes, it is a five minute walk.",
    " ".join(["A long review that keeps going so that it fills the whole sequence."] * 20),
)

_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


class VerificationError(ValueError):
    """An exported artefact does not reproduce the checkpoint's outputs within its tolerance."""


# --------------------------------------------------------------------------------------------------
# Checkpoint, labels and settings
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExportSpec:
    """What to export: the model, its inputs and (for a classifier) its labels."""

    task: str
    bert_config: modeling.BertConfig
    checkpoint: str
    vocab_file: str
    do_lower_case: bool
    max_seq_length: int
    labels: list = None

    @property
    def output_names(self):
        return OUTPUT_NAMES[self.task]

    def export_config(self):
        """The settings a Predictor needs to tokenize like the export (saved as an asset)."""
        return {
            "format_version": EXPORT_FORMAT_VERSION,
            "task": self.task,
            "do_lower_case": self.do_lower_case,
            "max_seq_length": self.max_seq_length,
            "labels": self.labels,
            "hidden_size": self.bert_config.hidden_size,
            "inputs": list(INPUT_NAMES),
            "outputs": list(self.output_names),
            "checkpoint": self.checkpoint,
        }


def resolve_checkpoint(init_checkpoint):
    """Returns the checkpoint prefix for a prefix or a directory holding checkpoints.

    Raises:
      runtime.UsageError: nothing readable there (the message says what to pass).
    """
    if not init_checkpoint:
        raise runtime.UsageError("--init_checkpoint is required to export: pass the checkpoint "
                                 "prefix, e.g. /tmp/out/model.ckpt-343")
    if tf.io.gfile.isdir(init_checkpoint):
        latest = tf.train.latest_checkpoint(init_checkpoint)
        if latest is None:
            raise runtime.UsageError(
                f"--init_checkpoint={init_checkpoint} is a directory without a checkpoint; pass "
                f"a checkpoint prefix such as {init_checkpoint.rstrip('/')}/model.ckpt-1000")
        return latest
    if not tf.io.gfile.exists(init_checkpoint + ".index"):
        raise runtime.UsageError(
            f"checkpoint not found: {init_checkpoint}.index does not exist; pass "
            f"--init_checkpoint as the checkpoint prefix (without .index/.data-*)")
    return init_checkpoint


def _op_error_cause(error):
    """The line of a TensorFlow error that says what went wrong, without the graph traceback."""
    message = error.message if isinstance(error, tf.errors.OpError) else str(error)
    skip = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Original stack")
    lines = [line.strip() for line in message.splitlines()]
    causes = [line for line in lines if line and not line.startswith(skip)]
    return " ".join((causes or lines or [type(error).__name__])[-1].split())[:200]


def checkpoint_shapes(checkpoint):
    """Returns {variable name: shape} of a checkpoint; a corrupt one raises UsageError."""
    try:
        return {name: list(shape) for name, shape in tf.train.list_variables(checkpoint)}
    except (tf.errors.OpError, ValueError) as e:
        raise runtime.UsageError(
            f"cannot read checkpoint {checkpoint} ({_op_error_cause(e)}); the files "
            f"are corrupt or incomplete: re-copy them or pass another --init_checkpoint") from None


def resolve_labels(labels_flag, checkpoint, num_checkpoint_labels):
    """Returns the label list: --labels, else labels.txt beside the checkpoint (or its parent).

    run_classifier.py writes labels.txt into its output_dir; the best checkpoint lives in
    <output_dir>/best/, hence the parent directory as a fallback.
    """
    if labels_flag:
        labels = run_classifier.parse_label_list(labels_flag)
        source = "--labels"
    else:
        directory = os.path.dirname(checkpoint)
        labels = None
        for candidate in (directory, os.path.dirname(directory)):
            labels = run_classifier.read_labels_file(candidate) if candidate else None
            if labels:
                source = os.path.join(candidate, LABELS_FILE)
                break
        if not labels:
            raise runtime.UsageError(
                f"no {LABELS_FILE} beside {checkpoint}: pass --labels=<label0>,<label1>,... in id "
                f"order (the checkpoint has {num_checkpoint_labels} classes)")
    if len(labels) != num_checkpoint_labels:
        raise runtime.UsageError(
            f"{source} names {len(labels)} labels but the checkpoint's classifier has "
            f"{num_checkpoint_labels} classes; pass the labels it was fine-tuned with")
    return labels


def check_graph_matches_checkpoint(variables, shapes, checkpoint):
    """Raises UsageError naming missing or mis-shaped variables before any restore."""
    missing = [v.op.name for v in variables if v.op.name not in shapes]
    if missing:
        hint = ("is it a fine-tuned classifier? use --task=encoder for a pretrained checkpoint"
                if "output_weights" in missing else
                "check --bert_config_file (it must describe this checkpoint)")
        raise runtime.UsageError(
            f"checkpoint {checkpoint} lacks {len(missing)} variable(s) the model needs "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): {hint}")
    for v in variables:
        if list(v.shape) != shapes[v.op.name]:
            raise runtime.UsageError(
                f"variable {v.op.name} has shape {shapes[v.op.name]} in {checkpoint} but "
                f"{list(v.shape)} in the model built from --bert_config_file; pass the config the "
                f"checkpoint was trained with")


def parse_formats(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(ALL_FORMATS)
    unknown = [name for name in names if name not in ALL_FORMATS]
    if unknown or not names:
        raise runtime.UsageError(
            f"--format={text}: unknown format(s) {unknown}; choose from {', '.join(ALL_FORMATS)} "
            f"(comma-separated) or all")
    return [name for name in ALL_FORMATS if name in names]


def parse_tolerances(text):
    tolerances = dict(TOLERANCES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in TOLERANCES:
            raise runtime.UsageError(f"--tolerances: unknown format {name!r}; use e.g. "
                                     f"--tolerances=tflite=1e-4")
        try:
            tolerances[name] = float(value)
        except ValueError:
            raise runtime.UsageError(f"--tolerances: {item!r} is not <format>=<number>") from None
    return tolerances


# --------------------------------------------------------------------------------------------------
# The inference graph and the checkpoint session (the baseline)
# --------------------------------------------------------------------------------------------------


def build_inference_graph(spec):
    """Builds the serving graph in the current default graph.

    Args:
      spec: ExportSpec.

    Returns:
      (inputs, outputs): dicts name -> Tensor. Inputs are int32 placeholders
      [batch_size, max_seq_length] named input_ids, input_mask, segment_ids; outputs are
      Identity tensors named like their keys: probabilities, logits [batch_size, num_labels] or
      pooled_output [batch_size, hidden_size], sequence_output
      [batch_size, max_seq_length, hidden_size].
    """
    inputs = {name: tf1.placeholder(tf.int32, [None, spec.max_seq_length], name=name)
              for name in INPUT_NAMES}
    if spec.task == "classifier":
        # The classifier head of run_classifier.py (root-scope output_weights / output_bias), so
        # its fine-tuned checkpoints restore by name. The loss ops it also builds are pruned away.
        result = run_classifier.create_model(
            spec.bert_config, False, inputs["input_ids"], inputs["input_mask"],
            inputs["segment_ids"], tf.zeros_like(inputs["input_ids"][:, 0]), len(spec.labels),
            use_one_hot_embeddings=False)
        tensors = {"probabilities": result.probabilities, "logits": result.logits}
    else:
        model = modeling.BertModel(
            config=spec.bert_config, is_training=False, input_ids=inputs["input_ids"],
            input_mask=inputs["input_mask"], token_type_ids=inputs["segment_ids"],
            use_one_hot_embeddings=False)
        tensors = {"pooled_output": model.get_pooled_output(),
                   "sequence_output": model.get_sequence_output()}
    outputs = {name: tf.identity(tensors[name], name=name) for name in spec.output_names}
    return inputs, outputs


class CheckpointModel:
    """The inference graph with the checkpoint restored in a session: the reference outputs."""

    def __init__(self, spec, shapes):
        self.spec = spec
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs, self.outputs = build_inference_graph(spec)
            self.variables = tf1.global_variables()
            check_graph_matches_checkpoint(self.variables, shapes, spec.checkpoint)
            self.saver = tf1.train.Saver(var_list=self.variables)
            self.session = tf1.Session(graph=self.graph)
            try:
                self.saver.restore(self.session, spec.checkpoint)
            except tf.errors.OpError as e:
                self.session.close()
                raise runtime.UsageError(
                    f"cannot restore {spec.checkpoint} ({_op_error_cause(e)}); the checkpoint "
                    f"files are corrupt or do not match --bert_config_file") from None
        tf1.logging.info("Restored %d variables from %s", len(self.variables), spec.checkpoint)

    def run(self, batch):
        feed = {self.inputs[name]: batch[name] for name in INPUT_NAMES}
        return self.session.run(self.outputs, feed_dict=feed)

    def write_saved_model(self, path, assets):
        """Writes the graph and the restored variables as a TF1 SavedModel with assets.

        Args:
          path: SavedModel directory to create.
          assets: list of local files copied into <path>/assets/ (same base name).
        """
        with self.graph.as_default():
            asset_tensors = [tf.constant(asset, name=f"asset_{i}") for i, asset in
                             enumerate(assets)]
            signature = tf1.saved_model.predict_signature_def(inputs=self.inputs,
                                                              outputs=self.outputs)
            builder = tf1.saved_model.Builder(path)
            builder.add_meta_graph_and_variables(
                self.session, [tf.saved_model.SERVING],
                signature_def_map={SERVING_KEY: signature},
                assets_collection=asset_tensors, clear_devices=True, strip_default_attrs=True,
                saver=tf1.train.Saver(var_list=self.variables))
            builder.save()

    def frozen_graph_def(self):
        """Returns a GraphDef with variables folded into constants, ready for inference."""
        output_names = list(self.spec.output_names)
        graph_def = self.graph.as_graph_def()
        frozen = tf1.graph_util.convert_variables_to_constants(
            self.session, graph_def, output_names)
        frozen = tf1.graph_util.extract_sub_graph(frozen, output_names)
        frozen = tf1.graph_util.remove_training_nodes(frozen, protected_nodes=output_names)
        return optimize_for_inference_lib.optimize_for_inference(
            frozen, list(INPUT_NAMES), output_names, [tf.int32.as_datatype_enum] * len(INPUT_NAMES))

    def close(self):
        self.session.close()


# --------------------------------------------------------------------------------------------------
# Features: raw texts and random ids
# --------------------------------------------------------------------------------------------------


def split_pair(text):
    """`A ||| B` -> (A, B); anything else -> (text, None)."""
    match = _PAIR_RE.match(text)
    return (match.group(1), match.group(2)) if match else (text, None)


def texts_to_features(texts, tokenizer, max_seq_length):
    """Tokenizes texts like run_classifier.py; returns a dict name -> int32 [n, max_seq_length].

    Args:
      texts: strings (`A ||| B` is a pair) or (text_a, text_b) tuples.
      tokenizer: tokenization.FullTokenizer.
      max_seq_length: int.
    """
    rows = {name: [] for name in INPUT_NAMES}
    for i, text in enumerate(texts):
        text_a, text_b = split_pair(text) if isinstance(text, str) else text
        example = run_classifier.InputExample(guid=f"text-{i}", text_a=text_a, text_b=text_b,
                                              label="_")
        # ex_index 5 and above are not logged: a long-lived predictor would flood the log.
        feature = run_classifier.convert_single_example(5 + i, example, ["_"], max_seq_length,
                                                        tokenizer)
        rows["input_ids"].append(feature.input_ids)
        rows["input_mask"].append(feature.input_mask)
        rows["segment_ids"].append(feature.segment_ids)
    return {name: np.array(values, dtype=np.int32).reshape(-1, max_seq_length)
            for name, values in rows.items()}


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
    real = texts_to_features(SAMPLE_TEXTS, tokenizer, spec.max_seq_length)
    if num_random <= 0:
        return real
    rand = random_features(num_random, spec.bert_config.vocab_size, spec.max_seq_length)
    return {name: np.concatenate([real[name], rand[name]]) for name in INPUT_NAMES}


def first_rows(batch, n):
    return {name: values[:n] for name, values in batch.items()}


# --------------------------------------------------------------------------------------------------
# Loaders: each returns run(batch) -> dict name -> np.ndarray
# --------------------------------------------------------------------------------------------------


def load_saved_model_runner(path):
    """Loads a SavedModel's serving_default signature (as TF Serving would see it)."""
    signature = tf.saved_model.load(path).signatures[SERVING_KEY]

    def run(batch):
        outputs = signature(**{name: tf.constant(batch[name]) for name in INPUT_NAMES})
        return {name: value.numpy() for name, value in outputs.items()}

    return run


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


# --------------------------------------------------------------------------------------------------
# Writers: each writes one format into the (temporary) export dir and returns its path
# --------------------------------------------------------------------------------------------------


def write_saved_model(model, spec, export_dir, scratch_dir):
    """SavedModel with vocab.txt, labels.txt (classifier) and export_config.json as assets."""
    os.makedirs(scratch_dir, exist_ok=True)
    assets = [os.path.join(scratch_dir, VOCAB_FILE)]
    tf.io.gfile.copy(spec.vocab_file, assets[0], overwrite=True)
    if spec.labels:
        assets.append(os.path.join(scratch_dir, LABELS_FILE))
        with open(assets[-1], "w", encoding="utf-8") as f:
            f.write("".join(label + "\n" for label in spec.labels))
    assets.append(os.path.join(scratch_dir, EXPORT_CONFIG_FILE))
    with open(assets[-1], "w", encoding="utf-8") as f:
        json.dump(spec.export_config(), f, indent=2, ensure_ascii=False)
    path = os.path.join(export_dir, "saved_model")
    model.write_saved_model(path, assets)
    return path


def tensor_io_lines(spec, graph_def_path):
    """The io.txt text: one line per tensor, `<input|output>\\t<name>\\t<dtype>\\t<shape>`."""
    seq, hidden = spec.max_seq_length, spec.bert_config.hidden_size
    shapes = {
        "probabilities": [-1, len(spec.labels or [])],
        "logits": [-1, len(spec.labels or [])],
        "pooled_output": [-1, hidden],
        "sequence_output": [-1, seq, hidden],
    }
    lines = [f"# {os.path.basename(graph_def_path)}: a frozen TensorFlow GraphDef. Feed the inputs "
             f"and fetch the outputs by tensor name (batch dimension -1 = any).",
             "# kind\ttensor\tdtype\tshape"]
    lines += [f"input\t{name}:0\tint32\t[-1, {seq}]" for name in INPUT_NAMES]
    lines += [f"output\t{name}:0\tfloat32\t{shapes[name]}" for name in spec.output_names]
    if spec.labels:
        lines.append(f"# labels (output column order): {','.join(spec.labels)}")
    return "\n".join(lines) + "\n"


def write_frozen_graph(model, spec, export_dir):
    directory = os.path.join(export_dir, "frozen_graph")
    os.makedirs(directory, exist_ok=True)
    graph_def = model.frozen_graph_def()
    remaining = sorted({node.op for node in graph_def.node} & {"VariableV2", "VarHandleOp",
                                                               "ReadVariableOp", "Assign"})
    if remaining:
        raise VerificationError(f"frozen_graph: variable ops {remaining} survived freezing")
    pb_path = os.path.join(directory, "model.pb")
    with open(pb_path, "wb") as f:
        f.write(graph_def.SerializeToString())
    with open(os.path.join(directory, "io.txt"), "w", encoding="utf-8") as f:
        f.write(tensor_io_lines(spec, pb_path))
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
    try:
        # Imported here: only GPU builds of TensorFlow ship it.
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils
    except ImportError:
        return "this TensorFlow build has no TensorRT support"
    if not _pywrap_py_utils.is_tensorrt_enabled():
        return "this TensorFlow build has no TensorRT support"
    try:
        import tensorrt  # noqa: F401 (only checks that TensorRT is installed)
    except ImportError:
        return "the tensorrt Python package (libnvinfer) is not installed"
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


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------


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


def compare_outputs(fmt, task, outputs, reference, tolerance):
    """Compares one artefact's outputs with the checkpoint's; returns the report entry.

    The check: the largest absolute difference over all outputs (int8: over probabilities for a
    classifier, pooled_output for an encoder) must not exceed `tolerance`, and every value must
    be finite.
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
    if task == "classifier":
        agreement = float(np.mean(np.argmax(outputs["probabilities"], -1)
                                  == np.argmax(reference["probabilities"], -1)))
        entry["label_agreement"] = agreement
        entry["max_probability_change"] = diffs["probabilities"]
        if fmt == "tflite_int8":
            checked = {"probabilities": diffs["probabilities"]}
    elif fmt == "tflite_int8":
        checked = {"pooled_output": diffs["pooled_output"]}
    entry["checked_diff"] = max(checked.values())
    entry["passed"] = entry["checked_diff"] <= tolerance
    return entry


def verify(fmt, spec, run, samples, reference, tolerance, latency_runs, warmup_runs):
    """Runs an artefact on the samples, compares, times it; raises VerificationError on failure."""
    entry = compare_outputs(fmt, spec.task, run(samples), reference, tolerance)
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


# --------------------------------------------------------------------------------------------------
# Export: all formats into a temporary directory, renamed at the end
# --------------------------------------------------------------------------------------------------


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
      runtime.UsageError: the checkpoint does not match the config or labels.
    """
    shapes = checkpoint_shapes(spec.checkpoint)
    tokenizer = tokenization.FullTokenizer(vocab_file=spec.vocab_file,
                                           do_lower_case=spec.do_lower_case)
    samples = sample_features(spec, tokenizer, num_random)
    model = CheckpointModel(spec, shapes)
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
    progress = runtime.ProgressLogger(total=len(formats), unit="formats", name="Export",
                                      every_seconds=0.0)
    try:
        reference = {name: value.astype(np.float64) for name, value in model.run(samples).items()}
        report["checkpoint_session"] = {
            "latency_ms": measure_latency(model.run, first_rows(samples, 1), latency_runs,
                                          warmup_runs)}
        tf1.logging.info("checkpoint session (baseline): latency p50 %.2f ms",
                         report["checkpoint_session"]["latency_ms"]["p50"])
        with runtime.atomic_output(export_dir) as tmp_dir:
            os.makedirs(tmp_dir)
            scratch = os.path.join(tmp_dir, ".scratch")
            saved_model_dir = write_saved_model(model, spec, tmp_dir, scratch)
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
                                     entry["path"]), _human_size(entry["size_bytes"]))
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
    tf1.logging.info("Export complete: %s", export_dir)
    return report


def _export_one(fmt, model, spec, tmp_dir, saved_model_dir, samples, tflite_threads):
    """Writes one format; returns {"run", "path"} to verify, or {"skipped": reason}."""
    start = time.time()
    if fmt == "saved_model":
        path, run = saved_model_dir, load_saved_model_runner(saved_model_dir)
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
        run = load_saved_model_runner(path)
    tf1.logging.info("%s: written in %.1f s", fmt, time.time() - start)
    return {"run": run, "path": path}


def _human_size(num_bytes):
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024.0
    return str(num_bytes)


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
        rows.append((fmt, _human_size(entry["size_bytes"]), f"{entry['max_diff']:.2e}",
                     f"{entry['checked_diff']:.2e}<={entry['tolerance']:.0e}",
                     f"{latency['p50']:.2f}", f"{latency['p90']:.2f}", f"{latency['p99']:.2f}",
                     notes))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


# --------------------------------------------------------------------------------------------------
# Predictor: a SavedModel loaded once, raw texts in, predictions out
# --------------------------------------------------------------------------------------------------


class Predictor:
    """Classifies or encodes raw texts with an export of this script, loading it only once.

    The SavedModel's assets give the vocab, the casing, max_seq_length and the labels, so texts
    are tokenized exactly as at fine-tuning time. Any number of texts per call; they are run in
    batches of `batch_size` (the signature's batch dimension is dynamic).

        predictor = Predictor("/tmp/export/saved_model")
        predictor.predict(["A great film.", "The plot ||| The story"])
        # classifier: [{"text": ..., "label": "positive", "probabilities": array([...]),
        #               "logits": array([...])}, ...]
        # encoder: float32 array [num_texts, hidden_size] of pooled outputs
    """

    def __init__(self, saved_model_dir, batch_size=32):
        """Loads the SavedModel.

        Raises:
          ValueError: the directory is not an export of this script (message says what to pass).
        """
        assets = os.path.join(saved_model_dir, "assets")
        config_path = os.path.join(assets, EXPORT_CONFIG_FILE)
        if not tf.io.gfile.exists(config_path):
            raise ValueError(
                f"{saved_model_dir} is not a SavedModel written by export_model.py (no "
                f"assets/{EXPORT_CONFIG_FILE}); pass <export_dir>/saved_model")
        with tf.io.gfile.GFile(config_path, "r") as f:
            self.config = json.load(f)
        self.task = self.config["task"]
        self.labels = self.config.get("labels")
        self.max_seq_length = int(self.config["max_seq_length"])
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = tokenization.FullTokenizer(
            vocab_file=os.path.join(assets, VOCAB_FILE),
            do_lower_case=bool(self.config["do_lower_case"]))
        self._run = load_saved_model_runner(saved_model_dir)

    def features(self, texts):
        """Texts -> dict name -> int32 [len(texts), max_seq_length] (the signature's inputs)."""
        return texts_to_features(texts, self.tokenizer, self.max_seq_length)

    def run_features(self, features):
        """Runs the signature on prepared inputs in batches; returns dict name -> np.ndarray."""
        total = len(features["input_ids"])
        parts = []
        for start in range(0, total, self.batch_size):
            batch = {name: values[start:start + self.batch_size]
                     for name, values in features.items()}
            parts.append(self._run(batch))
        if not parts:
            return {}
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def predict(self, texts):
        """Classifies or encodes texts (strings, `A ||| B` pairs or (a, b) tuples).

        Returns:
          classifier: a list of dicts {"text", "label", "probabilities" [num_labels],
          "logits" [num_labels]}; encoder: a float32 np.ndarray [len(texts), hidden_size] of
          pooled outputs.
        """
        texts = list(texts)
        outputs = self.run_features(self.features(texts))
        if self.task == "encoder":
            if not texts:
                return np.zeros([0, int(self.config["hidden_size"])], np.float32)
            return outputs["pooled_output"]
        results = []
        for i, text in enumerate(texts):
            probabilities = outputs["probabilities"][i]
            results.append({"text": text if isinstance(text, str) else " ||| ".join(text),
                            "label": self.labels[int(np.argmax(probabilities))],
                            "probabilities": probabilities,
                            "logits": outputs["logits"][i]})
        return results

    def encode(self, texts):
        """Encoder exports: dict with pooled_output [n, hidden] and sequence_output
        [n, max_seq_length, hidden]."""
        if self.task != "encoder":
            raise ValueError("encode() needs an encoder export (--task=encoder)")
        return self.run_features(self.features(list(texts)))


def _read_lines(input_file):
    """Yields the lines of a file or stdin (`-`) without their line ends."""
    if input_file == "-":
        # Bytes decoded here: UTF-8 whatever the locale says (a bad byte -> one-line error).
        for number, line in enumerate(sys.stdin.buffer, start=1):
            try:
                yield line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise runtime.UsageError(f"stdin line {number} is not valid UTF-8 ({e.reason} at "
                                         f"byte {e.start}); convert the input to UTF-8") from None
        return
    if not tf.io.gfile.exists(input_file):
        raise runtime.UsageError(f"--input_file={input_file}: no such file (use - for stdin)")
    with tf.io.gfile.GFile(input_file, "r") as f:
        for line in f:
            yield line.rstrip("\r\n")


def _chunks(lines, size):
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prediction_lines(predictor, texts):
    """Output lines for texts: TSV rows (classifier) or JSON lines (encoder)."""
    if predictor.task == "encoder":
        vectors = predictor.predict(texts)
        return [json.dumps({"text": text, "pooled_output": [float(v) for v in vector]},
                           ensure_ascii=False) for text, vector in zip(texts, vectors)]
    return ["\t".join([result["text"].replace("\t", " "), result["label"]]
                      + [str(float(p)) for p in result["probabilities"]])
            for result in predictor.predict(texts)]


def predict_main():
    if not FLAGS.input_file:
        raise runtime.UsageError("--predict_saved_model needs --input_file (a text file, one text "
                                 "per line, or - for stdin)")
    if not tf.io.gfile.isdir(FLAGS.predict_saved_model):
        raise runtime.UsageError(f"--predict_saved_model={FLAGS.predict_saved_model}: no such "
                                 f"directory; pass <export_dir>/saved_model")
    predictor = Predictor(FLAGS.predict_saved_model, batch_size=FLAGS.predict_batch_size)
    progress = runtime.ProgressLogger(unit="texts", name="Predicting")
    if FLAGS.output_file:
        with runtime.atomic_output(FLAGS.output_file) as tmp_path:
            with tf.io.gfile.GFile(tmp_path, "w") as writer:
                _write_predictions(predictor, writer, progress)
    else:
        sys.stdout.reconfigure(encoding="utf-8")
        _write_predictions(predictor, sys.stdout, progress)
        sys.stdout.flush()
    progress.done()


def _write_predictions(predictor, writer, progress):
    if predictor.task == "classifier":
        writer.write("\t".join(["text", "label"] + predictor.labels) + "\n")
    for chunk in _chunks(_read_lines(FLAGS.input_file), predictor.batch_size):
        writer.write("".join(line + "\n" for line in prediction_lines(predictor, chunk)))
        progress.update(len(chunk))


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def spec_from_flags():
    """Validates the export flags and the checkpoint; returns the ExportSpec."""
    for name in ("bert_config_file", "vocab_file", "export_dir"):
        if not getattr(FLAGS, name):
            raise runtime.UsageError(f"--{name} is required to export (or pass "
                                     f"--predict_saved_model to predict)")
    for name in ("bert_config_file", "vocab_file"):
        if not tf.io.gfile.exists(getattr(FLAGS, name)):
            raise runtime.UsageError(f"--{name}={getattr(FLAGS, name)}: no such file")
    checkpoint = resolve_checkpoint(FLAGS.init_checkpoint)
    shapes = checkpoint_shapes(checkpoint)
    try:
        tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, checkpoint)
    except ValueError as e:
        raise runtime.UsageError(" ".join(str(e).split())) from None
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    modeling.check_max_seq_length(bert_config, FLAGS.max_seq_length)
    labels = None
    if FLAGS.task == "classifier":
        if "output_bias" not in shapes:
            raise runtime.UsageError(
                f"checkpoint {checkpoint} has no classifier head (output_weights/output_bias): "
                f"fine-tune it with run_classifier.py first, or pass --task=encoder for embeddings")
        labels = resolve_labels(FLAGS.labels, checkpoint, shapes["output_bias"][0])
    return ExportSpec(task=FLAGS.task, bert_config=bert_config, checkpoint=checkpoint,
                      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
                      max_seq_length=FLAGS.max_seq_length, labels=labels)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    if FLAGS.predict_saved_model:
        predict_main()
        return
    formats = parse_formats(FLAGS.format)
    tolerances = parse_tolerances(FLAGS.tolerances)
    spec = spec_from_flags()
    tf1.logging.info("Exporting %s from %s to %s: %s", spec.task, spec.checkpoint,
                     FLAGS.export_dir, ", ".join(formats))
    report = export(spec, FLAGS.export_dir, formats, tolerances,
                    latency_runs=FLAGS.latency_runs, warmup_runs=FLAGS.warmup_runs,
                    num_random=FLAGS.num_random_samples, tflite_threads=FLAGS.tflite_threads)
    print(format_report_table(report))
    print(f"Report: {os.path.join(FLAGS.export_dir, REPORT_FILE)}")


def saved_model_cli_show(saved_model_dir):
    """Returns the text of `saved_model_cli show --dir <dir> --all` (for checks and tests)."""
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
         saved_model_dir, "--all"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=False)
    return result.stdout + result.stderr


if __name__ == "__main__":
    runtime.run_main(main)
