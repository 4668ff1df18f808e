"""BERT fine-tuning for named-entity recognition and other token tagging (BIO, IOB1, BIOES).

Reads train/dev/test files from `--data_dir` (CoNLL: one token per line with its label in the last
column, a blank line between sentences; the same with one character per line for Chinese; or JSON
lines with "tokens" and "labels"), fine-tunes a BERT checkpoint with a token-level softmax layer or
a linear-chain CRF (`--use_crf`), and writes:

* `eval_results.txt`: eval_precision, eval_recall, eval_f1 (entities, with the semantics of the
  CoNLL conlleval script), eval_accuracy (tokens), eval_<TYPE>_precision/_recall/_f1, eval_loss;
* `test_predictions.txt` (`token gold predicted` per line, CoNLL form), `test_predictions.jsonl`
  (entity spans with character offsets) and, when the test file has labels, `test_conlleval.txt`;
* `labels.txt` and, with `--do_export`, a SavedModel whose predictor turns raw text into entities.

Each word's first WordPiece carries its label; sentences longer than max_seq_length are tagged in
overlapping windows merged back, and decoding only produces tag sequences valid for the scheme.
The task lives in tasks/ner.py (and tasks/crf.py), the run loop in runtime.py: this file is flags
and `main`.

Sample command line (English CoNLL, early stopping on entity F1, export):

  python run_ner.py --data_dir=sample_data/ner/en --output_dir=/tmp/ner_en \
    --vocab_file=$BERT_BASE_DIR/vocab.txt --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --do_train --do_eval --do_predict \
    --max_seq_length=128 --train_batch_size=32 --learning_rate=5e-5 --num_train_epochs=3 \
    --use_crf --max_steps_without_decrease=500 --do_export

Chinese (character per line): the same with --data_dir=sample_data/ner/zh and the Chinese model.
"""

import os

import tensorflow as tf
from absl import flags

import cli
import exporting
import inference
import modeling
import runtime
import tokenization
from tasks import ner

tf1 = tf.compat.v1

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """The classifier's flags where they mean the same, the shared groups and the NER flags."""
    cli.define_model_flags(flag_values=flag_values)
    flags.DEFINE_string(
        "data_dir", None,
        "Directory with train.txt, dev.txt and test.txt (CoNLL or character per line) or "
        "train.jsonl, dev.jsonl and test.jsonl (\"tokens\" and \"labels\").",
        flag_values=flag_values)
    flags.DEFINE_string(
        "output_dir", None,
        "The output directory where the model checkpoints, TFRecords and results will be "
        "written.", flag_values=flag_values)
    cli.define_fine_tuning_flags(flag_values=flag_values)

    # Shared runtime flags (TPU, checkpoints, GPUs/strategies, evaluation during training, export).
    cli.define_tpu_flags(flag_values=flag_values)
    cli.define_checkpoint_flags(flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    cli.define_eval_during_training_flags(early_stopping_metric="eval_f1",
                                          flag_values=flag_values)
    cli.define_export_flags(flag_values=flag_values)

    # Token classification
    flags.DEFINE_enum(
        "data_format", "auto", list(ner.DATA_FORMATS),
        "Format of the data files: conll (token per line, label in the last column; also one "
        "character per line), jsonl, or auto (by file extension: .jsonl/.json, else conll).",
        flag_values=flag_values)
    flags.DEFINE_enum(
        "label_scheme", "auto", ["auto"] + list(ner.SCHEMES),
        "Label scheme of the files: bio (IOB2), iob1 or bioes (also BMES/BILOU spellings). auto: "
        "detected from the training file (E-/S- labels: bioes; entities starting with I- and B- "
        "only between two entities of a type: iob1; else bio).", flag_values=flag_values)
    flags.DEFINE_string(
        "labels", None,
        "Comma-separated label list in id order, O included. Default: the labels of the training "
        "file (O, then B-/I-/... of each type, sorted), or labels.txt in output_dir when not "
        "training.", flag_values=flag_values)
    flags.DEFINE_bool(
        "use_crf", False,
        "Put a linear-chain CRF on top of the token layer (trained by the forward algorithm, "
        "decoded by Viterbi).", flag_values=flag_values)
    flags.DEFINE_integer(
        "doc_stride", 0,
        "A sentence longer than max_seq_length WordPieces is split into overlapping windows; "
        "this many WordPieces separate the starts of consecutive windows (0 = half a window).",
        flag_values=flag_values)


# --------------------------------------------------------------------------------------------------
# Phases (plain arguments; only main reads FLAGS)
# --------------------------------------------------------------------------------------------------


def validate_flags(do_train, do_eval, do_predict, do_export, bert_config_file, vocab_file,
                   data_dir, do_lower_case, init_checkpoint, max_seq_length, doc_stride,
                   max_steps_without_decrease):
    """Checks flag combinations and files before any work; returns the BertConfig."""
    if not (do_train or do_eval or do_predict or do_export):
        raise cli.UsageError(
            "At least one of `do_train`, `do_eval`, `do_predict` or `do_export` must be True.")
    cli.check_model_files(bert_config_file, vocab_file, do_lower_case, init_checkpoint)
    if (do_train or do_eval or do_predict) and not data_dir:
        raise cli.UsageError("--data_dir is required to train, evaluate or predict")
    if (do_train or do_eval or do_predict) and not tf.io.gfile.isdir(data_dir):
        raise cli.UsageError(f"--data_dir={data_dir}: no such directory")
    cli.check_early_stopping(max_steps_without_decrease, do_train, do_eval)
    if max_seq_length < 3:
        raise cli.UsageError(f"--max_seq_length={max_seq_length} leaves no room for a word next "
                             f"to [CLS] and [SEP]; use at least 3 (typically 128)")
    if not 0 <= doc_stride <= max_seq_length - 2:
        raise cli.UsageError(f"--doc_stride={doc_stride} must be between 1 and max_seq_length - 2 "
                             f"= {max_seq_length - 2} (or 0 for half a window)")
    bert_config = modeling.BertConfig.from_json_file(bert_config_file)
    modeling.check_max_seq_length(bert_config, max_seq_length)
    return bert_config


def check_model_settings(checkpoint, use_crf, label_list):
    """A trained model must be evaluated, predicted with and resumed with its own settings."""
    if not checkpoint:
        return
    shapes = inference.checkpoint_shapes(checkpoint)
    if "ner/uses_crf" not in shapes:
        return  # A pretrained BERT checkpoint to start from.
    _, trained_with_crf = ner.read_decoding_settings(checkpoint)
    if trained_with_crf != use_crf:
        raise cli.UsageError(f"the model in {checkpoint} was trained with --use_crf="
                             f"{trained_with_crf}; pass --use_crf={trained_with_crf}")
    if shapes.get("output_bias") != [len(label_list)]:
        raise cli.UsageError(f"the model in {checkpoint} has {shapes['output_bias'][0]} labels, "
                             f"this run {len(label_list)} ({','.join(label_list)}); pass the "
                             f"labels it was trained with or use another --output_dir")


def validate_early_stopping_metric(metric, label_list):
    known = ner.eval_metric_names(label_list)
    if metric not in known:
        raise cli.UsageError(f"--early_stopping_metric={metric} is not computed for this task; "
                             f"choose one of {', '.join(known)}")


def export_phase(bert_config, checkpoint, vocab_file, do_lower_case, max_seq_length, label_list,
                 export_dir):
    """Writes `<export_dir>/saved_model` like `export_model.py --task=ner`, verified."""
    spec = inference.ExportSpec(task="ner", bert_config=bert_config,
                                checkpoint=checkpoint,
                                vocab_file=vocab_file, do_lower_case=do_lower_case,
                                max_seq_length=max_seq_length, labels=label_list)
    return exporting.export_saved_model(spec, export_dir)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = validate_flags(
        FLAGS.do_train, FLAGS.do_eval, FLAGS.do_predict, FLAGS.do_export, FLAGS.bert_config_file,
        FLAGS.vocab_file, FLAGS.data_dir, FLAGS.do_lower_case, FLAGS.init_checkpoint,
        FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_steps_without_decrease)
    options = runtime.RuntimeOptions.from_flags(FLAGS)
    tf.io.gfile.makedirs(FLAGS.output_dir)

    splits = [s for s, on in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval),
                              ("test", FLAGS.do_predict)) if on]
    sentences = ner.read_splits(FLAGS.data_dir, splits, FLAGS.data_format)
    label_list, scheme = ner.resolve_labels(
        sentences, FLAGS.label_scheme, FLAGS.labels,
        None if FLAGS.do_train else inference.read_labels_file(FLAGS.output_dir))
    if FLAGS.do_eval and FLAGS.max_steps_without_decrease > 0:
        validate_early_stopping_metric(FLAGS.early_stopping_metric, label_list)
    tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                           do_lower_case=FLAGS.do_lower_case)

    def prepare(name, split_sentences, batch_size, is_training=False):
        return ner.prepare_input(name, split_sentences, label_list, tokenizer,
                                 FLAGS.max_seq_length, FLAGS.doc_stride or None,
                                 FLAGS.output_dir, batch_size, FLAGS.use_tpu, is_training)

    train_input_fn = eval_input_fn = eval_steps = num_train_steps = num_warmup_steps = None
    if FLAGS.do_train:
        inference.write_labels_file(label_list, FLAGS.output_dir)
        train_input_fn, train_windows, _ = prepare("train", sentences["train"],
                                                   FLAGS.train_batch_size, is_training=True)
        num_train_steps = int(len(train_windows) / FLAGS.train_batch_size
                              * FLAGS.num_train_epochs)
        num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
        if num_train_steps < 1:
            raise cli.UsageError(
                f"{len(train_windows)} training windows / --train_batch_size="
                f"{FLAGS.train_batch_size} x --num_train_epochs={FLAGS.num_train_epochs} gives no "
                f"training step; lower the batch size or raise the epochs")
    if FLAGS.do_eval:
        eval_input_fn, _, eval_steps = prepare("eval", sentences["dev"], FLAGS.eval_batch_size)

    model_fn = ner.model_fn_builder(
        bert_config=bert_config, label_list=label_list, init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate, num_train_steps=num_train_steps,
        num_warmup_steps=num_warmup_steps, use_tpu=FLAGS.use_tpu,
        use_one_hot_embeddings=options.use_one_hot_embeddings, use_crf=FLAGS.use_crf,
        constraints=ner.scheme_constraints(label_list, scheme),
        word_starts=ner.word_start_table(tokenizer.vocab, bert_config.vocab_size))
    runner = runtime.build_runner(
        model_fn, options, FLAGS.output_dir, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size, predict_batch_size=FLAGS.predict_batch_size)
    check_model_settings(runner.latest_checkpoint() or FLAGS.init_checkpoint, FLAGS.use_crf,
                         label_list)

    best_checkpoint = runtime.run_train_and_eval(
        runner, FLAGS.output_dir, FLAGS.do_train, FLAGS.do_eval, train_input_fn=train_input_fn,
        max_steps=num_train_steps, eval_input_fn=eval_input_fn, eval_steps=eval_steps)
    checkpoint = best_checkpoint or runner.latest_checkpoint() or FLAGS.init_checkpoint

    if FLAGS.do_predict:
        predict_input_fn, windows, _ = prepare("predict", sentences["test"],
                                               FLAGS.predict_batch_size)
        predictions = runner.predict(predict_input_fn, checkpoint_path=best_checkpoint)
        predicted = ner.decode_predictions(predictions, sentences["test"], windows, label_list,
                                           cli.resolve_checkpoint(checkpoint))
        ner.write_prediction_files(FLAGS.output_dir, sentences["test"], predicted)
    if FLAGS.do_export:
        if not checkpoint:
            raise cli.UsageError(f"--do_export found no checkpoint in {FLAGS.output_dir}; train "
                                 f"first (--do_train) or pass a fine-tuned --init_checkpoint")
        export_phase(bert_config, checkpoint, FLAGS.vocab_file, FLAGS.do_lower_case,
                     FLAGS.max_seq_length, label_list,
                     FLAGS.export_dir or os.path.join(FLAGS.output_dir, "export"))


if __name__ == "__main__":
    define_flags()
    for name in ("vocab_file", "bert_config_file", "output_dir"):
        flags.mark_flag_as_required(name)
    cli.run_main(main)
