"""BERT fine-tuning for SQuAD 1.1 and 2.0 extractive question answering.

Reads SQuAD json files, cuts every paragraph into windows of max_seq_length tokens every doc_stride
tokens (streamed to `train.tf_record` / `eval.tf_record` in output_dir), fine-tunes a BERT
checkpoint with a start/end span head, and writes `predictions.json`, `nbest_predictions.json` and,
for SQuAD 2.0, `null_odds.json`, as the reference run_squad.py does. New: `--do_eval` computes the
official SQuAD metrics of predict_file's predictions in-process (`eval_results.txt`), evaluates
after every checkpoint for early stopping on F1 (the best checkpoint kept in output_dir/best/), and
`--do_export` writes a QA SavedModel whose predictor answers (question, context) pairs.
The task (reading, features, model, predictions, metrics) lives in tasks/squad.py, the Estimator
plumbing and the run loop in runtime.py, the export in exporting.py: this file is flags and `main`.

Sample command line (SQuAD 1.1, as in the reference README):

  python run_squad.py --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --do_train=True \
    --train_file=$SQUAD_DIR/train-v1.1.json --do_predict=True \
    --predict_file=$SQUAD_DIR/dev-v1.1.json --train_batch_size=12 --learning_rate=3e-5 \
    --num_train_epochs=2.0 --max_seq_length=384 --doc_stride=128 --output_dir=/tmp/squad_base/

With the metrics, early stopping on F1 and an export:

  python run_squad.py ... --do_train=True --do_eval=True --do_predict=True --do_export=True \
    --predict_file=$SQUAD_DIR/dev-v1.1.json --save_checkpoints_steps=1000 \
    --max_steps_without_decrease=3000
"""

import os
import random

import tensorflow as tf
from absl import flags

import cli
import exporting
import inference
import modeling
import runtime
import tokenization
from tasks import squad

# The reference's names, for code written against run_squad.py.
from tasks.squad import (  # noqa: F401
    FeatureWriter,
    RawResult,
    SquadExample,
    convert_examples_to_features,
    create_model,
    get_final_text,
    input_fn_builder,
    model_fn_builder,
    read_squad_examples,
    write_predictions,
)

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

# Metrics evaluate_predictions computes, for --early_stopping_metric.
_V1_METRICS = ("exact_match", "f1")
_V2_METRICS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
               "best_exact", "best_f1")


def define_flags(flag_values=flags.FLAGS):
    """The reference's 30 flags, the shared runtime groups and the flags it did not have."""
    # Required parameters (and the model flags: bert_config_file, vocab_file, init_checkpoint,
    # do_lower_case, max_seq_length with the reference's SQuAD default of 384)
    cli.define_model_flags(max_seq_length=384, flag_values=flag_values)
    flags.DEFINE_string(
        "output_dir", None,
        "The output directory where the model checkpoints, TFRecords and predictions will be "
        "written.", flag_values=flag_values)

    # Other parameters
    flags.DEFINE_string("train_file", None, "SQuAD json for training. E.g., train-v1.1.json",
                        flag_values=flag_values)
    flags.DEFINE_string(
        "predict_file", None,
        "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "doc_stride", 128,
        "When splitting up a long document into chunks, how much stride to take between chunks.",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "max_query_length", 64,
        "The maximum number of tokens for the question. Questions longer than this will be "
        "truncated to this length.", flag_values=flag_values)
    # The reference's help text for do_predict, although it predicts on any predict_file (see
    # --do_eval); run_squad has no eval_batch_size (predictions are evaluated in Python).
    cli.define_fine_tuning_flags(
        names=("do_train", "do_predict", "train_batch_size", "predict_batch_size",
               "learning_rate", "num_train_epochs", "warmup_proportion"),
        helps={"do_predict": "Whether to run eval on the dev set.",
               "predict_batch_size": "Total batch size for predictions."}, flag_values=flag_values)
    flags.DEFINE_integer(
        "n_best_size", 20,
        "The total number of n-best predictions to generate in the nbest_predictions.json output "
        "file.", flag_values=flag_values)
    flags.DEFINE_integer(
        "max_answer_length", 30,
        "The maximum length of an answer that can be generated. This is needed because the start "
        "and end predictions are not conditioned on one another.", flag_values=flag_values)
    flags.DEFINE_bool(
        "verbose_logging", False,
        "If true, all of the warnings related to data processing will be printed. A number of "
        "warnings are expected for a normal SQuAD evaluation.", flag_values=flag_values)
    flags.DEFINE_bool(
        "version_2_with_negative", False,
        "If true, the SQuAD examples contain some that do not have an answer.",
        flag_values=flag_values)
    flags.DEFINE_float(
        "null_score_diff_threshold", 0.0,
        "If null_score - best_non_null is greater than the threshold predict null.",
        flag_values=flag_values)

    # Shared runtime flags (TPU, checkpoints, GPUs/strategies, evaluation during training, export).
    cli.define_tpu_flags(flag_values=flag_values)
    cli.define_checkpoint_flags(save_checkpoints_steps=1000, iterations_per_loop=1000,
                                flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    cli.define_eval_during_training_flags(early_stopping_metric="f1", flag_values=flag_values)
    cli.define_export_flags(flag_values=flag_values)

    # Not in the reference
    flags.DEFINE_bool(
        "do_eval", False,
        "Compute the official SQuAD metrics (exact match and F1; for 2.0 also HasAns/NoAns and "
        "the best null_score_diff_threshold) of the predictions on predict_file, which must hold "
        "the answers, into eval_results.txt. With --do_train and --max_steps_without_decrease, "
        "evaluate after every checkpoint and stop early on --early_stopping_metric (default f1).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "strict_answers", True,
        "A training answer whose answer_start does not point at its text stops the run with the "
        "question id. False keeps the reference's handling (such answers are skipped with "
        "'Could not find answer' or kept when their words contain the text).",
        flag_values=flag_values)


# --------------------------------------------------------------------------------------------------
# Phases (plain arguments; only main reads FLAGS)
# --------------------------------------------------------------------------------------------------


def validate_flags(do_train, do_predict, do_eval, do_export, bert_config_file, vocab_file,
                   train_file, predict_file, do_lower_case, init_checkpoint, max_seq_length,
                   max_query_length, doc_stride, max_steps_without_decrease, early_stopping_metric,
                   version_2_with_negative):
    """The reference's validate_flags_or_throw and the new flags' checks; returns the config."""
    if not (do_train or do_predict or do_eval or do_export):
        raise cli.UsageError(
            "At least one of `do_train`, `do_predict`, `do_eval` or `do_export` must be True.")
    cli.check_model_files(bert_config_file, vocab_file, do_lower_case, init_checkpoint)
    needed = []
    if do_train:
        needed.append(("train_file", train_file))
    if do_predict or do_eval:
        needed.append(("predict_file", predict_file))
    for flag, path in needed:
        if not path:
            raise cli.UsageError(f"--{flag} is needed for the options given; pass its path.")
        if not tf.io.gfile.exists(path):
            raise cli.UsageError(f"--{flag}={path}: no such file")
    try:
        squad.check_lengths(max_seq_length, doc_stride, max_query_length)
    except ValueError as e:
        raise cli.UsageError(" ".join(str(e).split())) from None
    cli.check_early_stopping(max_steps_without_decrease, do_train, do_eval,
                             watched="the metrics of predict_file")
    if max_steps_without_decrease > 0:
        known = _V2_METRICS if version_2_with_negative else _V1_METRICS
        if early_stopping_metric not in known:
            raise cli.UsageError(f"--early_stopping_metric={early_stopping_metric} is not a SQuAD "
                                 f"metric here; choose one of {', '.join(known)}")
    bert_config = modeling.BertConfig.from_json_file(bert_config_file)
    modeling.check_max_seq_length(bert_config, max_seq_length)
    return bert_config


def read_examples(input_file, is_training, version_2_with_negative, strict_answers):
    """read_squad_examples with the file's problems as UsageErrors (one line)."""
    try:
        return squad.read_squad_examples(input_file, is_training, version_2_with_negative,
                                         strict_answers=strict_answers)
    except squad.SquadDataError as e:
        raise cli.UsageError(str(e)) from None


def write_features(examples, tokenizer, output_file, is_training, max_seq_length, doc_stride,
                   max_query_length, keep=False):
    """Streams the examples' features to a TFRecord file (written atomically).

    Returns:
      (number of features, the features if `keep` else None). Training features are not kept:
      SQuAD 1.1 train makes about 88k of them.
    """
    kept = [] if keep else None
    with cli.atomic_output(output_file) as tmp_path:
        writer = squad.FeatureWriter(tmp_path, is_training=is_training)

        def output_fn(feature):
            writer.process_feature(feature)
            if keep:
                kept.append(feature)

        squad.convert_examples_to_features(
            examples, tokenizer, max_seq_length, doc_stride, max_query_length, is_training,
            output_fn, progress_name=os.path.basename(output_file))
        writer.close()
    return writer.num_features, kept


def prepare_training(train_file, tokenizer, output_dir, settings, train_batch_size,
                     num_train_epochs, warmup_proportion):
    """Reads, shuffles and converts the training set; returns (input_fn, steps, warmup steps)."""
    examples = read_examples(train_file, True, settings["version_2_with_negative"],
                             settings["strict_answers"])
    # Steps count examples, not windows, as in the reference.
    num_train_steps = int(len(examples) / train_batch_size * num_train_epochs)
    num_warmup_steps = int(num_train_steps * warmup_proportion)
    if num_train_steps < 1:
        raise cli.UsageError(
            f"{len(examples)} training examples at --train_batch_size={train_batch_size} for "
            f"{num_train_epochs} epochs make no training step; use more epochs or a smaller batch")
    # Pre-shuffle so the input_fn needs no large shuffle buffer (the reference's seed).
    random.Random(12345).shuffle(examples)
    output_file = os.path.join(output_dir, "train.tf_record")
    num_features, _ = write_features(examples, tokenizer, output_file, True,
                                     settings["max_seq_length"], settings["doc_stride"],
                                     settings["max_query_length"])
    tf1.logging.info("***** Running training *****")
    tf1.logging.info("  Num orig examples = %d", len(examples))
    tf1.logging.info("  Num split examples = %d", num_features)
    tf1.logging.info("  Batch size = %d", train_batch_size)
    tf1.logging.info("  Num steps = %d", num_train_steps)
    input_fn = squad.input_fn_builder(output_file, settings["max_seq_length"], is_training=True,
                                      drop_remainder=True)
    return input_fn, num_train_steps, num_warmup_steps


class PredictSet:
    """predict_file's examples and features, converted once, with its eval.tf_record input."""

    def __init__(self, predict_file, tokenizer, output_dir, settings, need_answers):
        self.predict_file = predict_file
        self.settings = settings
        self._last = None  # (checkpoint, outputs) of the last prediction run.
        self.data = squad.load_squad_json(predict_file)
        try:
            self.examples = squad.read_squad_examples(
                predict_file, False, settings["version_2_with_negative"], data=self.data)
            if need_answers:  # Checked before any training, not at the first evaluation.
                squad.check_gold_answers(self.data, predict_file,
                                         settings["version_2_with_negative"])
        except squad.SquadDataError as e:
            raise cli.UsageError(str(e)) from None
        output_file = os.path.join(output_dir, "eval.tf_record")
        self.num_features, self.features = write_features(
            self.examples, tokenizer, output_file, False, settings["max_seq_length"],
            settings["doc_stride"], settings["max_query_length"], keep=True)
        tf1.logging.info("***** Running predictions *****")
        tf1.logging.info("  Num orig examples = %d", len(self.examples))
        tf1.logging.info("  Num split examples = %d", self.num_features)
        self.input_fn = squad.input_fn_builder(output_file, settings["max_seq_length"],
                                               is_training=False, drop_remainder=False)

    def predict(self, runner, checkpoint):
        """(predictions, nbest, null_odds) of a checkpoint (None: the latest in output_dir).

        The last checkpoint's outputs are kept, so --do_predict after the final evaluation of the
        same checkpoint does not run the model again.
        """
        checkpoint = checkpoint or runner.latest_checkpoint()
        if self._last is not None and self._last[0] == checkpoint:
            return self._last[1]
        results = squad.collect_results(runner.predict(self.input_fn, checkpoint_path=checkpoint),
                                        total=self.num_features)
        s = self.settings
        outputs = squad.compute_predictions(
            self.examples, self.features, results, s["n_best_size"], s["max_answer_length"],
            s["do_lower_case"], s["version_2_with_negative"], s["null_score_diff_threshold"],
            s["verbose_logging"])
        self._last = (checkpoint, outputs)
        return outputs

    def evaluate(self, runner, checkpoint, init_checkpoint=None):
        """The official metrics of a checkpoint's predictions (evaluate_fn of the run loop).

        Without a checkpoint in output_dir the model is the warm-started init_checkpoint, whose
        global step (0 for a pretrained one) is reported.
        """
        predictions, _, null_odds = self.predict(runner, checkpoint)
        result = dict(squad.evaluate_predictions(
            self.data, predictions, self.settings["version_2_with_negative"],
            null_odds if self.settings["version_2_with_negative"] else None,
            input_file=self.predict_file))
        used = checkpoint or runner.latest_checkpoint() or init_checkpoint
        result["global_step"] = (runtime.checkpoint_step(cli.resolve_checkpoint(used)) or 0
                                 if used else 0)
        return result

    def write(self, outputs, output_dir):
        """Writes predictions.json, nbest_predictions.json and (2.0) null_odds.json."""
        predictions, nbest, null_odds = outputs
        tf1.logging.info("Writing predictions to: %s",
                         os.path.join(output_dir, "predictions.json"))
        squad.write_json(predictions, os.path.join(output_dir, "predictions.json"))
        squad.write_json(nbest, os.path.join(output_dir, "nbest_predictions.json"))
        if self.settings["version_2_with_negative"]:
            squad.write_json(null_odds, os.path.join(output_dir, "null_odds.json"))


def export_phase(bert_config, checkpoint, vocab_file, do_lower_case, max_seq_length, export_dir):
    """Writes `<export_dir>/saved_model` (start/end logits, vocab as asset), verified."""
    spec = inference.ExportSpec(task="squad", bert_config=bert_config,
                                checkpoint=checkpoint,
                                vocab_file=vocab_file, do_lower_case=do_lower_case,
                                max_seq_length=max_seq_length)
    return exporting.export_saved_model(spec, export_dir)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = validate_flags(
        FLAGS.do_train, FLAGS.do_predict, FLAGS.do_eval, FLAGS.do_export, FLAGS.bert_config_file,
        FLAGS.vocab_file, FLAGS.train_file, FLAGS.predict_file, FLAGS.do_lower_case,
        FLAGS.init_checkpoint, FLAGS.max_seq_length, FLAGS.max_query_length, FLAGS.doc_stride,
        FLAGS.max_steps_without_decrease, FLAGS.early_stopping_metric,
        FLAGS.version_2_with_negative)
    options = runtime.RuntimeOptions.from_flags(FLAGS)
    tf.io.gfile.makedirs(FLAGS.output_dir)
    tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                           do_lower_case=FLAGS.do_lower_case)
    settings = {name: getattr(FLAGS, name) for name in (
        "max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
        "do_lower_case", "version_2_with_negative", "null_score_diff_threshold", "verbose_logging",
        "strict_answers")}

    train_input_fn = num_train_steps = num_warmup_steps = None
    if FLAGS.do_train:
        train_input_fn, num_train_steps, num_warmup_steps = prepare_training(
            FLAGS.train_file, tokenizer, FLAGS.output_dir, settings, FLAGS.train_batch_size,
            FLAGS.num_train_epochs, FLAGS.warmup_proportion)
    predict_set = None
    if FLAGS.do_predict or FLAGS.do_eval:
        predict_set = PredictSet(FLAGS.predict_file, tokenizer, FLAGS.output_dir, settings,
                                 need_answers=FLAGS.do_eval)

    model_fn = squad.model_fn_builder(
        bert_config=bert_config, init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate, num_train_steps=num_train_steps,
        num_warmup_steps=num_warmup_steps, use_tpu=FLAGS.use_tpu,
        use_one_hot_embeddings=options.use_one_hot_embeddings)
    runner = runtime.build_runner(
        model_fn, options, FLAGS.output_dir, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.predict_batch_size, predict_batch_size=FLAGS.predict_batch_size)

    evaluate_fn = (lambda checkpoint: predict_set.evaluate(
        runner, checkpoint, FLAGS.init_checkpoint)) if FLAGS.do_eval else None
    best_checkpoint = runtime.run_train_and_eval(
        runner, FLAGS.output_dir, FLAGS.do_train, FLAGS.do_eval, train_input_fn=train_input_fn,
        max_steps=num_train_steps, evaluate_fn=evaluate_fn)

    if FLAGS.do_predict:
        predict_set.write(predict_set.predict(runner, best_checkpoint), FLAGS.output_dir)
    if FLAGS.do_export:
        checkpoint = best_checkpoint or runner.latest_checkpoint() or FLAGS.init_checkpoint
        if not checkpoint:
            raise cli.UsageError(f"--do_export found no checkpoint in {FLAGS.output_dir}; train "
                                 f"first (--do_train) or pass a fine-tuned --init_checkpoint")
        export_phase(bert_config, checkpoint, FLAGS.vocab_file, FLAGS.do_lower_case,
                     FLAGS.max_seq_length,
                     FLAGS.export_dir or os.path.join(FLAGS.output_dir, "export"))


if __name__ == "__main__":
    define_flags()
    for name in ("vocab_file", "bert_config_file", "output_dir"):
        flags.mark_flag_as_required(name)
    cli.run_main(main)
