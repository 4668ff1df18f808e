"""Training benchmark on CPU: examples/s and peak memory of our runtime against the reference setup.

Every configuration trains in its own fresh subprocess (so its peak RSS is its own) with a
classifier model_fn built by tasks.classifier.create_model (modeling.BertModel, pooled output,
root-scope `output_weights`/`output_bias` head), whose train op comes from
training.create_train_op and whose spec from training.make_spec, trained through
`runtime.build_runner(...).train` on synthetic inputs (random token ids and lengths from a fixed
seed, `repeat()`ed). A SessionRunHook records the wall and CPU time of every session run; the
first runs are warm-up (graph optimisation, XLA's lazy compilation) and examples/s is the batch
over the median wall time of the timed runs. Checkpoint saving is off everywhere: it is not part of
a step and BERT-Base would write 1.3 GB twice.

1. Throughput (L=4 H=256 A=4 I=1024, seq 128, batch 32; --quick: L=2 H=128): baseline = the
   reference's CPU/GPU setup, TPUEstimator with use_tpu=False (`build_runner(...,
   use_tpu_estimator=True)`); ours = the plain Estimator (the default); ours + --use_xla; ours +
   --optimizer=lamb. Ratios are against the baseline of the same run.
2. Memory for the README's out-of-memory section (BERT-Base size; --quick: 2 layers of BERT-Base
   width): seq 128 batch 32; seq 128 batch 8 x --num_accumulation_steps 4 (updates of 32
   examples); seq 64 batch 32; seq 128 batch 8. Peak RSS (VmHWM) is the whole process, TensorFlow
   runtime and graph included; "training memory" is the peak minus the RSS right after the session
   was created (graph built, weights and Adam slots initialised), before the first step:
   activations, gradients and optimizer temporaries.

    .venv/bin/python bench/bench_training.py          # ~5 min on 2 idle cores (from CPU time)
    .venv/bin/python bench/bench_training.py --quick  # smoke run, ~1.5 min on 2 idle cores
    .venv/bin/python bench/bench_training.py --json bench/results/training.json

On 2 cores shared with other work (load average 5-11) the default run took 21 minutes and the
quick one 4.5 minutes; compare the "CPU s/step" column then, wall-clock ratios are mostly noise.
BERT-Base at seq 128 batch 32 peaks at about 11.5 GB of RSS.

`run(quick=False) -> dict` is the entry point for an aggregate runner. Other processes on the
machine slow every number down (CPU time per step much less so): the load average is printed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from bench.machine import machine_description  # noqa: E402

SEED = 12345
NUM_LABELS = 2
RESULT_PREFIX = "BENCH_RESULT "

# The throughput model is mid-size so that a step is matmul-bound like BERT's but many steps fit.
MID_MODEL = dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4,
                 intermediate_size=1024, vocab_size=30522)
SMALL_MODEL = dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                   intermediate_size=512, vocab_size=30522)
BASE_MODEL = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
                  intermediate_size=3072, vocab_size=30522)

# Session runs per configuration: warm-up runs (not timed; XLA compiles its clusters lazily over
# the first runs, hence 3 in the throughput table), then timed runs. With gradient accumulation
# the memory table times at least one whole update (num_accumulation_steps runs).
_SIZES = {
    False: dict(throughput_model=MID_MODEL, throughput_warmup=3, throughput_timed=5,
                memory_layers=12, memory_warmup=1, memory_timed=2),
    True: dict(throughput_model=SMALL_MODEL, throughput_warmup=3, throughput_timed=3,
               memory_layers=2, memory_warmup=1, memory_timed=2),
}
THROUGHPUT_SEQ_LENGTH = 128
THROUGHPUT_BATCH = 32

# (key, label, build options); the first one is the baseline.
THROUGHPUT_RUNS = [
    ("baseline", "baseline: TPUEstimator(use_tpu=False)", dict(use_tpu_estimator=True)),
    ("ours", "ours: Estimator", {}),
    ("ours_xla", "ours + --use_xla", dict(use_xla=True)),
    ("ours_lamb", "ours + --optimizer=lamb", dict(optimizer="lamb")),
]

# (key, label, seq_length, train_batch_size, num_accumulation_steps); the first one is the
# reference point of the "vs" columns.
MEMORY_RUNS = [
    ("seq128_b32", "seq 128, batch 32", 128, 32, 1),
    ("seq128_b8x4", "seq 128, batch 8 x 4 accumulated (32)", 128, 32, 4),
    ("seq64_b32", "seq 64, batch 32", 64, 32, 1),
    ("seq128_b8", "seq 128, batch 8", 128, 8, 1),
]


# ------------------------------------------------------------------------------------------------
# Child process: one configuration
# ------------------------------------------------------------------------------------------------


def _proc_status_mib(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _model_config(**sizes):
    return dict(sizes, hidden_act="gelu", hidden_dropout_prob=0.1,
                attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                type_vocab_size=2, initializer_range=0.02)


def _child(config):
    """Trains one configuration in this process and prints its measurements as a JSON line.

    Args:
      config: dict with `model` (BertConfig fields), `seq_length`, `train_batch_size`,
        `num_accumulation_steps`, `warmup_runs`, `timed_runs` and optionally
        `use_tpu_estimator`, `use_xla`, `optimizer`.
    """
    import numpy as np
    import tensorflow as tf

    import modeling
    import runtime
    import training
    from tasks import classifier

    tf1 = tf.compat.v1
    tf1.logging.set_verbosity(tf1.logging.WARN)
    start = time.time()
    seq_length = config["seq_length"]
    bert_config = modeling.BertConfig(**config["model"])

    class StepTimer(tf1.train.SessionRunHook):
        """Records wall/CPU time and RSS per session run; stops after warm-up + timed runs."""

        def __init__(self, total_runs):
            self.total_runs = total_runs
            self.wall = []
            self.cpu = []
            self.rss = []
            self.global_steps = []
            self.rss_before_first_step = None
            self.session_ready = None

        def begin(self):
            self._global_step = tf1.train.get_global_step()

        def after_create_session(self, session, coord):
            # Graph built, weights and Adam slots initialised, no step run yet.
            self.rss_before_first_step = _proc_status_mib("VmRSS")
            self.session_ready = time.time()
            self._last = (time.perf_counter(), time.process_time())

        def before_run(self, run_context):
            return tf1.train.SessionRunArgs(self._global_step)

        def after_run(self, run_context, run_values):
            # Time between consecutive after_run calls: the step with its input pipeline and
            # every hook's work, i.e. what a training loop really gets.
            now = (time.perf_counter(), time.process_time())
            self.wall.append(now[0] - self._last[0])
            self.cpu.append(now[1] - self._last[1])
            self._last = now
            self.rss.append(_proc_status_mib("VmRSS"))
            self.global_steps.append(int(run_values.results))
            if len(self.wall) >= self.total_runs:
                run_context.request_stop()

    timer = StepTimer(config["warmup_runs"] + config["timed_runs"])

    def model_fn(features, labels, mode, params):
        """The run_classifier model: pooled output, dropout, root-scope softmax head."""
        del labels  # The label ids come in the features, as in the reference.
        loss = classifier.create_model(
            bert_config, is_training=True, input_ids=features["input_ids"],
            input_mask=features["input_mask"], segment_ids=features["segment_ids"],
            labels=features["label_ids"], num_labels=NUM_LABELS,
            use_one_hot_embeddings=params.get("use_tpu", False)).loss
        train_op = training.create_train_op(
            loss, params, init_lr=5e-5, num_train_steps=1000, num_warmup_steps=100,
            use_tpu=params.get("use_tpu", False))
        spec = training.make_spec(mode, params, loss=loss, train_op=train_op)
        # Both spec types are namedtuples holding their hooks as a tuple: add the timer to
        # whichever spec make_spec chose.
        return spec._replace(training_hooks=tuple(spec.training_hooks or ()) + (timer,))

    def input_fn(params):
        """Random token ids and lengths (fixed seed), padded to seq_length, repeated forever."""
        batch_size = params["batch_size"]
        rng = np.random.RandomState(SEED)
        num_examples = 4 * batch_size
        positions = np.arange(seq_length)[None, :]
        lengths = rng.randint(seq_length // 2, seq_length + 1, num_examples)[:, None]
        input_mask = (positions < lengths).astype(np.int32)
        input_ids = rng.randint(1000, bert_config.vocab_size, (num_examples, seq_length))
        features = {
            "input_ids": (input_ids * input_mask).astype(np.int32),
            "input_mask": input_mask,
            "segment_ids": ((positions >= lengths // 2) * input_mask).astype(np.int32),
            "label_ids": rng.randint(0, NUM_LABELS, num_examples).astype(np.int32),
        }
        dataset = tf.data.Dataset.from_tensor_slices(features).repeat()
        return dataset.batch(batch_size, drop_remainder=True)

    options = runtime.RuntimeOptions(
        use_xla=config.get("use_xla", False),
        optimizer=config.get("optimizer", "adamw"),
        num_accumulation_steps=config["num_accumulation_steps"],
        save_checkpoints_steps=None,  # no checkpoint at step 0 or at the end
        tf_random_seed=SEED,
    )
    model_dir = tempfile.mkdtemp(prefix="bench_training_")
    try:
        runner = runtime.build_runner(
            model_fn, options, model_dir, train_batch_size=config["train_batch_size"],
            use_tpu_estimator=config.get("use_tpu_estimator", False))
        # The timer stops training; max_steps is only an upper bound.
        runner.train(input_fn, max_steps=10**6)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)

    warmup = config["warmup_runs"]
    if len(timer.wall) < warmup + config["timed_runs"]:
        raise RuntimeError(f"training stopped after {len(timer.wall)} session runs")
    micro_batch = config["train_batch_size"] // config["num_accumulation_steps"]
    median_wall = statistics.median(timer.wall[warmup:])
    result = {
        "session_runs": len(timer.wall),
        # One run per global step, or num_accumulation_steps runs per step (a sanity check).
        "global_step_at_last_run": timer.global_steps[-1],
        "warmup_seconds": sum(timer.wall[:warmup]),
        "median_run_seconds": median_wall,
        "median_run_cpu_seconds": statistics.median(timer.cpu[warmup:]),
        # With gradient accumulation every run costs the same (the update is computed and
        # masked, not skipped), so the examples/s of a micro-batch run is that of the update.
        "examples_per_second": micro_batch / median_wall,
        "setup_seconds": timer.session_ready - start,
        "rss_before_first_step_mib": timer.rss_before_first_step,
        "peak_rss_mib": _proc_status_mib("VmHWM"),
        "rss_after_each_run_mib": [round(x, 1) for x in timer.rss],
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------
# Parent: run every configuration, print the tables
# ------------------------------------------------------------------------------------------------


def _measure(label, config):
    """Runs `config` in a fresh subprocess; returns its result dict, or {"error": ...}."""
    # Log level 0 keeps XLA's "Compiled cluster using XLA" line, the proof that XLA really ran.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", PYTHONPATH=REPO_ROOT)
    start = time.time()
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(config)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode or not lines:
        # Keep going: one configuration running out of memory must not lose the others.
        killed = " (killed: out of memory?)" if proc.returncode == -9 else ""
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        print(f"  {label}: FAILED, exit {proc.returncode}{killed}\n{tail}", file=sys.stderr,
              flush=True)
        return {"error": f"exit {proc.returncode}{killed}", "process_seconds": seconds}
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    result["process_seconds"] = seconds
    result["xla_compiled"] = "Compiled cluster using XLA" in proc.stderr
    print(f"  {label}: {result['examples_per_second']:.2f} examples/s, peak RSS "
          f"{result['peak_rss_mib']:,.0f} MiB ({seconds:.0f} s)", file=sys.stderr, flush=True)
    return result


def run(quick=False):
    """Runs both tables, one subprocess per configuration; returns a dict of results."""
    sizes = _SIZES[quick]
    results = {"machine": machine_description(), "quick": quick, "sizes": sizes,
               "load_average_before": list(os.getloadavg())}

    throughput = {"model": sizes["throughput_model"], "seq_length": THROUGHPUT_SEQ_LENGTH,
                  "train_batch_size": THROUGHPUT_BATCH, "runs": {}}
    for key, label, build_options in THROUGHPUT_RUNS:
        config = dict(build_options, model=_model_config(**sizes["throughput_model"]),
                      seq_length=THROUGHPUT_SEQ_LENGTH, train_batch_size=THROUGHPUT_BATCH,
                      num_accumulation_steps=1, warmup_runs=sizes["throughput_warmup"],
                      timed_runs=sizes["throughput_timed"])
        throughput["runs"][key] = dict(_measure(label, config), label=label)
    base = throughput["runs"]["baseline"].get("examples_per_second")
    for r in throughput["runs"].values():
        if base and "examples_per_second" in r:
            r["ratio_to_baseline"] = r["examples_per_second"] / base
    results["throughput"] = throughput

    memory_model = dict(BASE_MODEL, num_hidden_layers=sizes["memory_layers"])
    memory = {"model": memory_model, "runs": {}}
    for key, label, seq_length, batch, accumulation in MEMORY_RUNS:
        config = dict(model=_model_config(**memory_model), seq_length=seq_length,
                      train_batch_size=batch, num_accumulation_steps=accumulation,
                      warmup_runs=sizes["memory_warmup"],
                      timed_runs=max(sizes["memory_timed"], accumulation))
        r = _measure(label, config)
        r.update(label=label, seq_length=seq_length, train_batch_size=batch,
                 num_accumulation_steps=accumulation)
        if r.get("rss_before_first_step_mib") is not None:
            r["training_memory_mib"] = r["peak_rss_mib"] - r["rss_before_first_step_mib"]
        memory["runs"][key] = r
    reference = memory["runs"][MEMORY_RUNS[0][0]]
    for r in list(memory["runs"].values())[1:]:
        for field in ("peak_rss_mib", "training_memory_mib"):
            if r.get(field) and reference.get(field):
                r[field.replace("_mib", "_change")] = r[field] / reference[field] - 1.0
    results["memory"] = memory
    results["load_average_after"] = list(os.getloadavg())
    return results


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _table(header, rows):
    """Plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(row):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _describe_model(m):
    return (f"L={m['num_hidden_layers']} H={m['hidden_size']} A={m['num_attention_heads']} "
            f"I={m['intermediate_size']}, vocab {m['vocab_size']:,}")


def _number(value, fmt):
    return "n/a" if value is None else format(value, fmt)


def _percent(value):
    return "" if value is None else f"{value * 100:+.0f}%"


def print_report(results):
    """Prints the machine, the load and both tables."""
    sizes = results["sizes"]
    print(f"Machine: {results['machine']}")
    print("Load average (1/5/15 min) before: %s; after: %s" % (
        " ".join(f"{x:.1f}" for x in results["load_average_before"]),
        " ".join(f"{x:.1f}" for x in results["load_average_after"])))
    print()

    t = results["throughput"]
    print(f"1. Training throughput, CPU, fp32, AdamW unless noted: {_describe_model(t['model'])}, "
          f"seq {t['seq_length']}, batch {t['train_batch_size']}; median of "
          f"{sizes['throughput_timed']} steps after {sizes['throughput_warmup']} warm-up steps")
    rows = []
    for r in t["runs"].values():
        if "error" in r:
            rows.append([r["label"], "FAILED", "", "", "", "", r["error"]])
            continue
        note = ""
        if "xla" in r["label"]:
            note = "XLA clusters compiled" if r["xla_compiled"] else "no XLA cluster compiled"
        rows.append([r["label"], f"{r['examples_per_second']:.2f}",
                     f"{r['median_run_seconds']:.2f}", f"{r['median_run_cpu_seconds']:.2f}",
                     _number(r.get("ratio_to_baseline"), ".2f") + "x",
                     f"{r['peak_rss_mib']:,.0f}", note])
    print(_table(["configuration", "examples/s", "s/step", "CPU s/step", "vs baseline",
                  "peak RSS MiB", ""], rows))
    print()

    mem = results["memory"]
    mm = mem["model"]
    size_name = ("BERT-Base" if mm["num_hidden_layers"] == 12
                 else f"BERT-Base width, {mm['num_hidden_layers']} layers")
    print(f"2. Training memory, CPU, fp32, AdamW: {size_name} ({_describe_model(mm)}); "
          f"{sizes['memory_warmup']} warm-up + {sizes['memory_timed']} timed steps "
          "(accumulation: one whole update)")
    rows = []
    for i, r in enumerate(mem["runs"].values()):
        if "error" in r:
            rows.append([r["label"], "FAILED", "", "", "", "", r["error"]])
            continue
        rows.append([
            r["label"],
            f"{r['peak_rss_mib']:,.0f}",
            "ref" if i == 0 else _percent(r.get("peak_rss_change")),
            _number(r.get("rss_before_first_step_mib"), ",.0f"),
            _number(r.get("training_memory_mib"), ",.0f"),
            "ref" if i == 0 else _percent(r.get("training_memory_change")),
            f"{r['examples_per_second']:.2f}",
        ])
    print(_table(["configuration", "peak RSS MiB", "vs b32", "RSS before step 1",
                  "training MiB", "vs b32", "examples/s"], rows))
    print("peak RSS = the whole process (VmHWM: TensorFlow runtime, graph, weights, Adam slots);")
    print("training = peak RSS - RSS before step 1 (activations, gradients, optimizer "
          "temporaries); vs b32 = change against seq 128 batch 32.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller models and fewer steps, for a smoke run")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        _child(json.loads(args._child))
        return
    start = time.time()
    results = run(quick=args.quick)
    results["total_seconds"] = time.time() - start
    print_report(results)
    print(f"(bench took {results['total_seconds']:.0f} s)")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(results, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    failed = [r["label"] for table in ("throughput", "memory")
              for r in results[table]["runs"].values() if "error" in r]
    if failed:
        sys.exit(f"failed configurations: {', '.join(failed)}")


if __name__ == "__main__":
    main()
