"""The feature-extraction task library: lines -> examples -> features -> token or sentence vectors.

* data: `InputExample` / `InputFeatures` (unpadded; padding is added per batch), `read_examples`
  (one example per line, `A ||| B` pairs), `convert_examples_to_features`, `pad_features`,
  `make_batches` (length bucketing);
* vectors: `BertEncoder` (one `inference.InferenceModel`, graph built and checkpoint restored once),
  the NumPy pooling strategies (`pool`), and the reference TPUEstimator path
  (`estimator_token_outputs`) for `--use_tpu`;
* outputs: the reference JSON lines (`token_json_line`), pooled JSON lines and `.npy` arrays.

`extract_features.py` maps its flags onto these.
"""

import collections
import json

import numpy as np
import tensorflow as tf

import cli
import inference
import modeling
import runtime
import tokenization
import training

tf1 = tf.compat.v1

POOLING_STRATEGIES = ["none", "cls", "mean", "max", "mean_max", "first_last_mean"]
OUTPUT_FORMATS = ["jsonl", "npy"]

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

def example_from_line(unique_id, line):
    """Parses one (already stripped) line: `A ||| B` is a pair, anything else a single text."""
    text_a, text_b = cli.split_pair(line)
    return InputExample(unique_id=unique_id, text_a=text_a, text_b=text_b)


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


def _layer_name(index):
    return "layer_%d" % index


class BertEncoder(object):
    """Loads a BERT checkpoint once and encodes texts many times.

    The graph (an inference.InferenceModel, built and restored once, then finalized) takes int32
    inputs of shape [batch, length] for any batch size and length, so each batch is padded only to
    its longest member. `session_runs` counts batches.

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
        self.init_checkpoint = cli.resolve_checkpoint(init_checkpoint)
        self.tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file,
                                                    do_lower_case=do_lower_case)
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.bucket_by_length = bucket_by_length
        # XLA compiles one program per input shape: rounded lengths keep the shapes few.
        self.length_multiple = 16 if use_xla else 1
        self.session_runs = 0

        def all_layer_outputs(bert_config, inputs, num_labels=None):
            model = modeling.BertModel(config=bert_config, is_training=False,
                                       input_ids=inputs["input_ids"],
                                       input_mask=inputs["input_mask"],
                                       token_type_ids=inputs["segment_ids"],
                                       use_one_hot_embeddings=use_one_hot_embeddings)
            return {_layer_name(i): layer for i, layer in
                    enumerate(model.get_all_encoder_layers())}

        # The pooler is not used for features, so a checkpoint without it is fine.
        self.model = inference.InferenceModel(
            self.bert_config, self.init_checkpoint, all_layer_outputs,
            optional_prefixes=("bert/pooler/",), num_threads=num_threads, use_xla=use_xla)

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
          progress: (optional) `cli.ProgressLogger`, updated by the sentences of each
            batch.

        Yields:
          `(positions, layer_states, input_mask)`: int array [batch] of positions into
          `features`, a list (one per layer) of float32 [batch, padded_length, hidden_size],
          int32 [batch, padded_length].
        """
        names = [_layer_name(i % self.num_layers) for i in layers]
        for positions in make_batches([len(f) for f in features], self.batch_size,
                                      self.bucket_by_length):
            batch = [features[p] for p in positions]
            arrays = pad_features(batch, self._padded_length(batch))
            outputs = self.model.run({"input_ids": arrays["input_ids"],
                                      "input_mask": arrays["input_mask"],
                                      "segment_ids": arrays["input_type_ids"]}, fetch=names)
            states = [outputs[name] for name in names]
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
        self.model.close()

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
        scaffold_fn = training.init_from_checkpoint(init_checkpoint, use_tpu)

        all_layers = model.get_all_encoder_layers()
        predictions = {"unique_id": features["unique_ids"]}
        for (i, layer_index) in enumerate(layer_indexes):
            predictions["layer_output_%d" % i] = all_layers[layer_index]
        return training.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn)

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
    with cli.atomic_output(output_file) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            for line in lines:
                writer.write(line)


def write_npy(output_file, vectors, settings):
    """Writes float32 `vectors` [rows, dim] to `output_file`, `settings` to `<output_file>.json`."""
    with cli.atomic_output(output_file) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "wb") as f:
            # A file object, not a name: np.save would append ".npy" to a name without it.
            np.save(f, np.asarray(vectors, dtype=np.float32))
    with cli.atomic_output(output_file + ".json") as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            f.write(json.dumps(settings, indent=2) + "\n")


def token_outputs(features, layers, encoder=None, estimator_args=None, progress=None):
    """Yields `(feature, float32 [len(layers), len(feature), hidden_size])` in input order.

    Uses the encoder (CPU/GPU, bucketed, chunk by chunk so memory stays bounded) or, when
    `encoder` is None, one TPUEstimator.predict call with `estimator_args` (the reference path).
    """
    if not features:
        return
    if encoder is not None:
        for chunk in cli.chunks(features, _CHUNK_SIZE):
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
             for chunk in cli.chunks(features, _CHUNK_SIZE)] or
            [np.zeros([0, encoder.output_dim(pooling, pool_layers)], np.float32)])
    rows = []
    for feature, states in token_outputs(features, pool_layers, None, estimator_args, progress):
        mask = np.ones([1, len(feature)], dtype=np.int32)
        rows.append(pool([s[None] for s in states], mask, pooling)[0])
    return np.stack(rows)


