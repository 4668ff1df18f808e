"""The pretraining task library: the masked-LM and next-sentence heads, their data and metrics.

* data: `feature_spec` (the 7 features create_pretraining_data.py writes),
  `check_records_match_flags` (a record made with other settings fails in one line),
  `input_fn_builder`;
* model: `gather_indexes`, `get_masked_lm_output` (`cls/predictions`, output weights tied to the
  word embeddings), `get_next_sentence_output` (`cls/seq_relationship`), `create_model`,
  `metric_fn`, `model_fn_builder`: the released variable names, so released checkpoints continue
  here and ours load in the reference.

`run_pretraining.py` maps its flags onto these.
"""

import collections

import tensorflow as tf

import cli
import modeling
import training

tf1 = tf.compat.v1

# Keys of the eval result dict (metric_fn's plus the Estimator's `loss` and `global_step`); the
# reference's eval_results.txt holds exactly these.
EVAL_METRIC_NAMES = (
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
)

# The metric early stopping watches unless --early_stopping_metric says otherwise: the quantity
# continued pretraining is about (`loss` also mixes in the next-sentence loss, which saturates).
DEFAULT_EARLY_STOPPING_METRIC = "masked_lm_loss"

# Masked-LM head output: the loss is the weighted mean over real predictions, the per-example
# loss and log-probabilities are per predicted position ([batch_size * max_predictions_per_seq]).
# The next-sentence head's are per example ([batch_size]).
MaskedLmOutput = collections.namedtuple("MaskedLmOutput", ["loss", "per_example_loss", "log_probs"])
NextSentenceOutput = collections.namedtuple(
    "NextSentenceOutput", ["loss", "per_example_loss", "log_probs"]
)
PretrainingOutput = collections.namedtuple(
    "PretrainingOutput", ["total_loss", "masked_lm", "next_sentence"]
)


# ------------------------------------------------------------------------------------------------
# Data


def feature_spec(max_seq_length, max_predictions_per_seq):
    """The 7 features create_pretraining_data.py writes (all int64 but the float masked_lm_weights).

    Args:
      max_seq_length: int, length of input_ids / input_mask / segment_ids.
      max_predictions_per_seq: int, length of the three masked_lm_* features.

    Returns:
      dict feature name -> `tf.io.FixedLenFeature`.
    """
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def check_records_match_flags(
    input_file, max_seq_length, max_predictions_per_seq, vocab_size, flag_name
):
    """Reads the first record of a file and checks its lengths and ids against the flags and config.

    Parsing a record of another length fails deep inside tf.data with a message that names neither
    flag; this check turns that into one line that says which value to pass.

    Args:
      input_file: path of a TFRecord file written by create_pretraining_data.py.
      max_seq_length: int, --max_seq_length.
      max_predictions_per_seq: int, --max_predictions_per_seq.
      vocab_size: int, the config's vocab_size.
      flag_name: the flag the file came from (for the error message).

    Raises:
      cli.UsageError: the file is empty, not pretraining data, or made with other settings.
    """
    record = next(iter(tf.data.TFRecordDataset(input_file).take(1)), None)
    if record is None:
        raise cli.UsageError(
            f"--{flag_name}: {input_file} holds no record; "
            "regenerate it with create_pretraining_data.py"
        )
    features = tf.train.Example.FromString(record.numpy()).features.feature
    missing = [name for name in feature_spec(1, 1) if name not in features]
    if missing:
        raise cli.UsageError(
            f"--{flag_name}: {input_file} is not pretraining data "
            f"(no feature {', '.join(missing)}); "
            "write it with create_pretraining_data.py"
        )
    seq_length = len(features["input_ids"].int64_list.value)
    if seq_length != max_seq_length:
        raise cli.UsageError(
            f"--{flag_name}: {input_file} was written with max_seq_length={seq_length} but "
            f"--max_seq_length={max_seq_length}; pass --max_seq_length={seq_length}"
        )
    num_predictions = len(features["masked_lm_positions"].int64_list.value)
    if num_predictions != max_predictions_per_seq:
        raise cli.UsageError(
            f"--{flag_name}: {input_file} was written with "
            f"max_predictions_per_seq={num_predictions} "
            f"but --max_predictions_per_seq={max_predictions_per_seq}; "
            f"pass --max_predictions_per_seq={num_predictions}"
        )
    max_id = max(features["input_ids"].int64_list.value)
    if max_id >= vocab_size:
        raise cli.UsageError(
            f"--{flag_name}: {input_file} holds token id {max_id} but the config's vocab_size is "
            f"{vocab_size}; the data was made with another vocab than --bert_config_file's model"
        )


def input_fn_builder(
    input_files, max_seq_length, max_predictions_per_seq, is_training, num_cpu_threads=4
):
    """Creates an `input_fn(params)` over pretraining TFRecords, batched with params["batch_size"].

    Training reads the files in a shuffled order that changes every epoch, interleaves up to
    `num_cpu_threads` of them and shuffles records in a window of 100, as the reference.
    Evaluation reads the files in order, repeated, so a fixed number of eval steps always finds
    data. Both drop the last partial batch (TPUs need static shapes; the reference does the same in
    both modes).

    Args:
      input_files: list of TFRecord paths.
      max_seq_length: int.
      max_predictions_per_seq: int.
      is_training: bool.
      num_cpu_threads: int, parallel file readers and parsers.

    Returns:
      A function `input_fn(params) -> tf.data.Dataset` of feature dicts, every feature int32 of
        shape [batch_size, length] except `masked_lm_weights` (float32).
    """
    name_to_features = feature_spec(max_seq_length, max_predictions_per_seq)

    def input_fn(params):
        batch_size = params["batch_size"]
        if is_training:
            dataset = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
            dataset = dataset.repeat()
            dataset = dataset.shuffle(buffer_size=len(input_files))
            # `sloppy` interleave: read several files at once, take whichever record is ready first.
            cycle_length = min(num_cpu_threads, len(input_files))
            dataset = dataset.interleave(
                tf.data.TFRecordDataset,
                cycle_length=cycle_length,
                num_parallel_calls=cycle_length,
                deterministic=False,
            )
            dataset = dataset.shuffle(buffer_size=100)
        else:
            dataset = tf.data.TFRecordDataset(input_files)
            # Repeated because evaluation runs a fixed number of steps (--max_eval_steps).
            dataset = dataset.repeat()
        dataset = dataset.map(
            lambda record: training.decode_record(record, name_to_features),
            num_parallel_calls=num_cpu_threads,
        )
        dataset = dataset.batch(batch_size, drop_remainder=True)
        return dataset.prefetch(tf.data.AUTOTUNE)

    return input_fn


# ------------------------------------------------------------------------------------------------
# Model


def gather_indexes(sequence_tensor, positions):
    """Gathers the vectors at the given positions of every sequence of a batch.

    Args:
      sequence_tensor: float Tensor of shape [batch_size, seq_length, width].
      positions: int32 Tensor of shape [batch_size, num_positions], indexes into seq_length.

    Returns:
      float Tensor of shape [batch_size * num_positions, width], batch-major.
    """
    batch_size, seq_length, width = modeling.get_shape_list(sequence_tensor, expected_rank=3)
    # Offset of each sequence in the flattened [batch_size * seq_length, width] matrix.
    flat_offsets = tf.reshape(tf.range(0, batch_size, dtype=tf.int32) * seq_length, [-1, 1])
    flat_positions = tf.reshape(positions + flat_offsets, [-1])  # [B * P]
    flat_sequence_tensor = tf.reshape(sequence_tensor, [batch_size * seq_length, width])
    return tf.gather(flat_sequence_tensor, flat_positions)  # [B * P, width]


def get_masked_lm_output(
    bert_config, input_tensor, output_weights, positions, label_ids, label_weights
):
    """The masked-LM head `cls/predictions` and its loss.

    Args:
      bert_config: `modeling.BertConfig`.
      input_tensor: float Tensor [batch_size, seq_length, hidden_size], the encoder's last layer.
      output_weights: float Tensor [vocab_size, hidden_size], the word-embedding table (tied
        weights).
      positions: int32 Tensor [batch_size, max_predictions_per_seq], masked positions (0-padded).
      label_ids: int32 Tensor [batch_size, max_predictions_per_seq], original token ids (0-padded).
      label_weights: float32 Tensor [batch_size, max_predictions_per_seq], 1.0 real, 0.0 padding.

    Returns:
      `MaskedLmOutput(loss, per_example_loss, log_probs)`: loss is a scalar (weighted mean over real
      predictions), per_example_loss [batch_size * max_predictions_per_seq], log_probs
      [batch_size * max_predictions_per_seq, vocab_size].
    """
    input_tensor = gather_indexes(input_tensor, positions)  # [B * P, H]

    # Variable scopes follow the released checkpoints (cls/predictions/transform/dense,
    # .../LayerNorm).
    with tf1.variable_scope("cls/predictions"):
        # One more non-linear transform before the output layer; it is not used after pretraining.
        with tf1.variable_scope("transform"):
            input_tensor = modeling.dense(
                input_tensor,
                units=bert_config.hidden_size,
                activation=modeling.get_activation(bert_config.hidden_act),
                kernel_initializer=modeling.create_initializer(bert_config.initializer_range),
            )
            input_tensor = modeling.layer_norm(input_tensor)

        # The output weights are the input embeddings; only a per-token bias is added.
        output_bias = tf1.get_variable(
            "output_bias", shape=[bert_config.vocab_size], initializer=tf1.zeros_initializer()
        )
        logits = tf.matmul(input_tensor, output_weights, transpose_b=True)  # [B * P, V]
        logits = tf.nn.bias_add(logits, output_bias)
        # Mixed precision may compute the matmul in float16; the softmax and loss stay in float32.
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)

        label_ids = tf.reshape(label_ids, [-1])
        label_weights = tf.reshape(label_weights, [-1])
        one_hot_labels = tf.one_hot(label_ids, depth=bert_config.vocab_size, dtype=tf.float32)

        # Padded prediction slots carry weight 0 and do not count in the loss.
        per_example_loss = -tf.reduce_sum(log_probs * one_hot_labels, axis=[-1])
        numerator = tf.reduce_sum(label_weights * per_example_loss)
        denominator = tf.reduce_sum(label_weights) + 1e-5
        loss = numerator / denominator

    return MaskedLmOutput(loss, per_example_loss, log_probs)


def get_next_sentence_output(bert_config, input_tensor, labels):
    """The next-sentence head `cls/seq_relationship` and its loss.

    Args:
      bert_config: `modeling.BertConfig`.
      input_tensor: float Tensor [batch_size, hidden_size], the pooled [CLS] output.
      labels: int32 Tensor [batch_size, 1] or [batch_size]: 0 = actual next sentence, 1 = random.

    Returns:
      `NextSentenceOutput(loss, per_example_loss, log_probs)`: loss is the scalar mean
      cross-entropy,
      per_example_loss [batch_size], log_probs [batch_size, 2].
    """
    # Hand-made weights stored [out, in] as in the released checkpoints, hence transpose_b below.
    with tf1.variable_scope("cls/seq_relationship"):
        output_weights = tf1.get_variable(
            "output_weights",
            shape=[2, bert_config.hidden_size],
            initializer=modeling.create_initializer(bert_config.initializer_range),
        )
        output_bias = tf1.get_variable(
            "output_bias", shape=[2], initializer=tf1.zeros_initializer()
        )

        logits = tf.matmul(input_tensor, output_weights, transpose_b=True)  # [B, 2]
        logits = tf.nn.bias_add(logits, output_bias)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
        labels = tf.reshape(labels, [-1])
        one_hot_labels = tf.one_hot(labels, depth=2, dtype=tf.float32)
        per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
        loss = tf.reduce_mean(per_example_loss)
    return NextSentenceOutput(loss, per_example_loss, log_probs)


def create_model(bert_config, is_training, features, use_one_hot_embeddings):
    """Builds the encoder and both pretraining heads on a batch of features.

    Args:
      bert_config: `modeling.BertConfig`.
      is_training: bool, enables dropout.
      features: dict of int32 Tensors as produced by `input_fn_builder` (masked_lm_weights float32).
      use_one_hot_embeddings: bool, one-hot matmul embedding lookup (faster on TPU).

    Returns:
      `PretrainingOutput(total_loss, masked_lm, next_sentence)`; total_loss = masked-LM loss +
        next-sentence loss.
    """
    model = modeling.BertModel(
        config=bert_config,
        is_training=is_training,
        input_ids=features["input_ids"],
        input_mask=features["input_mask"],
        token_type_ids=features["segment_ids"],
        use_one_hot_embeddings=use_one_hot_embeddings,
    )
    masked_lm = get_masked_lm_output(
        bert_config,
        model.get_sequence_output(),
        model.get_embedding_table(),
        features["masked_lm_positions"],
        features["masked_lm_ids"],
        features["masked_lm_weights"],
    )
    next_sentence = get_next_sentence_output(
        bert_config, model.get_pooled_output(), features["next_sentence_labels"]
    )
    return PretrainingOutput(masked_lm.loss + next_sentence.loss, masked_lm, next_sentence)


def metric_fn(
    masked_lm_example_loss,
    masked_lm_log_probs,
    masked_lm_ids,
    masked_lm_weights,
    next_sentence_example_loss,
    next_sentence_log_probs,
    next_sentence_labels,
):
    """Eval metrics of the reference: masked-LM and next-sentence accuracy and mean loss.

    Args:
      masked_lm_example_loss: float [batch_size * max_predictions_per_seq].
      masked_lm_log_probs: float [batch_size * max_predictions_per_seq, vocab_size].
      masked_lm_ids: int32 [batch_size, max_predictions_per_seq].
      masked_lm_weights: float [batch_size, max_predictions_per_seq]; padding slots (0.0) are
        ignored.
      next_sentence_example_loss: float [batch_size].
      next_sentence_log_probs: float [batch_size, 2].
      next_sentence_labels: int32 [batch_size, 1].

    Returns:
      dict metric name -> (value, update_op) of `tf.compat.v1.metrics`.
    """
    masked_lm_log_probs = tf.reshape(masked_lm_log_probs, [-1, masked_lm_log_probs.shape[-1]])
    masked_lm_predictions = tf.argmax(masked_lm_log_probs, axis=-1, output_type=tf.int32)
    masked_lm_example_loss = tf.reshape(masked_lm_example_loss, [-1])
    masked_lm_ids = tf.reshape(masked_lm_ids, [-1])
    masked_lm_weights = tf.reshape(masked_lm_weights, [-1])
    masked_lm_accuracy = tf1.metrics.accuracy(
        labels=masked_lm_ids, predictions=masked_lm_predictions, weights=masked_lm_weights
    )
    masked_lm_mean_loss = tf1.metrics.mean(values=masked_lm_example_loss, weights=masked_lm_weights)

    next_sentence_log_probs = tf.reshape(next_sentence_log_probs, [-1, 2])
    next_sentence_predictions = tf.argmax(next_sentence_log_probs, axis=-1, output_type=tf.int32)
    next_sentence_labels = tf.reshape(next_sentence_labels, [-1])
    next_sentence_accuracy = tf1.metrics.accuracy(
        labels=next_sentence_labels, predictions=next_sentence_predictions
    )
    next_sentence_mean_loss = tf1.metrics.mean(values=next_sentence_example_loss)

    return {
        "masked_lm_accuracy": masked_lm_accuracy,
        "masked_lm_loss": masked_lm_mean_loss,
        "next_sentence_accuracy": next_sentence_accuracy,
        "next_sentence_loss": next_sentence_mean_loss,
    }


def model_fn_builder(
    bert_config,
    init_checkpoint,
    learning_rate,
    num_train_steps,
    num_warmup_steps,
    use_tpu=False,
    use_one_hot_embeddings=None,
):
    """Returns the `model_fn(features, labels, mode, params)` closure for the runtime's Estimator.

    Args:
      bert_config: `modeling.BertConfig`.
      init_checkpoint: (optional) checkpoint to initialise matching bert/ and cls/ variables from.
      learning_rate: float, peak learning rate.
      num_train_steps: int, decay horizon of the learning rate.
      num_warmup_steps: int, linear warmup steps.
      use_tpu: bool, the model runs on a TPU (warm start inside a scaffold, CrossShardOptimizer).
      use_one_hot_embeddings: one-hot embedding lookups (default: use_tpu, as the reference).

    Returns:
      model_fn supporting TRAIN and EVAL.
    """

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        if mode not in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.EVAL):
            raise ValueError(
                f"run_pretraining supports only TRAIN and EVAL, not {mode}; to get features or "
                "predictions from a pretrained checkpoint use extract_features.py"
            )

        tf1.logging.info("*** Features ***")
        for name in sorted(features.keys()):
            tf1.logging.info("  name = %s, shape = %s", name, features[name].shape)

        is_training = mode == tf.estimator.ModeKeys.TRAIN
        one_hot = use_tpu if use_one_hot_embeddings is None else use_one_hot_embeddings
        outputs = create_model(bert_config, is_training, features, use_one_hot_embeddings=one_hot)
        scaffold_fn = training.init_from_checkpoint(init_checkpoint, use_tpu)

        if is_training:
            train_op = training.create_train_op(
                outputs.total_loss, params, learning_rate, num_train_steps, num_warmup_steps,
                use_tpu
            )
            return training.make_spec(
                mode, params, loss=outputs.total_loss, train_op=train_op, scaffold_fn=scaffold_fn
            )

        eval_metrics = (
            metric_fn,
            [
                outputs.masked_lm.per_example_loss,
                outputs.masked_lm.log_probs,
                features["masked_lm_ids"],
                features["masked_lm_weights"],
                outputs.next_sentence.per_example_loss,
                outputs.next_sentence.log_probs,
                features["next_sentence_labels"],
            ],
        )
        return training.make_spec(
            mode,
            params,
            loss=outputs.total_loss,
            eval_metrics=eval_metrics,
            scaffold_fn=scaffold_fn,
        )

    return model_fn
