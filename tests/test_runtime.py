"""Tests for runtime.py on CPU with a tiny bag-of-embeddings classifier (no BERT: they stay fast).

Distributed and kill/resume runs happen in subprocesses with timeouts; they re-import this module
and call `_subprocess_main` with a JSON job description.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import cli
import runtime
import training

tf1 = tf.compat.v1

SEQ_LENGTH = 6
VOCAB_SIZE = 20
NUM_EXAMPLES = 64
SUBPROCESS_TIMEOUT = 150


# ------------------------------------------------------------------------------------------------
# A tiny model and its data
# ------------------------------------------------------------------------------------------------


def make_data(num_examples=NUM_EXAMPLES, seed=0):
    """Random token ids; the label is the parity of the first token (learnable from embeddings)."""
    rng = np.random.RandomState(seed)
    input_ids = rng.randint(1, VOCAB_SIZE, size=(num_examples, SEQ_LENGTH)).astype(np.int32)
    input_mask = np.ones_like(input_ids)
    segment_ids = np.zeros_like(input_ids)
    label_ids = (input_ids[:, 0] % 2).astype(np.int32)
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "label_ids": label_ids,
    }


def input_fn_builder(data, repeat, batch_sizes_seen=None):
    def input_fn(params):
        if batch_sizes_seen is not None:
            batch_sizes_seen.append(params["batch_size"])
        dataset = tf.data.Dataset.from_tensor_slices(data)
        if repeat:
            dataset = dataset.repeat()
        return dataset.batch(params["batch_size"], drop_remainder=repeat)

    return input_fn


def model_fn_builder(learning_rate=0.05, num_train_steps=100, replica_calls=None,
                     init_checkpoint=None, init_as_tpu=False):
    """Returns a model_fn; with replica_calls (a dict) each replica counts its executed steps.

    init_checkpoint warm-starts through training.init_from_checkpoint; init_as_tpu asks for the TPU
    form of it (a scaffold_fn), which make_spec then runs for the plain Estimator.
    """

    def model_fn(features, labels, mode, params):
        del labels
        input_ids = features["input_ids"]
        mask = tf.cast(features["input_mask"], tf.float32)
        # Explicit op seeds: TPUEstimator and Estimator create different numbers of ops before the
        # model, so graph-seed-derived initialisers would differ between the two paths.
        embeddings = tf1.get_variable(
            "embeddings",
            [VOCAB_SIZE, 8],
            initializer=tf1.truncated_normal_initializer(stddev=0.5, seed=1),
        )
        first = tf.gather(embeddings, input_ids[:, 0])
        pooled = tf.reduce_sum(tf.gather(embeddings, input_ids) * mask[:, :, None], axis=1)
        hidden = tf.concat([first, pooled / tf.reduce_sum(mask, axis=1, keepdims=True)], axis=1)
        kernel = tf1.get_variable(
            "output_weights", [16, 2], initializer=tf1.glorot_uniform_initializer(seed=2)
        )
        bias = tf1.get_variable("output_bias", [2], initializer=tf1.zeros_initializer())
        logits = tf.matmul(hidden, kernel) + bias
        probabilities = tf.nn.softmax(logits, axis=-1)
        scaffold_fn = training.init_from_checkpoint(
            init_checkpoint, init_as_tpu or params.get("use_tpu", False)
        )
        if mode == tf.estimator.ModeKeys.PREDICT:
            return training.make_spec(
                mode, params, predictions={"probabilities": probabilities}, scaffold_fn=scaffold_fn
            )
        label_ids = features["label_ids"]
        per_example_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=label_ids, logits=logits
        )
        loss = tf.reduce_mean(per_example_loss)
        if mode == tf.estimator.ModeKeys.TRAIN:
            if replica_calls is not None:
                loss = _count_replica_step(loss, replica_calls)
            train_op = training.create_train_op(loss, params, learning_rate, num_train_steps, 0,
                                                params.get("use_tpu", False))
            return training.make_spec(
                mode, params, loss=loss, train_op=train_op, scaffold_fn=scaffold_fn
            )

        def metric_fn(per_example_loss, label_ids, logits):
            predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return {
                "eval_accuracy": tf1.metrics.accuracy(label_ids, predictions),
                "eval_loss": tf1.metrics.mean(per_example_loss),
            }

        return training.make_spec(
            mode,
            params,
            loss=loss,
            eval_metrics=(metric_fn, [per_example_loss, label_ids, logits]),
            scaffold_fn=scaffold_fn,
        )

    return model_fn


def _count_replica_step(loss, replica_calls):
    """Makes every executed step call Python with the replica id and the device it is placed on."""
    context = tf.distribute.get_replica_context()
    replica_id = int(tf.get_static_value(context.replica_id_in_sync_group)) if context else 0
    device = loss.device or "(unplaced)"

    def record():
        replica_calls.setdefault(f"{replica_id} {device}", 0)
        replica_calls[f"{replica_id} {device}"] += 1
        return np.int64(0)

    counter = tf1.py_func(record, [], tf.int64, stateful=True)
    with tf.control_dependencies([counter]):
        return tf.identity(loss)


def options(**kwargs):
    defaults = dict(save_checkpoints_steps=5, save_summary_steps=1, log_step_count_steps=5)
    defaults.update(kwargs)
    return runtime.RuntimeOptions(**defaults)


def read_scalars(event_dir, tag):
    """{step: value} of a scalar summary written by the Estimator in event_dir (not recursive)."""
    values = {}
    for path in tf.io.gfile.glob(os.path.join(event_dir, "events.out.tfevents.*")):
        for event in tf1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = value.simple_value
    return values


def _subprocess_env(extra=None):
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    env.pop("TF_CONFIG", None)
    env.update(extra or {})
    return env, root


def _start_job(job, extra_env=None):
    env, root = _subprocess_env(extra_env)
    code = "from tests import test_runtime as t; t._subprocess_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(job)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout=SUBPROCESS_TIMEOUT):
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"subprocess timed out after {timeout}s; stderr tail:\n{stderr[-3000:]}")
    assert process.returncode == 0, f"exit {process.returncode}; stderr tail:\n{stderr[-3000:]}"
    result_lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert result_lines, f"no RESULT line; stderr tail:\n{stderr[-3000:]}"
    return json.loads(result_lines[-1][len("RESULT "):]), stderr


def _subprocess_main():
    """Entry point of the subprocess jobs (see the tests below for the job kinds)."""
    job = json.loads(sys.argv[1])
    tf1.logging.set_verbosity(tf1.logging.INFO)
    if job.get("logical_cpus"):
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * job["logical_cpus"]
        )
    replica_calls = {}
    run_options = options(**job.get("options", {}))
    runner = runtime.build_runner(
        model_fn_builder(replica_calls=replica_calls),
        run_options,
        job["model_dir"],
        train_batch_size=job.get("train_batch_size", 8),
        eval_batch_size=8,
    )
    data = make_data()
    step = runner.train(input_fn_builder(data, repeat=True), max_steps=job["max_steps"])
    result = {
        "step": step,
        "description": runner.description,
        "num_replicas": runner.num_replicas,
        "replica_calls": replica_calls,
    }
    print("RESULT " + json.dumps(result), flush=True)


def test_decode_record_casts_int64_to_int32():
    example = tf.train.Example(features=tf.train.Features(feature={
        "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 4])),
        "weights": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, 1.0])),
    }))
    features = training.decode_record(
        tf.constant(example.SerializeToString()),
        {"ids": tf.io.FixedLenFeature([2], tf.int64),
         "weights": tf.io.FixedLenFeature([2], tf.float32)},
    )
    assert features["ids"].dtype == tf.int32 and features["ids"].numpy().tolist() == [3, 4]
    assert features["weights"].dtype == tf.float32


def test_runtime_options_from_flags():
    from absl import flags as absl_flags

    flag_values = absl_flags.FlagValues()
    cli.define_tpu_flags(flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)  # A second call is harmless.
    flag_values(["prog", "--use_tpu=true", "--optimizer=lamb", "--num_accumulation_steps=4"])
    parsed = runtime.RuntimeOptions.from_flags(flag_values)
    assert parsed.use_tpu and parsed.use_one_hot_embeddings
    assert parsed.optimizer == "lamb" and parsed.num_accumulation_steps == 4
    assert parsed.num_tpu_cores == 8 and parsed.save_checkpoints_steps == 1000  # Not defined here.


# ------------------------------------------------------------------------------------------------
# Estimators
# ------------------------------------------------------------------------------------------------


def test_tpu_estimator_and_estimator_give_the_same_loss_curve(tmp_path, tf_log):
    data = make_data()
    curves = {}
    for use_tpu_estimator in (True, False):
        model_dir = str(tmp_path / f"tpu_{use_tpu_estimator}")
        runner = runtime.build_runner(
            model_fn_builder(), options(tf_random_seed=7), model_dir,
            train_batch_size=8, eval_batch_size=8, use_tpu_estimator=use_tpu_estimator,
        )
        assert runner.train(input_fn_builder(data, repeat=True), max_steps=6) == 6
        curves[use_tpu_estimator] = read_scalars(model_dir, "loss")
    assert sorted(curves[True]) == list(range(1, 7)), curves
    assert sorted(curves[True]) == sorted(curves[False])
    np.testing.assert_allclose(
        [curves[True][s] for s in sorted(curves[True])],
        [curves[False][s] for s in sorted(curves[False])],
        rtol=1e-5,
    )
    # The loss really moves, so equal curves are not two constant lines.
    assert curves[True][6] < curves[True][1]
    assert "TPUEstimator with use_tpu=False: running on CPU" in tf_log.text()
    assert "Running on CPU: no GPU visible" in tf_log.text()
    lr = read_scalars(str(tmp_path / "tpu_False"), "learning_rate")
    assert lr and lr[1] == pytest.approx(0.05 * (1 - 0 / 100), rel=1e-3)  # lr of step 0 -> 1.


def test_resume_warm_start_messages_and_finished_run(tmp_path, tf_log):
    data = make_data()
    model_dir = str(tmp_path / "model")
    runner = runtime.build_runner(model_fn_builder(), options(), model_dir, train_batch_size=8)
    runner.train(input_fn_builder(data, repeat=True), max_steps=5)
    assert "training starts at step 0" in tf_log.text()
    assert "step 5/5, loss = " in tf_log.text() and "examples/s" in tf_log.text()
    runner.train(input_fn_builder(data, repeat=True), max_steps=7)
    assert "Resuming training from" in tf_log.text() and "(global step 5 of 7)" in tf_log.text()
    assert runtime.checkpoint_step(tf.train.latest_checkpoint(model_dir)) == 7
    assert runner.train(input_fn_builder(data, repeat=True), max_steps=7) == 7
    assert "Training already finished" in tf_log.text()
    assert "is at global step 7, which reaches the target of 7 steps" in tf_log.text()


@pytest.mark.parametrize("init_as_tpu", [False, True])
def test_init_from_checkpoint_warm_starts_and_logs(tmp_path, tf_log, init_as_tpu):
    source_dir = str(tmp_path / "source")
    source = runtime.build_runner(model_fn_builder(), options(), source_dir, train_batch_size=8)
    source.train(input_fn_builder(make_data(), repeat=True), max_steps=3)
    checkpoint = tf.train.latest_checkpoint(source_dir)

    # Learning rate 0: after one step the variables still hold the warm-start values.
    target_dir = str(tmp_path / "target")
    target = runtime.build_runner(
        model_fn_builder(learning_rate=0.0, init_checkpoint=source_dir, init_as_tpu=init_as_tpu),
        options(), target_dir, train_batch_size=8,
    )
    target.train(input_fn_builder(make_data(), repeat=True), max_steps=1)
    for name in ("embeddings", "output_weights", "output_bias"):
        np.testing.assert_array_equal(
            tf.train.load_variable(tf.train.latest_checkpoint(target_dir), name),
            tf.train.load_variable(checkpoint, name),
        )
    log = tf_log.text()
    assert "**** Trainable Variables ****" in log
    assert "  name = output_bias:0, shape = (2,), *INIT_FROM_CKPT*" in log
    assert f"Initialized 3 of 3 variables from {checkpoint}" in log
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        with tf.Graph().as_default():
            tf1.get_variable("v", [1])
            training.init_from_checkpoint(str(tmp_path / "missing.ckpt"), False)


def test_gradient_accumulation_splits_the_batch_and_amp_runs(tmp_path, tf_log):
    data = make_data()
    seen = []
    runner = runtime.build_runner(
        model_fn_builder(), options(num_accumulation_steps=2, use_amp=True),
        str(tmp_path / "acc"), train_batch_size=8,
    )
    assert runner.train(input_fn_builder(data, repeat=True, batch_sizes_seen=seen), 3) == 3
    assert seen == [4]
    assert "Gradient accumulation: 2 micro-batches of 4 examples" in tf_log.text()
    if not tf.config.list_physical_devices("GPU"):
        assert "no GPU visible, so there is no float16 rewrite" in tf_log.text()
    with pytest.raises(cli.UsageError, match="not divisible by 3"):
        runtime.build_runner(
            model_fn_builder(), options(num_accumulation_steps=3), None, train_batch_size=8
        )


def test_strategy_choices_without_gpu(tmp_path, tf_log, monkeypatch):
    # Checked here, not in a skipif at import: listing devices at import would initialise TF's
    # runtime in the subprocess jobs that import this module (too early for XLA flags and MWMS).
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("checks the CPU-only fallbacks")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    # This process has one CPU device: mirrored falls back to no strategy and says so.
    runner = runtime.build_runner(
        model_fn_builder(), options(distribution_strategy="mirrored"), str(tmp_path / "m"),
        train_batch_size=8,
    )
    assert runner.strategy is None and runner.num_replicas == 1
    assert "nothing to mirror over; training runs without a strategy" in tf_log.text()
    with pytest.raises(cli.UsageError, match="--num_gpus=2 but no GPU is visible"):
        runtime.build_runner(model_fn_builder(), options(num_gpus=2), None, train_batch_size=8)
    with pytest.raises(cli.UsageError, match="needs TF_CONFIG"):
        runtime.build_runner(
            model_fn_builder(), options(distribution_strategy="multi_worker_mirrored"), None,
            train_batch_size=8,
        )


def test_early_stopping_stops_before_max_steps_and_keeps_best(tmp_path, tf_log):
    # Learning rate 0: eval_loss never decreases after the first evaluation, so the run must stop
    # once max_steps_without_decrease steps have passed, but not before min_steps.
    model_dir = str(tmp_path / "model")
    runner = runtime.build_runner(
        model_fn_builder(learning_rate=0.0),
        options(save_checkpoints_steps=2, max_steps_without_decrease=2, min_steps=6,
                keep_checkpoint_max=1),
        model_dir, train_batch_size=8, eval_batch_size=8,
    )
    result = runner.train_and_evaluate(
        input_fn_builder(make_data(), repeat=True),
        input_fn_builder(make_data(16, seed=5), repeat=False),
        max_steps=40,
    )
    final_step = runtime.checkpoint_step(tf.train.latest_checkpoint(model_dir))
    assert result.stopped_early and 6 <= final_step < 40
    assert result.best_checkpoint == os.path.join(model_dir, "best", "model.ckpt-2")
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "best")) == result.best_checkpoint
    assert result.best_metric == pytest.approx(result.final_metrics["eval_loss"])
    assert "Best checkpoint: " + result.best_checkpoint in tf_log.text()
    # TensorBoard gets the eval metrics.
    assert read_scalars(os.path.join(model_dir, "eval"), "eval_accuracy")


def test_early_stopping_maximises_accuracy_and_copies_best(tmp_path):
    model_dir = str(tmp_path / "model")
    runner = runtime.build_runner(
        model_fn_builder(learning_rate=0.05),
        options(save_checkpoints_steps=3, max_steps_without_decrease=100,
                early_stopping_metric="eval_accuracy"),
        model_dir, train_batch_size=8, eval_batch_size=8,
    )
    result = runner.train_and_evaluate(
        input_fn_builder(make_data(), repeat=True),
        input_fn_builder(make_data(16, seed=5), repeat=False),
        max_steps=9,
    )
    accuracies = read_scalars(os.path.join(model_dir, "eval"), "eval_accuracy")
    best_step = max(sorted(accuracies), key=lambda s: (accuracies[s], -s))
    assert not result.stopped_early
    assert result.best_metric == pytest.approx(accuracies[best_step])
    assert result.best_checkpoint.endswith(f"model.ckpt-{best_step}")
    # The copy evaluates to the recorded metric.
    metrics = runner.evaluate(input_fn_builder(make_data(16, seed=5), repeat=False),
                              checkpoint_path=result.best_checkpoint, name="best")
    assert metrics["eval_accuracy"] == pytest.approx(result.best_metric)


# ------------------------------------------------------------------------------------------------
# Subprocess runs: distribution, kill and resume
# ------------------------------------------------------------------------------------------------


def test_mirrored_strategy_on_two_logical_cpus_trains(tmp_path):
    job = {"model_dir": str(tmp_path / "model"), "max_steps": 4, "logical_cpus": 2,
           "options": {"distribution_strategy": "mirrored"}}
    result, stderr = _finish(_start_job(job))
    assert result["step"] == 4 and result["num_replicas"] == 2
    assert "Running on 2 replicas with MirroredStrategy" in result["description"]
    calls = result["replica_calls"]
    # Both replicas, each placed on its own CPU device, executed every one of the 4 steps.
    assert sorted(k.split()[0] for k in calls) == ["0", "1"], calls
    assert {k.split()[1][-5:] for k in calls} == {"CPU:0", "CPU:1"}, calls
    assert all(count == 4 for count in calls.values()), calls


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_two_processes_train(tmp_path):
    ports = _free_ports(2)
    workers = [f"localhost:{p}" for p in ports]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        job = {"model_dir": str(tmp_path / "model"), "max_steps": 4,
               "options": {"distribution_strategy": "multi_worker_mirrored"}}
        processes.append(_start_job(job, {"TF_CONFIG": json.dumps(tf_config)}))
    results = [_finish(p)[0] for p in processes]
    for result in results:
        assert result["num_replicas"] == 2
        assert "MultiWorkerMirroredStrategy: 2 workers" in result["description"]
        assert sum(result["replica_calls"].values()) == 4, result
    assert runtime.checkpoint_step(tf.train.latest_checkpoint(str(tmp_path / "model"))) == 4


def test_killed_training_resumes_from_the_saved_step(tmp_path):
    model_dir = str(tmp_path / "model")
    job = {"model_dir": model_dir, "max_steps": 100000, "options": {"save_checkpoints_steps": 5}}
    process = _start_job(job)
    deadline = time.time() + SUBPROCESS_TIMEOUT
    step = None
    try:
        while time.time() < deadline and process.poll() is None:
            checkpoint = tf.train.latest_checkpoint(model_dir)
            step = runtime.checkpoint_step(checkpoint) if checkpoint else None
            if step is not None and step >= 10:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert step is not None and step >= 10, "no checkpoint appeared before the deadline"
    killed_at = runtime.checkpoint_step(tf.train.latest_checkpoint(model_dir))
    assert killed_at >= step

    # The resumed run also turns on --use_xla (saves a subprocess): it must restore the same
    # checkpoint and XLA must really compile (TensorFlow's C++ log says so once per process).
    resumed_job = dict(job, max_steps=killed_at + 5, options={"use_xla": True})
    resumed, stderr = _finish(_start_job(resumed_job, {"TF_CPP_MIN_LOG_LEVEL": "0"}))
    assert resumed["step"] == killed_at + 5
    assert f"(global step {killed_at} of {killed_at + 5})" in stderr
    # Only the 5 remaining steps ran after the restore.
    assert sum(resumed["replica_calls"].values()) == 5
    assert "Compiled cluster using XLA" in stderr
