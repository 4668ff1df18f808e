"""BERT fine-tuning for sentence and sentence-pair classification (GLUE, XNLI, your own data).

Reads a task's train/dev/test files through a *processor*, converts them to TFRecords (cached in
`output_dir` and reused while the inputs and flags stay the same), fine-tunes a BERT checkpoint with
a softmax head, and writes `eval_results.txt`, `test_results.tsv`, `test_predictions.tsv` and
`labels.txt`.
The task itself (processors, features, model, metrics) lives in tasks/classifier.py, the Estimator
plumbing and the run loop in runtime.py, the export in exporting.py: this file is flags and `main`.

Tasks: the reference processors `cola`, `mnli`, `mrpc`, `xnli`; the other GLUE tasks `sst-2`,
`qqp`, `qnli`, `rte`, `wnli`, `sts-b`; the generic processors `tsv`, `csv` and `jsonl` (your
files, columns chosen by flags); and any processor a `--processor_module` registers with
`register_processor` (see sample_data/plugin_processor_example.py). `--task_type=regression` or
`multi_label` replaces the softmax head (STS-B is regression by itself).

Sample command line (MRPC, as in the reference README):

  python run_classifier.py --task_name=MRPC --do_train=true --do_eval=true \
    --data_dir=$GLUE_DIR/MRPC --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt --max_seq_length=128 \
    --train_batch_size=32 --learning_rate=2e-5 --num_train_epochs=3.0 --output_dir=/tmp/mrpc_output/

Your own data with evaluation during training, early stopping and export:

  python run_classifier.py --task_name=tsv --data_dir=sample_data/classifier \
    --label_column=label --text_a_column=text --do_train=true --do_eval=true --do_predict=true \
    --max_steps_without_decrease=200 --early_stopping_metric=eval_macro_f1 --do_export=true ...
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
from tasks import classifier

# The reference's import paths (`run_classifier.DataProcessor`, ...) keep working: plugins and
# user code written against the reference import these names from here.
from tasks.classifier import (  # noqa: F401
    LABELS_FILE,
    PROCESSORS,
    ColaProcessor,
    CsvProcessor,
    DataProcessor,
    GenericProcessor,
    InputExample,
    InputFeatures,
    JsonlProcessor,
    MnliProcessor,
    MrpcProcessor,
    PaddingInputExample,
    TsvProcessor,
    XnliProcessor,
    _truncate_seq_pair,
    convert_examples_to_features,
    convert_single_example,
    create_model,
    file_based_convert_examples_to_features,
    file_based_input_fn_builder,
    input_fn_builder,
    model_fn_builder,
    register_processor,
)

tf1 = tf.compat.v1

FLAGS = flags.FLAGS


def define_flags(flag_values=flags.FLAGS):
    """The reference's 25 flags, the shared runtime groups and the custom-data flags."""
    # Required parameters (and the model flags: bert_config_file, vocab_file, init_checkpoint,
    # do_lower_case, max_seq_length)
    cli.define_model_flags(flag_values=flag_values)
    flags.DEFINE_string(
        "data_dir", None,
        "The input data dir. Should contain the .tsv files (or other data files) for the task.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "task_name", None,
        "The name of the task to train (case-insensitive): cola, mnli, mrpc, xnli, the other "
        "GLUE tasks sst-2, qqp, qnli, rte, wnli, sts-b, the generic tsv, csv or jsonl, or a task "
        "registered by --processor_module.", flag_values=flag_values)
    flags.DEFINE_string(
        "output_dir", None,
        "The output directory where the model checkpoints, TFRecord caches and results will be "
        "written.", flag_values=flag_values)

    # Other parameters
    cli.define_fine_tuning_flags(flag_values=flag_values)

    # Shared runtime flags (TPU, checkpoints, GPUs/strategies, evaluation during training, export).
    cli.define_tpu_flags(flag_values=flag_values)
    cli.define_checkpoint_flags(flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    cli.define_eval_during_training_flags(flag_values=flag_values)
    cli.define_export_flags(flag_values=flag_values)

    # Custom data (not in the reference)
    flags.DEFINE_string(
        "processor_module", None,
        "A Python file (path ending in .py) or an importable module name that is imported before "
        "the task is looked up. It registers its own processors with "
        "run_classifier.register_processor (see sample_data/plugin_processor_example.py).",
        flag_values=flag_values)
    flags.DEFINE_string(
        "text_a_column", None,
        "Generic tsv/csv/jsonl tasks: the column holding the first text, as a 0-based index or a "
        "header name. Default: 1 for tsv/csv, \"text\" for jsonl.", flag_values=flag_values)
    flags.DEFINE_string(
        "text_b_column", None,
        "Generic tsv/csv/jsonl tasks: the column holding the second text of a sentence pair (index "
        "or header name). Default: none (single-sentence task).", flag_values=flag_values)
    flags.DEFINE_string(
        "label_column", None,
        "Generic tsv/csv/jsonl tasks: the column holding the label (index or header name). "
        "Default: 0 for tsv/csv, \"label\" for jsonl. Test files may leave it out.",
        flag_values=flag_values)
    flags.DEFINE_enum(
        "has_header", "auto", ["auto", "true", "false"],
        "Generic tsv/csv tasks: whether the first row of each file is a header. auto: yes when a "
        "column is given by name; otherwise yes when the first row's label cell is not a known "
        "label and appears in no later row.", flag_values=flag_values)
    flags.DEFINE_string(
        "labels", None,
        "Generic tasks: comma-separated label list in id order. Default: labels.txt in output_dir "
        "when not training, else the labels found in the training file, sorted (numerically if "
        "all are integers).", flag_values=flag_values)
    flags.DEFINE_bool(
        "cache_tf_records", True,
        "Reuse train/eval/predict.tf_record in output_dir when the examples, vocab, casing, "
        "max_seq_length and label list are unchanged (checked through a .json sidecar).",
        flag_values=flag_values)

    # Output heads (not in the reference)
    flags.DEFINE_enum(
        "task_type", None, list(classifier.TASK_TYPES),
        "The output head: classification (softmax over the labels, the reference's), regression "
        "(one number per example, mean squared error; Pearson and Spearman in eval_results.txt) "
        "or multi_label (a sigmoid per label: any number of labels per example; micro/macro F1 "
        "and subset accuracy). Default: the task's own (regression for sts-b, else "
        "classification).", flag_values=flag_values)
    flags.DEFINE_string(
        "label_separator", ",",
        "multi_label: what separates the labels of one example in the label column.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "multi_label_threshold", None,
        "multi_label: a label is predicted when its probability is at least this (default 0.5); "
        "one value, or one per label in label order, comma-separated.", flag_values=flag_values)


# --------------------------------------------------------------------------------------------------
# Phases (plain arguments; only main reads FLAGS)
# --------------------------------------------------------------------------------------------------


def validate_flags(do_train, do_eval, do_predict, do_export, bert_config_file, vocab_file,
                   data_dir, do_lower_case, init_checkpoint, max_seq_length,
                   max_steps_without_decrease):
    """Checks flag combinations and files before any work; returns the BertConfig."""
    if not (do_train or do_eval or do_predict or do_export):
        raise cli.UsageError(
            "At least one of `do_train`, `do_eval`, `do_predict` or `do_export` must be True.")
    cli.check_model_files(bert_config_file, vocab_file, do_lower_case, init_checkpoint)
    if not tf.io.gfile.isdir(data_dir):
        raise cli.UsageError(f"--data_dir={data_dir}: no such directory")
    cli.check_early_stopping(max_steps_without_decrease, do_train, do_eval)
    bert_config = modeling.BertConfig.from_json_file(bert_config_file)
    modeling.check_max_seq_length(bert_config, max_seq_length)
    return bert_config


def validate_early_stopping_metric(metric, num_labels, head=classifier.DEFAULT_HEAD):
    known = classifier.eval_metric_names(num_labels, head)
    if metric not in known:
        raise cli.UsageError(f"--early_stopping_metric={metric} is not computed for this task; "
                             f"choose one of {', '.join(known)}")


def tf_record_input(name, examples, label_list, tokenizer, output_dir, max_seq_length,
                    vocab_file, do_lower_case, use_cache, is_training, drop_remainder,
                    head=classifier.DEFAULT_HEAD):
    """Converts (or reuses) `<output_dir>/<name>.tf_record`; returns its input_fn builder."""
    output_file = os.path.join(output_dir, f"{name}.tf_record")
    fingerprint = classifier.features_fingerprint(examples, label_list, max_seq_length,
                                                  vocab_file, do_lower_case, head)
    classifier.write_or_reuse_tf_record(examples, label_list, max_seq_length, tokenizer,
                                        output_file, fingerprint, use_cache=use_cache, head=head)
    tf1.logging.info("***** %s: %d examples *****", name, len(examples))
    return classifier.file_based_input_fn_builder(output_file, max_seq_length,
                                                  is_training=is_training,
                                                  drop_remainder=drop_remainder, head=head,
                                                  num_labels=len(label_list))


def export_phase(bert_config, checkpoint, vocab_file, do_lower_case, max_seq_length, label_list,
                 export_dir, head=classifier.DEFAULT_HEAD):
    """Writes `<export_dir>/saved_model` like `export_model.py --format=saved_model`, verified."""
    spec = inference.ExportSpec(task=classifier.EXPORT_TASKS[head.task_type],
                                bert_config=bert_config,
                                checkpoint=checkpoint,
                                vocab_file=vocab_file, do_lower_case=do_lower_case,
                                max_seq_length=max_seq_length, labels=label_list or None)
    return exporting.export_saved_model(spec, export_dir)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = validate_flags(
        FLAGS.do_train, FLAGS.do_eval, FLAGS.do_predict, FLAGS.do_export, FLAGS.bert_config_file,
        FLAGS.vocab_file, FLAGS.data_dir, FLAGS.do_lower_case, FLAGS.init_checkpoint,
        FLAGS.max_seq_length, FLAGS.max_steps_without_decrease)
    options = runtime.RuntimeOptions.from_flags(FLAGS)
    tf.io.gfile.makedirs(FLAGS.output_dir)

    processor, label_list = classifier.resolve_processor_and_labels(
        FLAGS.task_name, FLAGS.data_dir, FLAGS.output_dir, FLAGS.do_train,
        processor_module=FLAGS.processor_module, labels=FLAGS.labels,
        text_a_column=FLAGS.text_a_column, text_b_column=FLAGS.text_b_column,
        label_column=FLAGS.label_column, has_header=FLAGS.has_header, task_type=FLAGS.task_type,
        label_separator=FLAGS.label_separator)
    head = classifier.head_options(processor.task_type, FLAGS.label_separator,
                                   FLAGS.multi_label_threshold, len(label_list))
    if FLAGS.do_eval and FLAGS.max_steps_without_decrease > 0:
        validate_early_stopping_metric(FLAGS.early_stopping_metric, len(label_list), head)
    splits = [s for s, on in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval),
                              ("test", FLAGS.do_predict)) if on]
    examples = classifier.read_split_examples(processor, FLAGS.task_name, FLAGS.data_dir, splits)
    num_train_steps, num_warmup_steps = (classifier.compute_train_steps(
        len(examples["train"]), FLAGS.train_batch_size, FLAGS.num_train_epochs,
        FLAGS.warmup_proportion) if FLAGS.do_train else (None, None))
    tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                           do_lower_case=FLAGS.do_lower_case)

    model_fn = classifier.model_fn_builder(
        bert_config=bert_config, num_labels=len(label_list), init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate, num_train_steps=num_train_steps,
        num_warmup_steps=num_warmup_steps, use_tpu=FLAGS.use_tpu,
        use_one_hot_embeddings=options.use_one_hot_embeddings, head=head)
    runner = runtime.build_runner(
        model_fn, options, FLAGS.output_dir, train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size, predict_batch_size=FLAGS.predict_batch_size)

    def records(name, split_examples, is_training=False):
        return tf_record_input(name, split_examples, label_list, tokenizer, FLAGS.output_dir,
                               FLAGS.max_seq_length, FLAGS.vocab_file, FLAGS.do_lower_case,
                               FLAGS.cache_tf_records, is_training,
                               drop_remainder=is_training or FLAGS.use_tpu, head=head)

    train_input_fn = eval_input_fn = eval_steps = None
    if FLAGS.do_train:
        inference.write_labels_file(label_list, FLAGS.output_dir)
        train_input_fn = records("train", examples["train"], is_training=True)
    if FLAGS.do_eval:
        # On CPU/GPU one pass over the dev set; TPU needs a fixed number of full batches.
        eval_examples = classifier.pad_for_tpu(examples["dev"], FLAGS.eval_batch_size,
                                               FLAGS.use_tpu)
        eval_input_fn = records("eval", eval_examples)
        eval_steps = len(eval_examples) // FLAGS.eval_batch_size if FLAGS.use_tpu else None

    best_checkpoint = runtime.run_train_and_eval(
        runner, FLAGS.output_dir, FLAGS.do_train, FLAGS.do_eval, train_input_fn=train_input_fn,
        max_steps=num_train_steps, eval_input_fn=eval_input_fn, eval_steps=eval_steps)

    if FLAGS.do_predict:
        padded = classifier.pad_for_tpu(examples["test"], FLAGS.predict_batch_size, FLAGS.use_tpu)
        predictions = runner.predict(records("predict", padded), checkpoint_path=best_checkpoint)
        classifier.write_test_predictions(predictions, examples["test"], label_list,
                                          FLAGS.output_dir, head)
    if FLAGS.do_export:
        checkpoint = best_checkpoint or runner.latest_checkpoint() or FLAGS.init_checkpoint
        if not checkpoint:
            raise cli.UsageError(f"--do_export found no checkpoint in {FLAGS.output_dir}; train "
                                 f"first (--do_train) or pass a fine-tuned --init_checkpoint")
        export_phase(bert_config, checkpoint, FLAGS.vocab_file, FLAGS.do_lower_case,
                     FLAGS.max_seq_length, label_list,
                     FLAGS.export_dir or os.path.join(FLAGS.output_dir, "export"), head)


if __name__ == "__main__":
    define_flags()
    for name in ("data_dir", "task_name", "vocab_file", "bert_config_file", "output_dir"):
        flags.mark_flag_as_required(name)
    cli.run_main(main)
