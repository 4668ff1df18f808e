# coding=utf-8
"""Masked-LM + next-sentence pretraining of BERT: the reference's run_pretraining.py on TF 2.15.

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
`next_sentence_loss` and `next_sentence_accuracy`. --early_stopping_metric defaults to
`masked_lm_loss` here: the quantity continued pretraining is about (`loss` also mixes in the
next-sentence loss, which saturates early). Other names are rejected with the list above.

All shared runtime flags apply (--num_gpus, --use_amp, --use_xla, --num_accumulation_steps,
--optimizer=lamb, --keep_checkpoint_max, ...). The heads, data and metrics are in
tasks/pretraining.py, the run loop in runtime.py: this file is flags and `main`.
"""

import tensorflow as tf
from absl import flags

import cli
import modeling
import runtime
from tasks import pretraining

# The reference's names stay importable from here.
from tasks.pretraining import (  # noqa: F401
    gather_indexes,
    get_masked_lm_output,
    get_next_sentence_output,
    input_fn_builder,
    metric_fn,
    model_fn_builder,
)

tf1 = tf.compat.v1

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """The reference's 22 flags, held-out evaluation and the shared runtime groups."""
    # bert_config_file, init_checkpoint, max_seq_length: the shared model flags.
    cli.define_model_flags(names=("bert_config_file", "init_checkpoint", "max_seq_length"),
                           flag_values=flag_values)
    flags.DEFINE_string(
        "input_file", None, "Input TF example files (can be a glob or comma separated).",
        flag_values=flag_values)
    flags.DEFINE_string(
        "output_dir", None, "The output directory where the model checkpoints will be written.",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "max_predictions_per_seq", 20,
        "Maximum number of masked LM predictions per sequence. Must match data generation.",
        flag_values=flag_values)
    flags.DEFINE_bool("do_train", False, "Whether to run training.", flag_values=flag_values)
    flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.",
                      flag_values=flag_values)
    flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.",
                         flag_values=flag_values)
    flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.",
                         flag_values=flag_values)
    flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.",
                       flag_values=flag_values)
    flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.",
                         flag_values=flag_values)
    flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.",
                         flag_values=flag_values)
    flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.",
                         flag_values=flag_values)
    # save_checkpoints_steps, iterations_per_loop and the TPU flags: the reference flags, defined
    # once for every runner.
    cli.define_checkpoint_flags(save_checkpoints_steps=1000, iterations_per_loop=1000,
                                flag_values=flag_values)
    cli.define_tpu_flags(flag_values=flag_values)
    # New parameters (not in the reference)
    flags.DEFINE_string(
        "eval_input_file", None,
        "Held-out TF example files for --do_eval (can be a glob or comma separated). Default: "
        "--input_file, the reference behaviour, which evaluates on the training data.",
        flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    cli.define_eval_during_training_flags(
        early_stopping_metric=pretraining.DEFAULT_EARLY_STOPPING_METRIC, flag_values=flag_values)


# ------------------------------------------------------------------------------------------------
# Phases (plain arguments; only main reads FLAGS)


def validate_flags(bert_config, do_train, do_eval, sizes, num_train_steps, max_eval_steps,
                   early_stopping_metric, max_steps_without_decrease):
    """Checks flag combinations before any work; raises cli.UsageError naming the fix.

    Args:
      sizes: dict flag name -> value of the sizes that must be positive (max_seq_length first).
    """
    if not do_train and not do_eval:
        raise cli.UsageError(
            "At least one of `do_train` or `do_eval` must be True: pass --do_train and/or --do_eval"
        )
    modeling.check_max_seq_length(bert_config, sizes["max_seq_length"])
    for name, value in sizes.items():
        if value <= 0:
            raise cli.UsageError(f"--{name} must be positive, got {value}")
    if do_train and num_train_steps <= 0:
        raise cli.UsageError(
            f"--num_train_steps must be positive with --do_train, got {num_train_steps}")
    if do_eval and max_eval_steps <= 0:
        raise cli.UsageError(
            f"--max_eval_steps must be positive with --do_eval, got {max_eval_steps}")
    known = pretraining.EVAL_METRIC_NAMES
    if max_steps_without_decrease > 0 and early_stopping_metric not in known:
        raise cli.UsageError(
            f"--early_stopping_metric={early_stopping_metric} is not a pretraining eval metric; "
            f"use one of {', '.join(pretraining.EVAL_METRIC_NAMES)} (e.g. masked_lm_loss)")


def log_files(title, files):
    tf1.logging.info("*** %s ***", title)
    for path in files:
        tf1.logging.info("  %s", path)


def resolve_input_files(input_file, eval_input_file, do_eval, max_seq_length,
                        max_predictions_per_seq, vocab_size):
    """Expands the input globs and checks their first records against the flags.

    Returns:
      (train_files, eval_files); eval_files are the training files unless eval_input_file is set,
      as in the reference.
    """
    what = "TFRecord file(s) written by create_pretraining_data.py"
    # Sorted: the same files in the same order on every run (the reference keeps glob order).
    input_files = cli.expand_input_files(input_file, "--input_file", what, sort_matches=True)
    log_files("Input Files", input_files)
    eval_files = input_files
    checked = [(input_files[0], "input_file")]
    if eval_input_file:
        eval_files = cli.expand_input_files(eval_input_file, "--eval_input_file", what,
                                            sort_matches=True)
        log_files("Eval Input Files", eval_files)
        if do_eval:
            checked.append((eval_files[0], "eval_input_file"))
        else:
            tf1.logging.warning("--eval_input_file is ignored without --do_eval")
    for path, flag_name in checked:
        pretraining.check_records_match_flags(path, max_seq_length, max_predictions_per_seq,
                                              vocab_size, flag_name)
    return input_files, eval_files


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    validate_flags(bert_config, FLAGS.do_train, FLAGS.do_eval, {
        "max_seq_length": FLAGS.max_seq_length, "train_batch_size": FLAGS.train_batch_size,
        "eval_batch_size": FLAGS.eval_batch_size,
        "max_predictions_per_seq": FLAGS.max_predictions_per_seq},
        FLAGS.num_train_steps, FLAGS.max_eval_steps, FLAGS.early_stopping_metric,
        FLAGS.max_steps_without_decrease)
    options = runtime.RuntimeOptions.from_flags(FLAGS)
    input_files, eval_files = resolve_input_files(
        FLAGS.input_file, FLAGS.eval_input_file, FLAGS.do_eval, FLAGS.max_seq_length,
        FLAGS.max_predictions_per_seq, bert_config.vocab_size)
    tf.io.gfile.makedirs(FLAGS.output_dir)

    model_fn = pretraining.model_fn_builder(
        bert_config=bert_config, init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate, num_train_steps=FLAGS.num_train_steps,
        num_warmup_steps=FLAGS.num_warmup_steps, use_tpu=FLAGS.use_tpu)
    runner = runtime.build_runner(model_fn, options, FLAGS.output_dir,
                                  train_batch_size=FLAGS.train_batch_size,
                                  eval_batch_size=FLAGS.eval_batch_size)
    tf1.logging.info("***** Running %s: batch size %d, %d steps; eval batch size %d, %d steps "
                     "*****", "training" if FLAGS.do_train else "evaluation",
                     FLAGS.train_batch_size, FLAGS.num_train_steps, FLAGS.eval_batch_size,
                     FLAGS.max_eval_steps)
    # eval_results.txt holds the last evaluation, as in the reference: continued pretraining
    # goes on from the last checkpoint (the best one is kept in best/ all the same).
    runtime.run_train_and_eval(
        runner, FLAGS.output_dir, FLAGS.do_train, FLAGS.do_eval,
        train_input_fn=pretraining.input_fn_builder(
            input_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, is_training=True),
        max_steps=FLAGS.num_train_steps,
        eval_input_fn=pretraining.input_fn_builder(
            eval_files, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, is_training=False),
        eval_steps=FLAGS.max_eval_steps, eval_results_of="last")


if __name__ == "__main__":
    define_flags()
    for name in ("input_file", "bert_config_file", "output_dir"):
        flags.mark_flag_as_required(name)
    cli.run_main(main)
