"""The one inference path: a BERT graph with a checkpoint restored, its SavedModel, its Predictor.

* `InferenceModel(bert_config, checkpoint, build_outputs)` builds the graph once (int32
  placeholders `input_ids`, `input_mask`, `segment_ids` of shape [batch, seq], any batch), checks
  every variable against the checkpoint by name and shape, restores it in a session and finalizes
  the graph. `run(batch)` runs it. The feature extractor (`tasks.features.BertEncoder`), the
  export verification (`exporting.py`) and every task's export go through it.
* A `Head` names what a task adds on top of the encoder for inference (its output tensors) and the
  class that post-processes its exports. `encoder` and `classifier` are defined here and in
  tasks/classifier.py; tasks register theirs with `register_head`.
* `write_saved_model(model, spec, path)`: the SavedModel layout every export uses (signature
  `serving_default`, assets vocab.txt, labels.txt when there are labels, export_config.json).
* `Predictor(saved_model_dir)`: loads such an export once; raw texts in, labels or vectors out.
  `load_predictor(saved_model_dir)` returns the task's own predictor class for any export.

Nothing here trains: that is `training.py` and `runtime.py`.
"""

import contextlib
import dataclasses
import importlib
import json
import os
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

import cli
import modeling
import tokenization

tf1 = tf.compat.v1

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
EXPORT_CONFIG_FILE = "export_config.json"
VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.txt"
SERVING_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
EXPORT_FORMAT_VERSION = 1


class CheckpointMismatch(cli.UsageError, ValueError):
    """The checkpoint does not hold the variables the graph needs (names or shapes)."""


def read_labels_file(directory):
    """The labels in <directory>/labels.txt (one per line, in id order), or None without one."""
    path = os.path.join(directory, LABELS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def write_labels_file(label_list, directory):
    """Writes <directory>/labels.txt atomically; the runners write it next to their checkpoints."""
    path = os.path.join(directory, LABELS_FILE)
    with cli.atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            f.write("".join(label + "\n" for label in label_list))
    return path


# --------------------------------------------------------------------------------------------------
# Heads: what a task adds to the encoder for inference
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Head:
    """A task's inference outputs.

    Attributes:
      name: the task name written into export_config.json ("encoder", "classifier", ...).
      output_names: the signature's outputs, in order.
      build: `build(bert_config, inputs, num_labels) -> dict name -> Tensor` in the current graph;
        `inputs` holds the int32 [batch, seq] placeholders. Variable names must match the task's
        training graph so its checkpoints restore by name.
      predictor: "module:Class" that post-processes this head's exports (see load_predictor).
      int8_checked: outputs whose difference bounds an int8 export (the others are reported).
      label_output: an output whose argmax is a label (label agreement is reported), or None.
    """

    name: str
    output_names: Sequence[str]
    build: Callable
    predictor: str = "inference:Predictor"
    int8_checked: Sequence[str] = ()
    label_output: Optional[str] = None


HEADS = {}


def register_head(head):
    """Makes `head` available to exports by its name; returns it."""
    HEADS[head.name] = head
    return head


def _build_encoder_outputs(bert_config, inputs, num_labels=None):
    del num_labels  # The encoder has no labels.
    model = modeling.BertModel(
        config=bert_config, is_training=False, input_ids=inputs["input_ids"],
        input_mask=inputs["input_mask"], token_type_ids=inputs["segment_ids"],
        use_one_hot_embeddings=False)
    return {"pooled_output": model.get_pooled_output(),
            "sequence_output": model.get_sequence_output()}


ENCODER_HEAD = register_head(Head(
    name="encoder", output_names=("pooled_output", "sequence_output"),
    build=_build_encoder_outputs, int8_checked=("pooled_output",)))


def get_head(name):
    """The registered head `name`; a task module registers its head when imported."""
    if name not in HEADS:
        raise cli.UsageError(f"no inference head {name!r} is registered (known: "
                             f"{', '.join(sorted(HEADS))}); import the task's module first")
    return HEADS[name]


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def op_error_cause(error):
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
        raise cli.UsageError(
            f"cannot read checkpoint {checkpoint} ({op_error_cause(e)}); the files "
            f"are corrupt or incomplete: re-copy them or pass another --init_checkpoint") from None


def check_graph_matches_checkpoint(variables, shapes, checkpoint, optional_prefixes=()):
    """Checks variables against a checkpoint before any restore.

    Args:
      variables: the graph's variables.
      shapes: checkpoint_shapes(checkpoint).
      checkpoint: its path, for messages.
      optional_prefixes: variables under these scopes may be missing (e.g. "bert/pooler/" for
        feature extraction, which never uses the pooler); they keep their initial values.

    Returns:
      The list of missing optional variables.

    Raises:
      CheckpointMismatch: a needed variable is missing or has another shape (the message names
        it and the fix).
    """
    missing = [v for v in variables if v.op.name not in shapes]
    optional = [v for v in missing if v.op.name.startswith(tuple(optional_prefixes))]
    needed = [v.op.name for v in missing if v not in optional]
    if needed and len(needed) == len([v for v in variables if v not in optional]):
        raise CheckpointMismatch(
            f"checkpoint {checkpoint} holds none of the encoder variables (e.g. {needed[0]}); is "
            f"it a BERT checkpoint in the released naming? (convert Hugging Face models with "
            f"convert_checkpoint.py)")
    if needed:
        hint = ("is it a fine-tuned model of this task? use --task=encoder for a pretrained "
                "checkpoint" if any(name.startswith(("output_", "cls/squad")) for name in needed)
                else "check --bert_config_file (it must describe this checkpoint)")
        raise CheckpointMismatch(
            f"checkpoint {checkpoint} lacks {len(needed)} variable(s) the model needs "
            f"({', '.join(needed[:3])}{', ...' if len(needed) > 3 else ''}): {hint}")
    for v in variables:
        if v.op.name in shapes and list(v.shape) != shapes[v.op.name]:
            raise CheckpointMismatch(
                f"variable {v.op.name} has shape {shapes[v.op.name]} in {checkpoint} but "
                f"{list(v.shape)} in the model built from --bert_config_file; pass the config the "
                f"checkpoint was trained with")
    return optional


def session_config(num_threads=0):
    """A ConfigProto with `num_threads` intra- and inter-op threads (0 = TensorFlow's choice)."""
    return tf1.ConfigProto(intra_op_parallelism_threads=num_threads,
                           inter_op_parallelism_threads=num_threads,
                           allow_soft_placement=True)


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class InferenceModel:
    """A BERT graph built once, with a checkpoint restored in its session.

    Example:
        model = InferenceModel(config, "bert_model.ckpt", ENCODER_HEAD.build)
        outputs = model.run({"input_ids": ids, "input_mask": mask, "segment_ids": segments})
    """

    def __init__(self, bert_config, checkpoint, build_outputs, seq_length=None, num_labels=None,
                 optional_prefixes=(), num_threads=0, use_xla=False, finalize=True):
        """Builds the graph, checks it against the checkpoint, restores it and finalizes.

        Args:
          bert_config: modeling.BertConfig.
          checkpoint: a resolved checkpoint prefix (see cli.resolve_checkpoint).
          build_outputs: `build(bert_config, inputs, num_labels) -> dict name -> Tensor`
            (a Head's `build`).
          seq_length: static sequence length of the inputs, or None for any length.
          num_labels: passed on to build_outputs.
          optional_prefixes: variable scopes that may be missing from the checkpoint.
          num_threads: intra- and inter-op threads (0 = TensorFlow's choice).
          use_xla: compile the model with XLA (jit_scope, which also works on CPU).
          finalize: finalize the graph after the restore, so that no code can add ops to it by
            accident (False only for write_saved_model, which adds the asset paths).

        Raises:
          CheckpointMismatch / cli.UsageError: the checkpoint does not fit the graph.
        """
        self.checkpoint = checkpoint
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.inputs = {name: tf1.placeholder(tf.int32, [None, seq_length], name=name)
                           for name in INPUT_NAMES}
            scope = (tf1.xla.experimental.jit_scope(compile_ops=True) if use_xla
                     else contextlib.nullcontext())
            with scope:
                tensors = build_outputs(bert_config, self.inputs, num_labels)
            # Identity ops named like their keys: stable tensor names for frozen graphs and Java.
            self.outputs = {name: tf.identity(tensor, name=name)
                            for name, tensor in tensors.items()}
            self.variables = tf1.global_variables()
            shapes = checkpoint_shapes(checkpoint)
            optional = check_graph_matches_checkpoint(self.variables, shapes, checkpoint,
                                                      optional_prefixes)
            if optional:
                tf1.logging.warning("%d variables are not in %s and keep their initial values, "
                                    "e.g. %s", len(optional), checkpoint,
                                    [v.op.name for v in optional[:3]])
            restored = [v for v in self.variables if v not in optional]
            saver = tf1.train.Saver(var_list=restored)
            init_optional = tf1.variables_initializer(optional)
            self.saver = tf1.train.Saver(var_list=self.variables)
        if finalize:  # From here on any op creation (a hidden rebuild) would raise.
            self.graph.finalize()
        self.session = tf1.Session(graph=self.graph, config=session_config(num_threads))
        try:
            # Inside the graph: outside it (eager mode) Saver.restore takes its eager path.
            with self.graph.as_default():
                self.session.run(init_optional)
                saver.restore(self.session, checkpoint)
        except tf.errors.OpError as e:
            self.session.close()
            raise cli.UsageError(
                f"cannot restore {checkpoint} ({op_error_cause(e)}); the checkpoint files are "
                f"corrupt or do not match --bert_config_file") from None
        tf1.logging.info("Restored %d of %d variables from %s", len(restored),
                         len(self.variables), checkpoint)

    def run(self, batch, fetch=None):
        """Runs the model.

        Args:
          batch: dict name -> int array [batch, seq] for input_ids, input_mask, segment_ids.
          fetch: output names to compute (default: all).

        Returns:
          dict name -> np.ndarray.
        """
        names = list(fetch) if fetch is not None else list(self.outputs)
        feed = {self.inputs[name]: batch[name] for name in INPUT_NAMES}
        return self.session.run({name: self.outputs[name] for name in names}, feed_dict=feed)

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# --------------------------------------------------------------------------------------------------
# Exports: what to export, and the SavedModel layout
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExportSpec:
    """What to export: the model, its inputs and (for labelled tasks) its labels."""

    task: str
    bert_config: modeling.BertConfig
    checkpoint: str
    vocab_file: str
    do_lower_case: bool
    max_seq_length: int
    labels: list = None

    @property
    def head(self):
        return get_head(self.task)

    @property
    def output_names(self):
        return tuple(self.head.output_names)

    def export_config(self):
        """The settings a Predictor needs to tokenize like the export (saved as an asset)."""
        return {
            "format_version": EXPORT_FORMAT_VERSION,
            "task": self.task,
            "predictor": self.head.predictor,
            "do_lower_case": self.do_lower_case,
            "max_seq_length": self.max_seq_length,
            "labels": self.labels,
            "hidden_size": self.bert_config.hidden_size,
            "inputs": list(INPUT_NAMES),
            "outputs": list(self.output_names),
            "checkpoint": self.checkpoint,
        }

    def load_model(self):
        """The InferenceModel of this export: inputs of shape [batch, max_seq_length]."""
        return InferenceModel(self.bert_config, self.checkpoint, self.head.build,
                              seq_length=self.max_seq_length,
                              num_labels=len(self.labels) if self.labels else None,
                              finalize=False)


def write_saved_model(model, spec, path, scratch_dir):
    """Writes the model as a TF1 SavedModel with vocab, labels and export_config.json as assets.

    Args:
      model: InferenceModel of `spec`, built with finalize=False (spec.load_model()).
      spec: ExportSpec.
      path: SavedModel directory to create.
      scratch_dir: a directory for the asset files before they are copied into <path>/assets/.

    Returns:
      `path`.
    """
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
    if model.graph.finalized:
        raise ValueError("write_saved_model needs an InferenceModel built with finalize=False "
                         "(the asset paths become constants of its graph)")
    with model.graph.as_default():
        asset_tensors = [tf.constant(asset, name=f"asset_{i}") for i, asset in enumerate(assets)]
        signature = tf1.saved_model.predict_signature_def(
            inputs=model.inputs, outputs={name: model.outputs[name] for name in spec.output_names})
        builder = tf1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(
            model.session, [tf.saved_model.SERVING], signature_def_map={SERVING_KEY: signature},
            assets_collection=asset_tensors, clear_devices=True, strip_default_attrs=True,
            saver=model.saver)
        builder.save()
    return path


def load_saved_model_runner(path):
    """Loads a SavedModel's serving_default signature (as TF Serving would see it).

    Returns:
      run(batch) -> dict name -> np.ndarray.
    """
    signature = tf.saved_model.load(path).signatures[SERVING_KEY]

    def run(batch):
        outputs = signature(**{name: tf.constant(batch[name]) for name in INPUT_NAMES})
        return {name: value.numpy() for name, value in outputs.items()}

    return run


def texts_to_features(texts, tokenizer, max_seq_length):
    """Tokenizes texts as the classifier does; returns dict name -> int32 [n, max_seq_length].

    Args:
      texts: strings (`A ||| B` is a pair) or (text_a, text_b) tuples.
      tokenizer: tokenization.FullTokenizer.
      max_seq_length: int.
    """
    rows = {name: np.zeros([len(texts), max_seq_length], np.int32) for name in INPUT_NAMES}
    for i, text in enumerate(texts):
        text_a, text_b = cli.split_pair(text) if isinstance(text, str) else text
        tokens_b = tokenizer.tokenize(text_b) if text_b else None
        tokens, segment_ids = tokenization.pack_sequence_pair(
            tokenizer.tokenize(text_a), tokens_b, max_seq_length)
        length = len(tokens)
        rows["input_ids"][i, :length] = tokenizer.convert_tokens_to_ids(tokens)
        rows["input_mask"][i, :length] = 1
        rows["segment_ids"][i, :length] = segment_ids
    return rows


# --------------------------------------------------------------------------------------------------
# Predictor: a SavedModel loaded once, raw texts in, predictions out
# --------------------------------------------------------------------------------------------------


def read_export_config(saved_model_dir):
    """The export_config.json of an export of this project.

    Raises:
      cli.UsageError: the directory is not such an export (the message says what to pass).
    """
    config_path = os.path.join(saved_model_dir, "assets", EXPORT_CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise cli.UsageError(
            f"{saved_model_dir} is not a SavedModel written by export_model.py or a runner's "
            f"--do_export (no assets/{EXPORT_CONFIG_FILE}); pass <export_dir>/saved_model")
    with tf.io.gfile.GFile(config_path, "r") as f:
        return json.load(f)


class Predictor:
    """Classifies or encodes raw texts with an export, loading it only once.

    The SavedModel's assets give the vocab, the casing, max_seq_length and the labels, so texts
    are tokenized exactly as at fine-tuning time. Any number of texts per call; they are run in
    batches of `batch_size` (the signature's batch dimension is dynamic).

        predictor = Predictor("/tmp/export/saved_model")
        predictor.predict(["A great film.", "The plot ||| The story"])
        # classifier: [{"text": ..., "label": "positive", "probabilities": array([...]),
        #               "logits": array([...])}, ...]
        # encoder: float32 array [num_texts, hidden_size] of pooled outputs

    Tasks with other outputs (QA spans, entities) subclass it; `load_predictor` picks the class.
    """

    def __init__(self, saved_model_dir, batch_size=32):
        """Loads the SavedModel.

        Raises:
          cli.UsageError: the directory is not an export of this project.
        """
        self.saved_model_dir = saved_model_dir
        self.config = read_export_config(saved_model_dir)
        self.task = self.config["task"]
        self.labels = self.config.get("labels")
        self.max_seq_length = int(self.config["max_seq_length"])
        self.batch_size = max(1, int(batch_size))
        self.tokenizer = tokenization.FullTokenizer(
            vocab_file=os.path.join(saved_model_dir, "assets", VOCAB_FILE),
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


def load_predictor(saved_model_dir, batch_size=32):
    """The predictor class the export names in its config (a task's own, or Predictor)."""
    config = read_export_config(saved_model_dir)
    module_name, _, class_name = config.get("predictor", "inference:Predictor").partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(saved_model_dir, batch_size=batch_size)
