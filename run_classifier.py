"""BERT fine-tuning for sentence and sentence-pair classification (GLUE, XNLI, your own data).

Reads a task's train/dev/test files through a *processor*, converts them to TFRecords (cached in
`output_dir` and reused while the inputs and flags stay the same), fine-tunes a BERT checkpoint with
a softmax head, and writes `eval_results.txt`, `test_results.tsv`, `test_predictions.tsv` and
`labels.txt`.
All Estimator, TPU, GPU, early-stopping and export plumbing lives in runtime.py.

Tasks: the reference processors `cola`, `mnli`, `mrpc`, `xnli`; the generic processors `tsv`,
`csv` and `jsonl` (your files, columns chosen by flags); and any processor a `--processor_module`
registers with `register_processor` (see sample_data/plugin_processor_example.py).

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

import collections
import csv
import hashlib
import importlib
import importlib.util
import json
import os
import sys

from absl import flags
import tensorflow as tf

import modeling
import runtime
import tokenization

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string(
    "data_dir", None,
    "The input data dir. Should contain the .tsv files (or other data files) for the task.")
flags.DEFINE_string(
    "bert_config_file", None,
    "The config json file corresponding to the pre-trained BERT model. "
    "This specifies the model architecture.")
flags.DEFINE_string(
    "task_name", None,
    "The name of the task to train (case-insensitive): cola, mnli, mrpc, xnli, the generic tsv, "
    "csv or jsonl, or a task registered by --processor_module.")
flags.DEFINE_string(
    "vocab_file", None, "The vocabulary file that the BERT model was trained on.")
flags.DEFINE_string(
    "output_dir", None,
    "The output directory where the model checkpoints, TFRecord caches and results will be "
    "written.")

## Other parameters
flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint (usually from a pre-trained BERT model).")
flags.DEFINE_bool(
    "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased models and False for cased "
    "models.")
flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. Sequences longer than "
    "this will be truncated, and sequences shorter than this will be padded.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
flags.DEFINE_bool(
    "do_predict", False, "Whether to run the model in inference mode on the test set.")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")
flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform.")
flags.DEFINE_float(
    "warmup_proportion", 0.1,
    "Proportion of training to perform linear learning rate warmup for. "
    "E.g., 0.1 = 10% of training.")

## Shared runtime flags (TPU, checkpoints, GPUs/strategies, evaluation during training, export).
runtime.define_tpu_flags()
runtime.define_checkpoint_flags()
runtime.define_runtime_flags()
runtime.define_eval_during_training_flags()
runtime.define_export_flags()

## Custom data (not in the reference)
flags.DEFINE_string(
    "processor_module", None,
    "A Python file (path ending in .py) or an importable module name that is imported before the "
    "task is looked up. It registers its own processors with "
    "run_classifier.register_processor (see sample_data/plugin_processor_example.py).")
flags.DEFINE_string(
    "text_a_column", None,
    "Generic tsv/csv/jsonl tasks: the column holding the first text, as a 0-based index or a "
    "header name. Default: 1 for tsv/csv, \"text\" for jsonl.")
flags.DEFINE_string(
    "text_b_column", None,
    "Generic tsv/csv/jsonl tasks: the column holding the second text of a sentence pair (index or "
    "header name). Default: none (single-sentence task).")
flags.DEFINE_string(
    "label_column", None,
    "Generic tsv/csv/jsonl tasks: the column holding the label (index or header name). "
    "Default: 0 for tsv/csv, \"label\" for jsonl. Test files may leave it out.")
flags.DEFINE_enum(
    "has_header", "auto", ["auto", "true", "false"],
    "Generic tsv/csv tasks: whether the first row of each file is a header. auto: yes when a "
    "column is given by name; otherwise yes when the first row's label cell is not a known label "
    "and appears in no later row.")
flags.DEFINE_string(
    "labels", None,
    "Generic tasks: comma-separated label list in id order. Default: labels.txt in output_dir when "
    "not training, else the labels found in the training file, sorted (numerically if all are "
    "integers).")
flags.DEFINE_bool(
    "cache_tf_records", True,
    "Reuse train/eval/predict.tf_record in output_dir when the examples, vocab, casing, "
    "max_seq_length and label list are unchanged (checked through a .json sidecar).")

LABELS_FILE = "labels.txt"
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
      runtime.UsageError: a line is not valid UTF-8 (the message names the file and line).
    """
    with tf.io.gfile.GFile(input_file, "rb") as reader:
        for line_number, raw in enumerate(reader, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise runtime.UsageError(
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
        raise runtime.UsageError(
            f"{input_file}, line {reader.line_num}: cannot parse the row ({e}); check its quoting "
            f"(a field with a quote character must be quoted and its quotes doubled)") from None
    return rows


def _require_columns(input_file, line_number, cells, needed, hint):
    """Raises UsageError unless `cells` has at least `needed` columns."""
    if len(cells) < needed:
        raise runtime.UsageError(
            f"{input_file}, line {line_number}: expected at least {needed} columns, found "
            f"{len(cells)}; {hint}")


# --------------------------------------------------------------------------------------------------
# Processors: the reference ones, a module-level registry and the generic tsv/csv/jsonl ones
# --------------------------------------------------------------------------------------------------


class DataProcessor:
    """Base class for data converters for sequence classification data sets."""

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


def parse_label_list(text):
    """Splits a comma-separated --labels value; raises UsageError on empty or duplicate labels."""
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if not labels:
        raise runtime.UsageError(f"--labels={text!r} names no label; give e.g. --labels=neg,pos")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise runtime.UsageError(
            f"--labels names {duplicates} more than once; list each label once")
    return labels


def sorted_labels(labels):
    """Sorts labels numerically when all of them are integers ("2" before "10"), else as strings."""
    labels = set(labels)
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


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
    """

    EXTENSIONS = ()
    DEFAULT_TEXT_A_COLUMN = "1"
    DEFAULT_LABEL_COLUMN = "0"

    def __init__(self, data_dir=None, text_a_column=None, text_b_column=None, label_column=None,
                 has_header="auto", labels=None):
        """Creates the processor.

        Args:
          data_dir: directory of the task files (needed to infer the labels from the train file).
          text_a_column: column of the first text (index or name as a string); None = default.
          text_b_column: column of the second text; None = single-sentence task.
          label_column: column of the label; None = default.
          has_header: "auto", "true" or "false" (tsv/csv only).
          labels: list of labels in id order, or None to infer them from the training file.
        """
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
        raise runtime.UsageError(
            f"no {split} file in {data_dir}: expected one of "
            f"{', '.join(os.path.basename(p) for p in candidates)}")

    def _rows(self, path):
        """Returns the file's (line_number, row) pairs, read once per processor."""
        if path not in self._rows_cache:
            self._rows_cache[path] = self._read_rows(path)
            if not self._rows_cache[path]:
                raise runtime.UsageError(f"{path} holds no rows; fill it or point --data_dir "
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
                except runtime.UsageError:
                    pass
            if train_path and train_path != path:
                return self._detect_header(train_path, self._rows(train_path), label_list)
            tf1.logging.warning("%s: cannot tell whether line %d is a header (it has no label "
                                "column); reading it as data. Pass --has_header=true if it is one.",
                                path, first_line)
            return False
        cell = first[label_index].strip()
        if label_list and cell in label_list:
            return False
        for _, cells in rows[1:]:
            if len(cells) > label_index and cells[label_index].strip() == cell:
                return False
        return True

    def _resolve_column(self, flag, spec, header, path, required):
        """Maps a column spec (index or header name) to an index; None if optional and absent."""
        if spec is None:
            return None
        if _is_index(spec):
            return int(spec)
        if header is None:
            raise runtime.UsageError(
                f"--{flag}={spec!r} names a column but {path} has no header row; give a 0-based "
                f"column index instead or pass --has_header=true")
        stripped = [name.strip() for name in header]
        for candidates in (stripped, [name.lower() for name in stripped]):
            key = spec if candidates is stripped else spec.lower()
            if key in candidates:
                return candidates.index(key)
        if not required:
            return None
        raise runtime.UsageError(
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

    def _create_examples(self, path, set_type):
        label_list = self.get_labels()
        known = set(label_list)
        examples = []
        for line_number, text_a, text_b, label in self._labelled_rows(path, set_type, label_list):
            if set_type == "test":
                if label not in known:
                    label = label_list[0]
            elif label not in known:
                raise runtime.UsageError(
                    f"{path}, line {line_number}: label {label!r} is not in the label list "
                    f"{label_list}; fix the row or add the label to --labels")
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
            raise runtime.UsageError(
                "cannot infer the label list without --data_dir; pass --labels")
        try:
            path = self._find_file(self.data_dir, "train")
        except runtime.UsageError:
            raise runtime.UsageError(
                f"cannot determine the label list: no training file in {self.data_dir} and no "
                f"{LABELS_FILE} in --output_dir; pass --labels=label1,label2,...") from None
        labels = [label for _, _, _, label in self._labelled_rows(path, "train", None)]
        found = sorted_labels(labels)
        # A text column taken for the label column gives (almost) one label per row.
        if len(labels) >= 20 and len(found) > len(labels) // 2:
            raise runtime.UsageError(
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
                raise runtime.UsageError(
                    f"{path}, line {line_number}: not valid JSON ({e.msg}); each line must be one "
                    f"object such as {{\"text\": \"...\", \"label\": \"...\"}}") from None
            if not isinstance(row, (dict, list)):
                raise runtime.UsageError(
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
                if value is None and not (flag == "label_column" and set_type == "test"):
                    fields = list(row) if isinstance(row, dict) else f"{len(row)} list items"
                    raise runtime.UsageError(
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
      runtime.UsageError: the file or module cannot be found.
    """
    if module.endswith(".py") or os.sep in module:
        path = os.path.abspath(module)
        if not os.path.isfile(path):
            raise runtime.UsageError(f"--processor_module={module}: no such file")
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
            raise runtime.UsageError(
                f"--processor_module={module}: cannot import {e.name!r}; give a path to a .py file "
                f"or a module on PYTHONPATH") from None
    tf1.logging.info("Imported processor module %s; tasks: %s", module, sorted(PROCESSORS))


def create_processor(task_name, data_dir=None, text_a_column=None, text_b_column=None,
                     label_column=None, has_header="auto", labels=None):
    """Looks up a task in PROCESSORS and creates its processor.

    The column, header and label options only apply to GenericProcessor subclasses.

    Raises:
      runtime.UsageError: unknown task, or generic-only options given to another task.
    """
    cls = PROCESSORS.get(task_name.lower())
    if cls is None:
        raise runtime.UsageError(
            f"Task not found: {task_name}; known tasks: {', '.join(sorted(PROCESSORS))} (register "
            f"your own with --processor_module, see sample_data/plugin_processor_example.py)")
    if issubclass(cls, GenericProcessor):
        return cls(data_dir=data_dir, text_a_column=text_a_column, text_b_column=text_b_column,
                   label_column=label_column, has_header=has_header, labels=labels)
    given = [name for name, value in (("text_a_column", text_a_column),
                                      ("text_b_column", text_b_column),
                                      ("label_column", label_column)) if value is not None]
    if given or has_header != "auto":
        raise runtime.UsageError(
            f"--{(given or ['has_header'])[0]} only applies to the generic tsv/csv/jsonl tasks, "
            f"not to {task_name}; drop it")
    return cls()


# --------------------------------------------------------------------------------------------------
# Feature conversion and TFRecords
# --------------------------------------------------------------------------------------------------


def convert_single_example(ex_index, example, label_list, max_seq_length, tokenizer):
    """Converts a single `InputExample` into a single `InputFeatures`."""
    if isinstance(example, PaddingInputExample):
        return InputFeatures(
            input_ids=[0] * max_seq_length,
            input_mask=[0] * max_seq_length,
            segment_ids=[0] * max_seq_length,
            label_id=0,
            is_real_example=False)

    label_map = {label: i for (i, label) in enumerate(label_list)}

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

    label_id = label_map[example.label]
    if ex_index < 5:
        tf1.logging.info("*** Example ***")
        tf1.logging.info("guid: %s", example.guid)
        tf1.logging.info("tokens: %s", " ".join(tokenization.printable_text(x) for x in tokens))
        tf1.logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
        tf1.logging.info("input_mask: %s", " ".join(str(x) for x in input_mask))
        tf1.logging.info("segment_ids: %s", " ".join(str(x) for x in segment_ids))
        tf1.logging.info("label: %s (id = %d)", example.label, label_id)

    return InputFeatures(
        input_ids=input_ids,
        input_mask=input_mask,
        segment_ids=segment_ids,
        label_id=label_id,
        is_real_example=True)


def _create_int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def file_based_convert_examples_to_features(examples, label_list, max_seq_length, tokenizer,
                                            output_file):
    """Converts a set of `InputExample`s to a TFRecord file (written atomically)."""
    progress = runtime.ProgressLogger(total=len(examples), unit="examples",
                                      name=f"Writing {os.path.basename(output_file)}")
    with runtime.atomic_output(output_file) as tmp_path:
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for (ex_index, example) in enumerate(examples):
                if ex_index % 10000 == 0:
                    tf1.logging.info("Writing example %d of %d", ex_index, len(examples))
                feature = convert_single_example(ex_index, example, label_list, max_seq_length,
                                                 tokenizer)
                features = collections.OrderedDict()
                features["input_ids"] = _create_int_feature(feature.input_ids)
                features["input_mask"] = _create_int_feature(feature.input_mask)
                features["segment_ids"] = _create_int_feature(feature.segment_ids)
                features["label_ids"] = _create_int_feature([feature.label_id])
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


def features_fingerprint(examples, label_list, max_seq_length, vocab_file, do_lower_case):
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
    return {
        "format_version": _FEATURE_FORMAT_VERSION,
        "num_examples": len(examples),
        "examples_sha256": digest.hexdigest(),
        "max_seq_length": max_seq_length,
        "vocab_sha256": _sha256_of_file(vocab_file),
        "tokenizer_sha256": _sha256_of_file(tokenization.__file__),
        "do_lower_case": bool(do_lower_case),
        "label_list": list(label_list),
    }


def write_or_reuse_tf_record(examples, label_list, max_seq_length, tokenizer, output_file,
                             fingerprint, use_cache=True):
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
                                            output_file)
    with runtime.atomic_output(sidecar) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            json.dump(fingerprint, f, indent=1)
    return False


def file_based_input_fn_builder(input_file, seq_length, is_training, drop_remainder):
    """Creates an `input_fn` closure to be passed to the Estimator."""
    name_to_features = {
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }

    def input_fn(params):
        """The actual input function."""
        batch_size = params["batch_size"]

        # For training, we want a lot of parallel reading and shuffling.
        # For eval, we want no shuffling and parallel reading doesn't matter.
        d = tf.data.TFRecordDataset(input_file)
        if is_training:
            d = d.repeat()
            d = d.shuffle(buffer_size=100)

        d = d.map(lambda record: runtime.decode_record(record, name_to_features),
                  num_parallel_calls=tf.data.AUTOTUNE)
        d = d.batch(batch_size, drop_remainder=drop_remainder)
        return d.prefetch(tf.data.AUTOTUNE)

    return input_fn


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


def eval_metric_names(num_labels):
    """The keys of eval_results.txt (metric_fn keys plus the Estimator's loss and global_step)."""
    names = ["eval_accuracy", "eval_loss", "eval_macro_precision", "eval_macro_recall",
             "eval_macro_f1", "eval_mcc", "global_step", "loss"]
    if num_labels == 2:
        names += ["eval_precision", "eval_recall", "eval_f1", "eval_auc"]
    return sorted(names)


def metric_fn_builder(num_labels):
    """Returns metric_fn(per_example_loss, label_ids, logits, is_real_example) for eval_metrics."""

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
                 use_one_hot_embeddings):
    """Creates a classification model: BERT's pooled [CLS] output and a softmax layer.

    Args:
      bert_config: modeling.BertConfig.
      is_training: bool, enables dropout.
      input_ids: int32 Tensor [batch_size, seq_length].
      input_mask: int32 Tensor [batch_size, seq_length].
      segment_ids: int32 Tensor [batch_size, seq_length].
      labels: int32 Tensor [batch_size].
      num_labels: number of classes.
      use_one_hot_embeddings: one-hot matmul embedding lookup (TPU) instead of a gather.

    Returns:
      ClassifierOutputs (a tuple, unpacks like the reference's 4-tuple): loss scalar,
      per_example_loss [batch_size], logits [batch_size, num_labels],
      probabilities [batch_size, num_labels].
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
        probabilities = tf.nn.softmax(logits, axis=-1)
        log_probs = tf.nn.log_softmax(logits, axis=-1)

        one_hot_labels = tf.one_hot(labels, depth=num_labels, dtype=tf.float32)
        per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
        loss = tf.reduce_mean(per_example_loss)

        return ClassifierOutputs(loss, per_example_loss, logits, probabilities)


def model_fn_builder(bert_config, num_labels, init_checkpoint, learning_rate, num_train_steps,
                     num_warmup_steps, use_tpu, use_one_hot_embeddings):
    """Returns `model_fn` closure for TPUEstimator / Estimator (built by runtime.build_runner)."""

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        """The `model_fn` for the Estimator."""
        tf1.logging.info("*** Features ***")
        for name in sorted(features):
            tf1.logging.info("  name = %s, shape = %s", name, features[name].shape)

        input_ids = features["input_ids"]
        input_mask = features["input_mask"]
        segment_ids = features["segment_ids"]
        # A SavedModel's serving input has no labels: predict with dummy ones.
        label_ids = features.get("label_ids", tf.zeros_like(input_ids[:, 0]))
        if "is_real_example" in features:
            is_real_example = tf.cast(features["is_real_example"], dtype=tf.float32)
        else:
            is_real_example = tf.ones(tf.shape(label_ids), dtype=tf.float32)

        is_training = mode == tf.estimator.ModeKeys.TRAIN
        outputs = create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                               label_ids, num_labels, use_one_hot_embeddings)

        scaffold_fn = runtime.init_from_checkpoint(init_checkpoint, use_tpu)

        if mode == tf.estimator.ModeKeys.TRAIN:
            train_op = runtime.create_train_op(outputs.loss, params, learning_rate,
                                               num_train_steps, num_warmup_steps)
            return runtime.make_spec(mode, params, loss=outputs.loss, train_op=train_op,
                                     scaffold_fn=scaffold_fn)
        if mode == tf.estimator.ModeKeys.EVAL:
            eval_metrics = (metric_fn_builder(num_labels),
                            [outputs.per_example_loss, label_ids, outputs.logits, is_real_example])
            return runtime.make_spec(mode, params, loss=outputs.loss, eval_metrics=eval_metrics,
                                     scaffold_fn=scaffold_fn)
        predictions = {"probabilities": outputs.probabilities, "logits": outputs.logits}
        export_outputs = {
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
                tf.estimator.export.PredictOutput(predictions),
        }
        return runtime.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn,
                                 export_outputs=export_outputs)

    return model_fn


# --------------------------------------------------------------------------------------------------
# main: validate, resolve task and labels, then the train / eval / predict / export phases
# --------------------------------------------------------------------------------------------------


def compute_train_steps(num_examples, train_batch_size, num_train_epochs, warmup_proportion):
    """Returns (num_train_steps, num_warmup_steps), truncated as in the reference (MRPC: 343)."""
    num_train_steps = int(num_examples / train_batch_size * num_train_epochs)
    num_warmup_steps = int(num_train_steps * warmup_proportion)
    return num_train_steps, num_warmup_steps


def validate_flags_and_load_config():
    """Checks flag combinations before any work; returns the BertConfig."""
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or FLAGS.do_export):
        raise runtime.UsageError(
            "At least one of `do_train`, `do_eval`, `do_predict` or `do_export` must be True.")
    for flag in ("bert_config_file", "vocab_file"):
        if not tf.io.gfile.exists(getattr(FLAGS, flag)):
            raise runtime.UsageError(f"--{flag}={getattr(FLAGS, flag)}: no such file")
    if not tf.io.gfile.isdir(FLAGS.data_dir):
        raise runtime.UsageError(f"--data_dir={FLAGS.data_dir}: no such directory")
    try:
        tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
    except ValueError as e:
        raise runtime.UsageError(" ".join(str(e).split())) from None
    if FLAGS.max_steps_without_decrease > 0 and not (FLAGS.do_train and FLAGS.do_eval):
        raise runtime.UsageError(
            "--max_steps_without_decrease needs --do_train=true and --do_eval=true (early stopping "
            "watches the dev set during training)")
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    modeling.check_max_seq_length(bert_config, FLAGS.max_seq_length)
    return bert_config


def read_labels_file(output_dir):
    """Returns the labels in output_dir/labels.txt, or None when there is no such file."""
    path = os.path.join(output_dir, LABELS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def write_labels_file(label_list, output_dir):
    path = os.path.join(output_dir, LABELS_FILE)
    with runtime.atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as f:
            f.write("".join(label + "\n" for label in label_list))
    return path


def resolve_processor_and_labels():
    """Imports plugins, creates the processor and settles the label list.

    Returns:
      (processor, label_list).
    """
    if FLAGS.processor_module:
        import_processor_module(FLAGS.processor_module)
    flag_labels = parse_label_list(FLAGS.labels) if FLAGS.labels else None
    trained_labels = read_labels_file(FLAGS.output_dir)
    task = FLAGS.task_name.lower()
    generic = task in PROCESSORS and issubclass(PROCESSORS[task], GenericProcessor)
    labels = flag_labels
    if generic and labels is None and not FLAGS.do_train:
        labels = trained_labels
    processor = create_processor(
        FLAGS.task_name, data_dir=FLAGS.data_dir, text_a_column=FLAGS.text_a_column,
        text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
        has_header=FLAGS.has_header, labels=labels if generic else None)
    label_list = processor.get_labels()
    if flag_labels is not None and flag_labels != label_list:
        raise runtime.UsageError(
            f"--labels={FLAGS.labels} differs from the labels of task {FLAGS.task_name} "
            f"({label_list}); drop --labels")
    if not FLAGS.do_train and trained_labels is not None and trained_labels != label_list:
        raise runtime.UsageError(
            f"the model in {FLAGS.output_dir} was trained with labels {trained_labels} "
            f"({LABELS_FILE}) but the task now gives {label_list}; pass --labels="
            f"{','.join(trained_labels)} or use another --output_dir")
    if len(label_list) < 2:
        raise runtime.UsageError(f"need at least two labels, got {label_list}; check --labels or "
                                 f"the label column of the training file")
    return processor, label_list


def _examples_or_error(processor, split):
    getter = getattr(processor, f"get_{split}_examples")
    mode_flag = {"train": "do_train", "dev": "do_eval", "test": "do_predict"}[split]
    try:
        examples = getter(FLAGS.data_dir)
    except NotImplementedError:
        raise runtime.UsageError(
            f"task {FLAGS.task_name} has no {split} set; drop --{mode_flag}") from None
    if not examples:
        raise runtime.UsageError(f"task {FLAGS.task_name}: the {split} set in {FLAGS.data_dir} "
                                 f"has no examples")
    return examples


def _prepare_tf_record(examples, label_list, tokenizer, name):
    """Converts (or reuses) `<output_dir>/<name>.tf_record`; returns its path."""
    output_file = os.path.join(FLAGS.output_dir, f"{name}.tf_record")
    fingerprint = features_fingerprint(examples, label_list, FLAGS.max_seq_length,
                                       FLAGS.vocab_file, FLAGS.do_lower_case)
    write_or_reuse_tf_record(examples, label_list, FLAGS.max_seq_length, tokenizer, output_file,
                             fingerprint, use_cache=FLAGS.cache_tf_records)
    return output_file


def _pad_for_tpu(examples, batch_size, use_tpu):
    """TPU needs full batches: pad with PaddingInputExample (not counted in the metrics)."""
    examples = list(examples)
    if use_tpu:
        while len(examples) % batch_size != 0:
            examples.append(PaddingInputExample())
    return examples


def prepare_train_input(train_examples, label_list, tokenizer, num_train_steps):
    train_file = _prepare_tf_record(train_examples, label_list, tokenizer, "train")
    tf1.logging.info("***** Running training *****")
    tf1.logging.info("  Num examples = %d", len(train_examples))
    tf1.logging.info("  Batch size = %d", FLAGS.train_batch_size)
    tf1.logging.info("  Num steps = %d", num_train_steps)
    return file_based_input_fn_builder(train_file, FLAGS.max_seq_length, is_training=True,
                                       drop_remainder=True)


def prepare_eval_input(eval_examples, label_list, tokenizer):
    """Returns (eval_input_fn, eval_steps)."""
    num_actual_eval_examples = len(eval_examples)
    eval_examples = _pad_for_tpu(eval_examples, FLAGS.eval_batch_size, FLAGS.use_tpu)
    eval_file = _prepare_tf_record(eval_examples, label_list, tokenizer, "eval")
    tf1.logging.info("***** Running evaluation *****")
    tf1.logging.info("  Num examples = %d (%d actual, %d padding)", len(eval_examples),
                     num_actual_eval_examples, len(eval_examples) - num_actual_eval_examples)
    tf1.logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    # On CPU/GPU one full pass over the dev set; TPU needs a fixed number of full batches.
    eval_steps = None
    if FLAGS.use_tpu:
        assert len(eval_examples) % FLAGS.eval_batch_size == 0
        eval_steps = len(eval_examples) // FLAGS.eval_batch_size
    input_fn = file_based_input_fn_builder(eval_file, FLAGS.max_seq_length, is_training=False,
                                           drop_remainder=FLAGS.use_tpu)
    return input_fn, eval_steps


def run_predict(runner, predict_examples, label_list, tokenizer, checkpoint_path):
    """Writes test_results.tsv (reference format) and test_predictions.tsv (with a header)."""
    num_actual_predict_examples = len(predict_examples)
    padded = _pad_for_tpu(predict_examples, FLAGS.predict_batch_size, FLAGS.use_tpu)
    predict_file = _prepare_tf_record(padded, label_list, tokenizer, "predict")
    tf1.logging.info("***** Running prediction*****")
    tf1.logging.info("  Num examples = %d (%d actual, %d padding)", len(padded),
                     num_actual_predict_examples, len(padded) - num_actual_predict_examples)
    tf1.logging.info("  Batch size = %d", FLAGS.predict_batch_size)
    predict_input_fn = file_based_input_fn_builder(predict_file, FLAGS.max_seq_length,
                                                   is_training=False,
                                                   drop_remainder=FLAGS.use_tpu)
    result = runner.predict(predict_input_fn, checkpoint_path=checkpoint_path)

    results_path = os.path.join(FLAGS.output_dir, "test_results.tsv")
    predictions_path = os.path.join(FLAGS.output_dir, "test_predictions.tsv")
    progress = runtime.ProgressLogger(total=num_actual_predict_examples, unit="examples",
                                      name="Predicting")
    num_written_lines = 0
    with runtime.atomic_output(results_path) as results_tmp, \
            runtime.atomic_output(predictions_path) as predictions_tmp:
        with tf.io.gfile.GFile(results_tmp, "w") as results_writer, \
                tf.io.gfile.GFile(predictions_tmp, "w") as predictions_writer:
            predictions_writer.write("\t".join(["guid", "prediction"] + label_list) + "\n")
            tf1.logging.info("***** Predict results *****")
            for (i, prediction) in enumerate(result):
                if i >= num_actual_predict_examples:
                    break
                probabilities = prediction["probabilities"]
                results_writer.write(
                    "\t".join(str(class_probability) for class_probability in probabilities)
                    + "\n")
                predicted = label_list[int(probabilities.argmax())]
                predictions_writer.write("\t".join(
                    [predict_examples[i].guid, predicted] + [str(p) for p in probabilities])
                    + "\n")
                num_written_lines += 1
                progress.update()
    progress.done()
    assert num_written_lines == num_actual_predict_examples
    tf1.logging.info("Wrote %s and %s", results_path, predictions_path)


def run_export(runner, checkpoint_path):
    """Exports a SavedModel (outputs `probabilities`, `logits`) with labels.txt in assets.extra."""
    if checkpoint_path is None:
        checkpoint_path = (tf.train.latest_checkpoint(FLAGS.output_dir) or FLAGS.init_checkpoint)
    if not checkpoint_path:
        raise runtime.UsageError(
            f"--do_export found no checkpoint in {FLAGS.output_dir}; train first (--do_train) or "
            f"pass a fine-tuned --init_checkpoint")
    export_dir = FLAGS.export_dir or os.path.join(FLAGS.output_dir, "export")
    saved_model_dir = runner.export(runtime.serving_input_fn_builder(FLAGS.max_seq_length),
                                    export_dir, checkpoint_path=checkpoint_path)
    saved_model_dir = saved_model_dir.decode() if isinstance(saved_model_dir, bytes) \
        else saved_model_dir
    labels_file = os.path.join(FLAGS.output_dir, LABELS_FILE)
    if tf.io.gfile.exists(labels_file):
        extra = os.path.join(saved_model_dir, "assets.extra")
        tf.io.gfile.makedirs(extra)
        tf.io.gfile.copy(labels_file, os.path.join(extra, LABELS_FILE), overwrite=True)
    tf1.logging.info("Exported %s from %s (outputs: probabilities, logits; labels in "
                     "assets.extra/%s)", saved_model_dir, checkpoint_path, LABELS_FILE)
    return saved_model_dir


def read_examples(processor):
    """Reads every split this run needs before any work, so a bad file fails within seconds."""
    wanted = {"train": FLAGS.do_train, "dev": FLAGS.do_eval, "test": FLAGS.do_predict}
    return {split: _examples_or_error(processor, split) for split, on in wanted.items() if on}


def train_steps_or_error(num_examples):
    num_train_steps, num_warmup_steps = compute_train_steps(
        num_examples, FLAGS.train_batch_size, FLAGS.num_train_epochs, FLAGS.warmup_proportion)
    if num_train_steps < 1:
        raise runtime.UsageError(
            f"{num_examples} training examples / --train_batch_size={FLAGS.train_batch_size} x "
            f"--num_train_epochs={FLAGS.num_train_epochs} gives no training step; lower the batch "
            f"size or raise the epochs")
    return num_train_steps, num_warmup_steps


def validate_early_stopping_metric(num_labels):
    if FLAGS.do_eval and FLAGS.max_steps_without_decrease > 0:
        known = eval_metric_names(num_labels)
        if FLAGS.early_stopping_metric not in known:
            raise runtime.UsageError(
                f"--early_stopping_metric={FLAGS.early_stopping_metric} is not computed for this "
                f"task; choose one of {', '.join(known)}")


def run_train_and_evaluate(runner, train_input_fn, eval_input_fn, eval_steps, num_train_steps):
    """Evaluation after each checkpoint with early stopping; returns the best checkpoint."""
    outcome = runner.train_and_evaluate(train_input_fn, eval_input_fn, num_train_steps,
                                        eval_steps=eval_steps)
    tf1.logging.info("Training %s; best %s = %s (%s)",
                     "stopped early" if outcome.stopped_early else "finished",
                     FLAGS.early_stopping_metric, outcome.best_metric, outcome.best_checkpoint)
    # eval_results.txt describes the checkpoint that is kept, predicted with and exported.
    result = runner.evaluate(eval_input_fn, steps=eval_steps,
                             checkpoint_path=outcome.best_checkpoint)
    runtime.write_eval_results(result, FLAGS.output_dir)
    return outcome.best_checkpoint


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    bert_config = validate_flags_and_load_config()
    options = runtime.RuntimeOptions.from_flags(FLAGS)
    tf.io.gfile.makedirs(FLAGS.output_dir)

    processor, label_list = resolve_processor_and_labels()
    validate_early_stopping_metric(len(label_list))
    examples = read_examples(processor)
    num_train_steps, num_warmup_steps = (
        train_steps_or_error(len(examples["train"])) if FLAGS.do_train else (None, None))
    tokenizer = tokenization.FullTokenizer(vocab_file=FLAGS.vocab_file,
                                           do_lower_case=FLAGS.do_lower_case)

    model_fn = model_fn_builder(
        bert_config=bert_config,
        num_labels=len(label_list),
        init_checkpoint=FLAGS.init_checkpoint,
        learning_rate=FLAGS.learning_rate,
        num_train_steps=num_train_steps,
        num_warmup_steps=num_warmup_steps,
        use_tpu=FLAGS.use_tpu,
        use_one_hot_embeddings=options.use_one_hot_embeddings)
    runner = runtime.build_runner(
        model_fn, options, FLAGS.output_dir,
        train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.eval_batch_size,
        predict_batch_size=FLAGS.predict_batch_size)

    if FLAGS.do_train:
        write_labels_file(label_list, FLAGS.output_dir)
        train_input_fn = prepare_train_input(examples["train"], label_list, tokenizer,
                                             num_train_steps)
    if FLAGS.do_eval:
        eval_input_fn, eval_steps = prepare_eval_input(examples["dev"], label_list, tokenizer)

    best_checkpoint = None
    if FLAGS.do_train and FLAGS.do_eval and options.max_steps_without_decrease > 0:
        best_checkpoint = run_train_and_evaluate(runner, train_input_fn, eval_input_fn,
                                                 eval_steps, num_train_steps)
    else:
        if FLAGS.do_train:
            runner.train(train_input_fn, max_steps=num_train_steps)
        if FLAGS.do_eval:
            result = runner.evaluate(eval_input_fn, steps=eval_steps)
            runtime.write_eval_results(result, FLAGS.output_dir)

    if FLAGS.do_predict:
        run_predict(runner, examples["test"], label_list, tokenizer, best_checkpoint)
    if FLAGS.do_export:
        run_export(runner, best_checkpoint)


if __name__ == "__main__":
    # Plugins `import run_classifier`: make that name this module, not a second copy (which would
    # define every flag again and keep its own registry).
    sys.modules.setdefault("run_classifier", sys.modules[__name__])
    flags.mark_flag_as_required("data_dir")
    flags.mark_flag_as_required("task_name")
    flags.mark_flag_as_required("vocab_file")
    flags.mark_flag_as_required("bert_config_file")
    flags.mark_flag_as_required("output_dir")
    runtime.run_main(main)
