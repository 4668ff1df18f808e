"""Extracts contextual token vectors (ELMo-like) or pooled sentence vectors from a BERT checkpoint.

Two ways in:
- The script: the reference's `extract_features.py` (same 13 flags, same JSON-lines output) plus
  pooled sentence vectors (`--pooling_strategy`), `.npy` output, length bucketing and threads.
- `BertEncoder`: a reusable encoder that builds its graph and restores the checkpoint once; later
  `encode(...)` / `encode_tokens(...)` calls only run the session.

Sample command line (reference output: the activations of the last four layers for every token):

    python extract_features.py \\
      --input_file=/tmp/input.txt --output_file=/tmp/output.jsonl \\
      --vocab_file=$BERT_BASE_DIR/vocab.txt --bert_config_file=$BERT_BASE_DIR/bert_config.json \\
      --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --layers=-1,-2,-3,-4 --max_seq_length=128

Sentence vectors (mean over the real tokens of the last layer) as one float32 array:

    python extract_features.py ... --pooling_strategy=mean --pooling_layer=-1 \\
      --output_format=npy --output_file=/tmp/vectors.npy

Input: one example per line; `A ||| B` (a space on each side of `|||`) is a sentence pair. Every
line, empty ones included, gives one output row, in input order.

Output formats:
- `--pooling_strategy=none --output_format=jsonl` (default): the reference format, one JSON
  object per line: `{"linex_index": <line number>, "features": [{"token": ..., "layers":
  [{"index": <layer>, "values": [...]}, ...]}, ...]}`, every value rounded to 6 decimals
  (`linex_index` is the reference's spelling).
- pooled + jsonl: `{"linex_index": <line number>, "values": [...]}` per line, rounded the same way.
- pooled + npy: `<output_file>` holds one float32 array [num_lines, dim] (rows in input order) and
  `<output_file>.json` the settings that produced it. Token vectors (`none`) are ragged and are
  only written as jsonl.

Pooling (padding never enters a pool):
- `cls`: the `[CLS]` vector. `mean` / `max`: over all real tokens, `[CLS]` and `[SEP]` included
  (what sentence-transformers models such as all-MiniLM-L6-v2 were trained with). `mean_max`:
  both, concatenated.
- `first_last_mean`: mean over real tokens of the average of the first and last encoder layers;
  it chooses its own layers and ignores `--pooling_layer`.
- `--pooling_layer` (default -1, the last layer; bert-as-service defaults to -2): one index or
  several comma-separated ones, whose pools are concatenated in the given order. Indexes count
  like `--layers`: into the encoder layers (the embedding output is not one of them), negative
  from the top.

Speed: sentences are sorted by length and batched so that a batch is padded only to its longest
member (`--bucket_by_length`, on by default); results go back to input order and equal the fully
padded computation up to float rounding (< 1e-5). With `--use_tpu` the reference path runs
instead: a TPUEstimator with every input padded to `--max_seq_length`.
"""

import collections
import contextlib
import json
import os
import re

import numpy as np
import tensorflow as tf
from absl import flags

import modeling
import runtime
import tokenization

tf1 = tf.compat.v1

POOLING_STRATEGIES = ["none", "cls", "mean", "max", "mean_max", "first_last_mean"]
OUTPUT_FORMATS = ["jsonl", "npy"]

FLAGS = flags.FLAGS

## Required parameters (marked required in the __main__ block, as in the reference)

flags.DEFINE_string("input_file", None,
                    "Text file with one example per line; `A ||| B` lines are sentence pairs.")

flags.DEFINE_string("output_file", None,
                    "Where to write the features: JSON lines (--output_format=jsonl) or a .npy "
                    "array plus <output_file>.json (--output_format=npy).")

flags.DEFINE_string("layers", "-1,-2,-3,-4",
                    "Comma-separated encoder layer indexes whose token vectors are written with "
                    "--pooling_strategy=none (0 = first Transformer block, -1 = last).")

flags.DEFINE_string("bert_config_file", None,
                    "The config json file corresponding to the pre-trained BERT model. "
                    "This specifies the model architecture.")

flags.DEFINE_integer("max_seq_length", 128,
                     "The maximum total input sequence length after WordPiece tokenization. "
                     "Sequences longer than this will be truncated, and sequences shorter "
                     "than this will be padded.")

flags.DEFINE_string("init_checkpoint", None,
                    "Initial checkpoint (usually from a pre-trained BERT model).")

flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file that the BERT model was trained on.")

flags.DEFINE_bool("do_lower_case", True,
                  "Whether to lower case the input text. Should be True for uncased "
                  "models and False for cased models.")

flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")

flags.DEFINE_bool("use_one_hot_embeddings", False,
                  "If True, tf.one_hot will be used for embedding lookups, otherwise "
                  "tf.nn.embedding_lookup will be used. On TPUs, this should be True "
                  "since it is much faster.")

# use_tpu, master, num_tpu_cores (and tpu_name, tpu_zone, gcp_project) from the shared group.
runtime.define_tpu_flags()

## Other parameters (not in the reference)

flags.DEFINE_enum("pooling_strategy", "none", POOLING_STRATEGIES,
                  "none writes per-token vectors in the reference format; the others write one "
                  "sentence vector per line (padding excluded from every pool).")

flags.DEFINE_string("pooling_layer", "-1",
                    "Comma-separated encoder layer index(es) to pool (pools of several layers are "
                    "concatenated). Ignored by first_last_mean, which uses the first and last "
                    "layers.")

flags.DEFINE_enum("output_format", "jsonl", OUTPUT_FORMATS,
                  "jsonl (one JSON object per input line) or npy (one float32 array, rows in input "
                  "order, plus <output_file>.json with the settings; pooled strategies only).")

flags.DEFINE_integer("num_threads", 0,
                     "Intra-op and inter-op thread count of the TensorFlow session; 0 lets "
                     "TensorFlow choose (all cores).")

flags.DEFINE_bool("bucket_by_length", True,
                  "Batch sentences of similar length and pad each batch only to its longest member "
                  "(same results, less padding). False pads every sentence to --max_seq_length, as "
                  "the reference does. Ignored with --use_tpu (TPUs need static shapes).")

flags.DEFINE_bool("use_xla", False,
                  "Compile the encoder with XLA (CPU/GPU). Each distinct padded batch shape is "
                  "compiled once, so bucket lengths are rounded up to a multiple of 16.")

# Lines are converted and written in chunks of this many examples so that token outputs of a large
# input file never have to be held in memory at once.
_CHUNK_SIZE = 2048


class InputExample(object):
    """One input line: a single text or a pair."""

    def __init__(self, unique_id, text_a, text_b):
        self.unique_id = unique_id
        self.text_a = text_a
        self.text_b = text_b


class InputFeatures(object):
    """The WordPiece view of one example, unpadded (padding is added per batch).

    Unlike the reference, `input_ids`, `input_mask` and `input_type_ids` hold only the real
    tokens, so that a batch can be padded to its longest member instead of `max_seq_length`.
    """

    def __init__(self, unique_id, tokens, input_ids, input_mask, input_type_ids):
        self.unique_id = unique_id
        self.tokens = tokens
        self.input_ids = input_ids
        self.input_mask = input_mask
        self.input_type_ids = input_type_ids

    def __len__(self):
        return len(self.input_ids)


# ------------------------------------------------------------------------------------------------
# Data: lines -> examples -> features.
# ------------------------------------------------------------------------------------------------

_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


def example_from_line(unique_id, line):
    """Parses one (already stripped) line: `A ||| B` is a pair, anything else a single text."""
    m = _PAIR_RE.match(line)
    if m is None:
        return InputExample(unique_id=unique_id, text_a=line, text_b=None)
    return InputExample(unique_id=unique_id, text_a=m.group(1), text_b=m.group(2))


def read_examples(input_file):
    """Reads one `InputExample` per line of `input_file`; `unique_id` is the 0-based line number.

    Lines are split on "\\n" only and stripped; empty lines still give (empty) examples, so
    output row i always belongs to input line i.

    Raises:
      ValueError: a line is not valid UTF-8 (the message names the line).
    """
    examples = []
    with tf.io.gfile.GFile(input_file, "rb") as reader:
        data = reader.read()
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # The newline that ends the last line does not start a new one.
    for unique_id, raw in enumerate(raw_lines):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError("%s line %d is not valid UTF-8 (%s); re-encode the file as UTF-8"
                             % (input_file, unique_id + 1, e.reason)) from None
        examples.append(example_from_line(unique_id, line.strip()))
    return examples


def convert_example_to_features(example, seq_length, tokenizer):
    """Tokenizes one example into `[CLS] A [SEP] (B [SEP])`, truncated to `seq_length` tokens."""
    tokens_a = tokenizer.tokenize(example.text_a)
    tokens_b = None
    if example.text_b:
        tokens_b = tokenizer.tokenize(example.text_b)

    tokens, input_type_ids = tokenization.pack_sequence_pair(tokens_a, tokens_b, seq_length)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    return InputFeatures(unique_id=example.unique_id, tokens=tokens, input_ids=input_ids,
                         input_mask=[1] * len(input_ids), input_type_ids=input_type_ids)


def convert_examples_to_features(examples, seq_length, tokenizer, log_examples=5):
    """Converts `InputExample`s into unpadded `InputFeatures`, logging the first `log_examples`."""
    features = []
    for (ex_index, example) in enumerate(examples):
        feature = convert_example_to_features(example, seq_length, tokenizer)
        if ex_index < log_examples:
            padded = pad_features([feature], seq_length)
            tf1.logging.info("*** Example ***")
            tf1.logging.info("unique_id: %s" % (example.unique_id))
            tf1.logging.info("tokens: %s" % " ".join(feature.tokens))
            for name in ("input_ids", "input_mask", "input_type_ids"):
                tf1.logging.info("%s: %s" % (name, " ".join(str(x) for x in padded[name][0])))
        features.append(feature)
    return features


def pad_features(features, length):
    """Stacks features into int32 arrays [len(features), length], zero-padded on the right.

    Returns:
      dict with `input_ids`, `input_mask`, `input_type_ids`, each int32 [batch_size, length].
    """
    arrays = {name: np.zeros([len(features), length], dtype=np.int32)
              for name in ("input_ids", "input_mask", "input_type_ids")}
    for row, feature in enumerate(features):
        n = len(feature)
        arrays["input_ids"][row, :n] = feature.input_ids
        arrays["input_mask"][row, :n] = feature.input_mask
        arrays["input_type_ids"][row, :n] = feature.input_type_ids
    return arrays


def make_batches(lengths, batch_size, bucket_by_length=True):
    """Groups example positions into batches.

    Args:
      lengths: real length of each example, in input order.
      batch_size: maximum examples per batch.
      bucket_by_length: sort by length (longest first, ties in input order) so each batch holds
        similar lengths; otherwise batches follow input order.

    Returns:
      A list of int arrays of positions into `lengths`; every position appears exactly once.
    """
    lengths = np.asarray(lengths)
    if bucket_by_length:
        # Longest first: the first batch is the largest, so an out-of-memory shows up at once,
        # and the ETA errs on the safe side.
        order = np.argsort(-lengths, kind="stable")
    else:
        order = np.arange(len(lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def parse_layer_indexes(text, num_layers, flag_name="--layers"):
    """Parses `"-1,-2"` into `[-1, -2]` and checks every index against the model depth.

    Raises:
      ValueError: an entry is not an integer or lies outside [-num_layers, num_layers - 1].
    """
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [s for s in str(text).split(",") if s.strip()]
    if not items:
        raise ValueError("%s is empty: give at least one layer index, e.g. -1" % flag_name)
    indexes = []
    for item in items:
        try:
            index = int(item)
        except ValueError:
            raise ValueError("%s=%s: %r is not an integer layer index (e.g. -1,-2)"
                             % (flag_name, text, item)) from None
        if not -num_layers <= index < num_layers:
            raise ValueError("%s=%s: layer %d does not exist in a %d-layer model; use %d..%d "
                             "(negative counts from the top)"
                             % (flag_name, text, index, num_layers, -num_layers, num_layers - 1))
        indexes.append(index)
    return indexes


# ------------------------------------------------------------------------------------------------
# Pooling (NumPy, on the float32 layer outputs).
# ------------------------------------------------------------------------------------------------

def pooling_layers(pooling, layer_indexes, num_layers):
    """The layers a pooling strategy reads: `layer_indexes`, or [0, last] for first_last_mean."""
    if pooling == "first_last_mean":
        return [0, num_layers - 1]
    return list(layer_indexes)


def pooled_dim(hidden_size, pooling, num_pooled_layers):
    """Width of a pooled vector: hidden_size per layer (twice that for mean_max)."""
    if pooling == "first_last_mean":
        return hidden_size
    per_layer = 2 * hidden_size if pooling == "mean_max" else hidden_size
    return per_layer * num_pooled_layers


def _pool_one(states, mask, pooling):
    """Pools one layer.

    Args:
      states: float32 [batch_size, seq_length, hidden_size].
      mask: float32 [batch_size, seq_length, 1], 1 for real tokens.
      pooling: "cls", "mean", "max" or "mean_max".

    Returns:
      float32 [batch_size, hidden_size] (2 * hidden_size for mean_max).
    """
    if pooling == "cls":
        return states[:, 0]
    mean = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    if pooling == "mean":
        return mean
    # Padding must never win a max, whatever the sign of the real values.
    maximum = np.where(mask > 0, states, -np.inf).max(axis=1)
    if pooling == "max":
        return maximum
    if pooling == "mean_max":
        return np.concatenate([mean, maximum], axis=-1)
    raise ValueError("unknown pooling %r; use one of %s"
                     % (pooling, ", ".join(POOLING_STRATEGIES[1:])))


def pool(layer_states, input_mask, pooling):
    """Turns token vectors into sentence vectors.

    Args:
      layer_states: list of float32 [batch_size, seq_length, hidden_size], one per layer returned by
        `pooling_layers` (in that order).
      input_mask: int [batch_size, seq_length], 1 for real tokens (padding is excluded from
        every pool).
      pooling: one of POOLING_STRATEGIES except "none".

    Returns:
      float32 [batch_size, dim]: the per-layer pools concatenated in layer order; for
      first_last_mean the mean over tokens of (first + last) / 2.
    """
    mask = np.asarray(input_mask, dtype=np.float32)[:, :, None]
    if pooling == "first_last_mean":
        first, last = layer_states
        return _pool_one((first + last) / 2.0, mask, "mean").astype(np.float32)
    pooled = [_pool_one(states, mask, pooling) for states in layer_states]
    return np.concatenate(pooled, axis=-1).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# The reusable encoder (CPU/GPU): one graph, one session, one checkpoint restore.
# ------------------------------------------------------------------------------------------------

def resolve_checkpoint(init_checkpoint):
    """Returns the checkpoint prefix for a prefix or a directory holding checkpoints.

    Raises:
      ValueError: nothing readable at that path (the message says what to pass).
    """
    if not init_checkpoint:
        raise ValueError("no checkpoint given: pass --init_checkpoint=.../bert_model.ckpt (feature "
                         "extraction needs trained weights)")
    if tf.io.gfile.isdir(init_checkpoint):
        latest = tf.train.latest_checkpoint(init_checkpoint)
        if latest is None:
            raise ValueError("--init_checkpoint=%s is a directory without a checkpoint; pass the "
                             "checkpoint prefix, e.g. %s/bert_model.ckpt"
                             % (init_checkpoint, init_checkpoint.rstrip("/")))
        return latest
    if not tf.io.gfile.exists(init_checkpoint + ".index"):
        raise ValueError("checkpoint not found: %s.index does not exist; pass --init_checkpoint "
                         "as the checkpoint prefix, e.g. .../bert_model.ckpt (without "
                         ".index/.data-*)" % init_checkpoint)
    return init_checkpoint


def session_config(num_threads):
    """A ConfigProto with `num_threads` intra- and inter-op threads (0 = TensorFlow's choice)."""
    return tf1.ConfigProto(intra_op_parallelism_threads=num_threads,
                           inter_op_parallelism_threads=num_threads,
                           allow_soft_placement=True)


class BertEncoder(object):
    """Loads a BERT checkpoint once and encodes texts many times.

    The graph takes int32 placeholders of shape [None, None] (any batch size and length), so each
    batch is padded only to its longest member. `graph_builds` and `checkpoint_restores` count the
    expensive steps (both stay 1 for the life of the encoder); `session_runs` counts batches.

    Example:
        encoder = BertEncoder("bert_config.json", "vocab.txt", "bert_model.ckpt")
        vectors = encoder.encode(["a sentence", "another one"], pooling="mean")  # [2, hidden_size]
        [(tokens, states)] = encoder.encode_tokens(["hello world"])  # states [layers, len, hidden]
    """

    def __init__(self, bert_config_file, vocab_file, init_checkpoint, do_lower_case=True,
                 max_seq_length=128, layer_indexes=(-1,), batch_size=32, num_threads=0,
                 use_xla=False, bucket_by_length=True, use_one_hot_embeddings=False):
        """Builds the graph, opens the session and restores the checkpoint.

        Args:
          bert_config_file: path of bert_config.json.
          vocab_file: path of vocab.txt.
          init_checkpoint: checkpoint prefix (or a directory holding one).
          do_lower_case: whether the tokenizer lower-cases (must match the checkpoint).
          max_seq_length: longer inputs are truncated to this many WordPiece tokens.
          layer_indexes: default encoder layers for `encode_tokens` and `encode`.
          batch_size: sentences per session run.
          num_threads: intra- and inter-op threads (0 = TensorFlow's choice).
          use_xla: compile the encoder with XLA; lengths are then rounded up to a multiple of 16.
          bucket_by_length: sort by length before batching (False pads to max_seq_length).
          use_one_hot_embeddings: one-hot matmul embedding lookup (only useful on TPU).

        Raises:
          ValueError: bad config, checkpoint, layer index or max_seq_length.
        """
        self.bert_config = modeling.BertConfig.from_json_file(bert_config_file)
        modeling.check_max_seq_length(self.bert_config, max_seq_length)
        if max_seq_length < 3:
            raise ValueError("max_seq_length %d leaves no room for text; use at least 3"
                             % max_seq_length)
        self.num_layers = self.bert_config.num_hidden_layers
        self.hidden_size = self.bert_config.hidden_size
        self.layer_indexes = parse_layer_indexes(layer_indexes, self.num_layers, "layer_indexes")
        self.init_checkpoint = resolve_checkpoint(init_checkpoint)
        self.tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file,
                                                    do_lower_case=do_lower_case)
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        self.use_xla = use_xla
        # XLA compiles one program per input shape: rounded lengths keep the shapes few.
        self.length_multiple = 16 if use_xla else 1
        self.graph_builds = 0
        self.checkpoint_restores = 0
        self.session_runs = 0
        self._build_graph(use_one_hot_embeddings)
        self._session = tf1.Session(graph=self._graph, config=session_config(num_threads))
        self._restore()

    def _build_graph(self, use_one_hot_embeddings):
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._input_ids = tf1.placeholder(tf.int32, [None, None], name="input_ids")
            self._input_mask = tf1.placeholder(tf.int32, [None, None], name="input_mask")
            self._input_type_ids = tf1.placeholder(tf.int32, [None, None], name="input_type_ids")
            # jit_scope marks the ops for XLA compilation; unlike the session's global_jit_level it
            # also works on CPU.
            scope = (tf1.xla.experimental.jit_scope(compile_ops=True) if self.use_xla
                     else contextlib.nullcontext())
            with scope:
                model = modeling.BertModel(config=self.bert_config, is_training=False,
                                           input_ids=self._input_ids,
                                           input_mask=self._input_mask,
                                           token_type_ids=self._input_type_ids,
                                           use_one_hot_embeddings=use_one_hot_embeddings)
            self._all_layers = model.get_all_encoder_layers()
            self._variables = tf1.global_variables()
        self.graph_builds += 1

    def _restore(self):
        with self._graph.as_default():
            assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
                self._variables, self.init_checkpoint)
        by_name = {v.name.split(":")[0]: v for v in self._variables}
        missing = [name for name in by_name if name not in initialized]
        # The pooler is not used for features; anything else missing means random outputs.
        encoder_names = [name for name in by_name if not name.startswith("bert/pooler/")]
        encoder_missing = [name for name in encoder_names if name not in initialized]
        if len(encoder_missing) == len(encoder_names):
            raise ValueError("checkpoint %s holds none of the encoder variables (e.g. %s); is it a "
                             "BERT checkpoint in the released naming? (convert Hugging Face models "
                             "with convert_checkpoint.py)"
                             % (self.init_checkpoint, encoder_missing[0]))
        if encoder_missing:
            tf1.logging.warning("%d encoder variables are not in %s and stay randomly initialised, "
                                "e.g. %s", len(encoder_missing), self.init_checkpoint,
                                encoder_missing[:3])
        with self._graph.as_default():
            saver = tf1.train.Saver({name: by_name[name] for name in assignment_map})
            init_missing = tf1.variables_initializer([by_name[name] for name in missing])
        # From here on any op creation (a hidden rebuild) would raise.
        self._graph.finalize()
        with self._graph.as_default():
            self._session.run(init_missing)
            saver.restore(self._session, self.init_checkpoint)
        self.checkpoint_restores += 1
        tf1.logging.info("Restored %d of %d variables from %s", len(assignment_map), len(by_name),
                         self.init_checkpoint)

    # -- inputs --------------------------------------------------------------------------------

    def features_from_texts(self, texts):
        """Converts texts (str, or (text_a, text_b) pairs) into unpadded `InputFeatures`."""
        features = []
        for unique_id, text in enumerate(texts):
            if isinstance(text, (tuple, list)):
                example = InputExample(unique_id, text[0], text[1])
            else:
                example = InputExample(unique_id, text, None)
            features.append(convert_example_to_features(example, self.max_seq_length,
                                                         self.tokenizer))
        return features

    def _padded_length(self, batch_features):
        if not self.bucket_by_length:
            return self.max_seq_length
        longest = max(len(f) for f in batch_features)
        rounded = -(-longest // self.length_multiple) * self.length_multiple
        return min(rounded, self.max_seq_length)

    def run_batches(self, features, layers, progress=None):
        """Runs the encoder over `features` batch by batch.

        Args:
          features: list of `InputFeatures` (unpadded).
          layers: encoder layer indexes to fetch.
          progress: (optional) `runtime.ProgressLogger`, updated by the sentences of each
            batch.

        Yields:
          `(positions, layer_states, input_mask)`: int array [batch] of positions into
          `features`, a list (one per layer) of float32 [batch, padded_length, hidden_size],
          int32 [batch, padded_length].
        """
        fetches = [self._all_layers[i] for i in layers]
        for positions in make_batches([len(f) for f in features], self.batch_size,
                                      self.bucket_by_length):
            batch = [features[p] for p in positions]
            arrays = pad_features(batch, self._padded_length(batch))
            states = self._session.run(fetches, feed_dict={
                self._input_ids: arrays["input_ids"],
                self._input_mask: arrays["input_mask"],
                self._input_type_ids: arrays["input_type_ids"]})
            self.session_runs += 1
            if progress is not None:
                progress.update(len(batch))
            yield positions, states, arrays["input_mask"]

    # -- outputs -------------------------------------------------------------------------------

    def encode_features(self, features, pooling="mean", layers=None, progress=None):
        """Pooled vectors for `features`: float32 [len(features), dim], rows in input order."""
        layers = self._layers(layers)
        fetch = pooling_layers(pooling, layers, self.num_layers)
        dim = self.output_dim(pooling, layers)
        out = np.zeros([len(features), dim], dtype=np.float32)
        for positions, states, mask in self.run_batches(features, fetch, progress):
            out[positions] = pool(states, mask, pooling)
        return out

    def encode_feature_tokens(self, features, layers=None, progress=None):
        """Token vectors: a list (input order) of float32 [layers, len(feature), hidden_size]."""
        layers = self._layers(layers)
        out = [None] * len(features)
        for positions, states, _ in self.run_batches(features, layers, progress):
            stacked = np.stack(states, axis=1)  # [batch, layers, padded_length, hidden_size]
            for row, p in enumerate(positions):
                out[p] = stacked[row, :, :len(features[p])]
        return out

    def encode(self, texts, pooling="mean", layers=None):
        """Sentence vectors.

        Args:
          texts: list of str (or (text_a, text_b) pairs).
          pooling: "cls", "mean", "max", "mean_max" or "first_last_mean".
          layers: encoder layer indexes to pool and concatenate (default: the encoder's
            `layer_indexes`); ignored by first_last_mean.

        Returns:
          float32 np.ndarray [len(texts), dim], rows in the order of `texts`.
        """
        if pooling not in POOLING_STRATEGIES[1:]:
            raise ValueError("unknown pooling %r; use one of %s"
                             % (pooling, ", ".join(POOLING_STRATEGIES[1:])))
        return self.encode_features(self.features_from_texts(texts), pooling, layers)

    def encode_tokens(self, texts, layers=None):
        """Token vectors: a list of `(tokens, float32 [layers, len(tokens), hidden_size])`."""
        features = self.features_from_texts(texts)
        states = self.encode_feature_tokens(features, layers)
        return [(f.tokens, s) for f, s in zip(features, states)]

    def output_dim(self, pooling, layers=None):
        """Width of a pooled vector for `pooling` over `layers`."""
        return pooled_dim(self.hidden_size, pooling, len(self._layers(layers)))

    def _layers(self, layers):
        if layers is None:
            return self.layer_indexes
        return parse_layer_indexes(layers, self.num_layers, "layers")

    def close(self):
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# ------------------------------------------------------------------------------------------------
# The reference path (--use_tpu): TPUEstimator.predict over inputs padded to max_seq_length.
# ------------------------------------------------------------------------------------------------

def input_fn_builder(features, seq_length):
    """An `input_fn` over in-memory features padded to `seq_length` (static shapes for TPU)."""
    arrays = pad_features(features, seq_length)
    unique_ids = np.array([f.unique_id for f in features], dtype=np.int32)

    def input_fn(params):
        """The actual input function."""
        batch_size = params["batch_size"]
        num_examples = len(features)
        # Constants rather than a generator: simple and fine for the file sizes this script is used
        # with (the TPU input pipeline cannot call back into Python anyway).
        d = tf.data.Dataset.from_tensor_slices({
            "unique_ids": tf.constant(unique_ids, shape=[num_examples], dtype=tf.int32),
            "input_ids": tf.constant(arrays["input_ids"], shape=[num_examples, seq_length],
                                     dtype=tf.int32),
            "input_mask": tf.constant(arrays["input_mask"], shape=[num_examples, seq_length],
                                      dtype=tf.int32),
            "input_type_ids": tf.constant(arrays["input_type_ids"],
                                          shape=[num_examples, seq_length], dtype=tf.int32),
        })
        return d.batch(batch_size=batch_size, drop_remainder=False)

    return input_fn


def model_fn_builder(bert_config, init_checkpoint, layer_indexes, use_tpu, use_one_hot_embeddings):
    """Returns a TPUEstimator `model_fn` predicting `layer_output_<j>` for the j-th layer index."""

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        """The `model_fn` for TPUEstimator."""
        if mode != tf.estimator.ModeKeys.PREDICT:
            raise ValueError("Only PREDICT modes are supported: %s" % (mode))

        model = modeling.BertModel(
            config=bert_config,
            is_training=False,
            input_ids=features["input_ids"],
            input_mask=features["input_mask"],
            token_type_ids=features["input_type_ids"],
            use_one_hot_embeddings=use_one_hot_embeddings)
        scaffold_fn = runtime.init_from_checkpoint(init_checkpoint, use_tpu)

        all_layers = model.get_all_encoder_layers()
        predictions = {"unique_id": features["unique_ids"]}
        for (i, layer_index) in enumerate(layer_indexes):
            predictions["layer_output_%d" % i] = all_layers[layer_index]
        return runtime.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn)

    return model_fn


def estimator_token_outputs(features, bert_config, init_checkpoint, layer_indexes, seq_length,
                            batch_size, options, use_one_hot_embeddings=False,
                            use_tpu_estimator=True, progress=None):
    """Token vectors through one `TPUEstimator.predict` call (builds a graph, restores weights).

    Args:
      features: list of `InputFeatures`.
      bert_config: `modeling.BertConfig`.
      init_checkpoint: checkpoint prefix.
      layer_indexes: encoder layers to return, in this order.
      seq_length: every input is padded to this length (max_seq_length).
      batch_size: predict batch size.
      options: `runtime.RuntimeOptions` (use_tpu, master, num_tpu_cores, ...).
      use_one_hot_embeddings: one-hot embedding lookup.
      use_tpu_estimator: TPUEstimator (True, the reference) or a plain Estimator.
      progress: (optional) `runtime.ProgressLogger`.

    Yields:
      float32 [len(layer_indexes), len(feature), hidden_size] per feature, in input order.
    """
    model_fn = model_fn_builder(bert_config, init_checkpoint, layer_indexes, options.use_tpu,
                                use_one_hot_embeddings)
    runner = runtime.build_runner(model_fn, options, model_dir=None, predict_batch_size=batch_size,
                                  use_tpu_estimator=use_tpu_estimator)
    by_id = {f.unique_id: f for f in features}
    for result in runner.predict(input_fn_builder(features, seq_length),
                                 yield_single_examples=True):
        feature = by_id[int(result["unique_id"])]
        states = np.stack([result["layer_output_%d" % j] for j in range(len(layer_indexes))])
        if progress is not None:
            progress.update(1)
        yield states[:, :len(feature)]


# ------------------------------------------------------------------------------------------------
# Output writers.
# ------------------------------------------------------------------------------------------------

def _rounded(values):
    """The reference's rounding, `round(float(x), 6)`, on a float32 array of any shape."""
    return [round(x, 6) for x in np.asarray(values).ravel().tolist()]


def token_json_line(feature, states, layer_indexes):
    """The reference JSON line for one example.

    Args:
      feature: `InputFeatures`.
      states: float32 [len(layer_indexes), len(feature.tokens), hidden_size].
      layer_indexes: the layer indexes as requested (written as `index`).
    """
    output_json = collections.OrderedDict()
    output_json["linex_index"] = feature.unique_id
    all_features = []
    for (i, token) in enumerate(feature.tokens):
        all_layers = []
        for (j, layer_index) in enumerate(layer_indexes):
            layers = collections.OrderedDict()
            layers["index"] = layer_index
            layers["values"] = _rounded(states[j, i])
            all_layers.append(layers)
        features = collections.OrderedDict()
        features["token"] = token
        features["layers"] = all_layers
        all_features.append(features)
    output_json["features"] = all_features
    return json.dumps(output_json) + "\n"


def pooled_json_line(unique_id, vector):
    """`{"linex_index": ..., "values": [...]}` for one pooled sentence vector [dim]."""
    output_json = collections.OrderedDict()
    output_json["linex_index"] = unique_id
    output_json["values"] = _rounded(vector)
    return json.dumps(output_json) + "\n"


def write_lines(output_file, lines):
    """Writes an iterable of strings to `output_file` atomically (UTF-8)."""
    with runtime.atomic_output(output_file) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            for line in lines:
                writer.write(line)


def write_npy(output_file, vectors, settings):
    """Writes float32 `vectors` [rows, dim] to `output_file`, `settings` to `<output_file>.json`."""
    with runtime.atomic_output(output_file) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "wb") as f:
            # A file object, not a name: np.save would append ".npy" to a name without it.
            np.save(f, np.asarray(vectors, dtype=np.float32))
    with runtime.atomic_output(output_file + ".json") as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            f.write(json.dumps(settings, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def validate_flags_or_throw(bert_config):
    """Checks flag values and combinations before any work.

    Returns:
      `(init_checkpoint, token_layers, pool_layers)`: the resolved checkpoint prefix, the parsed
      `--layers` (pooling none, else None) and the layers the pooling reads (else None).

    Raises:
      runtime.UsageError: naming the flag and the fix.
    """
    if not tf.io.gfile.exists(FLAGS.input_file):
        raise runtime.UsageError("--input_file=%s does not exist" % FLAGS.input_file)
    try:
        init_checkpoint = resolve_checkpoint(FLAGS.init_checkpoint)
    except ValueError as e:
        raise runtime.UsageError(str(e)) from None
    try:
        modeling.check_max_seq_length(bert_config, FLAGS.max_seq_length)
    except ValueError as e:
        raise runtime.UsageError(str(e)) from None
    if FLAGS.max_seq_length < 3:
        raise runtime.UsageError("--max_seq_length=%d leaves no room for text; use at least 3"
                                 % FLAGS.max_seq_length)
    if FLAGS.batch_size < 1:
        raise runtime.UsageError("--batch_size=%d must be at least 1" % FLAGS.batch_size)
    if FLAGS.num_threads < 0:
        raise runtime.UsageError("--num_threads=%d must be >= 0 (0 = TensorFlow's choice)"
                                 % FLAGS.num_threads)
    if FLAGS.output_format == "npy" and FLAGS.pooling_strategy == "none":
        raise runtime.UsageError(
            "--output_format=npy needs a pooled --pooling_strategy (cls, mean, max, mean_max, "
            "first_last_mean); per-token vectors are ragged and only written as jsonl")
    output_dir = os.path.dirname(FLAGS.output_file)
    if output_dir and not tf.io.gfile.isdir(output_dir):
        raise runtime.UsageError("the directory of --output_file=%s does not exist; create %s first"
                                 % (FLAGS.output_file, output_dir))
    # Only the layer flag that the chosen output reads is checked (--layers defaults to four layers,
    # which a pooled run over a smaller model must not trip over).
    num_layers = bert_config.num_hidden_layers
    token_layers, pool_layers = None, None
    try:
        if FLAGS.pooling_strategy == "none":
            token_layers = parse_layer_indexes(FLAGS.layers, num_layers, "--layers")
        else:
            pool_layers = pooling_layers(
                FLAGS.pooling_strategy,
                parse_layer_indexes(FLAGS.pooling_layer, num_layers, "--pooling_layer"), num_layers)
    except ValueError as e:
        raise runtime.UsageError(str(e)) from None
    return init_checkpoint, token_layers, pool_layers


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def token_outputs(features, layers, encoder=None, estimator_args=None, progress=None):
    """Yields `(feature, float32 [len(layers), len(feature), hidden_size])` in input order.

    Uses the encoder (CPU/GPU, bucketed, chunk by chunk so memory stays bounded) or, when
    `encoder` is None, one TPUEstimator.predict call with `estimator_args` (the reference path).
    """
    if not features:
        return
    if encoder is not None:
        for chunk in _chunks(features, _CHUNK_SIZE):
            for feature, states in zip(chunk, encoder.encode_feature_tokens(chunk, layers,
                                                                            progress)):
                yield feature, states
    else:
        outputs = estimator_token_outputs(features, layer_indexes=layers, progress=progress,
                                          **estimator_args)
        for feature, states in zip(features, outputs):
            yield feature, states


def pooled_outputs(features, pool_layers, pooling, encoder=None, estimator_args=None,
                   progress=None):
    """Sentence vectors float32 [len(features), dim], rows in input order."""
    if encoder is not None:
        return np.concatenate(
            [encoder.encode_features(chunk, pooling, pool_layers, progress)
             for chunk in _chunks(features, _CHUNK_SIZE)] or
            [np.zeros([0, encoder.output_dim(pooling, pool_layers)], np.float32)])
    rows = []
    for feature, states in token_outputs(features, pool_layers, None, estimator_args, progress):
        mask = np.ones([1, len(feature)], dtype=np.int32)
        rows.append(pool([s[None] for s in states], mask, pooling)[0])
    return np.stack(rows)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)

    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    init_checkpoint, token_layers, pool_layers = validate_flags_or_throw(bert_config)
    pooling = FLAGS.pooling_strategy

    examples = read_examples(FLAGS.input_file)
    tf1.logging.info("Read %d examples from %s", len(examples), FLAGS.input_file)

    encoder = None
    estimator_args = None
    if FLAGS.use_tpu:
        tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                               do_lower_case=FLAGS.do_lower_case)
        estimator_args = dict(
            bert_config=bert_config, init_checkpoint=init_checkpoint,
            seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size,
            options=runtime.RuntimeOptions.from_flags(FLAGS),
            use_one_hot_embeddings=FLAGS.use_one_hot_embeddings)
    else:
        encoder = BertEncoder(
            FLAGS.bert_config_file, FLAGS.vocab_file, init_checkpoint,
            do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length,
            layer_indexes=token_layers or pool_layers, batch_size=FLAGS.batch_size,
            num_threads=FLAGS.num_threads, use_xla=FLAGS.use_xla,
            bucket_by_length=FLAGS.bucket_by_length,
            use_one_hot_embeddings=FLAGS.use_one_hot_embeddings)
        tokenizer = encoder.tokenizer

    features = convert_examples_to_features(examples, FLAGS.max_seq_length, tokenizer)
    progress = runtime.ProgressLogger(total=len(features), unit="sentences",
                                      name="extract_features")
    if not features:
        tf1.logging.warning("%s has no lines; writing an empty output", FLAGS.input_file)

    if pooling == "none":
        rows = token_outputs(features, token_layers, encoder, estimator_args, progress)
        write_lines(FLAGS.output_file,
                    (token_json_line(f, s, token_layers) for f, s in rows))
    else:
        vectors = (pooled_outputs(features, pool_layers, pooling, encoder, estimator_args, progress)
                   if features else np.zeros([0, pooled_dim(bert_config.hidden_size, pooling,
                                                      len(pool_layers))], np.float32))
        if FLAGS.output_format == "jsonl":
            write_lines(FLAGS.output_file,
                        (pooled_json_line(f.unique_id, v) for f, v in zip(features, vectors)))
        else:
            write_npy(FLAGS.output_file, vectors, {
                "rows": int(vectors.shape[0]), "dim": int(vectors.shape[1]),
                "row_order": "row i = line i of input_file", "dtype": "float32",
                "pooling_strategy": pooling, "pooling_layer": pool_layers,
                "input_file": FLAGS.input_file, "init_checkpoint": init_checkpoint,
                "bert_config_file": FLAGS.bert_config_file, "vocab_file": FLAGS.vocab_file,
                "do_lower_case": FLAGS.do_lower_case, "max_seq_length": FLAGS.max_seq_length})
    progress.done()
    if encoder is not None:
        encoder.close()
    tf1.logging.info("Wrote %d rows to %s", len(features), FLAGS.output_file)


if __name__ == "__main__":
    flags.mark_flag_as_required("input_file")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("init_checkpoint")
    flags.mark_flag_as_required("output_file")
    runtime.run_main(main)
