# coding=utf-8
"""Masked-LM + next-sentence pretraining of BERT: google-research/bert's run_pretraining.py on TF 2.15.

Reads the TFRecords written by create_pretraining_data.py and trains (or evaluates) the encoder of
modeling.py with the two released pretraining heads:

  cls/predictions      masked-LM head: transform/dense [H, H], transform/LayerNorm, output_bias [V];
                       the output weights are tied to bert/embeddings/word_embeddings.
  cls/seq_relationship next-sentence head: output_weights [2, H], output_bias [2].

so checkpoints written here and the released `bert_model.ckpt` files load into each other unchanged.

Continued (domain) pretraining from a released checkpoint, evaluated on held-out data with early
stopping:

    python run_pretraining.py \
      --bert_config_file=uncased_L-12_H-768_A-12/bert_config.json \
      --init_checkpoint=uncased_L-12_H-768_A-12/bert_model.ckpt \
      --input_file=/data/train-*.tfrecord --eval_input_file=/data/heldout.tfrecord \
      --output_dir=/tmp/pretraining_output --do_train=true --do_eval=true \
      --max_seq_length=128 --max_predictions_per_seq=20 \
      --train_batch_size=32 --num_train_steps=10000 --num_warmup_steps=1000 --learning_rate=2e-5 \
      --save_checkpoints_steps=1000 --max_steps_without_decrease=3000 \
      --early_stopping_metric=masked_lm_loss

Omit --init_checkpoint to pretrain from scratch. Without --eval_input_file evaluation reads
--input_file, as the reference does (that measures fit to the training data, not generalisation).

Evaluation during training: with --do_train --do_eval and --max_steps_without_decrease > 0 the
model is evaluated after every checkpoint (--throttle_secs) and training stops when
--early_stopping_metric has not improved for that many steps; the best checkpoint is copied to
<output_dir>/best/ and eval_results.txt holds the last evaluation. The eval metrics of this script
are `loss` (masked-LM + next-sentence loss), `masked_lm_loss`, `masked_lm_accuracy`,
`next_sentence_loss` and `next_sentence_accuracy`. The shared runtime's default metric name
`eval_loss` belongs to the classifier, so here an unset --early_stopping_metric means
`masked_lm_loss`: the quantity continued pretraining is about (`loss` also mixes in the
next-sentence loss, which saturates early). Other names are rejected with the list above.

All shared runtime flags apply (--num_gpus, --use_amp, --use_xla, --num_accumulation_steps,
--optimizer=lamb, --keep_checkpoint_max, ...); see runtime.py.
"""

import collections
import dataclasses

import tensorflow as tf
from absl import flags

import modeling
import runtime

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string(
    "bert_config_file",
    None,
    "The config json file corresponding to the pre-trained BERT model. "
    "This specifies the model architecture.",
)

flags.DEFINE_string(
    "input_file", None, "Input TF example files (can be a glob or comma separated)."
)

flags.DEFINE_string(
    "output_dir", None, "The output directory where the model checkpoints will be written."
)

## Other parameters
flags.DEFINE_string(
    "init_checkpoint", None, "Initial checkpoint (usually from a pre-trained BERT model)."
)

flags.DEFINE_integer(
    "max_seq_length",
    128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Sequences longer than this will be truncated, and sequences shorter "
    "than this will be padded. Must match data generation.",
)

flags.DEFINE_integer(
    "max_predictions_per_seq",
    20,
    "Maximum number of masked LM predictions per sequence. " "Must match data generation.",
)

flags.DEFINE_bool("do_train", False, "Whether to run training.")

flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")

flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")

flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")

flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")

flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")

flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

# save_checkpoints_steps, iterations_per_loop, use_tpu, tpu_name, tpu_zone, gcp_project, master and
# num_tpu_cores: the reference flags, defined once for every runner by the shared runtime.
runtime.define_checkpoint_flags(save_checkpoints_steps=1000, iterations_per_loop=1000)
runtime.define_tpu_flags()

## New parameters (not in the reference)
flags.DEFINE_string(
    "eval_input_file",
    None,
    "Held-out TF example files for --do_eval (can be a glob or comma separated). Default: "
    "--input_file, the reference behaviour, which evaluates on the training data.",
)

runtime.define_runtime_flags()
runtime.define_eval_during_training_flags()

# Keys of the eval result dict (metric_fn's plus the Estimator's `loss` and `global_step`); the
# reference's eval_results.txt holds exactly these.
EVAL_METRIC_NAMES = (
    "loss",
    "masked_lm_accuracy",
    "masked_lm_loss",
    "next_sentence_accuracy",
    "next_sentence_loss",
)

# The runtime's default --early_stopping_metric names the classifier's metric; this script has
# none of that name and uses the masked-LM loss instead.
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


def expand_input_files(patterns, flag_name):
    """Expands a comma-separated list of globs into the sorted list of files it matches.

    Args:
      patterns: str, e.g. "/data/train-*.tfrecord,/data/extra.tfrecord".
      flag_name: the flag the patterns came from (for the error message).

    Returns:
      list of file paths.

    Raises:
      runtime.UsageError: a pattern matches no file.
    """
    input_files = []
    for pattern in patterns.split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise runtime.UsageError(
                f"--{flag_name}={pattern} matches no file; pass the TFRecord file(s) written by "
                "create_pretraining_data.py (comma-separated, globs allowed)"
            )
        input_files.extend(sorted(matches))
    if not input_files:
        raise runtime.UsageError(f"--{flag_name} is empty; pass at least one TFRecord file")
    return input_files


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
      runtime.UsageError: the file is empty, not pretraining data, or made with other settings.
    """
    record = next(iter(tf.data.TFRecordDataset(input_file).take(1)), None)
    if record is None:
        raise runtime.UsageError(
            f"--{flag_name}: {input_file} holds no record; "
            "regenerate it with create_pretraining_data.py"
        )
    features = tf.train.Example.FromString(record.numpy()).features.feature
    missing = [name for name in feature_spec(1, 1) if name not in features]
    if missing:
        raise runtime.UsageError(
            f"--{flag_name}: {input_file} is not pretraining data "
            f"(no feature {', '.join(missing)}); "
            "write it with create_pretraining_data.py"
        )
    seq_length = len(features["input_ids"].int64_list.value)
    if seq_length != max_seq_length:
        raise runtime.UsageError(
            f"--{flag_name}: {input_file} was written with max_seq_length={seq_length} but "
            f"--max_seq_length={max_seq_length}; pass --max_seq_length={seq_length}"
        )
    num_predictions = len(features["masked_lm_positions"].int64_list.value)
    if num_predictions != max_predictions_per_seq:
        raise runtime.UsageError(
            f"--{flag_name}: {input_file} was written with "
            f"max_predictions_per_seq={num_predictions} "
            f"but --max_predictions_per_seq={max_predictions_per_seq}; "
            f"pass --max_predictions_per_seq={num_predictions}"
        )
    max_id = max(features["input_ids"].int64_list.value)
    if max_id >= vocab_size:
        raise runtime.UsageError(
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
            lambda record: runtime.decode_record(record, name_to_features),
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
    bert_config, init_checkpoint, learning_rate, num_train_steps, num_warmup_steps
):
    """Returns the `model_fn(features, labels, mode, params)` closure for the runtime's Estimator.

    Args:
      bert_config: `modeling.BertConfig`.
      init_checkpoint: (optional) checkpoint to initialise matching bert/ and cls/ variables from.
      learning_rate: float, peak learning rate.
      num_train_steps: int, decay horizon of the learning rate.
      num_warmup_steps: int, linear warmup steps.

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
        outputs = create_model(
            bert_config, is_training, features, use_one_hot_embeddings=params["use_tpu"]
        )
        scaffold_fn = runtime.init_from_checkpoint(init_checkpoint, params["use_tpu"])

        if is_training:
            train_op = runtime.create_train_op(
                outputs.total_loss, params, learning_rate, num_train_steps, num_warmup_steps
            )
            return runtime.make_spec(
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
        return runtime.make_spec(
            mode,
            params,
            loss=outputs.total_loss,
            eval_metrics=eval_metrics,
            scaffold_fn=scaffold_fn,
        )

    return model_fn


# ------------------------------------------------------------------------------------------------
# main


def validate_flags(flag_values, bert_config):
    """Checks flag combinations before any work; raises runtime.UsageError naming the fix."""
    if not flag_values.do_train and not flag_values.do_eval:
        raise runtime.UsageError(
            "At least one of `do_train` or `do_eval` must be True: pass --do_train and/or --do_eval"
        )
    modeling.check_max_seq_length(bert_config, flag_values.max_seq_length)
    for name in (
        "train_batch_size",
        "eval_batch_size",
        "max_seq_length",
        "max_predictions_per_seq",
    ):
        if flag_values[name].value <= 0:
            raise runtime.UsageError(f"--{name} must be positive, got {flag_values[name].value}")
    if flag_values.do_train and flag_values.num_train_steps <= 0:
        raise runtime.UsageError(
            f"--num_train_steps must be positive with --do_train, got {flag_values.num_train_steps}"
        )
    if flag_values.do_eval and flag_values.max_eval_steps <= 0:
        raise runtime.UsageError(
            f"--max_eval_steps must be positive with --do_eval, got {flag_values.max_eval_steps}"
        )


def runtime_options_from_flags(flag_values):
    """The RuntimeOptions of the flags, with this script's early-stopping metric checked.

    Raises:
      runtime.UsageError: --early_stopping_metric names no metric this script computes.
    """
    options = runtime.RuntimeOptions.from_flags(flag_values)
    if options.early_stopping_metric not in EVAL_METRIC_NAMES:
        if not flag_values["early_stopping_metric"].present:
            options = dataclasses.replace(
                options, early_stopping_metric=DEFAULT_EARLY_STOPPING_METRIC
            )
        elif options.max_steps_without_decrease > 0:
            raise runtime.UsageError(
                f"--early_stopping_metric={options.early_stopping_metric} is not a pretraining "
                f"eval metric; use one of {', '.join(EVAL_METRIC_NAMES)} (e.g. masked_lm_loss)"
            )
    return options


def log_files(title, files):
    tf1.logging.info("*** %s ***", title)
    for path in files:
        tf1.logging.info("  %s", path)


def resolve_input_files(bert_config):
    """Expands --input_file and --eval_input_file and checks their first records against the flags.

    Returns:
      (train_files, eval_files); eval_files are the training files unless --eval_input_file is set,
      as in the reference.
    """
    input_files = expand_input_files(FLAGS.input_file, "input_file")
    log_files("Input Files", input_files)
    eval_files = input_files
    checked = [(input_files[0], "input_file")]
    if FLAGS.eval_input_file:
        eval_files = expand_input_files(FLAGS.eval_input_file, "eval_input_file")
        log_files("Eval Input Files", eval_files)
        if FLAGS.do_eval:
            checked.append((eval_files[0], "eval_input_file"))
        else:
            tf1.logging.warning("--eval_input_file is ignored without --do_eval")
    for path, flag_name in checked:
        check_records_match_flags(path, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
                                  bert_config.vocab_size, flag_name)
    return input_files, eval_files


def run_train_and_evaluate(runner, options, train_input_fn, eval_input_fn):
    """Training with evaluation after each checkpoint and early stopping; returns eval metrics."""
    tf1.logging.info("***** Running training with evaluation after each checkpoint *****")
    tf1.logging.info("  Batch size = %d, eval batch size = %d, eval steps = %d",
                     FLAGS.train_batch_size, FLAGS.eval_batch_size, FLAGS.max_eval_steps)
    tf1.logging.info("  Early stopping on %s after %d steps without improvement",
                     options.early_stopping_metric, options.max_steps_without_decrease)
    result = runner.train_and_evaluate(train_input_fn, eval_input_fn,
                                       max_steps=FLAGS.num_train_steps,
                                       eval_steps=FLAGS.max_eval_steps)
    tf1.logging.info("Best %s = %s at %s%s", options.early_stopping_metric, result.best_metric,
                     result.best_checkpoint, " (stopped early)" if result.stopped_early else "")
    if result.final_metrics:
        return result.final_metrics
    # Training had already reached --num_train_steps: evaluate the latest checkpoint.
    return runner.evaluate(eval_input_fn, steps=FLAGS.max_eval_steps)


def run_train(runner, train_input_fn):
    tf1.logging.info("***** Running training *****")
    tf1.logging.info("  Batch size = %d", FLAGS.train_batch_size)
    tf1.logging.info("  Num steps = %d", FLAGS.num_train_steps)
    runner.train(train_input_fn, max_steps=FLAGS.num_train_steps)


def run_eval(runner, eval_input_fn):
    tf1.logging.info("***** Running evaluation *****")
    tf1.logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    tf1.logging.info("  Num steps = %d", FLAGS.max_eval_steps)
    return runner.evaluate(eval_input_fn, steps=FLAGS.max_eval_steps)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    validate_flags(FLAGS, bert_config)
    options = runtime_options_from_flags(FLAGS)
    input_files, eval_files = resolve_input_files(bert_config)
    tf.io.gfile.makedirs(FLAGS.output_dir)

    model_fn = model_fn_builder(
        bert_config=bert_config,
        init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate,
        num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps,
    )
    runner = runtime.build_runner(model_fn, options, FLAGS.output_dir,
                                  train_batch_size=FLAGS.train_batch_size,
                                  eval_batch_size=FLAGS.eval_batch_size)
    train_input_fn = input_fn_builder(input_files, FLAGS.max_seq_length,
                                      FLAGS.max_predictions_per_seq, is_training=True)
    eval_input_fn = input_fn_builder(eval_files, FLAGS.max_seq_length,
                                     FLAGS.max_predictions_per_seq, is_training=False)

    if FLAGS.do_train and FLAGS.do_eval and options.max_steps_without_decrease > 0:
        runtime.write_eval_results(
            run_train_and_evaluate(runner, options, train_input_fn, eval_input_fn),
            FLAGS.output_dir)
        return
    if FLAGS.do_train:
        run_train(runner, train_input_fn)
    if FLAGS.do_eval:
        runtime.write_eval_results(run_eval(runner, eval_input_fn), FLAGS.output_dir)


if __name__ == "__main__":
    flags.mark_flag_as_required("input_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    runtime.run_main(main)
