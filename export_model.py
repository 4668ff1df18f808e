"""Exports a BERT checkpoint for serving, verifies every artefact, and predicts with the export.

The reference has no export step. This script turns a fine-tuned classifier checkpoint (written by
run_classifier.py) or any BERT checkpoint (`--task=encoder`, for embeddings) into:

  <export_dir>/saved_model/         TF Serving SavedModel, signature `serving_default`:
                                    int32 input_ids, input_mask, segment_ids [batch, seq] ->
                                    probabilities, logits [batch, num_labels] (classifier) or
                                    pooled_output [batch, hidden], sequence_output
                                    [batch, seq, hidden] (encoder); assets/vocab.txt,
                                    assets/labels.txt (classifier), assets/export_config.json
  <export_dir>/frozen_graph/        model.pb (variables folded into constants, training-only nodes
                                    removed, optimize_for_inference applied) and io.txt (input and
                                    output tensor names, dtypes, shapes) for Java/C++
  <export_dir>/tflite/model.tflite        float32, built-in ops only, from the SavedModel
  <export_dir>/tflite_fp16/model.tflite   float16 weights
  <export_dir>/tflite_int8/model.tflite   dynamic-range int8 weights
  <export_dir>/tftrt/               TF-TRT FP16 SavedModel (only with a GPU and TensorRT)
  <export_dir>/export_report.json   per format: size, largest difference, latency p50/p90/p99

Every artefact is run after it is written on sample inputs (a few real texts, tokenized, and
random ids) and compared with the checkpoint's own outputs computed in a graph session. Checks:
the largest absolute difference over all outputs must stay within TOLERANCES (1e-5 for the float
formats, 1e-2 for float16); for int8 the agreement of predicted labels and the largest
probability change are reported and the probability change must stay within 0.1 (see
TOLERANCES; override with --tolerances). A failed check exits 1, and since everything is written
into a temporary directory renamed at the end, no half-written export is left. An existing
--export_dir is replaced as a whole.

Latency: batch 1 (the first sample), --warmup_runs calls, then the percentiles of --latency_runs
calls. The checkpoint's graph session is measured the same way, as the baseline. TensorFlow uses
its default thread pools; TFLite interpreters use --tflite_threads (default 1).

Sample command lines:

  python export_model.py --task=classifier --init_checkpoint=/tmp/out/model.ckpt-343 \\
    --bert_config_file=$BERT_BASE_DIR/bert_config.json --vocab_file=$BERT_BASE_DIR/vocab.txt \\
    --do_lower_case=True --max_seq_length=128 --export_dir=/tmp/export \\
    --format=saved_model,frozen_graph,tflite,tflite_int8

  printf 'A great film.\\nThe plot ||| The story\\n' | \\
    python export_model.py --predict_saved_model=/tmp/export/saved_model --input_file=-

Prediction output (--output_file, default stdout): a classifier writes a TSV with the header
`text<TAB>label<TAB><one probability column per label>`; an encoder writes one JSON object per
line, `{"text": ..., "pooled_output": [...]}`. `A ||| B` lines are sentence pairs.

In Python, `inference.Predictor(saved_model_dir)` loads the export once and `predict(texts)`
classifies or encodes raw texts as often as asked, in batches of any size. The formats and their
checks live in exporting.py, the model and the SavedModel layout in inference.py.
"""

import importlib
import json
import os
import subprocess
import sys

import tensorflow as tf
from absl import flags

import cli
import exporting
import inference
import modeling
import tokenization
from tasks import classifier

# The task modules that register an inference head (imported for the --task chosen).
TASK_MODULES = {"classifier": "tasks.classifier", "regression": "tasks.classifier",
                "multi_label": "tasks.classifier", "encoder": "inference", "squad": "tasks.squad",
                "ner": "tasks.ner"}
# The tasks whose head ends in a root-scope output_bias [num_labels] and whose runner writes
# labels.txt into its output_dir (the labels are resolved the same way for all of them).
LABELLED_TASKS = {"classifier": "run_classifier.py", "multi_label": "run_classifier.py",
                  "ner": "run_ner.py"}

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

TASKS = tuple(TASK_MODULES)


def define_flags(flag_values=flags.FLAGS):
    """The model flags, the export choices and the --predict_saved_model mode."""
    cli.define_model_flags(flag_values=flag_values)
    flags.DEFINE_enum(
        "task", "classifier", list(TASKS),
        "classifier: a checkpoint fine-tuned by run_classifier.py (outputs probabilities, logits); "
        "regression, multi_label: run_classifier.py --task_type=... checkpoints. encoder: any BERT "
        "checkpoint (outputs pooled_output, sequence_output). squad, ner: checkpoints of "
        "run_squad.py (start/end logits) and run_ner.py (per-token labels).",
        flag_values=flag_values)
    flags.DEFINE_string(
        "labels", None,
        "Classifier: comma-separated label list in id order. Default: labels.txt beside the "
        "checkpoint (run_classifier.py writes it into its output_dir).", flag_values=flag_values)
    flags.DEFINE_string("export_dir", None, "Directory to write the exported formats into.",
                        flag_values=flag_values)
    flags.DEFINE_string(
        "format", "saved_model,frozen_graph,tflite,tflite_fp16,tflite_int8,tftrt",
        "Comma-separated formats to export: saved_model, frozen_graph, tflite, tflite_fp16, "
        "tflite_int8, tftrt (skipped with a message without a GPU and TensorRT), or all.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "predict_saved_model", None,
        "Predict instead of exporting: the SavedModel directory written by this script "
        "(<export_dir>/saved_model). Texts come from --input_file, predictions go to "
        "--output_file.", flag_values=flag_values)
    flags.DEFINE_string(
        "input_file", None,
        "With --predict_saved_model: texts, one per line (`A ||| B` for a pair); `-` is stdin.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "output_file", None, "With --predict_saved_model: where predictions go (default: stdout).",
        flag_values=flag_values)
    flags.DEFINE_integer("predict_batch_size", 8,
                         "With --predict_saved_model: texts per call of the SavedModel.",
                         flag_values=flag_values)
    flags.DEFINE_integer(
        "latency_runs", 50,
        "Timed calls per format (batch 1) after the warm-up, for the latency percentiles.",
        flag_values=flag_values)
    flags.DEFINE_integer("warmup_runs", 5, "Untimed calls per format before the timed ones.",
                         flag_values=flag_values)
    flags.DEFINE_integer(
        "num_random_samples", 8,
        "Random-id sample rows added to the real sample texts for the verification.",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "tflite_threads", 1,
        "Threads of the TFLite interpreters in the verification and latency runs. 1 (mobile-like) "
        "is also the robust choice on a busy machine, where XNNPACK's thread pool slows down "
        "sharply.", flag_values=flag_values)
    flags.DEFINE_string(
        "tolerances", "",
        "Override check tolerances, e.g. `tflite=1e-4,tflite_int8=0.2` (see "
        "exporting.TOLERANCES).", flag_values=flag_values)


# --------------------------------------------------------------------------------------------------
# Predicting with an export
# --------------------------------------------------------------------------------------------------


def _jsonable(value):
    """A prediction (dicts, lists, numpy arrays and scalars) as plain JSON values."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value.tolist() if hasattr(value, "tolist") else value


def prediction_lines(predictor, texts):
    """Output lines: TSV rows (classifier), else one JSON object per text.

    Encoders give their pooled output; SQuAD exports read `question ||| context` lines (a line
    without the separator is a one-line error) and give the answer; the other tasks (ner,
    regression, multi_label) give their predictor's result as it is.
    """
    if predictor.task == "classifier":
        return ["\t".join([result["text"].replace("\t", " "), result["label"]]
                          + [str(float(p)) for p in result["probabilities"]])
                for result in predictor.predict(texts)]
    if predictor.task == "encoder":
        vectors = predictor.predict(texts)
        results = [{"text": text, "pooled_output": vector} for text, vector in zip(texts, vectors)]
    elif predictor.task == "squad":
        results = [{"question": a["question"], "answer": a["answer"],
                    "probability": a["probability"]}
                   for a in predictor.predict([cli.split_pair(text) for text in texts])]
    else:
        results = predictor.predict(texts)
    return [json.dumps(_jsonable(result), ensure_ascii=False) for result in results]


def predict_with_export(saved_model_dir, input_file, output_file, batch_size):
    """Writes a prediction line for every line of `input_file` (`-`: stdin) to output_file."""
    if not input_file:
        raise cli.UsageError("--predict_saved_model needs --input_file (a text file, one text "
                             "per line, or - for stdin)")
    if not tf.io.gfile.isdir(saved_model_dir):
        raise cli.UsageError(f"--predict_saved_model={saved_model_dir}: no such directory; pass "
                             f"<export_dir>/saved_model")
    predictor = inference.load_predictor(saved_model_dir, batch_size=batch_size)
    progress = cli.ProgressLogger(unit="texts", name="Predicting")
    if output_file:
        with cli.atomic_output(output_file) as tmp_path:
            with tf.io.gfile.GFile(tmp_path, "w") as writer:
                _write_predictions(predictor, input_file, writer, progress)
    else:
        sys.stdout.reconfigure(encoding="utf-8")
        _write_predictions(predictor, input_file, sys.stdout, progress)
        sys.stdout.flush()
    progress.done()


def _write_predictions(predictor, input_file, writer, progress):
    if predictor.task == "classifier":
        writer.write("\t".join(["text", "label"] + predictor.labels) + "\n")
    for chunk in cli.chunks(cli.read_text_lines(input_file), predictor.batch_size):
        writer.write("".join(line + "\n" for line in prediction_lines(predictor, chunk)))
        progress.update(len(chunk))


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def build_export_spec(task, bert_config_file, vocab_file, init_checkpoint, do_lower_case,
                      max_seq_length, export_dir, labels=None):
    """Validates the export settings and the checkpoint; returns the inference.ExportSpec."""
    for name, value in (("bert_config_file", bert_config_file), ("vocab_file", vocab_file),
                        ("export_dir", export_dir)):
        if not value:
            raise cli.UsageError(f"--{name} is required to export (or pass "
                                 f"--predict_saved_model to predict)")
    for name, path in (("bert_config_file", bert_config_file), ("vocab_file", vocab_file)):
        if not tf.io.gfile.exists(path):
            raise cli.UsageError(f"--{name}={path}: no such file")
    checkpoint = cli.resolve_checkpoint(init_checkpoint)
    shapes = inference.checkpoint_shapes(checkpoint)
    try:
        tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)
    except ValueError as e:
        raise cli.UsageError(" ".join(str(e).split())) from None
    bert_config = modeling.BertConfig.from_json_file(bert_config_file)
    modeling.check_max_seq_length(bert_config, max_seq_length)
    importlib.import_module(TASK_MODULES[task])  # Registers the task's inference head.
    label_list = None
    if task in LABELLED_TASKS:
        if "output_bias" not in shapes:
            raise cli.UsageError(
                f"checkpoint {checkpoint} has no {task} head (output_weights/output_bias): "
                f"fine-tune it with {LABELLED_TASKS[task]} first, or pass --task=encoder for "
                f"embeddings")
        label_list = classifier.resolve_export_labels(labels, checkpoint,
                                                      shapes["output_bias"][0])
    return inference.ExportSpec(task=task, bert_config=bert_config, checkpoint=checkpoint,
                                vocab_file=vocab_file, do_lower_case=do_lower_case,
                                max_seq_length=max_seq_length, labels=label_list)


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    if FLAGS.predict_saved_model:
        predict_with_export(FLAGS.predict_saved_model, FLAGS.input_file, FLAGS.output_file,
                            FLAGS.predict_batch_size)
        return
    formats = exporting.parse_formats(FLAGS.format)
    tolerances = exporting.parse_tolerances(FLAGS.tolerances)
    spec = build_export_spec(FLAGS.task, FLAGS.bert_config_file, FLAGS.vocab_file,
                             FLAGS.init_checkpoint, FLAGS.do_lower_case, FLAGS.max_seq_length,
                             FLAGS.export_dir, FLAGS.labels)
    tf1.logging.info("Exporting %s from %s to %s: %s", spec.task, spec.checkpoint,
                     FLAGS.export_dir, ", ".join(formats))
    report = exporting.export(spec, FLAGS.export_dir, formats, tolerances,
                              latency_runs=FLAGS.latency_runs, warmup_runs=FLAGS.warmup_runs,
                              num_random=FLAGS.num_random_samples,
                              tflite_threads=FLAGS.tflite_threads)
    print(exporting.format_report_table(report))
    print(f"Report: {os.path.join(FLAGS.export_dir, exporting.REPORT_FILE)}")


def saved_model_cli_show(saved_model_dir):
    """Returns the text of `saved_model_cli show --dir <dir> --all` (for checks and tests)."""
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
         saved_model_dir, "--all"],
        capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        check=False)
    return result.stdout + result.stderr


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
