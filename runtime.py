"""Estimators and the one run loop: what every trainer does with its model_fn and input_fns.

* `build_runner(model_fn, options, model_dir, ...)` returns a `Runner` around a TPUEstimator (with
  `--use_tpu`, or on request with use_tpu=False for tests) or a plain `tf.estimator.Estimator` on
  CPU/GPU, optionally with MirroredStrategy (several GPUs, or logical CPU devices) or
  MultiWorkerMirroredStrategy (TF_CONFIG). The same model_fn serves both: it returns
  `training.make_spec(...)`, which builds a TPUEstimatorSpec or an EstimatorSpec as needed.
* `Runner.train / evaluate / predict / train_and_evaluate / train_with_evaluator`: resume or warm
  start said plainly in the log, evaluation after each checkpoint with early stopping and a copy of
  the best checkpoint in `<model_dir>/best/`.
* `run_train_and_eval(...)`: the phase dispatch every trainer shares (early stopping, else train
  then evaluate; `eval_results.txt`; which checkpoint prediction and export then use). Metrics come
  from the model_fn's eval_metrics, or from a task's own `evaluate_fn(checkpoint)` when they are
  computed outside the graph (SQuAD F1, entity F1).

`RuntimeOptions.from_flags(FLAGS)` carries the shared flag groups of `cli.py`; this module never
reads FLAGS itself. model_fn building blocks are in `training.py`, loaded models in `inference.py`.

Decisions worth knowing:
* `--distribution_strategy=mirrored` without GPUs uses the logical CPU devices when the process
  created them (tf.config.set_logical_device_configuration before TF initialises); with a single CPU
  device it logs that and trains without a strategy.
* `--use_amp` without a GPU logs that the float16 rewrite cannot happen and trains in float32 (the
  optimizer still gets use_amp, so dynamic loss scaling wraps it; harmless in float32).
* `--num_accumulation_steps=k` feeds micro-batches of train_batch_size / k examples; the optimizer
  applies one update (one global step) per k micro-batches, so max_steps counts full-batch updates.
* MirroredStrategy all-reduces with ReductionToOneDevice on CPUs and NCCL on GPUs: the eager
  default (collective ops) hangs inside the Estimator's tf1 Session.
* MultiWorkerMirroredStrategy must be created before TensorFlow initialises its runtime, so call
  build_runner before running any op; Runner.train goes through train_and_evaluate there, because
  Estimator.train refuses TF_CONFIG-driven multi-worker training. Workers only train: evaluation and
  early stopping need an `evaluator` task.
* `--use_xla` needs TF_XLA_FLAGS=--tf_xla_cpu_global_jit on the CPU, read once when TensorFlow's
  runtime starts: cli.run_main sets it before absl parses the flags (importing tensorflow lists the
  devices right after that); build_runner sets it too, for library callers that build the runner
  before any TensorFlow op. Plus the session's global jit level.
* Evaluation during training runs on one device (eval_distribute is not set).
"""

import collections
import dataclasses
import json
import os
import re
import tempfile
import time
from typing import Optional

import tensorflow as tf
from tensorflow.python.framework import kernels

import cli
import training

tf1 = tf.compat.v1

_BEST_DIR_NAME = "best"
_BEST_INFO_FILE = "best_checkpoint.json"


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RuntimeOptions:
    """Everything the runtime needs from the flags; one field per flag of the define_* groups."""

    # define_tpu_flags
    use_tpu: bool = False
    tpu_name: Optional[str] = None
    tpu_zone: Optional[str] = None
    gcp_project: Optional[str] = None
    master: Optional[str] = None
    num_tpu_cores: int = 8
    # define_checkpoint_flags
    save_checkpoints_steps: int = 1000
    iterations_per_loop: int = 1000
    # define_runtime_flags
    num_gpus: int = 1
    distribution_strategy: str = "none"
    use_xla: bool = False
    use_amp: bool = False
    num_accumulation_steps: int = 1
    optimizer: str = "adamw"
    keep_checkpoint_max: int = 5
    save_summary_steps: int = 100
    tf_random_seed: Optional[int] = None
    log_step_count_steps: int = 100
    # define_eval_during_training_flags
    throttle_secs: int = 0
    max_steps_without_decrease: int = 0
    early_stopping_metric: str = "eval_loss"
    min_steps: int = 0
    # define_export_flags
    do_export: bool = False
    export_dir: Optional[str] = None

    @classmethod
    def from_flags(cls, flag_values):
        """Reads the fields whose flags are defined in `flag_values`; others keep their defaults."""
        values = {}
        for field in dataclasses.fields(cls):
            if field.name in flag_values:
                values[field.name] = getattr(flag_values, field.name)
        return cls(**values)

    @property
    def use_one_hot_embeddings(self):
        # One-hot matmul lookups are faster on TPU, gathers everywhere else (reference behaviour).
        return self.use_tpu

    def validate(self):
        """Raises UsageError for values that cannot work, naming the flag and the fix."""
        if self.num_accumulation_steps < 1:
            raise cli.UsageError(
                f"--num_accumulation_steps={self.num_accumulation_steps} must be at least 1."
            )
        if self.num_gpus < 0:
            raise cli.UsageError(f"--num_gpus={self.num_gpus} must be 0 or more.")
        if self.save_checkpoints_steps is not None and self.save_checkpoints_steps < 1:
            raise cli.UsageError(
                f"--save_checkpoints_steps={self.save_checkpoints_steps} must be at least 1."
            )
        if self.keep_checkpoint_max < 1:
            raise cli.UsageError(f"--keep_checkpoint_max={self.keep_checkpoint_max} must be >= 1.")
        if self.distribution_strategy not in ("none", "mirrored", "multi_worker_mirrored"):
            raise cli.UsageError(
                f"--distribution_strategy={self.distribution_strategy!r} is not one of "
                "none, mirrored, multi_worker_mirrored."
            )
        if self.use_tpu and self.distribution_strategy != "none":
            raise cli.UsageError(
                "--use_tpu cannot be combined with --distribution_strategy="
                f"{self.distribution_strategy}; drop one of them (TPUEstimator shards over "
                "--num_tpu_cores itself)."
            )


# ------------------------------------------------------------------------------------------------
# Devices and strategies
# ------------------------------------------------------------------------------------------------


def _gpu_names():
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def _cpu_names():
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise cli.UsageError(f"TF_CONFIG is not valid JSON ({e}); fix the environment variable.")


def _make_strategy(options):
    """Returns (strategy or None, human-readable description of what really runs)."""
    wanted = options.distribution_strategy
    if wanted == "none" and options.num_gpus > 1:
        wanted = "mirrored"

    if wanted == "multi_worker_mirrored":
        tf_config = _tf_config()
        workers = tf_config.get("cluster", {}).get("worker", [])
        if not workers or "task" not in tf_config:
            raise cli.UsageError(
                "--distribution_strategy=multi_worker_mirrored needs TF_CONFIG with a "
                "cluster.worker list and this process's task, e.g. TF_CONFIG='{\"cluster\": "
                '{"worker": ["host1:2222", "host2:2222"]}, '
                '"task": {"type": "worker", "index": 0}}\''
            )
        # Must come before anything that initialises the TF runtime (listing devices, running an
        # op): the strategy configures collective ops, which is only possible at startup.
        try:
            strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise ValueError(
                f"MultiWorkerMirroredStrategy could not start ({cli.one_line(e)}); call "
                "runtime.build_runner before running any TensorFlow op in the process."
            ) from e
        gpus = _gpu_names()
        task = tf_config["task"]
        device = f"{len(gpus)} GPU(s)" if gpus else "CPU"
        return strategy, (
            f"Running with MultiWorkerMirroredStrategy: {len(workers)} workers, this is "
            f"{task.get('type')} {task.get('index')}, {device} per worker"
        )

    gpus = _gpu_names()
    if wanted == "mirrored":
        if gpus:
            count = options.num_gpus if options.num_gpus > 1 else len(gpus)
            if count > len(gpus):
                raise cli.UsageError(
                    f"--num_gpus={options.num_gpus} but only {len(gpus)} GPU(s) are visible "
                    f"({', '.join(gpus)}); lower --num_gpus."
                )
            devices = gpus[:count]
        elif options.num_gpus > 1 and options.distribution_strategy == "none":
            raise cli.UsageError(
                f"--num_gpus={options.num_gpus} but no GPU is visible; use --num_gpus=1 to train "
                "on CPU (check CUDA and the tensorflow[and-cuda] install for GPUs)."
            )
        else:
            cpus = _cpu_names()
            if len(cpus) < 2:
                tf1.logging.warning(
                    "--distribution_strategy=mirrored: no GPU and only one CPU device, so there "
                    "is nothing to mirror over; training runs without a strategy on %s.",
                    cpus[0] if cpus else "/cpu:0",
                )
                return None, "Running on CPU: no GPU visible (mirrored fell back to one device)"
            devices = cpus
        if len(devices) == 1:
            return None, f"Running on one device {devices[0]} (mirrored over 1 device skipped)"
        strategy = tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=_session_cross_device_ops(devices)
        )
        return strategy, (
            f"Running on {strategy.num_replicas_in_sync} replicas with MirroredStrategy {devices}"
        )

    if gpus:
        return None, f"Running on GPU {gpus[0]} ({len(gpus)} visible)"
    return None, "Running on CPU: no GPU visible"


def _session_cross_device_ops(devices):
    """All-reduce implementation that works in the Estimator's tf1 Session.

    A MirroredStrategy created in eager mode defaults to collective ops, which hang in a tf1
    Session on CPU devices (seen on TF 2.15: the first step never finishes). TF1's own choices
    for Session mode are NCCL across GPUs and a reduction on one device otherwise. NCCL also needs
    one physical GPU per replica (not logical GPUs carved from one) and a build with its kernel,
    the rules of TensorFlow's own selection.
    """
    if not all("GPU" in device.upper() for device in devices):
        return tf.distribute.ReductionToOneDevice()
    virtual = len(tf.config.list_logical_devices("GPU")) != len(
        tf.config.list_physical_devices("GPU"))
    if virtual or not kernels.get_registered_kernels_for_op("NcclAllReduce"):
        return tf.distribute.ReductionToOneDevice()
    return tf.distribute.NcclAllReduce()


def _session_config(options):
    config = tf1.ConfigProto(allow_soft_placement=True)
    if options.use_xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def _configure_xla_flags(options):
    """Turns on XLA auto-clustering for CPU too (GPUs only need the session's jit level).

    The session-config jit level reaches CPU kernels only with TF_XLA_FLAGS=--tf_xla_cpu_global_jit,
    and TensorFlow reads TF_XLA_FLAGS once, when its runtime initialises (the first device
    listing or op). build_runner therefore sets it before touching any device; a process that ran
    TensorFlow ops earlier must export the variable before it starts.
    """
    if not options.use_xla:
        return
    xla_flags = os.environ.get("TF_XLA_FLAGS", "")
    if "--tf_xla_cpu_global_jit" not in xla_flags:
        os.environ["TF_XLA_FLAGS"] = (xla_flags + " --tf_xla_cpu_global_jit").strip()


def _configure_xla(options):
    if not options.use_xla:
        return
    tf.config.optimizer.set_jit(True)
    tf1.logging.info(
        "XLA JIT compilation on (global_jit_level ON_1, TF_XLA_FLAGS=%s). Its effect depends on "
        "the model: measure with and without --use_xla.",
        os.environ.get("TF_XLA_FLAGS", ""),
    )


def _log_amp(options):
    if not options.use_amp:
        return
    if _gpu_names():
        tf1.logging.info("Mixed precision: float16 graph rewrite with dynamic loss scaling.")
    else:
        tf1.logging.warning(
            "--use_amp: no GPU visible, so there is no float16 rewrite; training continues in "
            "float32 (dynamic loss scaling still wraps the optimizer, harmless in float32)."
        )


# ------------------------------------------------------------------------------------------------
# Estimator
# ------------------------------------------------------------------------------------------------

TrainEvalResult = collections.namedtuple(
    "TrainEvalResult", ["best_checkpoint", "best_metric", "final_metrics", "stopped_early"]
)


def checkpoint_step(checkpoint_path):
    """Returns the global step stored in a checkpoint (its variable, else its file name), or None.

    Args:
      checkpoint_path: checkpoint prefix such as `<model_dir>/model.ckpt-1000`.
    """
    if not checkpoint_path:
        return None
    try:
        return int(tf.train.load_variable(checkpoint_path, "global_step"))
    except (tf.errors.NotFoundError, ValueError, tf.errors.InvalidArgumentError):
        match = re.search(r"-(\d+)$", checkpoint_path)
        return int(match.group(1)) if match else None


def _split_batch(total, parts, what, fix):
    if total % parts:
        raise cli.UsageError(f"{what} ({total}) is not divisible by {parts}; {fix}")
    return total // parts


def _micro_batch_size(train_batch_size, num_accumulation_steps):
    """The examples per micro-batch under gradient accumulation (the batch itself without it)."""
    k = num_accumulation_steps
    if train_batch_size is None or k <= 1:
        return train_batch_size
    micro_batch = _split_batch(
        train_batch_size,
        k,
        "--train_batch_size",
        "choose --num_accumulation_steps that divides it (micro-batch = train_batch_size / "
        "num_accumulation_steps).",
    )
    tf1.logging.info(
        "Gradient accumulation: %d micro-batches of %d examples per update of %d examples",
        k,
        micro_batch,
        train_batch_size,
    )
    return micro_batch


def build_runner(
    model_fn,
    options,
    model_dir,
    train_batch_size=None,
    eval_batch_size=None,
    predict_batch_size=None,
    params=None,
    use_tpu_estimator=None,
):
    """Builds a Runner around a TPUEstimator or a plain Estimator, as the options ask.

    Args:
      model_fn: `model_fn(features, labels, mode, params)` returning `make_spec(...)`.
      options: RuntimeOptions.
      model_dir: checkpoint directory (None: a fresh temporary directory).
      train_batch_size: global batch per optimizer update (before gradient accumulation).
      eval_batch_size: global eval batch size.
      predict_batch_size: global predict batch size.
      params: extra entries for model_fn's params (must not contain "batch_size" or "context").
      use_tpu_estimator: None = options.use_tpu; True builds TPUEstimator even without a TPU.

    Returns:
      A Runner.

    Raises:
      cli.UsageError: for batch sizes that do not divide, missing TF_CONFIG, too few GPUs.
    """
    options.validate()
    _configure_xla_flags(options)
    if use_tpu_estimator is None:
        use_tpu_estimator = options.use_tpu
    if model_dir is None:
        model_dir = tempfile.mkdtemp(prefix="bert_runtime_")
    params = dict(params or {})
    for key in ("batch_size", "context"):
        if key in params:
            raise ValueError(f"params must not contain {key!r}: the runtime sets it.")

    micro_batch = _micro_batch_size(train_batch_size, options.num_accumulation_steps)

    if use_tpu_estimator:
        if options.distribution_strategy != "none" or options.num_gpus > 1:
            tf1.logging.warning(
                "TPUEstimator ignores --distribution_strategy/--num_gpus (it shards itself)."
            )
        estimator, description = _build_tpu_estimator(
            model_fn, options, model_dir, micro_batch, eval_batch_size, predict_batch_size, params
        )
        strategy = None
    else:
        strategy, description = _make_strategy(options)
        estimator = _build_estimator(model_fn, options, model_dir, strategy, params)
    _configure_xla(options)
    tf1.logging.info(description)
    _log_amp(options)
    return Runner(
        estimator=estimator,
        options=options,
        model_dir=model_dir,
        strategy=strategy,
        is_tpu_estimator=use_tpu_estimator,
        train_batch_size=train_batch_size,
        micro_batch_size=micro_batch,
        eval_batch_size=eval_batch_size,
        predict_batch_size=predict_batch_size,
        description=description,
    )


def _run_config_settings(options, model_dir):
    """The RunConfig settings both estimators take from the flags."""
    return dict(
        model_dir=model_dir,
        tf_random_seed=options.tf_random_seed,
        save_summary_steps=options.save_summary_steps,
        save_checkpoints_steps=options.save_checkpoints_steps,
        keep_checkpoint_max=options.keep_checkpoint_max,
        log_step_count_steps=options.log_step_count_steps,
        session_config=_session_config(options),
    )


def _build_tpu_estimator(
    model_fn, options, model_dir, train_batch, eval_batch, predict_batch, params
):
    resolver = None
    if options.use_tpu and options.tpu_name:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            options.tpu_name, zone=options.tpu_zone, project=options.gcp_project
        )
    run_config = tf1.estimator.tpu.RunConfig(
        cluster=resolver,
        master=options.master,
        **_run_config_settings(options, model_dir),
        tpu_config=tf1.estimator.tpu.TPUConfig(
            iterations_per_loop=options.iterations_per_loop,
            num_shards=options.num_tpu_cores,
            per_host_input_for_training=tf1.estimator.tpu.InputPipelineConfig.PER_HOST_V2,
        ),
    )
    full_params = dict(
        params, tpu_estimator=True, runtime_options=options
    )
    estimator = tf1.estimator.tpu.TPUEstimator(
        use_tpu=options.use_tpu,
        model_fn=model_fn,
        config=run_config,
        params=full_params,
        train_batch_size=train_batch,
        eval_batch_size=eval_batch,
        predict_batch_size=predict_batch,
        # Exporting a TPU metagraph needs a TPU and fails elsewhere; exports go through a plain
        # Estimator anyway (Runner.export).
        export_to_tpu=False,
    )
    if options.use_tpu:
        where = options.tpu_name or options.master or "(default master)"
        description = f"TPUEstimator on TPU {where} with {options.num_tpu_cores} cores"
    else:
        gpus = _gpu_names()
        device = f"GPU {gpus[0]}" if gpus else "CPU (no GPU visible)"
        description = f"TPUEstimator with use_tpu=False: running on {device}"
    return estimator, description


def _build_estimator(model_fn, options, model_dir, strategy, params):
    run_config = tf.estimator.RunConfig(
        train_distribute=strategy, **_run_config_settings(options, model_dir)
    )
    full_params = dict(params, tpu_estimator=False, runtime_options=options)
    return tf.estimator.Estimator(model_fn=model_fn, config=run_config, params=full_params)


class Runner:
    """Train / evaluate / predict / export with one Estimator, logging what really happens."""

    def __init__(
        self,
        estimator,
        options,
        model_dir,
        strategy,
        is_tpu_estimator,
        train_batch_size,
        micro_batch_size,
        eval_batch_size,
        predict_batch_size,
        description,
    ):
        self.estimator = estimator
        self.options = options
        self.model_dir = model_dir
        self.strategy = strategy
        self.is_tpu_estimator = is_tpu_estimator
        self.train_batch_size = train_batch_size
        self.micro_batch_size = micro_batch_size
        self.eval_batch_size = eval_batch_size
        self.predict_batch_size = predict_batch_size
        self.description = description

    # -- batch sizes ----------------------------------------------------------------------------

    @property
    def is_multi_worker(self):
        return isinstance(self.strategy, tf.distribute.experimental.MultiWorkerMirroredStrategy)

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync if self.strategy is not None else 1

    def _input_fn_with_batch_size(self, input_fn, batch_size, per_replica):
        """Gives a plain Estimator's input_fn params["batch_size"] (TPUEstimator sets it itself)."""
        if self.is_tpu_estimator:
            return input_fn
        if batch_size is None:
            raise ValueError("build_runner was not given a batch size for this mode.")
        if per_replica and self.num_replicas > 1:
            # With a strategy every replica pulls its own batches from the dataset.
            batch_size = _split_batch(
                batch_size,
                self.num_replicas,
                "The train micro-batch",
                f"choose a train_batch_size / num_accumulation_steps that is a multiple of the "
                f"{self.num_replicas} replicas.",
            )

        def input_fn_with_batch_size(params):
            return input_fn(dict(params, batch_size=batch_size))

        return input_fn_with_batch_size

    # -- training -------------------------------------------------------------------------------

    def latest_checkpoint(self):
        """The newest checkpoint in model_dir, or None."""
        return tf.train.latest_checkpoint(self.model_dir)

    def _log_start_state(self, max_steps):
        """Logs resume / fresh start; returns False if the checkpoint already reached max_steps."""
        checkpoint = self.latest_checkpoint()
        if checkpoint is None:
            tf1.logging.info(
                "No checkpoint in %s: training starts at step 0 (from --init_checkpoint when "
                "given, else from random initialisation).",
                self.model_dir,
            )
            return True
        step = checkpoint_step(checkpoint)
        if step is not None and max_steps is not None and step >= max_steps:
            tf1.logging.info(
                "Training already finished: %s is at global step %d, which reaches the target of "
                "%d steps. Nothing to train. To train more, raise the number of training steps; to "
                "start over, use an empty output directory.",
                checkpoint,
                step,
                max_steps,
            )
            return False
        tf1.logging.info(
            "Resuming training from %s (global step %s of %s); --init_checkpoint is not used "
            "because the output directory already holds a checkpoint.",
            checkpoint,
            step,
            max_steps,
        )
        return True

    def _train_hooks(self, max_steps):
        return [
            _TrainProgressHook(
                max_steps=max_steps,
                examples_per_step=self.train_batch_size,
                every_steps=self.options.log_step_count_steps,
                fetch_tensors=not self.options.use_tpu,
            )
        ]

    def _train_input_fn(self, input_fn):
        return self._input_fn_with_batch_size(input_fn, self.micro_batch_size, per_replica=True)

    def train(self, input_fn, max_steps):
        """Trains until global step `max_steps`, resuming from model_dir's checkpoint if present.

        Args:
          input_fn: `input_fn(params)` returning a dataset of batches of params["batch_size"].
          max_steps: target global step (number of optimizer updates).

        Returns:
          The global step reached (None if unknown).
        """
        if not self._log_start_state(max_steps):
            return checkpoint_step(self.latest_checkpoint())
        if self.is_multi_worker:
            # Estimator.train refuses TF_CONFIG-driven multi-worker training; train_and_evaluate
            # runs it through the distribute coordinator. Without an 'evaluator' task in TF_CONFIG
            # the eval spec is never used.
            train_spec = tf.estimator.TrainSpec(
                input_fn=self._train_input_fn(input_fn),
                max_steps=max_steps,
                hooks=self._train_hooks(max_steps),
            )
            eval_spec = tf.estimator.EvalSpec(input_fn=self._train_input_fn(input_fn), steps=1)
            tf.estimator.train_and_evaluate(self.estimator, train_spec, eval_spec)
        else:
            self.estimator.train(
                input_fn=self._train_input_fn(input_fn),
                max_steps=max_steps,
                hooks=self._train_hooks(max_steps),
            )
        checkpoint = self.latest_checkpoint()
        return checkpoint_step(checkpoint) if checkpoint else None

    def evaluate(self, input_fn, steps=None, checkpoint_path=None, name=None):
        """Evaluates a checkpoint (default: the latest in model_dir) and returns the metric dict."""
        return self.estimator.evaluate(
            input_fn=self._input_fn_with_batch_size(input_fn, self.eval_batch_size, False),
            steps=steps,
            checkpoint_path=checkpoint_path,
            name=name,
        )

    def predict(self, input_fn, checkpoint_path=None, yield_single_examples=True):
        """Yields prediction dicts from a checkpoint (default: the latest in model_dir)."""
        return self.estimator.predict(
            input_fn=self._input_fn_with_batch_size(input_fn, self.predict_batch_size, False),
            checkpoint_path=checkpoint_path,
            yield_single_examples=yield_single_examples,
        )

    @property
    def best_dir(self):
        return os.path.join(self.model_dir, _BEST_DIR_NAME)

    def train_and_evaluate(self, train_input_fn, eval_input_fn, max_steps, eval_steps=None):
        """Trains with evaluation after each checkpoint, early stopping, and a copy of the best one.

        Args:
          train_input_fn: as for train().
          eval_input_fn: as for evaluate(); should yield at least `eval_steps` batches.
          max_steps: target global step.
          eval_steps: batches per evaluation (None: until the eval input is exhausted).

        Returns:
          TrainEvalResult(best_checkpoint, best_metric, final_metrics, stopped_early).
        """
        options = self.options
        metric = options.early_stopping_metric
        if not self._log_start_state(max_steps):
            best = _BestCheckpointCopier.read_best(self.best_dir)
            return TrainEvalResult(
                best_checkpoint=best.get("checkpoint"),
                best_metric=best.get("value"),
                final_metrics={},
                stopped_early=False,
            )
        copier = _BestCheckpointCopier(metric, self.best_dir)
        hooks = self._train_hooks(max_steps)
        if options.max_steps_without_decrease > 0:
            if self.is_multi_worker:
                tf1.logging.warning(
                    "Early stopping is off with multi_worker_mirrored: workers only train; "
                    "evaluation needs an 'evaluator' task in TF_CONFIG."
                )
            else:
                hooks.append(self._early_stopping_hook(metric))
                tf1.logging.info(
                    "Early stopping: stop when %s has not %s for %d steps (not before step %d)",
                    metric,
                    "decreased" if _lower_is_better(metric) else "increased",
                    options.max_steps_without_decrease,
                    options.min_steps,
                )
        train_spec = tf.estimator.TrainSpec(
            input_fn=self._train_input_fn(train_input_fn), max_steps=max_steps, hooks=hooks
        )
        eval_spec = tf.estimator.EvalSpec(
            input_fn=self._input_fn_with_batch_size(eval_input_fn, self.eval_batch_size, False),
            steps=eval_steps,
            exporters=[copier],
            start_delay_secs=0,
            throttle_secs=options.throttle_secs,
        )
        tf.estimator.train_and_evaluate(self.estimator, train_spec, eval_spec)

        final_step = checkpoint_step(self.latest_checkpoint())
        stopped_early = final_step is not None and final_step < max_steps
        if stopped_early:
            tf1.logging.info(
                "Early stopping ended training at step %d of %d: %s did not improve for %d steps.",
                final_step,
                max_steps,
                metric,
                options.max_steps_without_decrease,
            )
        best = _BestCheckpointCopier.read_best(self.best_dir)
        if best:
            tf1.logging.info(
                "Best checkpoint: %s (%s = %s at step %s)",
                best["checkpoint"],
                metric,
                best["value"],
                best["step"],
            )
        return TrainEvalResult(
            best_checkpoint=best.get("checkpoint"),
            best_metric=best.get("value"),
            final_metrics=dict(copier.last_eval_result or {}),
            stopped_early=stopped_early,
        )

    def train_with_evaluator(self, train_input_fn, evaluate_fn, max_steps):
        """Like train_and_evaluate, for metrics computed outside the graph (SQuAD F1, entity F1).

        Trains to the next multiple of save_checkpoints_steps, calls `evaluate_fn(checkpoint)`,
        keeps a copy of the best checkpoint in best/ and stops when the early-stopping metric has
        not improved for max_steps_without_decrease steps (not before min_steps). Resumes like
        train(): the best value so far is read back from best/.

        Args:
          train_input_fn: as for train().
          evaluate_fn: `evaluate_fn(checkpoint_path) -> dict` of metric name -> number.
          max_steps: target global step.

        Returns:
          TrainEvalResult(best_checkpoint, best_metric, final_metrics, stopped_early).
        """
        options = self.options
        metric = options.early_stopping_metric
        previous = _BestCheckpointCopier.read_best(self.best_dir)
        if not self._log_start_state(max_steps):
            return TrainEvalResult(previous.get("checkpoint"), previous.get("value"), {}, False)
        copier = _BestCheckpointCopier(metric, self.best_dir)
        interval = max(1, options.save_checkpoints_steps or max_steps)
        step = checkpoint_step(self.latest_checkpoint()) or 0
        best_step = previous.get("step") or step
        result, stopped_early = {}, False
        while step < max_steps:
            target = min(max_steps, (step // interval + 1) * interval)
            self.estimator.train(input_fn=self._train_input_fn(train_input_fn), max_steps=target,
                                 hooks=self._train_hooks(max_steps))
            checkpoint = self.latest_checkpoint()
            step = checkpoint_step(checkpoint)
            result = dict(evaluate_fn(checkpoint), global_step=step)
            tf1.logging.info("Evaluation at step %d: %s", step, ", ".join(
                f"{k} = {v}" for k, v in sorted(result.items())))
            if copier.export(self.estimator, None, checkpoint, result, False) is not None:
                best_step = step
            patience = options.max_steps_without_decrease
            if (patience > 0 and options.min_steps <= step < max_steps
                    and step - best_step >= patience):
                stopped_early = True
                tf1.logging.info("Early stopping ended training at step %d of %d: %s did not "
                                 "improve for %d steps.", step, max_steps, metric,
                                 step - best_step)
                break
        best = _BestCheckpointCopier.read_best(self.best_dir)
        return TrainEvalResult(best.get("checkpoint"), best.get("value"), result, stopped_early)

    def _early_stopping_hook(self, metric):
        options = self.options
        make_hook = (
            tf.estimator.experimental.stop_if_no_decrease_hook
            if _lower_is_better(metric)
            else tf.estimator.experimental.stop_if_no_increase_hook
        )
        # The hook reads the eval summaries; checking once per checkpoint interval is enough since
        # evaluations only happen at checkpoints.
        return make_hook(
            self.estimator,
            metric,
            options.max_steps_without_decrease,
            min_steps=options.min_steps,
            run_every_secs=None,
            run_every_steps=max(1, options.save_checkpoints_steps or 1),
        )


def _lower_is_better(metric_name):
    return "loss" in metric_name


class _BestCheckpointCopier(tf.estimator.Exporter):
    """Runs after every evaluation in train_and_evaluate; copies a new best checkpoint to best/.

    Copying at evaluation time matters: by the end of training keep_checkpoint_max may have deleted
    the best checkpoint from model_dir. best/ also gets a `checkpoint` state file (so
    tf.train.latest_checkpoint(best_dir) works) and best_checkpoint.json with the metric.
    """

    def __init__(self, metric_name, best_dir):
        self._metric = metric_name
        self._best_dir = best_dir
        self._lower = _lower_is_better(metric_name)
        previous = self.read_best(best_dir)
        self._best_value = previous.get("value") if previous.get("metric") == metric_name else None
        self.last_eval_result = None

    @property
    def name(self):
        return "best_checkpoint_copier"

    @staticmethod
    def read_best(best_dir):
        path = os.path.join(best_dir, _BEST_INFO_FILE)
        if not tf.io.gfile.exists(path):
            return {}
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def _is_better(self, value):
        if self._best_value is None:
            return True
        return value < self._best_value if self._lower else value > self._best_value

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        self.last_eval_result = {k: _to_python(v) for k, v in eval_result.items()}
        if self._metric not in eval_result:
            raise ValueError(
                f"--early_stopping_metric={self._metric!r} is not an eval metric of this model; "
                f"choose one of {sorted(eval_result)}."
            )
        value = float(eval_result[self._metric])
        if not self._is_better(value):
            return None
        self._best_value = value
        step = _to_python(eval_result.get("global_step"))
        name = os.path.basename(checkpoint_path)
        with cli.atomic_output(self._best_dir) as tmp_dir:
            tf.io.gfile.makedirs(tmp_dir)
            for source in tf.io.gfile.glob(checkpoint_path + ".*"):
                tf.io.gfile.copy(
                    source, os.path.join(tmp_dir, os.path.basename(source)), overwrite=True
                )
            with tf.io.gfile.GFile(os.path.join(tmp_dir, "checkpoint"), "w") as f:
                f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
            info = {
                "checkpoint": os.path.join(self._best_dir, name),
                "metric": self._metric,
                "value": value,
                "step": step,
                "source": checkpoint_path,
            }
            with tf.io.gfile.GFile(os.path.join(tmp_dir, _BEST_INFO_FILE), "w") as f:
                json.dump(info, f, indent=2)
        tf1.logging.info(
            "New best checkpoint %s: %s = %s at step %s",
            info["checkpoint"],
            self._metric,
            value,
            step,
        )
        return info["checkpoint"]


def _to_python(value):
    if hasattr(value, "item"):
        return value.item()
    return value


class _TrainProgressHook(tf1.train.SessionRunHook):
    """Logs step, loss, learning rate, examples/s and ETA every `every_steps` global steps.

    Loss and learning rate come from the graph collections filled by make_spec / create_train_op. On
    a real TPU they live inside the TPU computation and cannot be fetched, so only rates are logged.
    """

    def __init__(self, max_steps, examples_per_step, every_steps=100, fetch_tensors=True):
        self._max_steps = max_steps
        self._examples_per_step = examples_per_step
        self._every_steps = max(1, every_steps or 1)
        self._fetch_tensors = fetch_tensors

    def begin(self):
        self._global_step = tf1.train.get_global_step()
        self._fetches = {}
        if self._fetch_tensors:
            losses = tf1.get_collection(training.LOSS_COLLECTION)
            rates = tf1.get_collection(training.LR_COLLECTION)
            if losses:
                # One entry per replica under MirroredStrategy: log their mean.
                self._fetches["loss"] = tf.add_n([tf.cast(x, tf.float32) for x in losses]) / len(
                    losses
                )
            if rates:
                self._fetches["learning_rate"] = rates[0]
        self._start_time = None
        self._start_step = None
        self._last_logged_step = None
        self._last_step = None

    def before_run(self, run_context):
        return tf1.train.SessionRunArgs(self._fetches)

    def after_run(self, run_context, run_values):
        results = run_values.results
        # A global step fetched with the train op may be read before or after its increment, and
        # with gradient accumulation it moves every k runs only: read it after the run (cheap).
        step = int(run_context.session.run(self._global_step))
        now = time.time()
        if self._start_time is None:
            # The first run includes graph warm-up: measure rates from its end.
            self._start_time, self._start_step, self._last_logged_step = now, step, step
            self._last_step = step
            return
        self._last_step = step
        if step // self._every_steps == self._last_logged_step // self._every_steps:
            return
        self._last_logged_step = step
        tf1.logging.info(self._line(step, now, results))

    def _line(self, step, now, results):
        elapsed = now - self._start_time
        steps_per_sec = (step - self._start_step) / elapsed if elapsed > 0 else 0.0
        parts = [f"step {step:,}" + (f"/{self._max_steps:,}" if self._max_steps else "")]
        if "loss" in results:
            parts.append(f"loss = {results['loss']:.5g}")
        if "learning_rate" in results:
            parts.append(f"learning_rate = {results['learning_rate']:.4g}")
        if self._examples_per_step:
            parts.append(f"{steps_per_sec * self._examples_per_step:,.1f} examples/s")
        else:
            parts.append(f"{steps_per_sec:,.2f} steps/s")
        if self._max_steps and steps_per_sec > 0:
            parts.append(f"ETA {cli.format_duration((self._max_steps - step) / steps_per_sec)}")
        return ", ".join(parts)

    def end(self, session):
        if self._start_time is None or self._last_step is None:
            return
        elapsed = time.time() - self._start_time
        steps = self._last_step - self._start_step
        message = f"Training stopped at step {self._last_step:,}: {steps:,} steps in "
        message += cli.format_duration(elapsed)
        if self._examples_per_step and elapsed > 0:
            message += f" ({steps * self._examples_per_step / elapsed:,.1f} examples/s)"
        tf1.logging.info(message)



# ------------------------------------------------------------------------------------------------
# The phases every trainer shares
# ------------------------------------------------------------------------------------------------


def run_train_and_eval(runner, output_dir, do_train, do_eval, train_input_fn=None, max_steps=None,
                       eval_input_fn=None, eval_steps=None, evaluate_fn=None,
                       eval_results_of="best"):
    """Trains and/or evaluates as the flags ask; returns the checkpoint for predict and export.

    With early stopping (--max_steps_without_decrease > 0, do_train and do_eval) training is
    evaluated at every checkpoint, the best one is kept in best/, and `eval_results.txt` describes
    that best checkpoint, the one prediction and export then use. Otherwise: train, then evaluate
    the latest checkpoint.

    Args:
      runner: from build_runner.
      output_dir: where `eval_results.txt` goes.
      do_train: train to `max_steps` with `train_input_fn`.
      do_eval: evaluate and write `eval_results.txt`.
      train_input_fn: `input_fn(params)` of training batches.
      max_steps: target global step.
      eval_input_fn: `input_fn(params)` for the model_fn's eval metrics.
      eval_steps: batches per evaluation (None: the whole eval input).
      evaluate_fn: instead of eval_input_fn, `evaluate_fn(checkpoint_path or None) -> dict` for
        metrics computed outside the graph.
      eval_results_of: under early stopping, what eval_results.txt describes: "best" (the
        checkpoint that prediction and export use) or "last" (the last evaluation during
        training; pretraining, which continues from the last checkpoint).

    Returns:
      The best checkpoint under early stopping, else None (meaning: the latest in output_dir).
    """

    def evaluate(checkpoint):
        if evaluate_fn is not None:
            return evaluate_fn(checkpoint or runner.latest_checkpoint())
        return runner.evaluate(eval_input_fn, steps=eval_steps, checkpoint_path=checkpoint)

    best_checkpoint = None
    if do_train and do_eval and runner.options.max_steps_without_decrease > 0:
        if evaluate_fn is not None:
            outcome = runner.train_with_evaluator(train_input_fn, evaluate_fn, max_steps)
        else:
            outcome = runner.train_and_evaluate(train_input_fn, eval_input_fn, max_steps,
                                                eval_steps=eval_steps)
        tf1.logging.info("Training %s; best %s = %s (%s)",
                         "stopped early" if outcome.stopped_early else "finished",
                         runner.options.early_stopping_metric, outcome.best_metric,
                         outcome.best_checkpoint)
        best_checkpoint = outcome.best_checkpoint
        if eval_results_of == "last" and outcome.final_metrics:
            cli.write_eval_results(outcome.final_metrics, output_dir)
            return best_checkpoint
    elif do_train:
        runner.train(train_input_fn, max_steps=max_steps)
    if do_eval:
        result = evaluate(best_checkpoint if eval_results_of == "best" else None)
        if evaluate_fn is not None and "global_step" not in result:
            result = dict(result, global_step=checkpoint_step(
                best_checkpoint or runner.latest_checkpoint()))
        cli.write_eval_results(result, output_dir)
    return best_checkpoint
