"""The command-line layer: errors, entry points, atomic outputs, progress and the shared flags.

Every script's `__main__` goes through `run_main`, which turns a user error (`UsageError`, a
missing file, bad UTF-8, a bad value) into one `ERROR: <problem and fix>` line and exit status 1.
Outputs are written through `atomic_output`, so an interrupted run never leaves a file that looks
finished.

The shared flag groups are defined here once (`define_model_flags`, `define_tpu_flags`,
`define_runtime_flags`, ...); a script calls the groups it really uses, so its `--helpfull` lists
its own flags and those groups, nothing else. Only scripts read `FLAGS`: everything below them takes
plain arguments.

Nothing here builds models or Estimators: that is `training.py` (model_fn parts), `runtime.py`
(Estimators and the run loop) and `inference.py` (loaded models).
"""

import contextlib
import datetime
import logging
import os
import re
import sys
import time

import tensorflow as tf
from absl import app, flags

import optimization
import tokenization

tf1 = tf.compat.v1


# ------------------------------------------------------------------------------------------------
# Errors, files, progress
# ------------------------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad user input or flags. The message is one line naming the problem and the fix."""


# Exceptions that describe a problem with the user's input rather than a bug in the code.
_USER_ERRORS = (
    UsageError,
    FileNotFoundError,
    tf.errors.NotFoundError,
    UnicodeDecodeError,
    ValueError,
)


def one_line(message):
    """A message on one line (exceptions from TensorFlow span many)."""
    return " ".join(str(message).split())


def _error_message(error):
    if isinstance(error, tf.errors.OpError):
        return one_line(error.message) or type(error).__name__
    return one_line(error) or type(error).__name__


def _log_each_line_once():
    """Leaves TensorFlow's log records to absl's handler alone.

    `tf.get_logger()` has a handler of its own and also propagates to the root logger, where absl
    installs its handler once the app starts, so every `tf1.logging` line would print twice. absl's
    format (with a timestamp and the source line) is the one kept.
    """
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True


def run_main(main, argv=None):
    """Runs `main` like `absl.app.run`; user errors become one `ERROR:` line and exit status 1.

    Args:
      main: the script's `main(argv)`.
      argv: optional argument list (defaults to sys.argv).

    Set the environment variable BERT_DEBUG=1 to get the full traceback instead.
    """

    def _main_with_clean_errors(args):
        _log_each_line_once()
        try:
            return main(args)
        except _USER_ERRORS as e:
            if os.environ.get("BERT_DEBUG", "") not in ("", "0"):
                raise
            sys.stdout.flush()
            sys.stderr.write(f"ERROR: {_error_message(e)}\n")
            sys.stderr.flush()
            sys.exit(1)

    _allow_cpu_xla()
    app.run(_main_with_clean_errors, argv=argv)


def _allow_cpu_xla():
    """Lets --use_xla compile on the CPU too (GPUs need only the session's jit level).

    TensorFlow reads TF_XLA_FLAGS once, at its first device listing, and `import tensorflow`
    registers an absl init callback that lists the devices as soon as app.run has parsed the
    flags, before any main. The flag only allows CPU auto-clustering: it acts in sessions whose
    global_jit_level is set, which only --use_xla does, so runs without it are unchanged.
    """
    xla_flags = os.environ.get("TF_XLA_FLAGS", "")
    if "--tf_xla_cpu_global_jit" not in xla_flags:
        os.environ["TF_XLA_FLAGS"] = (xla_flags + " --tf_xla_cpu_global_jit").strip()


def _remove_path(path):
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path next to `path`; renames it to `path` only if the block succeeds.

    Works for files and directories (write a directory at the yielded path to produce one). On an
    exception the temporary file or directory is removed and `path` is left untouched.

    Args:
      path: final file or directory path (local or gs://).

    Yields:
      `<dir>/.<name>.tmp-<pid>`, which does not exist yet.
    """
    path = path.rstrip("/") or path
    dirname, name = os.path.split(path)
    if dirname:
        tf.io.gfile.makedirs(dirname)
    tmp_path = os.path.join(dirname, f".{name}.tmp-{os.getpid()}")
    _remove_path(tmp_path)
    try:
        yield tmp_path
    except BaseException:
        _remove_path(tmp_path)
        raise
    if not tf.io.gfile.exists(tmp_path):
        tf1.logging.warning("atomic_output: nothing was written for %s", path)
        return
    if tf.io.gfile.isdir(tmp_path):
        # A directory cannot be renamed over a non-empty one: move the old one aside first, so that
        # `path` is always either the complete old or the complete new directory.
        old_path = os.path.join(dirname, f".{name}.old-{os.getpid()}")
        if tf.io.gfile.exists(path):
            _remove_path(old_path)
            tf.io.gfile.rename(path, old_path)
        tf.io.gfile.rename(tmp_path, path)
        _remove_path(old_path)
    else:
        tf.io.gfile.rename(tmp_path, path, overwrite=True)


def format_duration(seconds):
    """Seconds as H:MM:SS; `?` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    return str(datetime.timedelta(seconds=int(round(seconds))))


class ProgressLogger:
    """Logs counts, rate and ETA of a long loop, at most every `every_seconds`.

    Example line: `features: 1,234/5,000 examples (24.7%), 320.1 examples/s, ETA 0:00:12`.
    """

    def __init__(self, total=None, unit="examples", name="", every_seconds=10.0):
        self.total = total
        self.unit = unit
        self.name = name or "progress"
        self.every_seconds = every_seconds
        self.count = 0
        self._start = time.time()
        self._last_log = self._start
        self._finished = False

    @property
    def elapsed(self):
        return time.time() - self._start

    @property
    def rate(self):
        elapsed = self.elapsed
        return self.count / elapsed if elapsed > 0 else 0.0

    def _line(self):
        rate = self.rate
        if self.total:
            percent = 100.0 * self.count / self.total
            eta = (self.total - self.count) / rate if rate > 0 else None
            return (
                f"{self.name}: {self.count:,}/{self.total:,} {self.unit} ({percent:.1f}%), "
                f"{rate:,.1f} {self.unit}/s, ETA {format_duration(eta)}"
            )
        return f"{self.name}: {self.count:,} {self.unit}, {rate:,.1f} {self.unit}/s"

    def update(self, n=1):
        """Adds `n` to the count and logs if `every_seconds` passed since the last line."""
        self.count += n
        now = time.time()
        if now - self._last_log >= self.every_seconds:
            self._last_log = now
            tf1.logging.info(self._line())

    def done(self):
        """Logs the final line: total, rate and elapsed time (only once)."""
        if self._finished:
            return
        self._finished = True
        tf1.logging.info(
            "%s: done, %s %s in %s (%s %s/s)",
            self.name,
            f"{self.count:,}",
            self.unit,
            format_duration(self.elapsed),
            f"{self.rate:,.1f}",
            self.unit,
        )


def write_eval_results(result, output_dir, file_name="eval_results.txt"):
    """Logs and writes an eval result dict in the reference format (sorted `key = value` lines).

    Values are written with `str(value)` as the reference does (`eval_accuracy = 0.48`, not the
    float64 expansion of a float32).

    Args:
      result: dict of metric name -> value (as returned by Estimator.evaluate).
      output_dir: directory to write into (created if needed).
      file_name: name of the result file.

    Returns:
      The path of the written file.
    """
    tf.io.gfile.makedirs(output_dir)
    path = os.path.join(output_dir, file_name)
    tf1.logging.info("***** Eval results *****")
    with atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            for key in sorted(result.keys()):
                tf1.logging.info("  %s = %s", key, str(result[key]))
                writer.write("%s = %s\n" % (key, str(result[key])))
    return path


def human_size(num_bytes):
    """`1536` -> `1.5 KB`: a byte count for people."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1024.0
    return str(num_bytes)


def chunks(items, size):
    """Yields lists of up to `size` consecutive items of any iterable (the last may be shorter)."""
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------------------
# Inputs: files, globs, checkpoints, text pairs
# ------------------------------------------------------------------------------------------------


def read_text_lines(input_file, flag_name="--input_file"):
    """Yields the lines of a UTF-8 text file, or of stdin for `-`, without their line ends.

    Raises:
      UsageError: no such file, or a line that is not valid UTF-8 (named by its number).
    """
    if input_file == "-":
        source, name = sys.stdin.buffer, "stdin"
    elif not tf.io.gfile.exists(input_file):
        raise UsageError(f"{flag_name}={input_file}: no such file (use - for stdin)")
    else:
        source, name = tf.io.gfile.GFile(input_file, "rb"), input_file
    try:
        # Bytes decoded here, one line at a time: UTF-8 whatever the locale says.
        for number, line in enumerate(source, start=1):
            try:
                yield line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UsageError(f"{name} line {number} is not valid UTF-8 ({e.reason} at byte "
                                 f"{e.start}); convert the input to UTF-8") from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()


def expand_input_files(patterns, flag_name="--input_file", what="input", sort_matches=False):
    """Expands a comma-separated list of globs, in the reference's order (glob order per pattern).

    Args:
      patterns: str, e.g. "/data/train-*.tfrecord,/data/extra.tfrecord".
      flag_name: the flag the patterns came from, for the error message.
      what: what the files should be, for the error message (e.g. "TFRecord files written by
        create_pretraining_data.py").
      sort_matches: sort the files each pattern matches (glob order is the file system's, and
        create_pretraining_data.py keeps it to stay byte-identical with the reference).

    Returns:
      list of file paths.

    Raises:
      UsageError: a pattern matches no file (a typo would otherwise silently drop data), or the
        list is empty.
    """
    input_files = []
    for pattern in patterns.split(","):
        pattern = pattern.strip()
        if not pattern:
            continue
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise UsageError(f"{flag_name}={pattern} matches no file (the pattern matched no "
                             f"files on disk); pass the {what} (comma-separated, globs allowed)")
        input_files.extend(sorted(matches) if sort_matches else matches)
    if not input_files:
        raise UsageError(f"{flag_name} is empty; pass at least one file ({what})")
    return input_files


def resolve_checkpoint(checkpoint, flag_name="--init_checkpoint"):
    """Returns the checkpoint prefix for a prefix or for a directory holding checkpoints.

    Args:
      checkpoint: `.../model.ckpt-1000`, `.../bert_model.ckpt` or a directory (its latest
        checkpoint).
      flag_name: where the path came from, for the error message.

    Raises:
      UsageError: nothing given, a directory without a checkpoint, or no `<prefix>.index`.
    """
    if not checkpoint:
        raise UsageError(f"{flag_name} is required: pass the checkpoint prefix, e.g. "
                         f".../bert_model.ckpt or /tmp/out/model.ckpt-1000")
    if tf.io.gfile.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            raise UsageError(
                f"{flag_name}={checkpoint} is a directory without a checkpoint; pass the "
                f"checkpoint prefix, e.g. {checkpoint.rstrip('/')}/bert_model.ckpt")
        return latest
    if not tf.io.gfile.exists(checkpoint + ".index"):
        raise CheckpointNotFound(
            f"checkpoint not found: no such checkpoint {flag_name}={checkpoint} "
            f"({checkpoint}.index does not exist); pass the checkpoint prefix without "
            f".index/.data-*, e.g. .../bert_model.ckpt")
    return checkpoint


class CheckpointNotFound(UsageError, FileNotFoundError):
    """A checkpoint path that names no checkpoint."""


_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


def split_pair(text):
    """`A ||| B` -> (A, B), the reference's sentence-pair line format; anything else -> (text, "
    "None)."""
    match = _PAIR_RE.match(text)
    if match is None:
        return text, None
    return match.group(1), match.group(2)


# ------------------------------------------------------------------------------------------------
# Shared flag groups
# ------------------------------------------------------------------------------------------------

def _define(define_fn, name, default, help_text, flag_values=None, **kwargs):
    """Defines one flag of a shared group; a second request for the same group is a no-op.

    Several scripts share a group, and tests import several of them into one process. A flag that
    exists already with the same default is left alone; one with another default is a real clash
    (two meanings under one name) and raises.
    """
    flag_values = flags.FLAGS if flag_values is None else flag_values
    if name in flag_values:
        if flag_values[name].default != default:
            raise ValueError(f"flag --{name} is defined twice, with defaults "
                             f"{flag_values[name].default!r} and {default!r}")
        return
    define_fn(name, default, help=help_text, flag_values=flag_values, **kwargs)


def define_tpu_flags(flag_values=None):
    """Defines the reference TPU flags (use_tpu, tpu_name, tpu_zone, gcp_project, master, ...).

    Args:
      flag_values: absl FlagValues to define them in (default: the global FLAGS).
    """
    _define(
        flags.DEFINE_bool,
        "use_tpu",
        False,
        "Whether to use TPU or GPU/CPU.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "tpu_name",
        None,
        "The Cloud TPU to use for training. This should be either the name used when creating the "
        "Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "tpu_zone",
        None,
        "[Optional] GCE zone where the Cloud TPU is located in. If not specified, we will attempt "
        "to automatically detect the GCE project from metadata.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "gcp_project",
        None,
        "[Optional] Project name for the Cloud TPU-enabled project. If not specified, we will "
        "attempt to automatically detect the GCE project from metadata.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "master",
        None,
        "[Optional] TensorFlow master URL.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "num_tpu_cores",
        8,
        "Only used if `use_tpu` is True. Total number of TPU cores to use.",
        flag_values=flag_values,
    )


def define_checkpoint_flags(
    save_checkpoints_steps=1000, iterations_per_loop=1000, flag_values=None
):
    """Defines save_checkpoints_steps and iterations_per_loop with the runner's defaults."""
    _define(
        flags.DEFINE_integer,
        "save_checkpoints_steps",
        save_checkpoints_steps,
        "How often to save the model checkpoint.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "iterations_per_loop",
        iterations_per_loop,
        "How many steps to make in each estimator call.",
        flag_values=flag_values,
    )


def define_runtime_flags(flag_values=None):
    """Defines the device, precision and optimizer flags that the reference does not have."""
    _define(
        flags.DEFINE_integer,
        "num_gpus",
        1,
        "Number of GPUs to train on. More than one trains with MirroredStrategy over the first "
        "num_gpus GPUs (the train batch is split across them).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_enum,
        "distribution_strategy",
        "none",
        "Distribution strategy when not on TPU: none (one device; --num_gpus>1 still selects "
        "mirrored), mirrored (all local GPUs, or logical CPU devices), multi_worker_mirrored "
        "(several machines described by the TF_CONFIG environment variable).",
        enum_values=["none", "mirrored", "multi_worker_mirrored"],
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_bool,
        "use_xla",
        False,
        "Compile the training graph with XLA (JIT).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_bool,
        "use_amp",
        False,
        "Automatic mixed precision: float16 math with dynamic loss scaling on GPU. Without a GPU "
        "training continues in float32.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "num_accumulation_steps",
        1,
        "Accumulate gradients over this many micro-batches of train_batch_size / "
        "num_accumulation_steps examples before each update (saves memory; same effective batch).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_enum,
        "optimizer",
        "adamw",
        "Optimizer: adamw (the reference's AdamWeightDecayOptimizer) or lamb.",
        enum_values=list(optimization.OPTIMIZER_NAMES),
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "keep_checkpoint_max",
        5,
        "Maximum number of recent checkpoints kept in the output directory.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "save_summary_steps",
        100,
        "Write TensorBoard summaries (loss, learning rate) every this many steps.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "tf_random_seed",
        None,
        "Graph-level random seed for reproducible initialisation and dropout (None: random).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "log_step_count_steps",
        100,
        "Log step, loss, learning rate, examples/s and ETA every this many steps.",
        flag_values=flag_values,
    )


def define_eval_during_training_flags(early_stopping_metric="eval_loss", flag_values=None):
    """Defines throttle_secs, max_steps_without_decrease, early_stopping_metric, min_steps.

    Args:
      early_stopping_metric: the task's default metric (pretraining: masked_lm_loss).
      flag_values: absl FlagValues to define them in (default: the global FLAGS).
    """
    _define(
        flags.DEFINE_integer,
        "throttle_secs",
        0,
        "With evaluation during training: evaluate at most every this many seconds, at a new "
        "checkpoint (0 = after every checkpoint).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "max_steps_without_decrease",
        0,
        "Early stopping: stop when the early_stopping_metric has not improved for this many "
        "training steps (0 = off).",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "early_stopping_metric",
        early_stopping_metric,
        "Eval metric watched by early stopping and used to pick the best checkpoint. Names "
        "containing 'loss' are minimised, all others maximised.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_integer,
        "min_steps",
        0,
        "Early stopping never stops training before this global step.",
        flag_values=flag_values,
    )


def define_export_flags(flag_values=None):
    """Defines do_export and export_dir."""
    _define(
        flags.DEFINE_bool,
        "do_export",
        False,
        "Export a SavedModel (serving signature input_ids, input_mask, segment_ids) after "
        "training; with early stopping the best checkpoint is exported.",
        flag_values=flag_values,
    )
    _define(
        flags.DEFINE_string,
        "export_dir",
        None,
        "Directory for the SavedModel export (default: <output_dir>/export).",
        flag_values=flag_values,
    )


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------

def define_model_flags(
    names=("bert_config_file", "vocab_file", "init_checkpoint", "do_lower_case", "max_seq_length"),
    max_seq_length=128,
    flag_values=None,
):
    """Defines the reference's model flags: config, vocab, checkpoint, casing, sequence length.

    Args:
      names: the subset this script takes (run_pretraining has no vocab_file or do_lower_case).
      max_seq_length: the script's default (the reference: 128, run_squad.py 384).
      flag_values: absl FlagValues to define them in (default: the global FLAGS).
    """
    definitions = {
        "bert_config_file": (flags.DEFINE_string, None,
                             "The config json file corresponding to the pre-trained BERT model. "
                             "This specifies the model architecture."),
        "vocab_file": (flags.DEFINE_string, None,
                       "The vocabulary file that the BERT model was trained on."),
        "init_checkpoint": (flags.DEFINE_string, None,
                            "Initial checkpoint (usually from a pre-trained BERT model)."),
        "do_lower_case": (flags.DEFINE_bool, True,
                          "Whether to lower case the input text. Should be True for uncased "
                          "models and False for cased models."),
        "max_seq_length": (flags.DEFINE_integer, max_seq_length,
                           "The maximum total input sequence length after WordPiece "
                           "tokenization. Sequences longer than this will be truncated, and "
                           "sequences shorter than this will be padded."),
    }
    for name in names:
        define_fn, default, help_text = definitions[name]
        _define(define_fn, name, default, help_text, flag_values=flag_values)


_FINE_TUNING_FLAGS = {
    "do_train": (flags.DEFINE_bool, False, "Whether to run training."),
    "do_eval": (flags.DEFINE_bool, False, "Whether to run eval on the dev set."),
    "do_predict": (flags.DEFINE_bool, False,
                   "Whether to run the model in inference mode on the test set."),
    "train_batch_size": (flags.DEFINE_integer, 32, "Total batch size for training."),
    "eval_batch_size": (flags.DEFINE_integer, 8, "Total batch size for eval."),
    "predict_batch_size": (flags.DEFINE_integer, 8, "Total batch size for predict."),
    "learning_rate": (flags.DEFINE_float, 5e-5, "The initial learning rate for Adam."),
    "num_train_epochs": (flags.DEFINE_float, 3.0, "Total number of training epochs to perform."),
    "warmup_proportion": (flags.DEFINE_float, 0.1,
                          "Proportion of training to perform linear learning rate warmup for. "
                          "E.g., 0.1 = 10% of training."),
}


def define_fine_tuning_flags(names=tuple(_FINE_TUNING_FLAGS), helps=None, flag_values=None):
    """Defines the reference fine-tuning runners' mode and hyperparameter flags.

    do_train, do_eval, do_predict, train/eval/predict_batch_size, learning_rate, num_train_epochs
    and warmup_proportion, with the reference's defaults (run_classifier.py and run_squad.py share
    them).

    Args:
      names: the subset this script takes (run_squad.py has no eval_batch_size).
      helps: {name: help text} where a script words a flag otherwise (run_squad.py's do_predict).
      flag_values: absl FlagValues to define them in (default: the global FLAGS).
    """
    for name in names:
        define_fn, default, help_text = _FINE_TUNING_FLAGS[name]
        _define(define_fn, name, default, (helps or {}).get(name, help_text),
                flag_values=flag_values)


# ------------------------------------------------------------------------------------------------
# Checks every runner makes before any work
# ------------------------------------------------------------------------------------------------


def check_model_files(bert_config_file, vocab_file, do_lower_case, init_checkpoint):
    """The config and vocab exist and --do_lower_case suits a released checkpoint's name.

    Raises:
      UsageError: naming the flag and the fix.
    """
    for flag, path in (("bert_config_file", bert_config_file), ("vocab_file", vocab_file)):
        if not path:
            raise UsageError(f"--{flag} is required: pass the file of the model")
        if not tf.io.gfile.exists(path):
            raise UsageError(f"--{flag}={path}: no such file")
    try:
        tokenization.validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
    except ValueError as e:
        raise UsageError(one_line(e)) from None


def check_early_stopping(max_steps_without_decrease, do_train, do_eval, watched="the dev set"):
    """Early stopping needs training and evaluation in the same run."""
    if max_steps_without_decrease > 0 and not (do_train and do_eval):
        raise UsageError(
            f"--max_steps_without_decrease needs --do_train=true and --do_eval=true (early "
            f"stopping watches {watched} during training)")
