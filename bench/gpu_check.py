"""One bounded command that proves the GPU code paths and measures BERT on the GPU.

    python bench/gpu_check.py --output_dir=bench/results/gpu     # `make gpu-check`
    python bench/gpu_check.py --output_dir=/tmp/gpu_check --cpu  # the checks on the CPU

On a machine without a GPU it prints one line saying so and exits 0 (unless --cpu). It installs
nothing; it prints the GPU, driver, TensorFlow build and CUDA/cuDNN/TensorRT versions, then runs
within --budget_s (default 480 s in all; each phase gets a share, time a phase leaves unused goes
to the next, and a step that no longer fits is skipped with a note):

(a) Correctness. A tiny BERT (2 layers, hidden 64, dropout off in the encoder, every weight from
    one random init checkpoint) is fine-tuned by run_classifier.py, through its command line, for
    30 steps on a language-ID task built from sample_data/classifier (English vs Chinese
    sentences: learnt reliably from random weights, so the loss curve has a shape to compare):
    fp32 (TensorFlow's default precision), --use_amp, --use_xla, and two replicas (--num_gpus=2
    on two GPUs, or two logical GPUs carved from one; with --cpu, two logical CPUs and
    --distribution_strategy=mirrored). Per-step losses come from the TensorBoard event files.
    Then export_model.py writes the fp32 checkpoint as SavedModel and TF-TRT FP16 and verifies
    both against the checkpoint. Tolerances (TOLERANCES below, printed in the report):
      - AMP vs fp32: per-step |loss difference| max <= 0.05 and mean <= 0.02; float16 really used
        (grappler's "Converted N/M nodes to float16" in the log). On the CPU AMP trains in float32
        with loss scaling, as documented, and the curves must agree to the same tolerance. The
        AMP run also passes --do_export: the export's own check then runs in a process whose
        float16 rewrite is on, which is how users run it.
      - XLA vs fp32: max <= 0.02, mean <= 0.01, and XLA really compiled ("XLA service ...
        initialized" in the log).
      - two replicas vs one: the graphs differ (per-replica dropout seeds, input order), so the
        steps are not compared one by one: mean loss over the run within 0.05, over the last 10
        steps within 0.03, eval accuracy within 0.05; plus which devices and all-reduce ran.
      - exports: export_model.py's own checks (1e-5 SavedModel, 1e-2 TF-TRT FP16).
(b) Speed (GPU). Random-init BERT-Base built with modeling.py + optimization.py (no download):
    fine-tuning step (batch 32) and inference (batch 8) at S=128 in fp32 (TF32 off), TF32, AMP
    and AMP+XLA, sequences/s; BERT-Large pretraining S=128 AMP+XLA with LAMB (NVIDIA's
    setting); the exported SavedModel and TF-TRT FP16 at batch 8; length bucketing against
    padding to 128 on the real sentences of sample_data/pretraining.
(c) A table against NVIDIA's published TF1 BERT figures for the nearest GPU, and the FLOP
    utilisation of every row (bench/gpu_flops.py: FLOPs per sequence from the config, dense
    peaks of V100, T4, A10, L4, A100, H100, H200).

Results: <output_dir>/gpu_check.json and gpu_check.md (written atomically), logs of every
subprocess in <output_dir>/work/logs/. Exit status 1 when a check or a speed row failed.
"""

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench import gpu_flops  # noqa: E402

DEFAULT_BUDGET_S = 480
PHASE_SHARES = {"correctness": 0.35, "speed": 0.65}

# Stated tolerances (see the module docstring for why each is what it is).
TOLERANCES = {
    "amp": {"max_step_abs": 0.05, "mean_step_abs": 0.02, "eval_accuracy_abs": 0.05},
    "xla": {"max_step_abs": 0.02, "mean_step_abs": 0.01, "eval_accuracy_abs": 0.05},
    "mirrored": {"curve_mean_abs": 0.05, "last10_mean_abs": 0.03, "eval_accuracy_abs": 0.05},
    "baseline": {"min_eval_accuracy": 0.9, "min_loss_drop": 0.3},
}

TINY_CONFIG = os.path.join(REPO_ROOT, "sample_data", "pretraining", "bert_config_tiny.json")
TINY_VOCAB = os.path.join(REPO_ROOT, "sample_data", "pretraining", "vocab.txt")
CLASSIFIER_DATA = os.path.join(REPO_ROOT, "sample_data", "classifier")
SENTENCE_FILES = [os.path.join(REPO_ROOT, "sample_data", "pretraining", name)
                  for name in ("sample_text_en.txt", "sample_text_zh.txt")]
FINE_TUNE_SEQ = 32
FINE_TUNE_FLAGS = [
    "--task_name=tsv", "--text_a_column=text", "--label_column=label", "--do_lower_case=true",
    f"--max_seq_length={FINE_TUNE_SEQ}", "--train_batch_size=16", "--eval_batch_size=16",
    "--learning_rate=1e-3", "--num_train_epochs=2", "--warmup_proportion=0.1",
    "--save_summary_steps=1", "--log_step_count_steps=10", "--tf_random_seed=12345",
    "--save_checkpoints_steps=1000", "--keep_checkpoint_max=1", "--do_train=true",
    "--do_eval=true",
]
# Seconds a step is expected to take on a GPU machine (what the budget reserves before starting).
ESTIMATES_S = {"init_checkpoint": 15, "fine_tune": 40, "export_tiny": 45, "export_base": 90}

_FP16_RE = re.compile(r"Converted (\d+)/(\d+) nodes to float16 precision")
_XLA_RE = re.compile(r"XLA service \S+ initialized for platform (\w+)")


# ------------------------------------------------------------------------------------------------
# Budget
# ------------------------------------------------------------------------------------------------


class Budget:
    """Splits --budget_s between phases in proportion to their shares.

    A phase's allowance is the time left overall times its share of the phases not yet run, so
    time a phase leaves unused goes to the later ones and an overrun shortens them.
    """

    def __init__(self, total_s, shares, clock=time.monotonic):
        self.total_s = float(total_s)
        self._clock = clock
        self._start = clock()
        self._pending = dict(shares)

    def elapsed(self):
        return self._clock() - self._start

    def left(self):
        return max(0.0, self.total_s - self.elapsed())

    def start_phase(self, name):
        """Returns the Deadline of phase `name` and removes it from the phases still to run."""
        share = self._pending.pop(name)
        total_share = share + sum(self._pending.values())
        return Deadline(self.left() * share / total_share if total_share else 0.0, self._clock)


class Deadline:
    """Seconds a phase may still use."""

    def __init__(self, allowance_s, clock=time.monotonic):
        self.allowance_s = allowance_s
        self._clock = clock
        self._end = clock() + allowance_s

    def left(self):
        return max(0.0, self._end - self._clock())

    def fits(self, estimate_s):
        return estimate_s <= self.left()

    def skip_note(self, estimate_s):
        return (f"skipped: budget (needs about {estimate_s:.0f} s, {self.left():.0f} s left of "
                f"this phase's {self.allowance_s:.0f} s; raise --budget_s)")

    def unix_end(self):
        """The deadline as Unix time, for the worker processes."""
        return time.time() + self.left()


# ------------------------------------------------------------------------------------------------
# Subprocesses
# ------------------------------------------------------------------------------------------------


class Context:
    """What every step needs: the mode, the directories and the environment of child processes."""

    def __init__(self, output_dir, cpu_mode, num_gpus, keep_work=False):
        self.output_dir = output_dir
        self.cpu_mode = cpu_mode
        self.num_gpus = num_gpus
        self.keep_work = keep_work
        self.work_dir = os.path.join(output_dir, "work")
        self.log_dir = os.path.join(self.work_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.work_dir, *parts)

    def child_env(self):
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="0",
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("BERT_DEBUG", None)
        if self.cpu_mode:
            env["CUDA_VISIBLE_DEVICES"] = "-1"
        return env


def run_command(argv, log_path, timeout_s, env):
    """Runs `argv` from the repository root, output to `log_path`, killed at `timeout_s`.

    Returns:
      (exit status or None when it was killed at the timeout, seconds it ran).
    """
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        # Its own process group, so a timeout also ends what it started.
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    return code, time.monotonic() - start


def progress_logger(total, name):
    """A ProgressLogger over the steps of a phase (count, rate and ETA after each step)."""
    from cli import ProgressLogger

    return ProgressLogger(total=total, unit="steps", name=name, every_seconds=0.0)


def read_log(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def error_line(log_text):
    """The line that says why a script failed: its `ERROR:` line, else a traceback's last line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR:"):
            return line[:400]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback"):
            tail = [line for line in lines[index:] if not line.startswith(("File ", "^"))]
            return tail[-1][:400] if tail else lines[-1][:400]
    return lines[-1][:400] if lines else "no output"


def fp16_conversions(log_text):
    """[(converted, total)] of every float16 graph rewrite grappler logged."""
    return [(int(a), int(b)) for a, b in _FP16_RE.findall(log_text)]


def xla_platforms(log_text):
    """Platforms XLA compiled for (its service starts on the first compilation)."""
    return sorted(set(_XLA_RE.findall(log_text)))


# ------------------------------------------------------------------------------------------------
# Environment
# ------------------------------------------------------------------------------------------------


def nvidia_smi():
    """Driver version, CUDA version the driver supports, and per-GPU name/memory, or None."""
    try:
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        details = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if query.returncode != 0:
        return None
    gpus = [[cell.strip() for cell in line.split(",")] for line in query.stdout.splitlines()
            if line.strip()]
    cuda = re.search(r"CUDA Version\s*:\s*(\S+)", details.stdout or "")
    return {"driver_version": gpus[0][1] if gpus else None,
            "driver_cuda_version": cuda.group(1) if cuda else None,
            "gpus": [{"name": g[0], "memory": g[2] if len(g) > 2 else None} for g in gpus]}


def tensorrt_versions(tf):
    """TensorRT support of this TensorFlow build: enabled, linked and loaded versions."""
    info = {"enabled": False, "linked": None, "loaded": None}
    try:
        from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as trt_utils
    except ImportError:
        return info
    info["enabled"] = bool(trt_utils.is_tensorrt_enabled())
    if info["enabled"]:
        info["linked"] = ".".join(map(str, trt_utils.get_linked_tensorrt_version()))
        loaded = trt_utils.get_loaded_tensorrt_version()
        info["loaded"] = ".".join(map(str, loaded)) if any(loaded) else None
    return info


def probe_environment(tf, cpu_mode):
    """Devices, driver, TensorFlow build, CUDA/cuDNN/TensorRT, without starting TF's runtime."""
    from tensorflow.python.framework import kernels

    from bench.machine import machine_description

    gpus = [] if cpu_mode else tf.config.list_physical_devices("GPU")
    devices = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        devices.append({"name": gpu.name, "device_name": details.get("device_name", "unknown"),
                        "compute_capability": ".".join(map(str, capability)) if capability
                        else None})
    build = {key: value for key, value in tf.sysconfig.get_build_info().items()
             if isinstance(value, (str, bool, int, float, list))}
    return {
        "mode": "cpu" if cpu_mode else "gpu",
        "machine": machine_description(),
        "tensorflow": tf.__version__,
        "build": build,
        "gpus": devices,
        "driver": None if cpu_mode else nvidia_smi(),
        "tensorrt": tensorrt_versions(tf) if gpus else {"enabled": False},
        "nccl_kernel": bool(kernels.get_registered_kernels_for_op("NcclAllReduce")),
    }


def environment_lines(env):
    """The lines printed first: device, driver, TensorFlow build, CUDA/cuDNN/TensorRT."""
    build = env["build"]
    lines = []
    for index, gpu in enumerate(env["gpus"]):
        lines.append(f"GPU {index}: {gpu['device_name']} (compute capability "
                     f"{gpu['compute_capability']})")
    if not env["gpus"]:
        lines.append(f"CPU only ({env['machine']})")
    driver = env.get("driver") or {}
    if env["gpus"]:
        lines.append(f"driver {driver.get('driver_version', 'unknown')} (supports CUDA "
                     f"{driver.get('driver_cuda_version', 'unknown')})")
    lines.append(f"TensorFlow {env['tensorflow']}: CUDA build {build.get('is_cuda_build')}, "
                 f"CUDA {build.get('cuda_version', '-')}, cuDNN {build.get('cudnn_version', '-')}, "
                 f"TensorRT {trt_words(env['tensorrt'], build)}, NCCL kernel "
                 f"{'yes' if env['nccl_kernel'] else 'no'}")
    return lines


def trt_words(trt, build):
    """TensorRT in words: in the build or not, libnvinfer loadable or not, versions."""
    if not build.get("is_tensorrt_build"):
        return "not in this build"
    if not trt.get("enabled"):
        return "in the build, but libnvinfer is not loadable here (or no GPU): TF-TRT unavailable"
    return f"linked {trt.get('linked')}, loaded {trt.get('loaded') or 'unknown'}"


# ------------------------------------------------------------------------------------------------
# (a) Correctness: workspace and fine-tunes
# ------------------------------------------------------------------------------------------------


def tiny_config():
    """The sample tiny config with the encoder's dropout off (the head keeps its fixed 0.1)."""
    with open(TINY_CONFIG, encoding="utf-8") as f:
        config = json.load(f)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return config


def language_id_rows(path):
    """(label, text) rows of a sample_data/classifier file, labelled by script: en or zh."""
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [("zh" if re.search("[\u4e00-\u9fff]", text) else "en", text) for _, text in rows]


def prepare_workspace(ctx):
    """Writes the tiny config and the language-ID train/dev files; returns their paths."""
    config_path = ctx.path("bert_config.json")
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(tiny_config(), f, indent=2)
    data_dir = ctx.path("data")
    os.makedirs(data_dir, exist_ok=True)
    for split in ("train", "dev"):
        rows = language_id_rows(os.path.join(CLASSIFIER_DATA, f"{split}.tsv"))
        with open(os.path.join(data_dir, f"{split}.tsv"), "w", encoding="utf-8") as f:
            f.write("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows))
    return config_path, data_dir


def run_worker_jobs(ctx, jobs, name, deadline, attempts=3):
    """Runs speed/checkpoint jobs in bench/gpu_speed.py workers; returns {id: result line}.

    A worker that dies (or is killed at the deadline) loses only the job it was running, which is
    reported as failed with the log's last error line; a new worker runs the remaining jobs.
    """
    results, pending = {}, list(jobs)
    for attempt in range(attempts):
        if attempt and pending and min(j.get("estimate_s", 0) for j in pending) > deadline.left():
            for job in pending:  # Nothing left fits: no worker started just to skip them.
                results[job["id"]] = {"id": job["id"], "kind": job["kind"], "status": "skipped",
                                      "note": deadline.skip_note(job.get("estimate_s", 0))}
            pending = []
        if not pending:
            break
        jobs_path = ctx.path(f"{name}.jobs.json")
        results_path = ctx.path(f"{name}.results.jsonl")
        log_path = os.path.join(ctx.log_dir, f"{name}-{attempt}.log")
        with open(jobs_path, "w", encoding="utf-8") as f:
            json.dump(pending, f)
        if os.path.exists(results_path):
            os.remove(results_path)
        argv = [sys.executable, os.path.join("bench", "gpu_speed.py"), f"--jobs={jobs_path}",
                f"--results={results_path}", f"--deadline={deadline.unix_end():.1f}"]
        env = ctx.child_env()
        env["TF_XLA_FLAGS"] = "--tf_xla_cpu_global_jit"  # XLA rows compile on a CPU too.
        code, _ = run_command(argv, log_path, deadline.left() + 30, env)
        log_text = read_log(log_path)
        for line in read_log(results_path).splitlines():
            entry = json.loads(line)
            entry["log"] = os.path.relpath(log_path, ctx.output_dir)
            part = section(log_text, entry["id"])
            entry["fp16_conversions"] = fp16_conversions(part)
            entry["trt_native_fallbacks"] = len(re.findall("native segment", part, re.I))
            results[entry["id"]] = entry
        pending = [job for job in pending if job["id"] not in results]
        if pending and code != 0 and "gpu_speed: start" not in log_text:
            break  # The worker died before its first job: another would too.
        if pending and code != 0:
            crashed = pending.pop(0)
            why = "killed at the budget deadline" if code is None else error_line(log_text)
            results[crashed["id"]] = {"id": crashed["id"], "kind": crashed["kind"],
                                      "status": "failed" if code is not None else "timed_out",
                                      "error": why, "log": os.path.relpath(log_path,
                                                                           ctx.output_dir)}
    for job in pending:  # The workers kept crashing: no job is left without a line.
        results[job["id"]] = {"id": job["id"], "kind": job["kind"], "status": "failed",
                              "error": "not run: " + error_line(log_text)}
    return results


def section(log_text, job_id):
    """The part of a worker log between `gpu_speed: start <id>` and `gpu_speed: end <id>`."""
    start = log_text.find(f"gpu_speed: start {job_id}\n")
    if start < 0:
        return ""
    end = log_text.find(f"gpu_speed: end {job_id}\n", start)
    return log_text[start:end if end >= 0 else len(log_text)]


def fine_tune_plan(ctx):
    """(name, extra runner flags, launcher flags) of each fine-tune, fp32 first."""
    if ctx.cpu_mode or ctx.num_gpus == 0:
        mirrored = (["--distribution_strategy=mirrored"], ["--logical_cpus=2"])
    else:
        # Two GPUs when there are two; else gpu_launch carves two logical GPUs out of GPU 0.
        mirrored = (["--num_gpus=2"], ["--logical_gpus=2", "--logical_memory_mb=2048"])
    return [("fp32", [], []), ("amp", ["--use_amp=true", "--do_export=true"], []),
            ("xla", ["--use_xla=true"], []), ("mirrored",) + mirrored]


def run_fine_tune(ctx, name, extra, launch, files, timeout_s):
    """Runs run_classifier.py through gpu_launch.py; returns what the checks need."""
    config_path, data_dir, init_checkpoint = files
    output_dir = ctx.path("runs", name)
    shutil.rmtree(output_dir, ignore_errors=True)
    record_path = ctx.path("runs", f"{name}.record.json")
    log_path = os.path.join(ctx.log_dir, f"fine_tune_{name}.log")
    argv = ([sys.executable, os.path.join("bench", "gpu_launch.py"), f"--record={record_path}"]
            + launch + ["--", "run_classifier.py", f"--data_dir={data_dir}",
                        f"--bert_config_file={config_path}", f"--vocab_file={TINY_VOCAB}",
                        f"--init_checkpoint={init_checkpoint}", f"--output_dir={output_dir}"]
            + FINE_TUNE_FLAGS + extra)
    os.makedirs(ctx.path("runs"), exist_ok=True)
    code, seconds = run_command(argv, log_path, timeout_s, ctx.child_env())
    log_text = read_log(log_path)
    run = {"name": name, "exit_code": code, "seconds": round(seconds, 1), "flags": extra,
           "log": os.path.relpath(log_path, ctx.output_dir), "output_dir": output_dir,
           "fp16_conversions": fp16_conversions(log_text), "xla_platforms": xla_platforms(log_text),
           "record": json.loads(read_log(record_path) or "{}")}
    if code != 0:
        run["error"] = "timed out (budget)" if code is None else error_line(log_text)
    # Read even after a failure: training and evaluation may have finished before a later phase
    # (the AMP run's export) failed.
    run["losses"] = read_loss_curve(output_dir) if os.path.isdir(output_dir) else {}
    run["eval"] = read_eval_results(os.path.join(output_dir, "eval_results.txt"))
    run["exported"] = os.path.isdir(os.path.join(output_dir, "export", "saved_model"))
    return run


def read_loss_curve(model_dir):
    """{global step: training loss} from the Estimator's event files in `model_dir`.

    The Estimator names the summary `loss`, or `loss_1` when the model already has a `loss`
    scope (run_classifier's head does); under MirroredStrategy it is the SUM over replicas.
    """
    import tensorflow as tf

    by_tag = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if re.fullmatch(r"loss(_\d+)?", value.tag):
                    # A step skipped by the loss scaler repeats its global step: keep the last.
                    by_tag.setdefault(value.tag, {})[int(event.step)] = float(value.simple_value)
    if not by_tag:
        return {}
    tag = min(by_tag, key=lambda t: (len(t), t))  # "loss" before "loss_1" before "loss_12"
    return by_tag[tag]


def read_eval_results(path):
    """eval_results.txt (`key = value` lines) as floats."""
    values = {}
    for line in read_log(path).splitlines():
        key, _, value = line.partition(" = ")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            continue
    return values


# ------------------------------------------------------------------------------------------------
# (a) Correctness: comparisons
# ------------------------------------------------------------------------------------------------


def compare_curves(base, other, scale=1.0):
    """Differences between two loss curves ({step: loss}) over their common steps.

    Args:
      base: the reference curve.
      other: the compared curve; its losses are divided by `scale` first (2 for a two-replica
        Estimator run, whose summary is the sum over replicas).
      scale: see `other`.

    Returns:
      dict: steps compared, max and mean per-step absolute difference, absolute difference of
      the curves' means and of their last-10-step means, first and last loss of each.
    """
    steps = sorted(set(base) & set(other))
    if not steps:
        return {"steps": 0}
    a = [base[s] for s in steps]
    b = [other[s] / scale for s in steps]
    diffs = [abs(x - y) for x, y in zip(a, b)]
    return {
        "steps": len(steps),
        "max_step_abs": max(diffs),
        "mean_step_abs": statistics.mean(diffs),
        "curve_mean_abs": abs(statistics.mean(a) - statistics.mean(b)),
        "last10_mean_abs": abs(statistics.mean(a[-10:]) - statistics.mean(b[-10:])),
        "base_first_last": [a[0], a[-1]],
        "other_first_last": [b[0], b[-1]],
    }


def over_tolerance(measured, tolerance):
    """Names of the measured quantities above their tolerance (missing ones count as above)."""
    return [key for key, limit in tolerance.items()
            if measured.get(key) is None or measured[key] > limit]


def check(name, status, measured=None, tolerance=None, note=""):
    return {"check": name, "status": status, "measured": measured or {},
            "tolerance": tolerance or {}, "note": note}


def baseline_check(run):
    """The fp32 run must have learnt: otherwise every comparison below is meaningless."""
    tolerance = TOLERANCES["baseline"]
    if run.get("exit_code") != 0:
        return check("fp32 fine-tune learns", "failed", note=run.get("error", ""))
    losses = [run["losses"][s] for s in sorted(run["losses"])]
    if len(losses) < 10:
        return check("fp32 fine-tune learns", "failed",
                     note=f"only {len(losses)} loss summaries in the event files")
    measured = {"eval_accuracy": run["eval"].get("eval_accuracy"),
                "loss_drop": statistics.mean(losses[:5]) - statistics.mean(losses[-5:]),
                "seconds": run["seconds"]}
    ok = (measured["eval_accuracy"] or 0) >= tolerance["min_eval_accuracy"] \
        and measured["loss_drop"] >= tolerance["min_loss_drop"]
    return check("fp32 fine-tune learns", "passed" if ok else "failed", measured, tolerance,
                 f"{len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")


def curve_check(name, kind, base, run, scale=1.0):
    """Compares a run's loss curve and eval accuracy with the fp32 run's, by TOLERANCES[kind]."""
    tolerance = TOLERANCES[kind]
    # The AMP run also exports; its export is judged by amp_export_check, not here.
    finished = run.get("exit_code") == 0 or (kind == "amp" and run.get("eval"))
    if not finished or not run.get("losses"):
        status = "timed_out" if run.get("exit_code") is None else "failed"
        return check(name, status, tolerance=tolerance,
                     note=run.get("error") or "no loss summaries in the event files")
    measured = compare_curves(base["losses"], run["losses"], scale)
    measured["eval_accuracy_abs"] = abs(base["eval"].get("eval_accuracy", 0.0)
                                        - run["eval"].get("eval_accuracy", 1.0))
    measured["seconds"] = run["seconds"]
    above = over_tolerance(measured, tolerance)
    note = f"over tolerance: {', '.join(above)}" if above else ""
    return check(name, "failed" if above else "passed", measured, tolerance, note)


def amp_check(base, run, gpu_mode):
    result = curve_check("--use_amp vs fp32: loss curve", "amp", base, run)
    conversions = run.get("fp16_conversions", [])
    rewrite = run.get("record", {}).get("amp_graph_rewrite")
    result["measured"].update(float16_rewrite_enabled=rewrite,
                              float16_nodes=max((c for c, _ in conversions), default=0))
    if result["status"] != "passed" and not result["measured"].get("steps"):
        return result
    if gpu_mode and not (rewrite and result["measured"]["float16_nodes"] > 0):
        result["status"] = "failed"
        result["note"] = ("float16 was not used: " + ("the rewrite was never switched on"
                          if not rewrite else "grappler converted no node to float16") + ". "
                          + result["note"]).strip()
    elif not gpu_mode:
        result["note"] = ("CPU: no float16 rewrite (as documented), float32 with dynamic loss "
                          "scaling. " + result["note"]).strip()
    return result


def amp_export_check(run, gpu_mode):
    """--use_amp training then --do_export in one process.

    The float16 rewrite is switched on for the whole process, so the export's verification
    (checkpoint session against the SavedModel, 1e-5) runs after it: this shows whether that
    still holds on a GPU.
    """
    name = "--use_amp training then --do_export in one run"
    measured = {"exported": run.get("exported"), "float16_rewrite_enabled":
                run.get("record", {}).get("amp_graph_rewrite")}
    if run.get("exit_code") == 0 and run.get("exported"):
        note = "" if gpu_mode else "CPU: no float16 rewrite, so this only shows the path runs"
        return check(name, "passed", measured, note=note)
    status = "timed_out" if run.get("exit_code") is None else "failed"
    return check(name, status, measured, note=run.get("error", "no export/saved_model written"))


def xla_check(base, run):
    result = curve_check("--use_xla vs fp32: loss curve", "xla", base, run)
    platforms = run.get("xla_platforms", [])
    result["measured"]["xla_compiled_for"] = platforms
    if run.get("exit_code") == 0 and not platforms:
        result["status"] = "failed"
        result["note"] = ("--use_xla compiled nothing (no 'XLA service ... initialized' line in "
                          "the log), so the curves match trivially. " + result["note"]).strip()
    return result


def mirrored_check(base, run, gpu_mode):
    strategies = run.get("record", {}).get("strategies", [])
    replicas = strategies[-1]["num_replicas"] if strategies else 1
    result = curve_check("two replicas vs one: loss curve", "mirrored", base, run,
                         scale=max(replicas, 1))
    result["measured"].update(replicas=replicas, devices=strategies[-1]["devices"]
                              if strategies else [], all_reduce=strategies[-1]["cross_device_ops"]
                              if strategies else None,
                              logical_split=run.get("record", {}).get("logical_split"))
    record = run.get("record", {})
    if run.get("exit_code") not in (0, None) and (record.get("logical_split") or "").startswith(
            "GPU") and strategies and strategies[-1]["cross_device_ops"] == "NcclAllReduce":
        result["note"] += (" NCCL cannot all-reduce between logical GPUs of one physical GPU; "
                           "TensorFlow's own choice there is ReductionToOneDevice.")
    if run.get("exit_code") == 0 and replicas < 2:
        result["status"] = "failed"
        result["note"] = "no MirroredStrategy over two devices was built. " + result["note"]
    if gpu_mode and strategies and strategies[-1]["cross_device_ops"] != "NcclAllReduce":
        result["note"] += f" (all-reduce {strategies[-1]['cross_device_ops']}, not NCCL)"
    return result


def run_export(ctx, name, checkpoint, config_path, seq_len, formats, timeout_s, extra=()):
    """export_model.py --format=<formats> of a classifier checkpoint; returns (report, run)."""
    export_dir = ctx.path(name)
    log_path = os.path.join(ctx.log_dir, f"{name}.log")
    argv = [sys.executable, "export_model.py", "--task=classifier",
            f"--init_checkpoint={checkpoint}", f"--bert_config_file={config_path}",
            f"--vocab_file={TINY_VOCAB}", "--do_lower_case=true", f"--max_seq_length={seq_len}",
            f"--export_dir={export_dir}", f"--format={formats}", "--latency_runs=5",
            "--warmup_runs=1"] + list(extra)
    code, seconds = run_command(argv, log_path, timeout_s, ctx.child_env())
    run = {"exit_code": code, "seconds": round(seconds, 1), "export_dir": export_dir,
           "log": os.path.relpath(log_path, ctx.output_dir)}
    if code != 0:
        run["error"] = "timed out (budget)" if code is None else error_line(read_log(log_path))
        return None, run
    with open(os.path.join(export_dir, "export_report.json"), encoding="utf-8") as f:
        return json.load(f), run


def export_checks(report, run, gpu_mode):
    """One check per format from export_model.py's report (its own comparison with the
    checkpoint); TF-TRT that cannot run here is `unavailable`, with the reason."""
    if report is None:
        status = "timed_out" if run["exit_code"] is None else "failed"
        return [check("export: SavedModel and TF-TRT FP16 vs checkpoint", status,
                      note=run.get("error", ""))]
    checks = []
    for fmt, label in (("saved_model", "SavedModel"), ("tftrt", "TF-TRT FP16")):
        entry = report["formats"].get(fmt, {})
        if "skipped" in entry:
            status = "unavailable"
            note = entry["skipped"] + ("" if gpu_mode else " (expected on the CPU)")
            checks.append(check(f"export: {label} vs checkpoint", status, note=note))
            continue
        measured = {"max_abs_diff": entry.get("max_diff"),
                    "label_agreement": entry.get("label_agreement"),
                    "latency_p50_ms": entry.get("latency_ms", {}).get("p50")}
        checks.append(check(f"export: {label} vs checkpoint",
                            "passed" if entry.get("passed") else "failed", measured,
                            {"max_abs_diff": entry.get("tolerance")}))
    return checks


def run_correctness(ctx, deadline):
    """Phase (a); returns (checks, fine-tune runs)."""
    needed = ESTIMATES_S["init_checkpoint"] + ESTIMATES_S["fine_tune"]
    if not deadline.fits(needed):
        return [check("fp32 fine-tune learns", "skipped", note=deadline.skip_note(needed))], {}
    config_path, data_dir = prepare_workspace(ctx)
    init_checkpoint = ctx.path("init", "model.ckpt")
    job = {"id": "init_checkpoint", "kind": "checkpoint", "config": tiny_config(),
           "path": init_checkpoint, "num_labels": 2}
    made = run_worker_jobs(ctx, [job], "init_checkpoint", deadline)["init_checkpoint"]
    if made.get("status") != "ok":
        return [check("tiny init checkpoint", "failed", note=made.get("error", ""))], {}
    files = (config_path, data_dir, init_checkpoint)
    plan = fine_tune_plan(ctx)
    progress = progress_logger(len(plan) + 2, "gpu_check correctness")
    progress.update()  # the init checkpoint
    runs = {}
    for name, extra, launch in plan:
        if not deadline.fits(ESTIMATES_S["fine_tune"]):
            runs[name] = {"name": name, "skipped": deadline.skip_note(ESTIMATES_S["fine_tune"])}
        else:
            print(f"gpu_check: fine-tune {name} ...", flush=True)
            runs[name] = run_fine_tune(ctx, name, extra, launch, files, deadline.left())
        progress.update()
    checks = correctness_checks(ctx, runs, config_path, deadline)
    progress.update()
    progress.done()
    return checks, runs


def correctness_checks(ctx, runs, config_path, deadline):
    """The checks of phase (a) from the fine-tune runs, then the export check."""
    gpu_mode = not ctx.cpu_mode and ctx.num_gpus > 0
    base = runs["fp32"]
    if "skipped" in base:
        return [check("fp32 fine-tune learns", "skipped", note=base["skipped"])]
    checks = [baseline_check(base)]
    if checks[0]["status"] != "passed":
        return checks
    comparisons = (
        ("amp", "--use_amp vs fp32: loss curve", lambda r: amp_check(base, r, gpu_mode)),
        ("xla", "--use_xla vs fp32: loss curve", lambda r: xla_check(base, r)),
        ("mirrored", "two replicas vs one: loss curve",
         lambda r: mirrored_check(base, r, gpu_mode)))
    for name, title, make in comparisons:
        run = runs[name]
        checks.append(check(title, "skipped", note=run["skipped"]) if "skipped" in run
                      else make(run))
        if name == "amp" and "skipped" not in run:
            checks.append(amp_export_check(run, gpu_mode))
    if not deadline.fits(ESTIMATES_S["export_tiny"]):
        checks.append(check("export: SavedModel and TF-TRT FP16 vs checkpoint", "skipped",
                            note=deadline.skip_note(ESTIMATES_S["export_tiny"])))
        return checks
    print("gpu_check: export SavedModel + TF-TRT ...", flush=True)
    import tensorflow as tf

    checkpoint = tf.train.latest_checkpoint(base["output_dir"])
    report, run = run_export(ctx, "export_tiny", checkpoint, config_path, FINE_TUNE_SEQ,
                             "saved_model,tftrt", deadline.left())
    checks.extend(export_checks(report, run, gpu_mode))
    return checks


# ------------------------------------------------------------------------------------------------
# (b) Speed
# ------------------------------------------------------------------------------------------------

# Per model size: configs, batch sizes, lengths and step counts of the speed rows, and the
# seconds each kind of row is expected to take on a GPU (compilation and warm-up included).
SPEED_SIZES = {
    "base": dict(encoder=gpu_flops.BERT_BASE, pretrain=gpu_flops.BERT_LARGE, train_batch=32,
                 infer_batch=8, seq_len=128, pretrain_batch=64, masked_positions=20,
                 bucket_batch=32, steps=30, warmup=5, max_seconds=6.0,
                 estimates={"train": 20, "train_xla": 50, "infer": 10, "infer_xla": 30,
                            "pretrain": 80, "bucketing": 15, "checkpoint": 10,
                            "saved_model": 15}),
    "tiny": dict(encoder=None, pretrain=None, train_batch=8, infer_batch=8, seq_len=32,
                 pretrain_batch=8, masked_positions=5, bucket_batch=16, steps=5, warmup=1,
                 max_seconds=1.0,
                 estimates={"train": 5, "train_xla": 10, "infer": 3, "infer_xla": 5,
                            "pretrain": 10, "bucketing": 5, "checkpoint": 3, "saved_model": 5}),
}
PRECISIONS = (("fp32", False), ("tf32", False), ("amp", False), ("amp", True))


def speed_size(model):
    size = dict(SPEED_SIZES[model])
    if size["encoder"] is None:
        size["encoder"] = size["pretrain"] = tiny_config()
    return size


def row_id(kind, model, precision, xla):
    return f"{kind}_{model}_{precision}" + ("_xla" if xla else "")


def main_speed_jobs(model, size):
    """Train and inference rows in the four precisions, bucketing, the export checkpoint."""
    jobs = []
    estimates = size["estimates"]
    for kind, batch in (("train", size["train_batch"]), ("infer", size["infer_batch"])):
        for precision, xla in PRECISIONS:
            jobs.append({"id": row_id(kind, model, precision, xla), "kind": kind,
                         "config": size["encoder"], "batch": batch, "seq_len": size["seq_len"],
                         "precision": precision, "xla": xla, "steps": size["steps"] * 3
                         if kind == "infer" else size["steps"], "warmup": size["warmup"],
                         "max_seconds": size["max_seconds"],
                         "estimate_s": estimates[kind + ("_xla" if xla else "")]})
    jobs.append({"id": f"bucketing_{model}_amp", "kind": "bucketing", "config": size["encoder"],
                 "batch": size["bucket_batch"], "max_seq_length": size["seq_len"],
                 "precision": "amp", "sentence_files": SENTENCE_FILES, "vocab_file": TINY_VOCAB,
                 "passes": 5, "max_seconds": size["max_seconds"],
                 "estimate_s": estimates["bucketing"]})
    return jobs


def pretrain_job(model, size):
    """BERT-Large (tiny with --speed_model=tiny) pretraining step: AMP + XLA + LAMB, S=128."""
    name = "large" if model == "base" else model
    return {"id": row_id("pretrain", name, "amp", True), "kind": "train", "head": "pretraining",
            "optimizer": "lamb", "config": size["pretrain"], "batch": size["pretrain_batch"],
            "seq_len": size["seq_len"], "masked_positions": size["masked_positions"],
            "precision": "amp", "xla": True, "steps": size["steps"], "warmup": size["warmup"],
            "max_seconds": size["max_seconds"], "estimate_s": size["estimates"]["pretrain"]}


def export_rows(ctx, model, size, deadline):
    """Checkpoint -> export_model.py (SavedModel + TF-TRT) -> timed rows of both exports."""
    estimates = size["estimates"]
    needed = estimates["checkpoint"] + ESTIMATES_S["export_base"] + 2 * estimates["saved_model"]
    if not deadline.fits(needed):
        return {f"{what}_{model}": {"id": f"{what}_{model}", "kind": "saved_model",
                                    "status": "skipped", "note": deadline.skip_note(needed)}
                for what in ("saved_model", "tftrt")}
    config_path = ctx.path(f"speed_{model}_config.json")
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(size["encoder"], f, indent=2)
    checkpoint = ctx.path(f"speed_{model}_checkpoint", "model.ckpt")
    job = {"id": f"export_checkpoint_{model}", "kind": "checkpoint", "config": size["encoder"],
           "path": checkpoint, "num_labels": 2}
    made = run_worker_jobs(ctx, [job], f"speed_{model}_checkpoint", deadline)[job["id"]]
    if made.get("status") != "ok":
        return {job["id"]: made}
    print("gpu_check: export for the speed rows ...", flush=True)
    # The exports' checks are the correctness phase's; here a difference over export_model's
    # tolerance (TF32 on a GPU can cause one) must not delete both exports, so it is reported in
    # the rows instead of failing the export.
    report, run = run_export(ctx, f"export_{model}", checkpoint, config_path, size["seq_len"],
                             "saved_model,tftrt", deadline.left(),
                             ["--labels=negative,positive",
                              "--tolerances=saved_model=1e9,tftrt=1e9"])
    rows, jobs = {}, []
    for what, precision in (("saved_model", "tf32"), ("tftrt", "fp16")):
        rid = f"{what}_{model}"
        entry = (report or {}).get("formats", {}).get(what, {})
        if report is None or "skipped" in entry:
            status = "unavailable" if "skipped" in entry else "failed"
            rows[rid] = {"id": rid, "kind": "saved_model", "status": status,
                         "note": entry.get("skipped") or run.get("error", "export failed")}
            continue
        jobs.append({"id": rid, "kind": "saved_model", "what": what, "precision": precision,
                     "path": os.path.join(run["export_dir"], entry["path"]),
                     "batch": size["infer_batch"], "seq_len": size["seq_len"],
                     "vocab_size": size["encoder"]["vocab_size"], "steps": size["steps"] * 3,
                     "warmup": size["warmup"], "max_seconds": size["max_seconds"],
                     "estimate_s": estimates["saved_model"]})
    rows.update(run_worker_jobs(ctx, jobs, f"speed_{model}_exports", deadline))
    for job in jobs:
        entry = report["formats"][job["what"]]
        rows[job["id"]].update(job=job, export_max_abs_diff=entry.get("max_diff"),
                               export_tolerance=export_tolerance(job["what"]))
    return rows


def export_tolerance(fmt):
    """export_model.py's default tolerance of a format (read from the code, not copied)."""
    from exporting import TOLERANCES as export_tolerances

    return export_tolerances.get(fmt)


def run_speed(ctx, deadline, model):
    """Phase (b); returns the result lines in report order, each with the job it ran."""
    size = speed_size(model)
    print("gpu_check: speed rows ...", flush=True)
    jobs = main_speed_jobs(model, size)
    # Pretraining before bucketing: it is the row NVIDIA's headline figure is compared with.
    jobs.insert(-1, pretrain_job(model, size))
    progress = progress_logger(len(jobs) + 2, "gpu_check speed")
    rows = run_worker_jobs(ctx, jobs, f"speed_{model}", deadline)
    progress.update(len(jobs))
    for job in jobs:
        rows[job["id"]]["job"] = job
    rows.update(export_rows(ctx, model, size, deadline))
    progress.update(2)
    progress.done()
    return list(rows.values())


def row_flops(row, job, size):
    """FLOPs per sequence the row executes (bucketing: per sentence, padded and bucketed)."""
    kind = row.get("kind")
    if kind in ("train", "infer") and job:
        return gpu_flops.flops_per_sequence(
            job["config"], job["seq_len"], kind == "train", head=job.get("head", "classifier"),
            masked_positions=job.get("masked_positions", 0))
    if kind == "saved_model":
        return gpu_flops.flops_per_sequence(size["encoder"], size["seq_len"], False)
    return None


def bucket_flops(shapes, config):
    """Mean forward FLOPs per sentence over batches of the given [rows, length] shapes."""
    total = sum(rows * gpu_flops.forward_flops_per_sequence(config, length)
                for rows, length in shapes)
    return total / max(1, sum(rows for rows, _ in shapes))


def row_precision(row, job):
    if row.get("kind") == "saved_model":
        return "fp16" if row["id"].startswith("tftrt") else "tf32"
    return (job or {}).get("precision", "fp32")


def annotate_row(row, size, peak, gpu_mode):
    """Adds FLOPs per sequence, achieved TFLOP/s and the fraction of the GPU's peak."""
    job = row.pop("job", None)
    precision = row_precision(row, job)
    peak_tflops, unit = gpu_flops.peak_for_precision(peak if gpu_mode else None, precision)
    row.update(precision=precision, peak_unit=unit, peak_tflops=peak_tflops,
               description=describe_row(row, job, size))
    if row.get("status") != "ok":
        return row
    if row["kind"] == "bucketing":
        for name in ("padded", "bucketed"):
            part = row[name]
            part["flops_per_sentence"] = bucket_flops(part["shapes"], size["encoder"])
            part["achieved_tflops"], part["utilisation"] = gpu_flops.utilisation(
                part["sentences_per_s"], part["flops_per_sentence"], peak_tflops)
            del part["shapes"]
        row["flops_per_seq"] = row["bucketed"]["flops_per_sentence"]
    else:
        row["flops_per_seq"] = row_flops(row, job, size)
    if row.get("flops_per_seq") and row.get("sequences_per_s"):
        row["achieved_tflops"], row["utilisation"] = gpu_flops.utilisation(
            row["sequences_per_s"], row["flops_per_seq"], peak_tflops)
    row["warnings"] = row_warnings(row, precision, gpu_mode)
    return row


def row_warnings(row, precision, gpu_mode):
    """What makes a row's number not mean what its name says."""
    warnings = []
    if gpu_mode and precision == "amp" and not row.get("fp16_conversions"):
        warnings.append("no 'Converted N/M nodes to float16' in the log: the float16 rewrite "
                        "may not have run")
    if row.get("trt_native_fallbacks"):
        warnings.append(f"TensorRT fell back to native TensorFlow {row['trt_native_fallbacks']} "
                        "times (no engine for these shapes)")
    diff, tolerance = row.get("export_max_abs_diff"), row.get("export_tolerance")
    if diff is not None and tolerance is not None and diff > tolerance:
        warnings.append(f"export differs from the checkpoint by {diff:.2e} > {tolerance:.0e}")
    return warnings


def describe_row(row, job, size):
    """The row's model, batch and length in words."""
    kind = row.get("kind")
    model = "BERT-Large" if "_large_" in row["id"] else (
        "BERT-Base" if "_base" in row["id"] else "tiny BERT")
    if kind == "train" and job and job.get("head") == "pretraining":
        return (f"{model} pretraining step (MLM {job['masked_positions']} + NSP, "
                f"{job.get('optimizer', 'adamw').upper()}), batch {job['batch']}, "
                f"S={job['seq_len']}")
    if kind in ("train", "infer") and job:
        what = "fine-tuning step (AdamW)" if kind == "train" else "inference"
        return f"{model} {what}, batch {job['batch']}, S={job['seq_len']}"
    if kind == "saved_model":
        what = "TF-TRT FP16 export" if row["id"].startswith("tftrt") else "SavedModel export"
        return f"{model} {what}, batch {size['infer_batch']}, S={size['seq_len']}"
    if kind == "bucketing":
        return (f"{model} inference on real sentences, batch {size['bucket_batch']}: bucketed by "
                f"length vs padded to {size['seq_len']}")
    return row["id"]


# ------------------------------------------------------------------------------------------------
# (c) Against NVIDIA's figures
# ------------------------------------------------------------------------------------------------


def comparison_table(rows, peak):
    """One entry per published figure of the nearest GPU and each of our rows it is compared to."""
    by_id = {row["id"]: row for row in rows}
    table = []
    for figure in gpu_flops.nearest_published(peak):
        for rid in figure["rows"]:
            row = by_id.get(rid, {})
            measured = row.get("sequences_per_s") if row.get("status") == "ok" else None
            entry = gpu_flops.compare_with_published(figure, measured, peak)
            entry.update(our_row=rid, our_status=row.get("status", "not run"))
            table.append(entry)
    return table


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def fmt(value, spec=".3g", missing="-"):
    if value is None:
        return missing
    if isinstance(value, float):
        return format(value, spec)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v, spec) for v in value) + "]"
    return str(value)


def table(header, rows):
    """A Markdown table (cells are escaped for `|`)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"
    return [line(header), line(["---"] * len(header))] + [line(r) for r in rows]


def correctness_lines(checks):
    rows = []
    for item in checks:
        measured = ", ".join(f"{k} {fmt(v)}" for k, v in item["measured"].items()
                             if k != "devices" and not k.endswith("_first_last"))
        tolerance = ", ".join(f"{k} {fmt(v)}" for k, v in item["tolerance"].items())
        rows.append([item["check"], item["status"].upper(), measured, tolerance, item["note"]])
    return table(["check", "status", "measured", "tolerance", "note"], rows)


def speed_lines(rows):
    out = []
    for row in rows:
        if row.get("status") != "ok":
            out.append([row["id"], row.get("description", ""), row.get("precision", ""), "-", "-",
                        "-", row.get("status", "").upper() + ": "
                        + (row.get("note") or row.get("error") or "")])
            continue
        utilisation = row.get("utilisation")
        util = f"{100 * utilisation:.1f}% of {fmt(row['peak_tflops'])} ({row['peak_unit']})" \
            if utilisation is not None else "-"
        note = row.get("precision_effective", "")
        if row["kind"] == "bucketing":
            note += (f"; padded {row['padded']['sentences_per_s']:.1f} sentences/s, bucketed "
                     f"{row['bucketed']['sentences_per_s']:.1f} ({row['speedup']:.2f}x), "
                     f"{row['mean_tokens']:.1f} tokens per sentence on average")
        if row.get("fp16_conversions"):
            note += f"; float16 nodes {max(c for c, _ in row['fp16_conversions'])}"
        if row.get("batch1_ms"):
            note += f"; batch 1: {row['batch1_ms']:.2f} ms"
        if row.get("export_max_abs_diff") is not None:
            note += f"; max diff vs checkpoint {row['export_max_abs_diff']:.1e}"
        if row.get("peak_memory_mb"):
            note += f"; peak memory {row['peak_memory_mb']:.0f} MiB"
        note += "".join(f"; WARNING: {w}" for w in row.get("warnings", []))
        out.append([row["id"], row["description"], row["precision"],
                    f"{row['sequences_per_s']:.1f}", fmt(row.get("achieved_tflops"), ".2f"),
                    util, note])
    return table(["row", "what", "precision", "sequences/s", "TFLOP/s", "of peak", "notes"], out)


def comparison_lines(entries):
    rows = []
    for e in entries:
        rows.append([e["what"], e["gpu"], f"{e['sequences_per_s']:.1f}", e["our_row"],
                     fmt(e["measured_per_s"], ".1f", e["our_status"]), fmt(e["ratio"], ".2f"),
                     fmt(e["scaled_published_per_s"], ".0f"), fmt(e["ratio_to_scaled"], ".2f")])
    return table(["published figure (NVIDIA TF1 README)", "their GPU", "their seq/s", "our row",
                  "our seq/s", "ours / theirs", "theirs x peak ratio", "ours / that"], rows)


def markdown_report(report):
    lines = ["# GPU check", "",
             f"{report['finished']}, budget {report['budget_s']:.0f} s, used "
             f"{report['elapsed_s']:.0f} s. Command: `{report['command']}`", ""]
    lines += ["## Environment", ""] + [f"- {line}" for line in report["environment_lines"]]
    lines += ["", "## (a) Correctness", ""]
    lines += correctness_lines(report["correctness"]) if report["correctness"] else \
        ["(not run)"]
    lines += ["", "## (b) Speed", ""]
    lines += speed_lines(report["speed"]) if report["speed"] else ["(not run)"]
    lines += ["", "## (c) Against NVIDIA's published TF1 BERT figures", ""]
    lines += comparison_lines(report["comparison"]) if report["comparison"] else ["(no rows)"]
    lines += ["", "FLOPs per sequence: " + FLOP_NOTE, ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


FLOP_NOTE = ("2 L (4 H^2 + 2 H I) + 4 S H L per token, plus pooler, heads (masked-LM 2 (H^2 + H V) "
             "per prediction); training = 3x forward (bench/gpu_flops.py). BERT-Base S=128: "
             "22.35 GFLOP forward. Peaks are dense tensor-core figures from NVIDIA's data sheets; "
             "'theirs x peak ratio' is the published figure scaled by the ratio of this GPU's peak "
             "to theirs, i.e. what the same utilisation would give here.")


def write_reports(output_dir, report):
    """gpu_check.json and gpu_check.md, each written under a temporary name then renamed."""
    from cli import atomic_output

    paths = {}
    for name, text in (("gpu_check.json", json.dumps(report, indent=2, default=str) + "\n"),
                       ("gpu_check.md", markdown_report(report))):
        path = os.path.join(output_dir, name)
        with atomic_output(path) as tmp_path:
            with open(tmp_path, "w", encoding="utf-8") as f:
                f.write(text)
        paths[name] = path
    return paths


# ------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=os.path.join("bench", "results", "gpu"),
                        help="Where gpu_check.json, gpu_check.md and work/ (logs) go.")
    parser.add_argument("--budget_s", type=float, default=DEFAULT_BUDGET_S,
                        help="Seconds for the whole check; phases are skipped when short.")
    parser.add_argument("--cpu", action="store_true",
                        help="Run on the CPU (GPUs hidden): the correctness part with two "
                             "logical CPUs for the mirrored check; AMP runs in float32.")
    parser.add_argument("--phases", default=None,
                        help="Comma-separated subset of correctness,speed (default: both on a "
                             "GPU, correctness with --cpu).")
    parser.add_argument("--speed_model", choices=("base", "tiny"), default="base",
                        help="base: BERT-Base/Large rows (compared with NVIDIA's figures); tiny: "
                             "the tiny config, a smoke run of the speed code.")
    parser.add_argument("--keep_work", action="store_true",
                        help="Keep checkpoints and exports under <output_dir>/work (logs are "
                             "always kept).")
    args = parser.parse_args(argv)
    if args.budget_s <= 0:
        parser.error(f"--budget_s={args.budget_s} must be positive")
    default = "correctness" if args.cpu else "correctness,speed"
    args.phases = [p for p in (args.phases or default).split(",") if p]
    unknown = sorted(set(args.phases) - set(PHASE_SHARES))
    if unknown:
        parser.error(f"--phases: unknown {', '.join(unknown)}; use correctness and/or speed")
    return args


def no_gpu_line(tf):
    build = tf.sysconfig.get_build_info()
    return (f"gpu_check: no GPU visible to TensorFlow {tf.__version__} (CUDA build: "
            f"{'yes' if build.get('is_cuda_build') else 'no'}); nothing to check. On an NVIDIA "
            "GPU machine install requirements-gpu.txt; --cpu runs the correctness checks on the "
            "CPU.")


def run_phases(ctx, args, budget, peak):
    """Runs the selected phases; returns (checks, fine-tune runs, speed rows, notes)."""
    checks, runs, rows, notes = [], {}, [], []
    if "correctness" in args.phases:
        deadline = budget.start_phase("correctness")
        checks, runs = run_correctness(ctx, deadline)
    if "speed" in args.phases:
        deadline = budget.start_phase("speed")
        if ctx.num_gpus == 0 and args.speed_model == "base":
            notes.append("speed rows skipped: BERT-Base/Large speed rows need a GPU "
                         "(--speed_model=tiny runs the speed code on the CPU)")
        else:
            size = speed_size(args.speed_model)
            gpu_mode = ctx.num_gpus > 0
            rows = [annotate_row(row, size, peak, gpu_mode)
                    for row in run_speed(ctx, deadline, args.speed_model)]
    return checks, runs, rows, notes


def summary_notes(checks, rows):
    notes = []
    for item in checks:
        if item["status"] in ("failed", "unavailable", "timed_out", "skipped"):
            notes.append(f"{item['check']}: {item['status']} - {item['note']}")
    for row in rows:
        if row.get("status") != "ok":
            notes.append(f"{row['id']}: {row.get('status')} - "
                         f"{row.get('note') or row.get('error') or ''}")
        notes.extend(f"{row['id']}: {warning}" for warning in row.get("warnings", []))
    return notes


def clean_work_dir(ctx):
    """Removes checkpoints and exports (hundreds of MB for BERT-Base); keeps the logs."""
    if ctx.keep_work:
        return
    for entry in os.listdir(ctx.work_dir):
        path = os.path.join(ctx.work_dir, entry)
        if path != ctx.log_dir:
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget_s, {p: PHASE_SHARES[p] for p in args.phases})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # Here, so that --help and argument errors do not wait for it.

    num_gpus = 0 if args.cpu else len(tf.config.list_physical_devices("GPU"))
    if num_gpus == 0 and not args.cpu:
        print(no_gpu_line(tf))
        return 0
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.INFO)  # the progress lines
    env = probe_environment(tf, args.cpu)
    for line in environment_lines(env):
        print(f"gpu_check: {line}", flush=True)
    peak = gpu_flops.find_peak(env["gpus"][0]["device_name"]) if env["gpus"] else None
    output_dir = os.path.abspath(args.output_dir)
    ctx = Context(output_dir, args.cpu, num_gpus, args.keep_work)
    checks, runs, rows, notes = run_phases(ctx, args, budget, peak)
    report = {
        "format_version": 1,
        "finished": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": " ".join(["python", "bench/gpu_check.py"] + (argv or sys.argv[1:])),
        "budget_s": args.budget_s, "elapsed_s": round(budget.elapsed(), 1),
        "phases": args.phases, "environment": env, "environment_lines": environment_lines(env),
        "gpu_peak": peak.__dict__ if peak else None, "tolerances": TOLERANCES,
        "correctness": checks,
        "fine_tunes": {name: {k: v for k, v in run.items() if k != "output_dir"}
                       for name, run in runs.items()},
        "speed": rows,
        "comparison": comparison_table(rows, peak) if rows and args.speed_model == "base" else [],
        "notes": notes + summary_notes(checks, rows),
    }
    failed = [c["check"] for c in checks if c["status"] == "failed"] + \
        [r["id"] for r in rows if r.get("status") == "failed"]
    report["status"] = "failed" if failed else "passed"
    paths = write_reports(output_dir, report)
    clean_work_dir(ctx)
    print(markdown_report(report))
    print(f"gpu_check: {report['status']} in {budget.elapsed():.0f} s; wrote "
          f"{paths['gpu_check.json']} and {paths['gpu_check.md']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
