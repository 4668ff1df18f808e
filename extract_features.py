"""Extracts contextual token vectors (ELMo-like) or pooled sentence vectors from a BERT checkpoint.

Two ways in:
- The script: the reference's `extract_features.py` (same 13 flags, same JSON-lines output) plus
  pooled sentence vectors (`--pooling_strategy`), `.npy` output, length bucketing and threads.
- `BertEncoder` (tasks/features.py, importable from here as in the first wave): a reusable encoder
  that builds its graph and restores the checkpoint once; later `encode(...)` /
  `encode_tokens(...)` calls only run the session.

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

import os

import numpy as np
import tensorflow as tf
from absl import flags

import cli
import modeling
import runtime
import tokenization
from tasks import features

# The reference's names (and the first wave's BertEncoder) stay importable from here.
from tasks.features import (  # noqa: F401
    BertEncoder,
    InputExample,
    InputFeatures,
    convert_examples_to_features,
    input_fn_builder,
    model_fn_builder,
    read_examples,
)

tf1 = tf.compat.v1

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """The reference's 13 flags (TPU ones from the shared group) and the pooling/output flags."""
    # Required parameters (marked required in the __main__ block, as in the reference), and the
    # model flags: bert_config_file, max_seq_length, init_checkpoint, vocab_file, do_lower_case.
    cli.define_model_flags(flag_values=flag_values)

    flags.DEFINE_string("input_file", None,
                        "Text file with one example per line; `A ||| B` lines are sentence pairs.",
                        flag_values=flag_values)

    flags.DEFINE_string("output_file", None,
                        "Where to write the features: JSON lines (--output_format=jsonl) or a .npy "
                        "array plus <output_file>.json (--output_format=npy).",
                        flag_values=flag_values)

    flags.DEFINE_string("layers", "-1,-2,-3,-4",
                        "Comma-separated encoder layer indexes whose token vectors are written "
                        "with --pooling_strategy=none (0 = first Transformer block, -1 = last).",
                        flag_values=flag_values)

    flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.", flag_values=flag_values)

    flags.DEFINE_bool("use_one_hot_embeddings", False,
                      "If True, tf.one_hot will be used for embedding lookups, otherwise "
                      "tf.nn.embedding_lookup will be used. On TPUs, this should be True "
                      "since it is much faster.", flag_values=flag_values)

    # use_tpu, master, num_tpu_cores (and tpu_name, tpu_zone, gcp_project) from the shared group.
    cli.define_tpu_flags(flag_values=flag_values)

    # Other parameters (not in the reference)

    flags.DEFINE_enum("pooling_strategy", "none", features.POOLING_STRATEGIES,
                      "none writes per-token vectors in the reference format; the others write one "
                      "sentence vector per line (padding excluded from every pool).",
                      flag_values=flag_values)

    flags.DEFINE_string("pooling_layer", "-1",
                        "Comma-separated encoder layer index(es) to pool (pools of several layers "
                        "are concatenated). Ignored by first_last_mean, which uses the first and "
                        "last layers.", flag_values=flag_values)

    flags.DEFINE_enum("output_format", "jsonl", features.OUTPUT_FORMATS,
                      "jsonl (one JSON object per input line) or npy (one float32 array, rows in "
                      "input order, plus <output_file>.json with the settings; pooled strategies "
                      "only).", flag_values=flag_values)

    flags.DEFINE_integer("num_threads", 0,
                         "Intra-op and inter-op thread count of the TensorFlow session; 0 lets "
                         "TensorFlow choose (all cores).", flag_values=flag_values)

    flags.DEFINE_bool("bucket_by_length", True,
                      "Batch sentences of similar length and pad each batch only to its longest "
                      "member (same results, less padding). False pads every sentence to "
                      "--max_seq_length, as "
                      "the reference does. Ignored with --use_tpu (TPUs need static shapes).",
                      flag_values=flag_values)

    flags.DEFINE_bool("use_xla", False,
                      "Compile the encoder with XLA (CPU/GPU). Each distinct padded batch shape is "
                      "compiled once, so bucket lengths are rounded up to a multiple of 16.",
                      flag_values=flag_values)


def validate_flags(bert_config, input_file, output_file, init_checkpoint, max_seq_length,
                   batch_size, num_threads, output_format, pooling_strategy, layers,
                   pooling_layer):
    """Checks flag values and combinations before any work.

    Returns:
      `(init_checkpoint, token_layers, pool_layers)`: the resolved checkpoint prefix, the parsed
      `--layers` (pooling none, else None) and the layers the pooling reads (else None).

    Raises:
      cli.UsageError: naming the flag and the fix.
    """
    if not tf.io.gfile.exists(input_file):
        raise cli.UsageError("--input_file=%s does not exist" % input_file)
    init_checkpoint = cli.resolve_checkpoint(init_checkpoint)
    try:
        modeling.check_max_seq_length(bert_config, max_seq_length)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    if max_seq_length < 3:
        raise cli.UsageError("--max_seq_length=%d leaves no room for text; use at least 3"
                             % max_seq_length)
    if batch_size < 1:
        raise cli.UsageError("--batch_size=%d must be at least 1" % batch_size)
    if num_threads < 0:
        raise cli.UsageError("--num_threads=%d must be >= 0 (0 = TensorFlow's choice)"
                             % num_threads)
    if output_format == "npy" and pooling_strategy == "none":
        raise cli.UsageError(
            "--output_format=npy needs a pooled --pooling_strategy (cls, mean, max, mean_max, "
            "first_last_mean); per-token vectors are ragged and only written as jsonl")
    output_dir = os.path.dirname(output_file)
    if output_dir and not tf.io.gfile.isdir(output_dir):
        raise cli.UsageError("the directory of --output_file=%s does not exist; create %s first"
                             % (output_file, output_dir))
    # Only the layer flag that the chosen output reads is checked (--layers defaults to four
    # layers, which a pooled run over a smaller model must not trip over).
    num_layers = bert_config.num_hidden_layers
    token_layers, pool_layers = None, None
    try:
        if pooling_strategy == "none":
            token_layers = features.parse_layer_indexes(layers, num_layers, "--layers")
        else:
            pool_layers = features.pooling_layers(
                pooling_strategy,
                features.parse_layer_indexes(pooling_layer, num_layers, "--pooling_layer"),
                num_layers)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    return init_checkpoint, token_layers, pool_layers


def write_outputs(rows_or_vectors, example_features, pooling, output_file, output_format,
                  token_layers, settings):
    """Writes token JSON lines, pooled JSON lines or an .npy array, atomically."""
    if pooling == "none":
        features.write_lines(output_file, (features.token_json_line(f, s, token_layers)
                                           for f, s in rows_or_vectors))
    elif output_format == "jsonl":
        features.write_lines(output_file, (features.pooled_json_line(f.unique_id, v)
                                           for f, v in zip(example_features, rows_or_vectors)))
    else:
        features.write_npy(output_file, rows_or_vectors, dict(
            rows=int(rows_or_vectors.shape[0]), dim=int(rows_or_vectors.shape[1]), **settings))


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    init_checkpoint, token_layers, pool_layers = validate_flags(
        bert_config, FLAGS.input_file, FLAGS.output_file, FLAGS.init_checkpoint,
        FLAGS.max_seq_length, FLAGS.batch_size, FLAGS.num_threads, FLAGS.output_format,
        FLAGS.pooling_strategy, FLAGS.layers, FLAGS.pooling_layer)
    pooling = FLAGS.pooling_strategy

    examples = features.read_examples(FLAGS.input_file)
    tf1.logging.info("Read %d examples from %s", len(examples), FLAGS.input_file)
    encoder = estimator_args = None
    if FLAGS.use_tpu:
        tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                               do_lower_case=FLAGS.do_lower_case)
        estimator_args = dict(
            bert_config=bert_config, init_checkpoint=init_checkpoint,
            seq_length=FLAGS.max_seq_length, batch_size=FLAGS.batch_size,
            options=runtime.RuntimeOptions.from_flags(FLAGS),
            use_one_hot_embeddings=FLAGS.use_one_hot_embeddings)
    else:
        encoder = features.BertEncoder(
            FLAGS.bert_config_file, FLAGS.vocab_file, init_checkpoint,
            do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length,
            layer_indexes=token_layers or pool_layers, batch_size=FLAGS.batch_size,
            num_threads=FLAGS.num_threads, use_xla=FLAGS.use_xla,
            bucket_by_length=FLAGS.bucket_by_length,
            use_one_hot_embeddings=FLAGS.use_one_hot_embeddings)
        tokenizer = encoder.tokenizer

    example_features = features.convert_examples_to_features(examples, FLAGS.max_seq_length,
                                                             tokenizer)
    progress = cli.ProgressLogger(total=len(example_features), unit="sentences",
                                  name="extract_features")
    if not example_features:
        tf1.logging.warning("%s has no lines; writing an empty output", FLAGS.input_file)
    if pooling == "none":
        outputs = features.token_outputs(example_features, token_layers, encoder, estimator_args,
                                         progress)
    elif example_features:
        outputs = features.pooled_outputs(example_features, pool_layers, pooling, encoder,
                                          estimator_args, progress)
    else:
        outputs = np.zeros([0, features.pooled_dim(bert_config.hidden_size, pooling,
                                                   len(pool_layers))], np.float32)
    write_outputs(outputs, example_features, pooling, FLAGS.output_file, FLAGS.output_format,
                  token_layers, {
                      "row_order": "row i = line i of input_file", "dtype": "float32",
                      "pooling_strategy": pooling, "pooling_layer": pool_layers,
                      "input_file": FLAGS.input_file, "init_checkpoint": init_checkpoint,
                      "bert_config_file": FLAGS.bert_config_file, "vocab_file": FLAGS.vocab_file,
                      "do_lower_case": FLAGS.do_lower_case,
                      "max_seq_length": FLAGS.max_seq_length})
    progress.done()
    if encoder is not None:
        encoder.close()
    tf1.logging.info("Wrote %d rows to %s", len(example_features), FLAGS.output_file)


if __name__ == "__main__":
    define_flags()
    for name in ("input_file", "vocab_file", "bert_config_file", "init_checkpoint", "output_file"):
        flags.mark_flag_as_required(name)
    cli.run_main(main)
