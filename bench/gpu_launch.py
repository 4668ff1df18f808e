"""Runs one of the project's scripts with its own command line, on logical devices, and records
what its MirroredStrategy and mixed precision really did.

    python bench/gpu_launch.py --record=run.json --logical_gpus=2 -- \
        run_classifier.py --task_name=tsv --num_gpus=2 ...

bench/gpu_check.py drives the runners through their command lines; this launcher adds only what a
command line cannot say:

* `--logical_gpus=N` / `--logical_cpus=N`: TensorFlow splits a device into logical ones only before
  its runtime starts, so the split has to happen in the runner's own process, ahead of the
  runner's code. With N or more physical GPUs nothing is split (the real ones are used); with
  fewer, GPU 0 is carved into N devices of `--logical_memory_mb` each.
* `--record=FILE`: a JSON file saying which devices each `tf.distribute.MirroredStrategy` was
  built over and with which all-reduce (`cross_device_ops`), whether the float16 graph rewrite was
  switched on (`--use_amp` on a GPU), the physical devices and the script's exit status. The
  strategy's constructor is wrapped only to read its arguments; the strategy itself is unchanged.

The script then runs as `__main__` with the arguments after `--`, exactly as from the shell.
"""

import argparse
import json
import os
import runpy
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv):
    """Splits `argv` at `--` into the launcher's options and the script's command line."""
    if "--" not in argv:
        raise SystemExit("gpu_launch: usage: gpu_launch.py [options] -- SCRIPT.py [ARGS...]")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", required=True, help="JSON file to write the record to.")
    parser.add_argument("--logical_gpus", type=int, default=0,
                        help="Make at least this many GPU devices (carved from GPU 0 if needed).")
    parser.add_argument("--logical_cpus", type=int, default=0,
                        help="Split the CPU into this many logical devices.")
    parser.add_argument("--logical_memory_mb", type=int, default=4096,
                        help="Memory of each logical GPU carved from GPU 0.")
    args = parser.parse_args(argv[:split])
    script_argv = argv[split + 1:]
    if not script_argv:
        raise SystemExit("gpu_launch: no script after --")
    return args, script_argv


def write_record(path, record):
    """Writes the record (small, rewritten whole: the last complete version always wins)."""
    tmp_path = f"{path}.tmp-{os.getpid()}"
    with open(tmp_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp_path, path)


def split_devices(tf, args, record):
    """Creates the logical devices asked for; must run before TensorFlow's runtime starts."""
    gpus = tf.config.list_physical_devices("GPU")
    record["physical_gpus"] = [gpu.name for gpu in gpus]
    if args.logical_gpus > 1 and gpus and len(gpus) < args.logical_gpus:
        config = tf.config.LogicalDeviceConfiguration(memory_limit=args.logical_memory_mb)
        tf.config.set_logical_device_configuration(gpus[0], [config] * args.logical_gpus)
        record["logical_split"] = f"GPU 0 carved into {args.logical_gpus} logical GPUs of " \
                                  f"{args.logical_memory_mb} MB"
    if args.logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
        record["logical_split"] = f"CPU split into {args.logical_cpus} logical CPUs"


def watch_mirrored_strategy(tf, record, record_path):
    """Records the devices and cross_device_ops of every MirroredStrategy the script builds."""
    strategy_class = tf.distribute.MirroredStrategy
    original_init = strategy_class.__init__

    def init(self, devices=None, cross_device_ops=None):
        original_init(self, devices=devices, cross_device_ops=cross_device_ops)
        chosen = cross_device_ops
        if chosen is None:
            # What TensorFlow picked by itself (private attribute, read only for the record).
            chosen = getattr(self.extended, "_cross_device_ops", None)
        record["strategies"].append({
            "devices": [str(d) for d in self.extended.worker_devices],
            "num_replicas": int(self.num_replicas_in_sync),
            "cross_device_ops": type(chosen).__name__ if chosen is not None else "default",
            "passed_by_caller": cross_device_ops is not None,
        })
        write_record(record_path, record)

    strategy_class.__init__ = init


def amp_rewrite_enabled():
    """Whether the process switched on the float16 graph rewrite (TF 2.15's global flag)."""
    from tensorflow.python.training.experimental import mixed_precision_global_state

    return bool(mixed_precision_global_state.is_mixed_precision_graph_rewrite_enabled())


def main(argv=None):
    args, script_argv = parse_args(sys.argv[1:] if argv is None else argv)
    import tensorflow as tf  # After parsing: a usage error should not cost TensorFlow's import.

    record = {"script": script_argv[0], "argv": script_argv[1:], "strategies": [],
              "logical_split": None, "amp_graph_rewrite": None, "exit_code": None}
    split_devices(tf, args, record)
    watch_mirrored_strategy(tf, record, args.record)
    write_record(args.record, record)

    script = script_argv[0]
    if not os.path.isabs(script):
        script = os.path.join(REPO_ROOT, script)
    sys.argv = [script] + script_argv[1:]
    if REPO_ROOT not in sys.path:
        sys.path.insert(0, REPO_ROOT)
    exit_code = 1  # Stays 1 if the script dies of an exception rather than sys.exit.
    try:
        runpy.run_path(script, run_name="__main__")
        exit_code = 0
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        record["exit_code"] = exit_code
        record["amp_graph_rewrite"] = amp_rewrite_enabled()
        record["logical_gpus"] = [d.name for d in tf.config.list_logical_devices("GPU")]
        record["logical_cpus"] = [d.name for d in tf.config.list_logical_devices("CPU")]
        write_record(args.record, record)
    sys.exit(exit_code)


if __name__ == "__main__":
    main()
