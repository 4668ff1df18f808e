"""Tests for optimization.py: reference Adam, schedule, exclusions, accumulation, LAMB, AMP, mirror.

Every graph is tiny and built inside `with tf.Graph().as_default():`. Expected values are computed
with NumPy in the test from the published equations, never copied from a run. The MirroredStrategy
test splits the CPU into two logical devices, which must happen before TensorFlow runs any op, so
it runs this file's `_mirrored_worker` in a fresh subprocess.
"""

import json
import logging
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import optimization

tf1 = tf.compat.v1

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BETA_1, BETA_2, EPS = 0.9, 0.999, 1e-6


# ----------------------------------------------------------------------------------------------
# NumPy references


def np_adamw_step(w, g, m, v, lr, decay_rate, decay):
    """One AdamWeightDecayOptimizer step (no bias correction). Returns (w, m, v)."""
    m = BETA_1 * m + (1 - BETA_1) * g
    v = BETA_2 * v + (1 - BETA_2) * g * g
    update = m / (np.sqrt(v) + EPS)
    if decay:
        update = update + decay_rate * w
    return w - lr * update, m, v


def np_lamb_step(w, g, m, v, lr, decay_rate, adapt, t):
    """One LAMB step with bias correction at update number t (1-based). Returns (w, m, v)."""
    m = BETA_1 * m + (1 - BETA_1) * g
    v = BETA_2 * v + (1 - BETA_2) * g * g
    update = (m / (1 - BETA_1**t)) / (np.sqrt(v / (1 - BETA_2**t)) + EPS)
    if adapt:
        update = update + decay_rate * w
        ratio = np.linalg.norm(w) / np.linalg.norm(update)
    else:
        ratio = 1.0
    return w - lr * ratio * update, m, v


def np_learning_rate(step, init_lr, num_train_steps, num_warmup_steps):
    decayed = init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)
    if num_warmup_steps and step < num_warmup_steps:
        return init_lr * step / num_warmup_steps
    return decayed


def np_clip(grads, clip_norm=1.0):
    norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
    return [g * clip_norm / max(norm, clip_norm) for g in grads]


# ----------------------------------------------------------------------------------------------
# A tiny linear regression, y = x W + b, shared by several tests.

RNG = np.random.RandomState(12345)
KERNEL0 = RNG.normal(0.0, 0.5, size=[4, 2]).astype(np.float32)
BIAS0 = np.array([0.3, -0.2], dtype=np.float32)
X_DATA = RNG.normal(0.0, 1.0, size=[24, 4]).astype(np.float32)
# Targets far from the initial predictions: gradient norms well above 1, so clipping is active.
Y_DATA = (X_DATA @ RNG.normal(0.0, 3.0, size=[4, 2]) + 2.0).astype(np.float32)


def build_regression(**create_kwargs):
    """Builds the model and `create_optimizer` in the default graph.

    Returns:
      (x, y, loss, train_op, loss_factor): placeholders x [batch, 4] and y [batch, 2], the loss,
      the train op, and a float placeholder multiplying the loss (default 1.0).
    """
    x = tf1.placeholder(tf.float32, [None, 4])
    y = tf1.placeholder(tf.float32, [None, 2])
    loss_factor = tf1.placeholder_with_default(1.0, [])
    with tf1.variable_scope("dense"):
        kernel = tf1.get_variable("kernel", initializer=tf.constant(KERNEL0))
        bias = tf1.get_variable("bias", initializer=tf.constant(BIAS0))
    loss = tf.reduce_mean(tf.square(tf.matmul(x, kernel) + bias - y)) * loss_factor
    kwargs = dict(init_lr=0.05, num_train_steps=10, num_warmup_steps=0, use_tpu=False)
    kwargs.update(create_kwargs)
    train_op = optimization.create_optimizer(loss, **kwargs)
    return x, y, loss, train_op, loss_factor


def variable_values(sess):
    return {v.op.name: sess.run(v) for v in tf1.global_variables()}


# ----------------------------------------------------------------------------------------------
# Reference behaviour


def test_adam_converges_on_reference_toy_problem():
    with tf.Graph().as_default(), tf1.Session() as sess:
        w = tf1.get_variable("w", initializer=tf.constant([0.1, -0.2, -0.1]))
        x = tf.constant([0.4, 0.2, -0.5])
        loss = tf.reduce_mean(tf.square(x - w))
        grads = tf1.gradients(loss, [w])
        optimizer = optimization.AdamWeightDecayOptimizer(learning_rate=0.2)
        train_op = optimizer.apply_gradients(zip(grads, [w]))
        sess.run(tf1.global_variables_initializer())
        for _ in range(100):
            sess.run(train_op)
        np.testing.assert_allclose(sess.run(w), [0.4, 0.2, -0.5], rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("num_warmup_steps", [0, 10])
def test_learning_rate_schedule(num_warmup_steps):
    init_lr, num_train_steps = 0.1, 100
    steps = [0, 1, 5, 9, 10, 11, 50, 99, 100, 101, 150]
    with tf.Graph().as_default(), tf1.Session() as sess:
        step = tf1.placeholder(tf.int64, [])
        lr = optimization.create_learning_rate(step, init_lr, num_train_steps, num_warmup_steps)
        got = [sess.run(lr, {step: s}) for s in steps]
    want = [np_learning_rate(s, init_lr, num_train_steps, num_warmup_steps) for s in steps]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)  # float32
    # Spot checks written out, so a wrong reading of the reference formula shows up too.
    if num_warmup_steps:
        assert got[0] == 0.0 and abs(got[2] - 0.05) < 1e-7 and abs(got[3] - 0.09) < 1e-7
        assert abs(got[4] - 0.09) < 1e-7  # decay from step 0: 0.1 * (1 - 10/100), no jump to 0.1
    else:
        assert abs(got[0] - 0.1) < 1e-7
    assert got[6] == pytest.approx(0.05) and got[8] == 0.0 and got[10] == 0.0


def test_weight_decay_exclusions_and_no_bias_correction():
    names_decayed = {
        "layer/dense/kernel": True,
        "output_weights": True,
        "bert/embeddings/word_embeddings": True,
        "layer/dense/bias": False,
        "layer/LayerNorm/gamma": False,
        "x/layer_norm/beta": False,
        "cls/predictions/output_bias": False,
    }
    rng = np.random.RandomState(0)
    init = {n: rng.normal(size=[3, 2]).astype(np.float32) for n in names_decayed}
    grads_by_step = [{n: rng.normal(size=[3, 2]).astype(np.float32) for n in names_decayed}
                     for _ in range(2)]
    lr, rate = 0.1, 0.3
    with tf.Graph().as_default(), tf1.Session() as sess:
        params = {n: tf1.get_variable(n, initializer=tf.constant(init[n])) for n in names_decayed}
        feeds = {n: tf1.placeholder(tf.float32, [3, 2]) for n in names_decayed}
        optimizer = optimization.AdamWeightDecayOptimizer(
            learning_rate=lr, weight_decay_rate=rate,
            exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
        train_op = optimizer.apply_gradients([(feeds[n], params[n]) for n in names_decayed])
        sess.run(tf1.global_variables_initializer())
        state = {n: (init[n], np.zeros([3, 2]), np.zeros([3, 2])) for n in names_decayed}
        for grads in grads_by_step:
            sess.run(train_op, {feeds[n]: grads[n] for n in names_decayed})
            for n, decay in names_decayed.items():
                w, m, v = state[n]
                state[n] = np_adamw_step(w, grads[n], m, v, lr, rate, decay)
                np.testing.assert_allclose(sess.run(params[n]), state[n][0], rtol=1e-6, atol=1e-6)
        # The decay is really there for kernels and really absent for the excluded names.
        for n, decay in names_decayed.items():
            assert optimizer._do_use_weight_decay(n) == decay, n
        # A bias-corrected first step would be ~g/|g| = +-1 per element; ours is ~3.16 times that.
        w, m, v = init["layer/dense/bias"], 0.0, 0.0
        g = grads_by_step[0]["layer/dense/bias"]
        no_correction, _, _ = np_adamw_step(w, g, m, v, lr, rate, False)
        assert np.abs((w - no_correction) / lr).min() > 3.0


def test_slots_keep_reference_names():
    with tf.Graph().as_default():
        build_regression()
        names = {v.op.name: v for v in tf1.global_variables()}
        trainable = {v.op.name for v in tf1.trainable_variables()}
    assert trainable == {"dense/kernel", "dense/bias"}
    assert set(names) == {
        "dense/kernel", "dense/bias", "global_step",
        "dense/kernel/adam_m", "dense/kernel/adam_v", "dense/bias/adam_m", "dense/bias/adam_v"}
    assert names["dense/kernel/adam_m"].shape.as_list() == [4, 2]


def test_create_optimizer_steps_match_numpy_and_step_once():
    """Two reference steps: schedule, clipping at 1.0, decay 0.01 on the kernel, global step +1."""
    init_lr, num_train_steps = 0.05, 10
    with tf.Graph().as_default(), tf1.Session() as sess:
        x, y, _, train_op, _ = build_regression(init_lr=init_lr, num_train_steps=num_train_steps)
        assert optimization.get_learning_rate() is not None
        sess.run(tf1.global_variables_initializer())
        w, b = KERNEL0.astype(np.float64), BIAS0.astype(np.float64)
        mw = vw = np.zeros_like(w)
        mb = vb = np.zeros_like(b)
        for step in range(2):
            xb, yb = X_DATA[:6].astype(np.float64), Y_DATA[:6].astype(np.float64)
            err = xb @ w + b - yb  # d/dpred of mean((pred - y)^2) = 2 * err / err.size
            gw, gb = xb.T @ (2 * err / err.size), np.sum(2 * err / err.size, axis=0)
            assert np.sqrt(np.sum(gw**2) + np.sum(gb**2)) > 1.0  # clipping is exercised
            gw, gb = np_clip([gw, gb])
            lr = np_learning_rate(step, init_lr, num_train_steps, 0)
            w, mw, vw = np_adamw_step(w, gw, mw, vw, lr, 0.01, True)
            b, mb, vb = np_adamw_step(b, gb, mb, vb, lr, 0.01, False)
            sess.run(train_op, {x: X_DATA[:6], y: Y_DATA[:6]})
            values = variable_values(sess)
            assert values["global_step"] == step + 1
            np.testing.assert_allclose(values["dense/kernel"], w, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(values["dense/bias"], b, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(values["dense/kernel/adam_v"], vw, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("kwargs, message", [
    (dict(optimizer_name="sgd"), "Unknown optimizer"),
    (dict(num_accumulation_steps=0), "num_accumulation_steps"),
    (dict(num_accumulation_steps=1.5), "num_accumulation_steps"),
    (dict(num_train_steps=0), "num_train_steps"),
    (dict(use_tpu=True, use_amp=True), "use_amp"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with tf.Graph().as_default(), pytest.raises(ValueError, match=message):
        build_regression(**kwargs)


# ----------------------------------------------------------------------------------------------
# Gradient accumulation


def run_regression(micro_batch, num_runs, **create_kwargs):
    """Trains on consecutive slices of X_DATA; returns the variables after each run."""
    history = []
    with tf.Graph().as_default(), tf1.Session() as sess:
        x, y, _, train_op, _ = build_regression(**create_kwargs)
        sess.run(tf1.global_variables_initializer())
        for i in range(num_runs):
            rows = slice(i * micro_batch, (i + 1) * micro_batch)
            sess.run(train_op, {x: X_DATA[rows], y: Y_DATA[rows]})
            history.append(variable_values(sess))
    return history


@pytest.mark.parametrize("optimizer_name", ["adamw", "lamb"])
def test_accumulated_micro_batches_equal_one_large_batch(optimizer_name):
    k, b, updates = 3, 2, 2
    common = dict(optimizer_name=optimizer_name, num_train_steps=5, num_warmup_steps=1)
    accumulated = run_regression(b, k * updates, num_accumulation_steps=k, **common)
    large = run_regression(k * b, updates, **common)
    # No update and no step before the k-th micro-batch.
    for values in accumulated[:k - 1]:
        np.testing.assert_array_equal(values["dense/kernel"], KERNEL0)
        assert values["global_step"] == 0
        assert np.abs(values["dense/kernel/grad_accum"]).max() > 0
    for u in range(updates):
        acc, ref = accumulated[(u + 1) * k - 1], large[u]
        assert acc["global_step"] == ref["global_step"] == u + 1
        assert np.abs(acc["dense/kernel/grad_accum"]).max() == 0  # reset after the update
        assert acc["grad_accum_micro_step"] == 0
        for name in ref:
            np.testing.assert_allclose(acc[name], ref[name], rtol=0, atol=1e-6, err_msg=name)
    # Warmup makes the first update's rate 0; the second one really moved the weights.
    assert np.abs(large[-1]["dense/kernel"] - KERNEL0).max() > 1e-3


# ----------------------------------------------------------------------------------------------
# LAMB


def test_lamb_converges_on_toy_problem():
    # A constant rate keeps LAMB's steps near lr * ||w||; the linear decay of the real schedule
    # lets it settle, as in training.
    with tf.Graph().as_default(), tf1.Session() as sess:
        w = tf1.get_variable("w", initializer=tf.constant([0.1, -0.2, -0.1]))
        loss = tf.reduce_mean(tf.square(tf.constant([0.4, 0.2, -0.5]) - w))
        global_step = tf1.train.get_or_create_global_step()
        lr = optimization.create_learning_rate(global_step, 0.2, 100, 0)
        optimizer = optimization.LAMBOptimizer(learning_rate=lr)
        apply_op = optimizer.apply_gradients(zip(tf1.gradients(loss, [w]), [w]), global_step)
        with tf.control_dependencies([apply_op]):
            train_op = global_step.assign_add(1)
        sess.run(tf1.global_variables_initializer())
        for _ in range(100):
            sess.run(train_op)
        np.testing.assert_allclose(sess.run(w), [0.4, 0.2, -0.5], rtol=1e-2, atol=1e-2)


def test_lamb_first_updates_match_numpy():
    rng = np.random.RandomState(1)
    init = {"dense/kernel": rng.normal(size=[3, 4]), "dense/bias": rng.normal(size=[4])}
    grads = [{n: rng.normal(size=a.shape) * 0.1 for n, a in init.items()} for _ in range(2)]
    lr, rate = 0.05, 0.01
    with tf.Graph().as_default(), tf1.Session() as sess:
        params = {n: tf1.get_variable(n, initializer=tf.constant(a, tf.float32))
                  for n, a in init.items()}
        feeds = {n: tf1.placeholder(tf.float32, a.shape) for n, a in init.items()}
        global_step = tf1.train.get_or_create_global_step()
        optimizer = optimization.LAMBOptimizer(
            learning_rate=lr, weight_decay_rate=rate, exclude_from_weight_decay=["bias"])
        apply_op = optimizer.apply_gradients([(feeds[n], params[n]) for n in init], global_step)
        with tf.control_dependencies([apply_op]):
            train_op = global_step.assign_add(1)
        sess.run(tf1.global_variables_initializer())
        state = {n: (a, 0.0, 0.0) for n, a in init.items()}
        for t, g in enumerate(grads, start=1):
            sess.run(train_op, {feeds[n]: g[n] for n in init})
            for n in init:
                w, m, v = state[n]
                state[n] = np_lamb_step(w, g[n], m, v, lr, rate, adapt=(n == "dense/kernel"), t=t)
                np.testing.assert_allclose(sess.run(params[n]), state[n][0], rtol=1e-5, atol=1e-6)
    # Per variable, the kernel's step is lr * ||w|| in size: the trust ratio really applied.
    step_norm = np.linalg.norm(init["dense/kernel"] - np_lamb_step(
        init["dense/kernel"], grads[0]["dense/kernel"], 0.0, 0.0, lr, rate, True, 1)[0])
    assert step_norm == pytest.approx(lr * np.linalg.norm(init["dense/kernel"]), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Mixed precision (loss scaling; the float16 rewrite itself needs a GPU)


def test_amp_runs_on_cpu_and_skips_non_finite_steps(caplog):
    caplog.set_level(logging.INFO, logger="tensorflow")
    with tf.Graph().as_default(), tf1.Session() as sess:
        x, y, _, train_op, loss_factor = build_regression(use_amp=True)
        sess.run(tf1.global_variables_initializer())
        feed = {x: X_DATA[:6], y: Y_DATA[:6]}
        scale = [v for v in tf1.global_variables() if v.op.name == "dynamic_loss_scale/scale"][0]
        assert sess.run(scale) == 2.0**15

        # A loss whose scaled gradients overflow float32: the step is skipped, the scale halves.
        sess.run(train_op, {**feed, loss_factor: 1e36})
        values = variable_values(sess)
        np.testing.assert_array_equal(values["dense/kernel"], KERNEL0)
        assert values["global_step"] == 0 and values["dense/kernel/adam_m"].max() == 0
        assert values["dynamic_loss_scale/scale"] == 2.0**14

        for _ in range(3):
            sess.run(train_op, feed)
        values = variable_values(sess)
    assert values["global_step"] == 3
    assert np.all(np.isfinite(values["dense/kernel"]))
    assert np.abs(values["dense/kernel"] - KERNEL0).max() > 1e-3
    assert values["dynamic_loss_scale/good_steps"] == 3
    if tf.config.list_physical_devices("GPU"):
        return  # float16 really ran; the float32 comparison below does not apply.
    assert "no GPU visible, so the float16 graph rewrite is skipped" in caplog.text
    # Scaling by a power of two is exact, so on CPU the steps equal plain float32 training.
    reference = run_regression_fixed(3)
    np.testing.assert_allclose(values["dense/kernel"], reference["dense/kernel"], atol=1e-6)


def run_regression_fixed(num_runs):
    """num_runs plain reference steps on the first 6 examples."""
    with tf.Graph().as_default(), tf1.Session() as sess:
        x, y, _, train_op, _ = build_regression()
        sess.run(tf1.global_variables_initializer())
        for _ in range(num_runs):
            sess.run(train_op, {x: X_DATA[:6], y: Y_DATA[:6]})
        return variable_values(sess)


def test_dynamic_loss_scale_grows_after_good_steps():
    with tf.Graph().as_default(), tf1.Session() as sess:
        loss_scale = optimization.DynamicLossScale(initial_scale=8.0, growth_interval=2)
        finite = tf1.placeholder(tf.bool, [])
        due = tf1.placeholder(tf.bool, [])
        update = loss_scale.update(finite, due)
        sess.run(tf1.global_variables_initializer())
        seen = []
        for f, d in [(True, True), (True, False), (True, True), (False, False), (False, True),
                     (False, True), (False, True), (False, True)]:
            sess.run(update, {finite: f, due: d})
            seen.append(float(sess.run(loss_scale.scale)))
    # Grows on the 2nd finite update, ignores calls with no update due, halves down to 1.
    assert seen == [8.0, 8.0, 16.0, 16.0, 8.0, 4.0, 2.0, 1.0]


# ----------------------------------------------------------------------------------------------
# MirroredStrategy on two logical CPUs (in a subprocess)


def _mirrored_worker():
    """Runs in a fresh process: Estimator steps with and without MirroredStrategy; prints JSON."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    tf1.logging.set_verbosity(tf1.logging.ERROR)
    b = 3

    def train(strategy, batch_size, max_steps, **create_kwargs):
        devices = []

        def model_fn(features, labels, mode, params):
            devices.append(tf.identity(features).device)
            with tf1.variable_scope("dense"):
                kernel = tf1.get_variable("kernel", initializer=tf.constant(KERNEL0))
                bias = tf1.get_variable("bias", initializer=tf.constant(BIAS0))
            loss = tf.reduce_mean(tf.square(tf.matmul(features, kernel) + bias - labels))
            train_op = optimization.create_optimizer(
                loss, init_lr=0.05, num_train_steps=10, num_warmup_steps=1, use_tpu=False,
                **create_kwargs)
            return tf.estimator.EstimatorSpec(mode, loss=loss, train_op=train_op)

        def input_fn():
            data = tf.data.Dataset.from_tensor_slices((X_DATA, Y_DATA))
            return data.batch(batch_size, drop_remainder=True).repeat()

        model_dir = tempfile.mkdtemp()
        config = tf.estimator.RunConfig(train_distribute=strategy, log_step_count_steps=1000)
        estimator = tf.estimator.Estimator(model_fn, model_dir=model_dir, config=config)
        estimator.train(input_fn, max_steps=max_steps)
        values = {name: tf.train.load_variable(model_dir, name).tolist()
                  for name, _ in tf.train.list_variables(model_dir)}
        return values, sorted(set(devices))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    runs = {
        # 3 steps on 2 replicas x b examples vs 3 steps on 2b examples.
        "adamw": (train(strategy, b, 3), train(None, 2 * b, 3)),
        # 2 updates of 2 accumulated micro-batches on 2 replicas, with loss scaling, vs 2 plain
        # single-device updates on 4b examples.
        "lamb_accum_amp": (
            train(strategy, b, 2, optimizer_name="lamb", num_accumulation_steps=2, use_amp=True),
            train(None, 4 * b, 2, optimizer_name="lamb")),
    }
    print(json.dumps({name: {"mirrored": m[0], "mirrored_devices": m[1], "single": s[0]}
                      for name, (m, s) in runs.items()}))


@pytest.mark.timeout(240)
def test_mirrored_two_cpu_step_equals_single_device_step():
    code = (f"import sys; sys.path.insert(0, {REPO_ROOT!r}); "
            "from tests import test_optimization as t; t._mirrored_worker()")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    # Estimator + MirroredStrategy can hang (tf215-notes): a hang fails here, not in CI's timeout.
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    for name, run in runs.items():
        assert [d[-5:] for d in run["mirrored_devices"]] == ["CPU:0", "CPU:1"], run
        mirrored, single = run["mirrored"], run["single"]
        expected_step = 3 if name == "adamw" else 2
        assert mirrored["global_step"] == single["global_step"] == expected_step, name
        compared = [n for n in single if n != "global_step"]
        assert set(compared) == {"dense/kernel", "dense/bias", "dense/kernel/adam_m",
                                 "dense/kernel/adam_v", "dense/bias/adam_m", "dense/bias/adam_v"}
        for n in compared:
            np.testing.assert_allclose(mirrored[n], single[n], rtol=0, atol=1e-6,
                                       err_msg=f"{name}: {n}")
        assert np.abs(np.array(single["dense/kernel"]) - KERNEL0).max() > 1e-3
