"""The classification task library: processors, features, TFRecords, the model and its metrics.

Everything `run_classifier.py` does, as functions of plain arguments (the runner only maps flags
onto them):

* data: `InputExample` / `PaddingInputExample` / `InputFeatures`, `DataProcessor` and the processors
  of the reference tasks (cola, mnli, mrpc, xnli) and of the other GLUE tasks (sst-2, qqp, qnli,
  rte, wnli, sts-b: the official files' columns, found by header name), the generic `tsv` / `csv`
  / `jsonl` processors, the module-level registry `PROCESSORS` (`register_processor`,
  `--processor_module` plugins);
* heads (`HeadOptions`, `head_options`): the reference's softmax by default, or `regression` (one
  output, squared error; Pearson and Spearman) or `multi_label` (a sigmoid per label; micro/macro
  F1 and subset accuracy), each with its export head and predictor;
* features: `convert_single_example`, `file_based_convert_examples_to_features` and the cached
  `write_or_reuse_tf_record`, `file_based_input_fn_builder`;
* model: `create_model` (BERT's pooled output and a softmax layer with the reference's root-scope
  `output_weights` / `output_bias`), `model_fn_builder`, `metric_fn_builder`, and the inference head
  `CLASSIFIER_HEAD` that exports and serving use;
* outputs: `labels.txt`, `test_results.tsv` (reference format) and `test_predictions.tsv`.
"""

import collections
import csv
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import sys

import numpy as np
import tensorflow as tf

import cli
import inference
import modeling
import tokenization
import training

tf1 = tf.compat.v1

LABELS_FILE = inference.LABELS_FILE
TASK_TYPES = ("classification", "regression", "multi_label")


@dataclasses.dataclass(frozen=True)
class HeadOptions:
    """The output head of a run: the reference's softmax unless told otherwise.

    Attributes:
      task_type: "classification" (softmax over the labels, cross-entropy), "regression" (one
        linear output, mean squared error) or "multi_label" (a sigmoid per label, binary
        cross-entropy: any number of labels per example).
      label_separator: multi_label: what separates the labels in a label cell.
      thresholds: multi_label: the probability at or above which each label is predicted, one
        per label in label order, or a single value for all (empty: 0.5).
    """

    task_type: str = "classification"
    label_separator: str = ","
    thresholds: tuple = ()

    def threshold_values(self, num_labels):
        """float32 array [num_labels] of the multi_label thresholds."""
        values = list(self.thresholds) or [0.5]
        if len(values) == 1:
            values = values * num_labels
        return np.asarray(values, np.float32)

    def num_outputs(self, num_labels):
        """Width of the output layer."""
        return 1 if self.task_type == "regression" else num_labels


DEFAULT_HEAD = HeadOptions()


def head_options(task_type, label_separator=",", multi_label_threshold=None, num_labels=None):
    """HeadOptions from the runner's flag values, validated.

    Args:
      task_type: one of TASK_TYPES.
      label_separator: --label_separator.
      multi_label_threshold: --multi_label_threshold: None, "0.4" or "0.5,0.3,..." (one per label).
      num_labels: the number of labels, to check a per-label list against.

    Raises:
      cli.UsageError: a threshold that is not a number in (0, 1), or a list of the wrong length.
    """
    thresholds = ()
    if multi_label_threshold not in (None, ""):
        try:
            thresholds = tuple(float(x) for x in str(multi_label_threshold).split(","))
        except ValueError:
            thresholds = (float("nan"),)
        if not all(0.0 < t < 1.0 for t in thresholds):
            raise cli.UsageError(f"--multi_label_threshold={multi_label_threshold}: give a "
                                 f"probability between 0 and 1, or one per label, comma-separated")
        if num_labels is not None and len(thresholds) not in (1, num_labels):
            raise cli.UsageError(f"--multi_label_threshold lists {len(thresholds)} thresholds for "
                                 f"{num_labels} labels; give one, or one per label")
    if not label_separator:
        raise cli.UsageError("--label_separator must not be empty (e.g. , or |)")
    return HeadOptions(task_type, label_separator, thresholds)
# Bump when the TFRecord layout or the conversion changes, so that old caches are rebuilt.
_FEATURE_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------


class InputExample:
    """A single training/test example for simple sequence classification."""

    def __init__(self, guid, text_a, text_b=None, label=None):
        """Constructs an InputExample.

        Args:
          guid: Unique id for the example.
          text_a: string. The untokenized text of the first sequence. For single sequence tasks,
            only this sequence must be specified.
          text_b: (Optional) string. The untokenized text of the second sequence. Only must be
            specified for sequence pair tasks.
          label: (Optional) string. The label of the example. This should be specified for train
            and dev examples, but not for test examples.
        """
        self.guid = guid
        self.text_a = text_a
        self.text_b = text_b
        self.label = label


class PaddingInputExample:
    """Fake example so the number of input examples is a multiple of the batch size.

    When running eval/predict on the TPU, we need to pad the number of examples to be a multiple of
    the batch size, because the TPU requires a fixed batch size. The alternative is to drop the last
    batch, which is bad because it means the entire output data won't be generated.

    We use this class instead of `None` because treating `None` as padding batches could cause
    silent errors.
    """


class InputFeatures:
    """A single set of features of data."""

    def __init__(self, input_ids, input_mask, segment_ids, label_id, is_real_example=True):
        self.input_ids = input_ids
        self.input_mask = input_mask
        self.segment_ids = segment_ids
        self.label_id = label_id
        self.is_real_example = is_real_example


# --------------------------------------------------------------------------------------------------
# Reading files with errors that name the file and line
# --------------------------------------------------------------------------------------------------


def _utf8_lines(input_file):
    """Yields the lines of a file decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises:
      cli.UsageError: a line is not valid UTF-8 (the message names the file and line).
    """
    with tf.io.gfile.GFile(input_file, "rb") as reader:
        for line_number, raw in enumerate(reader, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise cli.UsageError(
                    f"{input_file}, line {line_number}: text is not valid UTF-8 (byte "
                    f"0x{raw[e.start]:02x} at byte {e.start + 1} of the line); re-save the file "
                    f"as UTF-8, e.g. iconv -f latin1 -t utf-8 {os.path.basename(input_file)} "
                    f"> fixed") from None
            if line_number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line


def _read_delimited(input_file, delimiter, quotechar):
    """Reads a delimited text file into (line_number, cells) pairs, skipping blank lines.

    The line number is the one the row starts on (rows of a quoted CSV may span several lines).
    """
    rows = []
    reader = csv.reader(_utf8_lines(input_file), delimiter=delimiter, quotechar=quotechar,
                        quoting=csv.QUOTE_NONE if quotechar is None else csv.QUOTE_MINIMAL)
    next_line = 1
    try:
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                rows.append((next_line, cells))
            next_line = reader.line_num + 1
    except csv.Error as e:
        raise cli.UsageError(
            f"{input_file}, line {reader.line_num}: cannot parse the row ({e}); check its quoting "
            f"(a field with a quote character must be quoted and its quotes doubled)") from None
    return rows


def _require_columns(input_file, line_number, cells, needed, hint):
    """Raises UsageError unless `cells` has at least `needed` columns."""
    if len(cells) < needed:
        raise cli.UsageError(
            f"{input_file}, line {line_number}: expected at least {needed} columns, found "
            f"{len(cells)}; {hint}")


# --------------------------------------------------------------------------------------------------
# Processors: the reference ones, a module-level registry and the generic tsv/csv/jsonl ones
# --------------------------------------------------------------------------------------------------


class DataProcessor:
    """Base class for data converters for sequence classification data sets.

    `task_type` says which head the task needs: "classification" (the reference's softmax, one
    label per example), "regression" (one number, e.g. STS-B) or "multi_label" (a set of labels).
    """

    task_type = "classification"

    def get_train_examples(self, data_dir):
        """Gets a collection of `InputExample`s for the train set."""
        raise NotImplementedError()

    def get_dev_examples(self, data_dir):
        """Gets a collection of `InputExample`s for the dev set."""
        raise NotImplementedError()

    def get_test_examples(self, data_dir):
        """Gets a collection of `InputExample`s for prediction."""
        raise NotImplementedError()

    def get_labels(self):
        """Gets the list of labels for this data set."""
        raise NotImplementedError()

    @classmethod
    def _read_tsv(cls, input_file, quotechar=None):
        """Reads a tab separated value file into a list of rows (lists of strings).

        As in the reference, quoting is off by default (quote characters are kept verbatim).
        Unlike the reference, blank lines are skipped and bad UTF-8 fails with the line number.
        """
        return [cells for _, cells in _read_delimited(input_file, "\t", quotechar)]


PROCESSORS = {}


def register_processor(name, processor_class=None):
    """Registers a DataProcessor subclass as task `name` (case-insensitive).

    Use it as a decorator, `@register_processor("sst2")`, or call it,
    `register_processor("sst2", Sst2Processor)`. A later registration of the same name wins.

    Args:
      name: the task name users pass as --task_name.
      processor_class: the class; None returns a decorator.

    Returns:
      The class (or, without `processor_class`, a decorator that registers and returns it).

    Raises:
      ValueError: the class is not a DataProcessor subclass.
    """

    def _register(cls):
        if not (isinstance(cls, type) and issubclass(cls, DataProcessor)):
            raise ValueError(
                f"register_processor({name!r}, ...) needs a subclass of "
                f"run_classifier.DataProcessor, got {cls!r}")
        PROCESSORS[name.lower()] = cls
        return cls

    if processor_class is None:
        return _register
    return _register(processor_class)


class GlueTsvProcessor(DataProcessor):
    """A GLUE-style task: train/dev/test .tsv files in data_dir read by `_create_examples`.

    Subclasses implement `_create_examples(input_file, set_type)` and `get_labels()`, and may name
    other files in `split_files` (split -> (file name, set type used in the guids)).
    """

    split_files = {"train": ("train.tsv", "train"), "dev": ("dev.tsv", "dev"),
                   "test": ("test.tsv", "test")}

    def _examples(self, data_dir, split):
        file_name, set_type = self.split_files[split]
        return self._create_examples(os.path.join(data_dir, file_name), set_type)

    def get_train_examples(self, data_dir):
        return self._examples(data_dir, "train")

    def get_dev_examples(self, data_dir):
        return self._examples(data_dir, "dev")

    def get_test_examples(self, data_dir):
        return self._examples(data_dir, "test")

    def _create_examples(self, input_file, set_type):
        raise NotImplementedError()


@register_processor("xnli")
class XnliProcessor(DataProcessor):
    """Processor for the XNLI data set (Chinese only, as in the reference)."""

    def __init__(self):
        self.language = "zh"

    def get_train_examples(self, data_dir):
        input_file = os.path.join(data_dir, "multinli", f"multinli.train.{self.language}.tsv")
        examples = []
        for (i, line) in enumerate(self._read_tsv(input_file)):
            if i == 0:
                continue
            _require_columns(input_file, i + 1, line, 3, "XNLI train rows are premise, hypo, label")
            guid = f"train-{i}"
            text_a = tokenization.convert_to_unicode(line[0])
            text_b = tokenization.convert_to_unicode(line[1])
            label = tokenization.convert_to_unicode(line[2])
            if label == "contradictory":
                label = "contradiction"
            examples.append(InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
        return examples

    def get_dev_examples(self, data_dir):
        input_file = os.path.join(data_dir, "xnli.dev.tsv")
        examples = []
        for (i, line) in enumerate(self._read_tsv(input_file)):
            if i == 0:
                continue
            _require_columns(input_file, i + 1, line, 8,
                             "XNLI dev rows need the 8 xnli.dev.tsv columns")
            guid = f"dev-{i}"
            language = tokenization.convert_to_unicode(line[0])
            if language != tokenization.convert_to_unicode(self.language):
                continue
            text_a = tokenization.convert_to_unicode(line[6])
            text_b = tokenization.convert_to_unicode(line[7])
            label = tokenization.convert_to_unicode(line[1])
            examples.append(InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
        return examples

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]


@register_processor("mnli")
class MnliProcessor(GlueTsvProcessor):
    """Processor for the MultiNLI data set (GLUE version, matched dev/test)."""

    # Only the matched dev/test sets, as the reference.
    split_files = {"train": ("train.tsv", "train"), "dev": ("dev_matched.tsv", "dev_matched"),
                   "test": ("test_matched.tsv", "test")}

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]

    def _create_examples(self, input_file, set_type):
        """Creates examples for the training and dev sets."""
        examples = []
        for (i, line) in enumerate(self._read_tsv(input_file)):
            if i == 0:
                continue
            _require_columns(input_file, i + 1, line, 10, "MNLI rows need the GLUE MNLI columns")
            guid = f"{set_type}-{tokenization.convert_to_unicode(line[0])}"
            text_a = tokenization.convert_to_unicode(line[8])
            text_b = tokenization.convert_to_unicode(line[9])
            if set_type == "test":
                label = "contradiction"
            else:
                label = tokenization.convert_to_unicode(line[-1])
            examples.append(InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
        return examples


@register_processor("mrpc")
class MrpcProcessor(GlueTsvProcessor):
    """Processor for the MRPC data set (GLUE version)."""

    def get_labels(self):
        return ["0", "1"]

    def _create_examples(self, input_file, set_type):
        """Creates examples for the training and dev sets."""
        examples = []
        for (i, line) in enumerate(self._read_tsv(input_file)):
            if i == 0:
                continue
            _require_columns(input_file, i + 1, line, 5,
                             "MRPC rows are label, id1, id2, text1, text2")
            guid = f"{set_type}-{i}"
            text_a = tokenization.convert_to_unicode(line[3])
            text_b = tokenization.convert_to_unicode(line[4])
            if set_type == "test":
                label = "0"
            else:
                label = tokenization.convert_to_unicode(line[0])
            examples.append(InputExample(guid=guid, text_a=text_a, text_b=text_b, label=label))
        return examples


@register_processor("cola")
class ColaProcessor(GlueTsvProcessor):
    """Processor for the CoLA data set (GLUE version)."""

    def get_labels(self):
        return ["0", "1"]

    def _create_examples(self, input_file, set_type):
        """Creates examples for the training and dev sets."""
        examples = []
        for (i, line) in enumerate(self._read_tsv(input_file)):
            # Only the test set has a header.
            if set_type == "test" and i == 0:
                continue
            guid = f"{set_type}-{i}"
            if set_type == "test":
                _require_columns(input_file, i + 1, line, 2, "CoLA test rows are id, sentence")
                text_a = tokenization.convert_to_unicode(line[1])
                label = "0"
            else:
                _require_columns(input_file, i + 1, line, 4,
                                 "CoLA rows are source, label, original label, sentence")
                text_a = tokenization.convert_to_unicode(line[3])
                label = tokenization.convert_to_unicode(line[1])
            examples.append(InputExample(guid=guid, text_a=text_a, text_b=None, label=label))
        return examples


class GlueHeaderProcessor(GlueTsvProcessor):
    """A GLUE task whose .tsv files begin with a header naming the columns.

    The official GLUE files of SST-2, QQP, QNLI, RTE, WNLI and STS-B have one; columns are found
    by name, so the test files (no label, sometimes other columns) read with the same code.
    Subclasses set the column names, the labels, and `task_type` = "regression" for scores.
    """

    text_a_name = None
    text_b_name = None
    label_name = "label"
    labels = ()
    # QQP's official train/dev files hold a few rows with a field missing: those are skipped (and
    # counted in the log) instead of stopping the run, as other GLUE tools do.
    skip_short_rows = False

    def get_labels(self):
        return list(self.labels)

    def _columns(self, input_file, header_line, header, set_type):
        names = [name.strip() for name in header]
        wanted = {"text_a": self.text_a_name, "text_b": self.text_b_name,
                  "label": None if set_type == "test" else self.label_name}
        columns = {}
        for what, name in wanted.items():
            if name is None:
                continue
            if name not in names:
                raise cli.UsageError(
                    f"{input_file}, line {header_line}: no column {name!r} in the header {names}; "
                    f"point --data_dir at the official GLUE files of this task")
            columns[what] = names.index(name)
        return columns

    def _label(self, cell, input_file, line_number):
        cell = cell.strip()
        if self.task_type == "regression":
            return parse_regression_target(cell, input_file, line_number)
        if cell not in self.labels:
            raise cli.UsageError(f"{input_file}, line {line_number}: label {cell!r} is not one of "
                                 f"{list(self.labels)}; fix the row")
        return cell

    def _create_examples(self, input_file, set_type):
        rows = _read_delimited(input_file, "\t", None)
        if not rows:
            raise cli.UsageError(f"{input_file} is empty; point --data_dir at the GLUE files")
        columns = self._columns(input_file, rows[0][0], rows[0][1], set_type)
        needed = max(columns.values()) + 1
        dummy = 0.0 if self.task_type == "regression" else self.labels[0]
        examples, skipped = [], []
        for line_number, cells in rows[1:]:
            if len(cells) < needed and self.skip_short_rows:
                skipped.append(line_number)
                continue
            _require_columns(input_file, line_number, cells, needed,
                             f"the header names {needed} columns; fix the row")
            examples.append(InputExample(
                guid=f"{set_type}-{line_number}",
                text_a=tokenization.convert_to_unicode(cells[columns["text_a"]]),
                text_b=(tokenization.convert_to_unicode(cells[columns["text_b"]])
                        if "text_b" in columns else None),
                label=(self._label(cells[columns["label"]], input_file, line_number)
                       if "label" in columns else dummy)))
        if skipped:
            tf1.logging.warning("%s: skipped %d rows with a missing field (lines %s)", input_file,
                                len(skipped), ", ".join(map(str, skipped[:10])))
        return examples


@register_processor("sst-2")
class Sst2Processor(GlueHeaderProcessor):
    """SST-2 (GLUE): one sentence, sentiment 0 / 1. GLUE metric: accuracy."""

    text_a_name = "sentence"
    labels = ("0", "1")


@register_processor("qqp")
class QqpProcessor(GlueHeaderProcessor):
    """QQP (GLUE): question pairs, is_duplicate 0 / 1. GLUE metrics: accuracy and F1 (eval_f1)."""

    text_a_name = "question1"
    text_b_name = "question2"
    label_name = "is_duplicate"
    labels = ("0", "1")
    skip_short_rows = True


@register_processor("qnli")
class QnliProcessor(GlueHeaderProcessor):
    """QNLI (GLUE): question and sentence, entailment / not_entailment. GLUE metric: accuracy."""

    text_a_name = "question"
    text_b_name = "sentence"
    labels = ("entailment", "not_entailment")


@register_processor("rte")
class RteProcessor(GlueHeaderProcessor):
    """RTE (GLUE): sentence pairs, entailment / not_entailment. GLUE metric: accuracy."""

    text_a_name = "sentence1"
    text_b_name = "sentence2"
    labels = ("entailment", "not_entailment")


@register_processor("wnli")
class WnliProcessor(GlueHeaderProcessor):
    """WNLI (GLUE): sentence pairs, 0 / 1. GLUE metric: accuracy."""

    text_a_name = "sentence1"
    text_b_name = "sentence2"
    labels = ("0", "1")


@register_processor("sts-b")
class StsbProcessor(GlueHeaderProcessor):
    """STS-B (GLUE): sentence pairs scored 0-5, a regression task. GLUE metrics: Pearson and
    Spearman correlation (eval_pearson, eval_spearman)."""

    task_type = "regression"
    text_a_name = "sentence1"
    text_b_name = "sentence2"
    label_name = "score"


# The spellings without the dash that other tools use.
register_processor("sst2", Sst2Processor)
register_processor("stsb", StsbProcessor)


def parse_regression_target(cell, input_file, line_number):
    """A regression target as a float; UsageError naming the file and line if it is not one."""
    try:
        value = float(cell)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise cli.UsageError(f"{input_file}, line {line_number}: regression target {cell!r} is not "
                             f"a number; fix the row or point --label_column at the score column")
    return value


def parse_label_list(text):
    """Splits a comma-separated --labels value; raises UsageError on empty or duplicate labels."""
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if not labels:
        raise cli.UsageError(f"--labels={text!r} names no label; give e.g. --labels=neg,pos")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise cli.UsageError(
            f"--labels names {duplicates} more than once; list each label once")
    return labels


def sorted_labels(labels):
    """Sorts labels numerically when all of them are integers ("2" before "10"), else as strings."""
    labels = set(labels)
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


def _is_number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return False
    return value == value and value not in (float("inf"), float("-inf"))


def _is_index(column):
    return column.lstrip("-").isdigit()


def _has_index(cells, index):
    return -len(cells) <= index < len(cells)


class GenericProcessor(DataProcessor):
    """Base of the tsv/csv/jsonl processors: train/dev/test files, columns chosen by flags.

    Files: `train.<ext>`, `dev.<ext>` (or `validation.<ext>`) and `test.<ext>` in data_dir, for the
    extensions in `EXTENSIONS`. Columns are 0-based indexes or header names (field names for jsonl).
    Dev labels must be in the label list; test labels are optional (a missing or unknown test label
    becomes the first label, like the dummy test labels of the reference processors).

    With task_type "regression" the label column holds a number (no label list); with
    "multi_label" it holds labels joined by `label_separator` (an empty cell: no label).
    """

    EXTENSIONS = ()
    DEFAULT_TEXT_A_COLUMN = "1"
    DEFAULT_LABEL_COLUMN = "0"

    def __init__(self, data_dir=None, text_a_column=None, text_b_column=None, label_column=None,
                 has_header="auto", labels=None, task_type="classification", label_separator=","):
        """Creates the processor.

        Args:
          data_dir: directory of the task files (needed to infer the labels from the train file).
          text_a_column: column of the first text (index or name as a string); None = default.
          text_b_column: column of the second text; None = single-sentence task.
          label_column: column of the label; None = default.
          has_header: "auto", "true" or "false" (tsv/csv only).
          labels: list of labels in id order, or None to infer them from the training file.
          task_type: "classification", "regression" or "multi_label" (see DataProcessor).
          label_separator: multi_label only: what separates the labels of one example.
        """
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type {task_type!r} is not one of {TASK_TYPES}")
        self.task_type = task_type
        self.label_separator = label_separator
        self.data_dir = data_dir
        self.text_a_column = str(text_a_column if text_a_column is not None
                                 else self.DEFAULT_TEXT_A_COLUMN)
        self.text_b_column = None if text_b_column in (None, "") else str(text_b_column)
        self.label_column = str(label_column if label_column is not None
                                else self.DEFAULT_LABEL_COLUMN)
        self.has_header = str(has_header).lower()
        self._labels = list(labels) if labels else None
        self._rows_cache = {}

    # -- the DataProcessor interface --------------------------------------------------------------

    def get_train_examples(self, data_dir):
        return self._create_examples(self._find_file(data_dir, "train"), "train")

    def get_dev_examples(self, data_dir):
        return self._create_examples(self._find_file(data_dir, "dev"), "dev")

    def get_test_examples(self, data_dir):
        return self._create_examples(self._find_file(data_dir, "test"), "test")

    def get_labels(self):
        if self.task_type == "regression":
            return []  # One number per example: no label list.
        if self._labels is None:
            self._labels = self._infer_labels()
        return list(self._labels)

    # -- files ------------------------------------------------------------------------------------

    def _find_file(self, data_dir, split):
        names = [split] + (["validation"] if split == "dev" else [])
        candidates = [os.path.join(data_dir, f"{name}.{ext}") for name in names
                      for ext in self.EXTENSIONS]
        for path in candidates:
            if tf.io.gfile.exists(path):
                return path
        raise cli.UsageError(
            f"no {split} file in {data_dir}: expected one of "
            f"{', '.join(os.path.basename(p) for p in candidates)}")

    def _rows(self, path):
        """Returns the file's (line_number, row) pairs, read once per processor."""
        if path not in self._rows_cache:
            self._rows_cache[path] = self._read_rows(path)
            if not self._rows_cache[path]:
                raise cli.UsageError(f"{path} holds no rows; fill it or point --data_dir "
                                         f"at the right directory")
        return self._rows_cache[path]

    def _read_rows(self, path):
        """Returns a list of (line_number, row); row is a list of cells or a dict (jsonl)."""
        raise NotImplementedError()

    # -- columns and header -----------------------------------------------------------------------

    def _column_specs(self):
        return {"text_a_column": self.text_a_column, "text_b_column": self.text_b_column,
                "label_column": self.label_column}

    def _header_and_data(self, path, label_list):
        """Splits a tabular file into (header cells or None, data rows) by the --has_header rule."""
        rows = self._rows(path)
        header = self._detect_header(path, rows, label_list)
        return (rows[0][1], rows[1:]) if header else (None, rows)

    def _detect_header(self, path, rows, label_list):
        """Decides whether the first row of a tabular file is a header (see the has_header flag).

        auto: a header when any column is given by name; otherwise when the first row's label cell
        is not in the label list (when known) and appears in no later row's label column. A file
        whose first row has no label cell (an unlabelled test file) follows the train file.
        """
        if self.has_header in ("true", "false"):
            return self.has_header == "true"
        if any(spec is not None and not _is_index(spec) for spec in self._column_specs().values()):
            return True
        label_index = int(self.label_column)
        first_line, first = rows[0]
        if not _has_index(first, label_index):
            train_path = None
            if self.data_dir:
                try:
                    train_path = self._find_file(self.data_dir, "train")
                except cli.UsageError:
                    pass
            if train_path and train_path != path:
                return self._detect_header(train_path, self._rows(train_path), label_list)
            tf1.logging.warning("%s: cannot tell whether line %d is a header (it has no label "
                                "column); reading it as data. Pass --has_header=true if it is one.",
                                path, first_line)
            return False
        cell = first[label_index].strip()
        if self._is_label_value(cell, label_list):
            return False
        for _, cells in rows[1:]:
            if len(cells) > label_index and self._shares_label(cells[label_index].strip(), cell):
                return False
        return True

    def _split_labels(self, cell):
        """The labels of a multi_label cell (empty parts dropped)."""
        return [part.strip() for part in cell.split(self.label_separator) if part.strip()]

    def _shares_label(self, cell, other):
        """Whether two label cells name a common label (are equal, unless multi_label)."""
        if self.task_type == "multi_label":
            return bool(set(self._split_labels(cell)) & set(self._split_labels(other)))
        return cell == other

    def _is_label_value(self, cell, label_list):
        """Whether a label cell holds a valid value (a header cell does not)."""
        if self.task_type == "regression":
            return _is_number(cell)
        if not label_list:
            return False
        if self.task_type == "multi_label":
            parts = self._split_labels(cell)
            return bool(parts) and all(part in label_list for part in parts)
        return cell in label_list

    def _resolve_column(self, flag, spec, header, path, required):
        """Maps a column spec (index or header name) to an index; None if optional and absent."""
        if spec is None:
            return None
        if _is_index(spec):
            return int(spec)
        if header is None:
            raise cli.UsageError(
                f"--{flag}={spec!r} names a column but {path} has no header row; give a 0-based "
                f"column index instead or pass --has_header=true")
        stripped = [name.strip() for name in header]
        for candidates in (stripped, [name.lower() for name in stripped]):
            key = spec if candidates is stripped else spec.lower()
            if key in candidates:
                return candidates.index(key)
        if not required:
            return None
        raise cli.UsageError(
            f"--{flag}={spec!r} is not a column of {path}; its header has {stripped}")

    # -- examples ---------------------------------------------------------------------------------

    def _labelled_rows(self, path, set_type, label_list):
        """Yields (line_number, text_a, text_b, label or None) for a file.

        Subclasses override this; the tabular version lives here.
        """
        header, data = self._header_and_data(path, label_list)
        is_test = set_type == "test"
        a_index = self._resolve_column("text_a_column", self.text_a_column, header, path, True)
        b_index = self._resolve_column("text_b_column", self.text_b_column, header, path, True)
        label_index = self._resolve_column("label_column", self.label_column, header, path,
                                           required=not is_test)
        needed = max(abs(i) + (0 if i < 0 else 1) for i in (a_index, b_index) if i is not None)
        if not is_test:
            needed = max(needed, abs(label_index) + (0 if label_index < 0 else 1))
        hint = (f"fix the row, or point --text_a_column/--text_b_column/--label_column at the "
                f"right columns (now {self.text_a_column}/{self.text_b_column}/"
                f"{self.label_column})")
        for line_number, cells in data:
            _require_columns(path, line_number, cells, needed, hint)
            label = None
            if label_index is not None and _has_index(cells, label_index):
                label = cells[label_index].strip()
            yield (line_number, cells[a_index], None if b_index is None else cells[b_index], label)

    def _parse_label(self, label, path, line_number, set_type, label_list):
        """The example's label: a label (classification), a float (regression) or a list of
        labels (multi_label). Test labels are optional: a missing or invalid one becomes a dummy.

        Raises:
          cli.UsageError: a train/dev label outside the list, or a target that is not a number.
        """
        is_test = set_type == "test"
        if self.task_type == "regression":
            if is_test and (label is None or not _is_number(label)):
                return 0.0
            return parse_regression_target(label or "", path, line_number)
        if self.task_type == "multi_label":
            parts = self._split_labels(label or "")
            unknown = [part for part in parts if part not in label_list]
            if unknown and not is_test:
                raise cli.UsageError(
                    f"{path}, line {line_number}: label {unknown[0]!r} of {label!r} is not in the "
                    f"label list {label_list}; fix the row, add the label to --labels, or set "
                    f"--label_separator (now {self.label_separator!r})")
            return [part for part in parts if part in label_list]
        if label not in label_list:
            if is_test:
                return label_list[0]
            raise cli.UsageError(
                f"{path}, line {line_number}: label {label!r} is not in the label list "
                f"{label_list}; fix the row or add the label to --labels")
        return label

    def _create_examples(self, path, set_type):
        label_list = self.get_labels()
        examples = []
        for line_number, text_a, text_b, label in self._labelled_rows(path, set_type, label_list):
            label = self._parse_label(label, path, line_number, set_type, label_list)
            examples.append(InputExample(
                guid=f"{set_type}-{line_number}",
                text_a=tokenization.convert_to_unicode(text_a),
                text_b=None if text_b is None else tokenization.convert_to_unicode(text_b),
                label=label))
        # The examples now hold the text; don't keep a second copy of a large file in memory.
        self._rows_cache.pop(path, None)
        return examples

    def _infer_labels(self):
        """Returns the sorted labels of the training file."""
        if not self.data_dir:
            raise cli.UsageError(
                "cannot infer the label list without --data_dir; pass --labels")
        try:
            path = self._find_file(self.data_dir, "train")
        except cli.UsageError:
            raise cli.UsageError(
                f"cannot determine the label list: no training file in {self.data_dir} and no "
                f"{LABELS_FILE} in --output_dir; pass --labels=label1,label2,...") from None
        labels = [label for _, _, _, label in self._labelled_rows(path, "train", None)]
        if self.task_type == "multi_label":
            found = sorted_labels(part for label in labels for part in self._split_labels(label))
            tf1.logging.info("Labels found in %s: %s", path, found)
            return found
        found = sorted_labels(labels)
        # A text column taken for the label column gives (almost) one label per row.
        if len(labels) >= 20 and len(found) > len(labels) // 2:
            raise cli.UsageError(
                f"{path}: column {self.label_column!r} has {len(found)} different values in "
                f"{len(labels)} rows, which looks like text, not labels; set --label_column")
        tf1.logging.info("Labels found in %s: %s", path, found)
        return found


@register_processor("tsv")
class TsvProcessor(GenericProcessor):
    """Tab-separated train/dev/test files. Quoting is off, as in the reference `_read_tsv`."""

    EXTENSIONS = ("tsv",)

    def _read_rows(self, path):
        return _read_delimited(path, "\t", None)


@register_processor("csv")
class CsvProcessor(GenericProcessor):
    """Comma-separated train/dev/test files with standard CSV quoting ("a, b" is one cell)."""

    EXTENSIONS = ("csv",)

    def _read_rows(self, path):
        return _read_delimited(path, ",", '"')


@register_processor("jsonl")
class JsonlProcessor(GenericProcessor):
    """JSON-lines train/dev/test files (`.jsonl` or `.json`), one object per line.

    Columns are field names (default "text" and "label"); a line that is a JSON list is indexed by
    position instead. There is no header.
    """

    EXTENSIONS = ("jsonl", "json")
    DEFAULT_TEXT_A_COLUMN = "text"
    DEFAULT_LABEL_COLUMN = "label"

    def _read_rows(self, path):
        rows = []
        for line_number, line in enumerate(_utf8_lines(path), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise cli.UsageError(
                    f"{path}, line {line_number}: not valid JSON ({e.msg}); each line must be one "
                    f"object such as {{\"text\": \"...\", \"label\": \"...\"}}") from None
            if not isinstance(row, (dict, list)):
                raise cli.UsageError(
                    f"{path}, line {line_number}: expected a JSON object per line, got "
                    f"{type(row).__name__}")
            rows.append((line_number, row))
        return rows

    def _labelled_rows(self, path, set_type, label_list):
        for line_number, row in self._rows(path):
            values = {}
            for flag, spec in self._column_specs().items():
                if spec is None:
                    values[flag] = None
                    continue
                value = self._field(row, spec)
                raw = row.get(spec) if isinstance(row, dict) else None
                if flag == "label_column" and self.task_type == "multi_label" and \
                        isinstance(raw, list):
                    # A JSON list of labels, e.g. "labels": ["price", "quality"].
                    value = self.label_separator.join(str(item) for item in raw)
                if value is None and not (flag == "label_column" and set_type == "test"):
                    fields = list(row) if isinstance(row, dict) else f"{len(row)} list items"
                    raise cli.UsageError(
                        f"{path}, line {line_number}: no field {spec!r} (the line has {fields}); "
                        f"fix the line or set --{flag}")
                values[flag] = value
            label = values["label_column"]
            yield (line_number, values["text_a_column"], values["text_b_column"],
                   None if label is None else label.strip())

    @staticmethod
    def _field(row, spec):
        """Returns a field as a string, or None when it is missing."""
        if isinstance(row, dict):
            value = row.get(spec)
        elif _is_index(spec) and -len(row) <= int(spec) < len(row):
            value = row[int(spec)]
        else:
            value = None
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return str(value)


def import_processor_module(module):
    """Imports a file path (`.py`) or module name so that its register_processor calls run.

    Raises:
      cli.UsageError: the file or module cannot be found.
    """
    if module.endswith(".py") or os.sep in module:
        path = os.path.abspath(module)
        if not os.path.isfile(path):
            raise cli.UsageError(f"--processor_module={module}: no such file")
        name = "classifier_plugin_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        plugin = importlib.util.module_from_spec(spec)
        sys.modules[name] = plugin
        # Let the plugin import modules that sit next to it.
        sys.path.insert(0, os.path.dirname(path))
        try:
            spec.loader.exec_module(plugin)
        finally:
            sys.path.remove(os.path.dirname(path))
    else:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise cli.UsageError(
                f"--processor_module={module}: cannot import {e.name!r}; give a path to a .py file "
                f"or a module on PYTHONPATH") from None
    tf1.logging.info("Imported processor module %s; tasks: %s", module, sorted(PROCESSORS))


def create_processor(task_name, data_dir=None, text_a_column=None, text_b_column=None,
                     label_column=None, has_header="auto", labels=None, task_type=None,
                     label_separator=","):
    """Looks up a task in PROCESSORS and creates its processor.

    The column, header and label options only apply to GenericProcessor subclasses.

    Args:
      task_type: None for the task's own type (generic tasks: classification), or one of
        TASK_TYPES; a fixed task (mrpc, sts-b, ...) only accepts its own.
      label_separator: multi_label only (generic tasks).

    Raises:
      cli.UsageError: unknown task, generic-only options given to another task, or a task type
        the task does not have.
    """
    cls = PROCESSORS.get(task_name.lower())
    if cls is None:
        raise cli.UsageError(
            f"Task not found: {task_name}; known tasks: {', '.join(sorted(PROCESSORS))} (register "
            f"your own with --processor_module, see sample_data/plugin_processor_example.py)")
    if task_type is not None and task_type not in TASK_TYPES:
        raise cli.UsageError(f"--task_type={task_type} is not one of {', '.join(TASK_TYPES)}")
    if issubclass(cls, GenericProcessor):
        return cls(data_dir=data_dir, text_a_column=text_a_column, text_b_column=text_b_column,
                   label_column=label_column, has_header=has_header, labels=labels,
                   task_type=task_type or "classification", label_separator=label_separator)
    if task_type is not None and task_type != cls.task_type:
        raise cli.UsageError(f"task {task_name} is a {cls.task_type} task; drop "
                             f"--task_type={task_type}")
    given = [name for name, value in (("text_a_column", text_a_column),
                                      ("text_b_column", text_b_column),
                                      ("label_column", label_column)) if value is not None]
    if given or has_header != "auto":
        raise cli.UsageError(
            f"--{(given or ['has_header'])[0]} only applies to the generic tsv/csv/jsonl tasks, "
            f"not to {task_name}; drop it")
    return cls()


# --------------------------------------------------------------------------------------------------
# Feature conversion and TFRecords
# --------------------------------------------------------------------------------------------------


def _label_id(label, label_list, head):
    """The label as the model sees it: an id, a float (regression) or a multi-hot list."""
    if head.task_type == "regression":
        return float(label)
    if head.task_type == "multi_label":
        chosen = set(label)
        return [1.0 if name in chosen else 0.0 for name in label_list]
    return label_list.index(label)


def _padding_label_id(label_list, head):
    if head.task_type == "regression":
        return 0.0
    if head.task_type == "multi_label":
        return [0.0] * len(label_list)
    return 0


def convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer,
                           head=DEFAULT_HEAD):
    """Converts a single `InputExample` into a single `InputFeatures`.

    `label_id` is an int for classification, a float for regression and a multi-hot list of
    floats for multi_label.
    """
    if isinstance(example, PaddingInputExample):
        return InputFeatures(
            input_ids=[0] * max_seq_length,
            input_mask=[0] * max_seq_length,
            segment_ids=[0] * max_seq_length,
            label_id=_padding_label_id(label_list, head),
            is_real_example=False)

    tokens_a = tokenizer.tokenize(example.text_a)
    tokens_b = None
    if example.text_b:
        tokens_b = tokenizer.tokenize(example.text_b)

    tokens, segment_ids = tokenization.pack_sequence_pair(tokens_a, tokens_b, max_seq_length)

    input_ids = tokenizer.convert_tokens_to_ids(tokens)

    # The mask has 1 for real tokens and 0 for padding tokens. Only real tokens are attended to.
    input_mask = [1] * len(input_ids)

    # Zero-pad up to the sequence length.
    padding = max_seq_length - len(input_ids)
    input_ids += [0] * padding
    input_mask += [0] * padding
    segment_ids += [0] * padding

    assert len(input_ids) == max_seq_length
    assert len(input_mask) == max_seq_length
    assert len(segment_ids) == max_seq_length

    label_id = _label_id(example.label, label_list, head)
    if ex_index < 5:
        tf1.logging.info("*** Example ***")
        tf1.logging.info("guid: %s", example.guid)
        tf1.logging.info("tokens: %s", " ".join(tokenization.printable_text(x) for x in tokens))
        tf1.logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
        tf1.logging.info("input_mask: %s", " ".join(str(x) for x in input_mask))
        tf1.logging.info("segment_ids: %s", " ".join(str(x) for x in segment_ids))
        tf1.logging.info("label: %s (id = %s)", example.label, label_id)

    return InputFeatures(
        input_ids=input_ids,
        input_mask=input_mask,
        segment_ids=segment_ids,
        label_id=label_id,
        is_real_example=True)


def _create_int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def file_based_convert_examples_to_features(examples, label_list, max_seq_length, tokenizer,
                                            output_file, head=DEFAULT_HEAD):
    """Converts a set of `InputExample`s to a TFRecord file (written atomically).

    Classification writes the reference's int64 `label_ids`; regression and multi_label write
    float `label_values` ([1] or [num_labels]) instead.
    """
    progress = cli.ProgressLogger(total=len(examples), unit="examples",
                                      name=f"Writing {os.path.basename(output_file)}")
    with cli.atomic_output(output_file) as tmp_path:
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for (ex_index, example) in enumerate(examples):
                if ex_index % 10000 == 0:
                    tf1.logging.info("Writing example %d of %d", ex_index, len(examples))
                feature = convert_single_example(ex_index, example, label_list, max_seq_length,
                                                 tokenizer, head)
                features = collections.OrderedDict()
                features["input_ids"] = _create_int_feature(feature.input_ids)
                features["input_mask"] = _create_int_feature(feature.input_mask)
                features["segment_ids"] = _create_int_feature(feature.segment_ids)
                if head.task_type == "classification":
                    features["label_ids"] = _create_int_feature([feature.label_id])
                else:
                    features["label_values"] = _float_feature(np.atleast_1d(feature.label_id))
                features["is_real_example"] = _create_int_feature([int(feature.is_real_example)])
                tf_example = tf.train.Example(features=tf.train.Features(feature=features))
                writer.write(tf_example.SerializeToString())
                progress.update()
    progress.done()


def _sha256_of_file(path):
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def features_fingerprint(examples, label_list, max_seq_length, vocab_file, do_lower_case,
                         head=DEFAULT_HEAD):
    """Everything a cached TFRecord depends on, as a JSON-serialisable dict.

    The examples are hashed by content (guid, texts, label, padding), which covers the input files
    and the processor options; the vocab by content; the tokenizer by its source file.
    """
    digest = hashlib.sha256()
    for example in examples:
        if isinstance(example, PaddingInputExample):
            digest.update(b"\x00padding\n")
        else:
            fields = [example.guid, example.text_a, example.text_b, example.label]
            digest.update(json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n")
    fingerprint = {
        "format_version": _FEATURE_FORMAT_VERSION,
        "num_examples": len(examples),
        "examples_sha256": digest.hexdigest(),
        "max_seq_length": max_seq_length,
        "vocab_sha256": _sha256_of_file(vocab_file),
        "tokenizer_sha256": _sha256_of_file(tokenization.__file__),
        "do_lower_case": bool(do_lower_case),
        "label_list": list(label_list),
    }
    if head.task_type != "classification":  # Classification caches keep their old fingerprints.
        fingerprint["task_type"] = head.task_type
    return fingerprint


def write_or_reuse_tf_record(examples, label_list, max_seq_length, tokenizer, output_file,
                             fingerprint, use_cache=True, head=DEFAULT_HEAD):
    """Writes `output_file` unless a cached copy with the same fingerprint exists.

    Returns:
      True if the cached file was reused.
    """
    sidecar = output_file + ".json"
    if use_cache and tf.io.gfile.exists(output_file) and tf.io.gfile.exists(sidecar):
        try:
            with tf.io.gfile.GFile(sidecar, "r") as f:
                cached = json.load(f)
        except ValueError:
            cached = None
        if cached == fingerprint:
            tf1.logging.info("Reusing %s (%d examples): inputs, vocab and flags are unchanged",
                             output_file, len(examples))
            return True
        tf1.logging.info("Rebuilding %s: its inputs or flags changed", output_file)
    if tf.io.gfile.exists(sidecar):
        tf.io.gfile.remove(sidecar)
    file_based_convert_examples_to_features(examples, label_list, max_seq_length, tokenizer,
                                            output_file, head)
    with cli.atomic_output(sidecar) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            json.dump(fingerprint, f, indent=1)
    return False


def file_based_input_fn_builder(input_file, seq_length, is_training, drop_remainder,
                                head=DEFAULT_HEAD, num_labels=None):
    """Creates an `input_fn` closure to be passed to the Estimator.

    Args:
      head: HeadOptions; regression and multi_label read `label_values` ([1] / [num_labels]).
      num_labels: multi_label only: the number of labels.
    """
    name_to_features = {
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }
    if head.task_type == "classification":
        name_to_features["label_ids"] = tf.io.FixedLenFeature([], tf.int64)
    else:
        name_to_features["label_values"] = tf.io.FixedLenFeature(
            [head.num_outputs(num_labels)], tf.float32)

    return training.tfrecord_input_fn(input_file, name_to_features, is_training, drop_remainder)


# The reference's name for it.
_truncate_seq_pair = tokenization.truncate_seq_pair


def input_fn_builder(features, seq_length, is_training, drop_remainder):
    """Creates an in-memory `input_fn` (kept for notebook users; main() uses TFRecords).

    It does not scale to large data sets: all features become graph constants.
    """
    all_input_ids = [feature.input_ids for feature in features]
    all_input_mask = [feature.input_mask for feature in features]
    all_segment_ids = [feature.segment_ids for feature in features]
    all_label_ids = [feature.label_id for feature in features]

    def input_fn(params):
        """The actual input function."""
        batch_size = params["batch_size"]
        num_examples = len(features)
        d = tf.data.Dataset.from_tensor_slices({
            "input_ids": tf.constant(all_input_ids, shape=[num_examples, seq_length],
                                     dtype=tf.int32),
            "input_mask": tf.constant(all_input_mask, shape=[num_examples, seq_length],
                                      dtype=tf.int32),
            "segment_ids": tf.constant(all_segment_ids, shape=[num_examples, seq_length],
                                       dtype=tf.int32),
            "label_ids": tf.constant(all_label_ids, shape=[num_examples], dtype=tf.int32),
        })
        if is_training:
            d = d.repeat()
            d = d.shuffle(buffer_size=100)
        return d.batch(batch_size=batch_size, drop_remainder=drop_remainder)

    return input_fn


def convert_examples_to_features(examples, label_list, max_seq_length, tokenizer):
    """Converts a set of `InputExample`s to a list of `InputFeatures`."""
    features = []
    for (ex_index, example) in enumerate(examples):
        if ex_index % 10000 == 0:
            tf1.logging.info("Writing example %d of %d", ex_index, len(examples))
        features.append(convert_single_example(ex_index, example, label_list, max_seq_length,
                                               tokenizer))
    return features


# --------------------------------------------------------------------------------------------------
# Metrics: streaming, weighted by is_real_example, usable for early stopping
# --------------------------------------------------------------------------------------------------


def streaming_confusion_matrix(labels, predictions, num_labels, weights=None, name=None):
    """A tf.compat.v1.metrics-style confusion matrix accumulated over the eval batches.

    Args:
      labels: int Tensor [batch_size], gold label ids.
      predictions: int Tensor [batch_size], predicted label ids.
      num_labels: number of classes.
      weights: optional float Tensor [batch_size] (0 for padding examples).
      name: variable scope name.

    Returns:
      (value, update_op): value is a float64 Tensor [num_labels, num_labels] where row i, column j
      counts (weighted) examples of gold label i predicted as j.
    """
    with tf1.variable_scope(name, default_name="confusion_matrix"):
        # A local metric variable, so the Estimator resets it before every evaluation.
        total = tf1.get_variable(
            "total", shape=[num_labels, num_labels], dtype=tf.float64,
            initializer=tf1.zeros_initializer(), trainable=False,
            collections=[tf1.GraphKeys.LOCAL_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES])
        batch = tf.math.confusion_matrix(labels, predictions, num_classes=num_labels,
                                         weights=weights, dtype=tf.float64)
        update_op = tf1.assign_add(total, batch)
        return tf.identity(total), update_op


def confusion_matrix_metrics(confusion, positive_label_id=1):
    """Classification metrics computed from a confusion matrix tensor.

    Macro averages run over the classes that occur among the gold labels or the predictions (as
    scikit-learn does when no label list is given); a 0/0 precision, recall or F1 counts as 0. The
    Matthews correlation is the multi-class form (Gorodkin 2004), which equals the usual
    phi-coefficient for two classes; it is 0 when undefined.

    Args:
      confusion: float Tensor [num_labels, num_labels], rows = gold labels, columns = predictions.
      positive_label_id: class whose precision/recall/F1 is reported for two-class tasks.

    Returns:
      dict of float32 scalars: macro_precision, macro_recall, macro_f1, mcc and, when there are
      two classes, precision, recall, f1 of the positive class.
    """
    confusion = tf.cast(confusion, tf.float64)
    true_positives = tf.linalg.diag_part(confusion)
    gold_counts = tf.reduce_sum(confusion, axis=1)
    predicted_counts = tf.reduce_sum(confusion, axis=0)
    precision = tf.math.divide_no_nan(true_positives, predicted_counts)
    recall = tf.math.divide_no_nan(true_positives, gold_counts)
    f1 = tf.math.divide_no_nan(2.0 * precision * recall, precision + recall)

    present = tf.cast((gold_counts + predicted_counts) > 0, tf.float64)
    num_present = tf.reduce_sum(present)

    def macro(values):
        return tf.math.divide_no_nan(tf.reduce_sum(values * present), num_present)

    total = tf.reduce_sum(confusion)
    correct = tf.reduce_sum(true_positives)
    mcc_numerator = correct * total - tf.reduce_sum(gold_counts * predicted_counts)
    mcc_denominator = tf.sqrt((total ** 2 - tf.reduce_sum(predicted_counts ** 2)) *
                              (total ** 2 - tf.reduce_sum(gold_counts ** 2)))
    metrics = {
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "mcc": tf.math.divide_no_nan(mcc_numerator, mcc_denominator),
    }
    if confusion.shape[0] == 2:
        metrics["precision"] = precision[positive_label_id]
        metrics["recall"] = recall[positive_label_id]
        metrics["f1"] = f1[positive_label_id]
    return {name: tf.cast(value, tf.float32) for name, value in metrics.items()}


def average_ranks(values):
    """Ranks 1..n of values, ties sharing the mean of their ranks (as Spearman's rho needs)."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse]


def correlations(predictions, targets):
    """{"pearson", "spearman"} of two 1-D arrays; 0.0 when undefined (constant or < 2 values)."""
    predictions = np.asarray(predictions, np.float64)
    targets = np.asarray(targets, np.float64)

    def pearson(x, y):
        if len(x) < 2:
            return 0.0
        x, y = x - x.mean(), y - y.mean()
        denominator = np.sqrt((x * x).sum() * (y * y).sum())
        return float((x * y).sum() / denominator) if denominator > 0 else 0.0

    return {"pearson": pearson(predictions, targets),
            "spearman": pearson(average_ranks(predictions), average_ranks(targets))}


def multi_label_metrics(counts):
    """Multi-label metrics from streamed counts.

    Args:
      counts: float64 Tensor [3, L] of true positives, false positives and false negatives per
        label.

    Returns:
      dict of float32 scalars: micro_ and macro_ precision, recall and f1. Macro averages run
      over the labels that occur among the gold labels or the predictions; 0/0 counts as 0.
    """
    true_positives, false_positives, false_negatives = counts[0], counts[1], counts[2]

    def prf(tp, fp, fn):
        precision = tf.math.divide_no_nan(tp, tp + fp)
        recall = tf.math.divide_no_nan(tp, tp + fn)
        return precision, recall, tf.math.divide_no_nan(2.0 * precision * recall,
                                                        precision + recall)

    micro = prf(*[tf.reduce_sum(c) for c in (true_positives, false_positives, false_negatives)])
    per_label = prf(true_positives, false_positives, false_negatives)
    present = tf.cast(true_positives + false_positives + false_negatives > 0, tf.float64)
    macro = [tf.math.divide_no_nan(tf.reduce_sum(v * present), tf.reduce_sum(present))
             for v in per_label]
    metrics = {}
    for kind, values in (("micro", micro), ("macro", macro)):
        for name, value in zip(("precision", "recall", "f1"), values):
            metrics[f"{kind}_{name}"] = tf.cast(value, tf.float32)
    return metrics


def eval_metric_names(num_labels, head=DEFAULT_HEAD):
    """The keys of eval_results.txt (metric_fn keys plus the Estimator's loss and global_step)."""
    if head.task_type == "regression":
        return sorted(["eval_loss", "eval_pearson", "eval_spearman", "global_step", "loss"])
    if head.task_type == "multi_label":
        return sorted(["eval_loss", "eval_subset_accuracy", "global_step", "loss"] +
                      [f"eval_{kind}_{name}" for kind in ("micro", "macro")
                       for name in ("precision", "recall", "f1")])
    names = ["eval_accuracy", "eval_loss", "eval_macro_precision", "eval_macro_recall",
             "eval_macro_f1", "eval_mcc", "global_step", "loss"]
    if num_labels == 2:
        names += ["eval_precision", "eval_recall", "eval_f1", "eval_auc"]
    return sorted(names)


def _regression_metric_fn(per_example_loss, label_values, logits, is_real_example):
    """eval_loss (the mean squared error), eval_pearson and eval_spearman."""
    weights = tf.cast(is_real_example, tf.float32)
    real = weights > 0
    collected = [training.streaming_concat(
                     name, tf.boolean_mask(tf.cast(values[:, 0], tf.float32), real))
                 for name, values in (("predictions", logits), ("targets", label_values))]

    def compute(predictions, targets):
        result = correlations(predictions, targets)
        return np.array([result["pearson"], result["spearman"]], np.float32)

    update = tf.group(*[u for _, u in collected])
    values = tf1.py_func(compute, [v for v, _ in collected], tf.float32, stateful=True)
    return {"eval_loss": tf1.metrics.mean(values=per_example_loss, weights=weights),
            "eval_pearson": (values[0], update), "eval_spearman": (values[1], update)}


def _multi_label_metric_fn_builder(num_labels, thresholds):
    def metric_fn(per_example_loss, label_values, logits, is_real_example):
        weights = tf.cast(is_real_example, tf.float64)[:, tf.newaxis]  # [B, 1]
        probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
        predicted = tf.cast(probabilities >= tf.constant(thresholds), tf.float64)  # [B, L]
        gold = tf.cast(label_values, tf.float64)
        batch_counts = tf.stack([
            tf.reduce_sum(predicted * gold * weights, axis=0),
            tf.reduce_sum(predicted * (1.0 - gold) * weights, axis=0),
            tf.reduce_sum((1.0 - predicted) * gold * weights, axis=0)])  # [3, L]
        with tf1.variable_scope("multi_label_counts"):
            counts = tf1.get_variable(
                "counts", [3, num_labels], tf.float64, tf1.zeros_initializer(), trainable=False,
                collections=[tf1.GraphKeys.LOCAL_VARIABLES, tf1.GraphKeys.METRIC_VARIABLES])
            update = tf1.assign_add(counts, batch_counts)
        exact = tf.cast(tf.reduce_all(tf.equal(predicted, gold), axis=1), tf.float32)
        metrics = {"eval_" + name: (value, update)
                   for name, value in multi_label_metrics(tf.identity(counts)).items()}
        metrics["eval_subset_accuracy"] = tf1.metrics.mean(
            values=exact, weights=tf.cast(is_real_example, tf.float32))
        metrics["eval_loss"] = tf1.metrics.mean(values=per_example_loss,
                                                weights=tf.cast(is_real_example, tf.float32))
        return metrics

    return metric_fn


def metric_fn_builder(num_labels, head=DEFAULT_HEAD):
    """Returns metric_fn(per_example_loss, label_ids, logits, is_real_example) for eval_metrics.

    For regression and multi_label the second argument is the float `label_values`.
    """
    if head.task_type == "regression":
        return _regression_metric_fn
    if head.task_type == "multi_label":
        return _multi_label_metric_fn_builder(num_labels, head.threshold_values(num_labels))

    def metric_fn(per_example_loss, label_ids, logits, is_real_example):
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        label_ids = tf.cast(label_ids, tf.int32)
        weights = tf.cast(is_real_example, tf.float32)
        metrics = {
            "eval_accuracy": tf1.metrics.accuracy(labels=label_ids, predictions=predictions,
                                                  weights=weights),
            "eval_loss": tf1.metrics.mean(values=per_example_loss, weights=weights),
        }
        confusion, update_op = streaming_confusion_matrix(label_ids, predictions, num_labels,
                                                          weights=weights)
        for name, value in confusion_matrix_metrics(confusion).items():
            # All these share one update op; the session runs it once per batch.
            metrics["eval_" + name] = (value, update_op)
        if num_labels == 2:
            probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            metrics["eval_auc"] = tf1.metrics.auc(
                labels=label_ids, predictions=probabilities[:, 1], weights=weights,
                num_thresholds=1001, summation_method="careful_interpolation")
        return metrics

    return metric_fn


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------

ClassifierOutputs = collections.namedtuple(
    "ClassifierOutputs", ["loss", "per_example_loss", "logits", "probabilities"])


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids, labels, num_labels,
                 use_one_hot_embeddings, task_type="classification"):
    """Creates a classification model: BERT's pooled [CLS] output and a softmax layer.

    Args:
      bert_config: modeling.BertConfig.
      is_training: bool, enables dropout.
      input_ids: int32 Tensor [batch_size, seq_length].
      input_mask: int32 Tensor [batch_size, seq_length].
      segment_ids: int32 Tensor [batch_size, seq_length].
      labels: int32 Tensor [batch_size] (classification); float32 Tensor [batch_size, 1]
        (regression) or [batch_size, num_labels] of 0/1 (multi_label).
      num_labels: number of classes (regression: ignored, one output).
      use_one_hot_embeddings: one-hot matmul embedding lookup (TPU) instead of a gather.
      task_type: "classification" (softmax, cross-entropy: the reference), "regression" (one
        linear output, squared error) or "multi_label" (sigmoid per label, binary cross-entropy
        averaged over the labels).

    Returns:
      ClassifierOutputs (a tuple, unpacks like the reference's 4-tuple): loss scalar,
      per_example_loss [batch_size], logits [batch_size, num_outputs], probabilities
      [batch_size, num_labels] (softmax, or sigmoid for multi_label; None for regression).
    """
    model = modeling.BertModel(
        config=bert_config,
        is_training=is_training,
        input_ids=input_ids,
        input_mask=input_mask,
        token_type_ids=segment_ids,
        use_one_hot_embeddings=use_one_hot_embeddings)

    # In the demo, we are doing a simple classification task on the entire segment. For token-level
    # output use model.get_sequence_output() instead.
    output_layer = model.get_pooled_output()  # [batch_size, hidden_size]
    hidden_size = tf.compat.dimension_value(output_layer.shape[-1])
    if task_type == "regression":
        num_labels = 1

    # Root-scope names, as in the reference, so fine-tuned checkpoints stay interchangeable.
    output_weights = tf1.get_variable(
        "output_weights", [num_labels, hidden_size],
        initializer=tf1.truncated_normal_initializer(stddev=0.02))
    output_bias = tf1.get_variable(
        "output_bias", [num_labels], initializer=tf1.zeros_initializer())

    with tf1.variable_scope("loss"):
        if is_training:
            # The reference keeps 90% (TF1 keep_prob=0.9); TF2's dropout takes the drop rate.
            output_layer = tf.nn.dropout(output_layer, rate=0.1)

        logits = tf.matmul(output_layer, output_weights, transpose_b=True)
        logits = tf.nn.bias_add(logits, output_bias)  # [batch_size, num_labels]
        if task_type != "classification":
            return _other_head_outputs(logits, labels, task_type)
        probabilities = tf.nn.softmax(logits, axis=-1)
        log_probs = tf.nn.log_softmax(logits, axis=-1)

        one_hot_labels = tf.one_hot(labels, depth=num_labels, dtype=tf.float32)
        per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
        loss = tf.reduce_mean(per_example_loss)

        return ClassifierOutputs(loss, per_example_loss, logits, probabilities)


def _other_head_outputs(logits, labels, task_type):
    """Loss and outputs of the regression and multi_label heads (logits [B, num_outputs])."""
    logits_32 = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.float32)
    if task_type == "regression":
        per_example_loss = tf.square(logits_32[:, 0] - labels[:, 0])
        probabilities = None
    else:
        probabilities = tf.sigmoid(logits_32)
        per_example_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=labels, logits=logits_32), axis=-1)
    return ClassifierOutputs(tf.reduce_mean(per_example_loss), per_example_loss, logits,
                             probabilities)


def _predictions(outputs, head):
    """What predict yields and a SavedModel serves, per task type."""
    if head.task_type == "regression":
        return {"predictions": tf.cast(outputs.logits[:, 0], tf.float32)}
    return {"probabilities": outputs.probabilities, "logits": outputs.logits}


def model_fn_builder(bert_config, num_labels, init_checkpoint, learning_rate, num_train_steps,
                     num_warmup_steps, use_tpu, use_one_hot_embeddings, head=DEFAULT_HEAD):
    """Returns `model_fn` closure for TPUEstimator / Estimator (built by runtime.build_runner).

    `head` (HeadOptions) picks the output layer; the default is the reference's softmax, whose
    graph, variables and outputs are unchanged.
    """

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        """The `model_fn` for the Estimator."""
        tf1.logging.info("*** Features ***")
        for name in sorted(features):
            tf1.logging.info("  name = %s, shape = %s", name, features[name].shape)

        input_ids = features["input_ids"]
        input_mask = features["input_mask"]
        segment_ids = features["segment_ids"]
        # A SavedModel's serving input has no labels: predict with dummy ones.
        if head.task_type == "classification":
            label_ids = features.get("label_ids", tf.zeros_like(input_ids[:, 0]))
        else:
            label_ids = features.get("label_values", tf.zeros(
                [tf.shape(input_ids)[0], head.num_outputs(num_labels)], tf.float32))
        if "is_real_example" in features:
            is_real_example = tf.cast(features["is_real_example"], dtype=tf.float32)
        else:
            is_real_example = tf.ones(tf.shape(input_ids)[:1], dtype=tf.float32)

        is_training = mode == tf.estimator.ModeKeys.TRAIN
        outputs = create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                               label_ids, num_labels, use_one_hot_embeddings, head.task_type)

        scaffold_fn = training.init_from_checkpoint(init_checkpoint, use_tpu)

        if mode == tf.estimator.ModeKeys.TRAIN:
            train_op = training.create_train_op(outputs.loss, params, learning_rate,
                                                num_train_steps, num_warmup_steps, use_tpu)
            return training.make_spec(mode, params, loss=outputs.loss, train_op=train_op,
                                     scaffold_fn=scaffold_fn)
        if mode == tf.estimator.ModeKeys.EVAL:
            eval_metrics = (metric_fn_builder(num_labels, head),
                            [outputs.per_example_loss, label_ids, outputs.logits, is_real_example])
            return training.make_spec(mode, params, loss=outputs.loss, eval_metrics=eval_metrics,
                                     scaffold_fn=scaffold_fn)
        predictions = _predictions(outputs, head)
        export_outputs = {
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
                tf.estimator.export.PredictOutput(predictions),
        }
        return training.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn,
                                 export_outputs=export_outputs)

    return model_fn


# --------------------------------------------------------------------------------------------------
# main: validate, resolve task and labels, then the train / eval / predict / export phases
# --------------------------------------------------------------------------------------------------



def _build_classifier_outputs(bert_config, inputs, num_labels):
    # The training graph's head (root-scope output_weights / output_bias), so fine-tuned
    # checkpoints restore by name. The loss ops it also builds are pruned from exports.
    result = create_model(bert_config, False, inputs["input_ids"], inputs["input_mask"],
                          inputs["segment_ids"], tf.zeros_like(inputs["input_ids"][:, 0]),
                          num_labels, use_one_hot_embeddings=False)
    return {"probabilities": result.probabilities, "logits": result.logits}


CLASSIFIER_HEAD = inference.register_head(inference.Head(
    name="classifier", output_names=("probabilities", "logits"), build=_build_classifier_outputs,
    int8_checked=("probabilities",), label_output="probabilities"))


def _build_regression_outputs(bert_config, inputs, num_labels):
    del num_labels  # One output.
    batch_size = tf.shape(inputs["input_ids"])[0]
    result = create_model(bert_config, False, inputs["input_ids"], inputs["input_mask"],
                          inputs["segment_ids"], tf.zeros([batch_size, 1]), 1,
                          use_one_hot_embeddings=False, task_type="regression")
    return {"predictions": tf.cast(result.logits[:, 0], tf.float32)}


def _build_multi_label_outputs(bert_config, inputs, num_labels):
    batch_size = tf.shape(inputs["input_ids"])[0]
    result = create_model(bert_config, False, inputs["input_ids"], inputs["input_mask"],
                          inputs["segment_ids"], tf.zeros([batch_size, num_labels]), num_labels,
                          use_one_hot_embeddings=False, task_type="multi_label")
    return {"probabilities": result.probabilities, "logits": result.logits}


REGRESSION_HEAD = inference.register_head(inference.Head(
    name="regression", output_names=("predictions",), build=_build_regression_outputs,
    predictor="tasks.classifier:RegressionPredictor", int8_checked=("predictions",)))
MULTI_LABEL_HEAD = inference.register_head(inference.Head(
    name="multi_label", output_names=("probabilities", "logits"),
    build=_build_multi_label_outputs, predictor="tasks.classifier:MultiLabelPredictor",
    int8_checked=("probabilities",)))
# Export task name (inference.ExportSpec.task) of each task type.
EXPORT_TASKS = {"classification": "classifier", "regression": "regression",
                "multi_label": "multi_label"}


def _text_of(text):
    return text if isinstance(text, str) else " ||| ".join(text)


class RegressionPredictor(inference.Predictor):
    """Scores raw texts (or `A ||| B` pairs) with a regression export (e.g. STS-B)."""

    def predict(self, texts):
        """Returns [{"text", "score"}] in input order."""
        texts = list(texts)
        outputs = self.run_features(self.features(texts)) if texts else {}
        return [{"text": _text_of(text), "score": float(outputs["predictions"][i])}
                for i, text in enumerate(texts)]


class MultiLabelPredictor(inference.Predictor):
    """Tags raw texts with every label whose probability reaches the threshold."""

    def predict(self, texts, threshold=0.5):
        """Returns [{"text", "labels", "probabilities" [num_labels]}] in input order.

        Args:
          texts: strings, `A ||| B` pairs or (a, b) tuples.
          threshold: one probability for every label, or a sequence with one per label.
        """
        texts = list(texts)
        outputs = self.run_features(self.features(texts)) if texts else {}
        thresholds = np.broadcast_to(np.asarray(threshold, np.float32), [len(self.labels)])
        results = []
        for i, text in enumerate(texts):
            probabilities = outputs["probabilities"][i]
            results.append({"text": _text_of(text),
                            "labels": [label for label, p, t in
                                       zip(self.labels, probabilities, thresholds) if p >= t],
                            "probabilities": probabilities})
        return results


# --------------------------------------------------------------------------------------------------
# The runner's steps, as functions of plain arguments
# --------------------------------------------------------------------------------------------------


def compute_train_steps(num_examples, train_batch_size, num_train_epochs, warmup_proportion):
    """Returns (num_train_steps, num_warmup_steps), truncated as in the reference (MRPC: 343).

    Raises:
      cli.UsageError: the arithmetic gives no training step.
    """
    num_train_steps = int(num_examples / train_batch_size * num_train_epochs)
    num_warmup_steps = int(num_train_steps * warmup_proportion)
    if num_train_steps < 1:
        raise cli.UsageError(
            f"{num_examples} training examples / --train_batch_size={train_batch_size} x "
            f"--num_train_epochs={num_train_epochs} gives no training step; lower the batch "
            f"size or raise the epochs")
    return num_train_steps, num_warmup_steps


def resolve_processor_and_labels(task_name, data_dir, output_dir, do_train, processor_module=None,
                                 labels=None, text_a_column=None, text_b_column=None,
                                 label_column=None, has_header="auto", task_type=None,
                                 label_separator=","):
    """Imports plugins, creates the processor and settles the label list.

    The labels come from the task; for generic tasks from `labels` (comma-separated), else from
    labels.txt in output_dir when not training, else from the training file. Regression has no
    labels (an empty list). The processor's `task_type` is the run's (see create_processor).

    Returns:
      (processor, label_list).

    Raises:
      cli.UsageError: unknown task, labels that contradict the task or the trained model.
    """
    if processor_module:
        import_processor_module(processor_module)
    flag_labels = parse_label_list(labels) if labels else None
    trained_labels = inference.read_labels_file(output_dir)
    task = task_name.lower()
    generic = task in PROCESSORS and issubclass(PROCESSORS[task], GenericProcessor)
    wanted = flag_labels
    if generic and wanted is None and not do_train:
        wanted = trained_labels
    processor = create_processor(
        task_name, data_dir=data_dir, text_a_column=text_a_column, text_b_column=text_b_column,
        label_column=label_column, has_header=has_header, labels=wanted if generic else None,
        task_type=task_type, label_separator=label_separator)
    label_list = processor.get_labels()
    if processor.task_type == "regression":
        if flag_labels:
            raise cli.UsageError("--labels does not apply to regression (one number per "
                                 "example); drop it")
        return processor, []
    if flag_labels is not None and flag_labels != label_list:
        raise cli.UsageError(
            f"--labels={labels} differs from the labels of task {task_name} "
            f"({label_list}); drop --labels")
    if not do_train and trained_labels is not None and trained_labels != label_list:
        raise cli.UsageError(
            f"the model in {output_dir} was trained with labels {trained_labels} "
            f"({LABELS_FILE}) but the task now gives {label_list}; pass --labels="
            f"{','.join(trained_labels)} or use another --output_dir")
    if len(label_list) < (1 if processor.task_type == "multi_label" else 2):
        raise cli.UsageError(f"need at least two labels, got {label_list}; check --labels or "
                             f"the label column of the training file")
    return processor, label_list


_SPLIT_FLAGS = {"train": "do_train", "dev": "do_eval", "test": "do_predict"}


def read_split_examples(processor, task_name, data_dir, splits):
    """Reads every split a run needs before any work, so a bad file fails within seconds.

    Returns:
      dict split -> list of InputExample, for split in `splits` ("train", "dev", "test").
    """
    examples = {}
    for split in splits:
        getter = getattr(processor, f"get_{split}_examples")
        try:
            examples[split] = getter(data_dir)
        except NotImplementedError:
            raise cli.UsageError(f"task {task_name} has no {split} set; drop "
                                 f"--{_SPLIT_FLAGS[split]}") from None
        if not examples[split]:
            raise cli.UsageError(f"task {task_name}: the {split} set in {data_dir} has no "
                                 f"examples")
    return examples


def pad_for_tpu(examples, batch_size, use_tpu):
    """TPU needs full batches: pad with PaddingInputExample (not counted in the metrics)."""
    examples = list(examples)
    if use_tpu:
        while len(examples) % batch_size != 0:
            examples.append(PaddingInputExample())
    return examples


def _prediction_row(prediction, label_list, head):
    """(test_results.tsv values, predicted label text, test_predictions.tsv values) of one row."""
    if head.task_type == "regression":
        score = float(prediction["predictions"])
        return [score], str(score), []
    probabilities = prediction["probabilities"]
    if head.task_type == "multi_label":
        chosen = probabilities >= head.threshold_values(len(label_list))
        predicted = head.label_separator.join(x for x, c in zip(label_list, chosen) if c)
    else:
        predicted = label_list[int(probabilities.argmax())]
    return list(probabilities), predicted, list(probabilities)


def write_test_predictions(predictions, examples, label_list, output_dir, head=DEFAULT_HEAD):
    """Writes test_results.tsv (reference format) and test_predictions.tsv (with a header).

    test_results.tsv has one line per example: the class probabilities (the reference's format),
    the label probabilities (multi_label) or the predicted number (regression).
    test_predictions.tsv: guid, the prediction (multi_label: the labels at or above their
    threshold, joined by the label separator) and the probabilities under a header.

    Args:
      predictions: iterable of dicts with "probabilities" [num_labels] (regression:
        "predictions"), in example order (TPU padding rows after the real ones are ignored).
      examples: the real InputExamples.
      label_list: labels in id order.
      output_dir: where both files go.
      head: HeadOptions of the run.
    """
    results_path = os.path.join(output_dir, "test_results.tsv")
    predictions_path = os.path.join(output_dir, "test_predictions.tsv")
    progress = cli.ProgressLogger(total=len(examples), unit="examples", name="Predicting")
    num_written_lines = 0
    with cli.atomic_output(results_path) as results_tmp, \
            cli.atomic_output(predictions_path) as predictions_tmp:
        with tf.io.gfile.GFile(results_tmp, "w") as results_writer, \
                tf.io.gfile.GFile(predictions_tmp, "w") as predictions_writer:
            predictions_writer.write("\t".join(["guid", "prediction"] + label_list) + "\n")
            tf1.logging.info("***** Predict results *****")
            for (i, prediction) in enumerate(predictions):
                if i >= len(examples):
                    break
                results, predicted, columns = _prediction_row(prediction, label_list, head)
                results_writer.write("\t".join(str(value) for value in results) + "\n")
                predictions_writer.write("\t".join(
                    [examples[i].guid, predicted] + [str(p) for p in columns]) + "\n")
                num_written_lines += 1
                progress.update()
    progress.done()
    assert num_written_lines == len(examples)
    tf1.logging.info("Wrote %s and %s", results_path, predictions_path)


def resolve_export_labels(labels_flag, checkpoint, num_checkpoint_labels):
    """Returns the label list: --labels, else labels.txt beside the checkpoint (or its parent).

    run_classifier.py writes labels.txt into its output_dir; the best checkpoint lives in
    <output_dir>/best/, hence the parent directory as a fallback.
    """
    if labels_flag:
        labels = parse_label_list(labels_flag)
        source = "--labels"
    else:
        directory = os.path.dirname(checkpoint)
        labels = None
        for candidate in (directory, os.path.dirname(directory)):
            labels = inference.read_labels_file(candidate) if candidate else None
            if labels:
                source = os.path.join(candidate, LABELS_FILE)
                break
        if not labels:
            raise cli.UsageError(
                f"no {LABELS_FILE} beside {checkpoint}: pass --labels=<label0>,<label1>,... in id "
                f"order (the checkpoint has {num_checkpoint_labels} classes)")
    if len(labels) != num_checkpoint_labels:
        raise cli.UsageError(
            f"{source} names {len(labels)} labels but the checkpoint's classifier has "
            f"{num_checkpoint_labels} classes; pass the labels it was fine-tuned with")
    return labels
