"""Optimizers and the learning-rate schedule used to train BERT (graph mode, tf.compat.v1).

`create_optimizer` builds the reference training step: a learning rate that warms up linearly and
decays linearly to zero (the decay is computed from step 0), gradients clipped to a global norm of
1.0, `AdamWeightDecayOptimizer` (Adam without bias correction, decoupled weight decay that skips
`LayerNorm`/`layer_norm`/`bias` variables) and an explicit increment of the global step. With the
extra arguments left at their defaults the graph is the reference one, and checkpoints hold the
reference names (`<var>/adam_m`, `<var>/adam_v`, `global_step`).

Extras, each off by default:
- `optimizer_name="lamb"`: `LAMBOptimizer`, Adam with bias correction and a per-variable trust ratio
  ||w|| / ||update|| (NVIDIA's BERT recipe). It keeps its moments in the same `<var>/adam_m` and
  `<var>/adam_v` slots: they hold the same quantities (raw first and second moment averages), so a
  checkpoint can move between the two optimizers and tools that strip `adam_` slots keep working.
- `num_accumulation_steps=k > 1`: every call (one session run, one micro-batch) adds the gradients
  to non-trainable `<var>/grad_accum` variables (counted by `grad_accum_micro_step`); every k-th
  call applies the update to their mean (clipped after averaging), resets them and increments the
  global step. The global step therefore counts optimizer updates, so `num_train_steps`,
  `num_warmup_steps`, `max_steps` and `save_checkpoints_steps` keep meaning updates. The runner
  must feed micro-batches of `train_batch_size / k` examples (per replica,
  `train_batch_size / (k * num_replicas)`): the update then sees `train_batch_size` examples. A
  step takes k session runs.
- `use_amp=True`: dynamic loss scaling (the loss is multiplied by a scale, the gradients divided by
  it; a step whose gradients are not finite is skipped, does not advance the global step and halves
  the scale; 2000 finite updates in a row double it). On a machine with a GPU the float16 graph
  rewrite (grappler's auto_mixed_precision) is switched on for every new session; without a GPU that
  is skipped, a log line says so, and training runs in float32. The scale lives in the
  non-trainable `dynamic_loss_scale/scale` and `dynamic_loss_scale/good_steps` variables.

Distribution: under `tf.distribute.MirroredStrategy` (an Estimator model_fn runs once per replica)
the gradients are averaged across replicas (merge_call + batch reduce) before clipping, so a
step on N replicas with N micro-batches equals a single-device step on their concatenation. Slots
and accumulators are created with `tf1.get_variable` in the replica context and updated on each
replica with identical values; the global step (created by the Estimator with ONLY_FIRST_REPLICA
aggregation) advances once per step. On CPU devices the averaging uses ReductionToOneDevice
(collective ops hang in a tf1 Session); otherwise the strategy's own cross-device ops. With
`use_tpu`, `tf1.tpu.CrossShardOptimizer` sums the gradients across TPU shards as in the reference
(with accumulation or AMP the same `cross_replica_sum` is applied directly, because the wrapper
cannot forward the update mask).

The learning-rate tensor is added to the graph collection `LEARNING_RATE_COLLECTION`
("learning_rate"); `get_learning_rate()` returns it (the first one when a strategy built one per
replica) so the runtime can log it and write its summary. This module writes no summaries itself.

The loss, the progress hooks and the Estimator live in the runners and runtime.py.
"""

import re

import tensorflow as tf

tf1 = tf.compat.v1

LEARNING_RATE_COLLECTION = "learning_rate"
OPTIMIZER_NAMES = ("adamw", "lamb")

# Hyperparameters the reference fixes in code rather than flags.
WEIGHT_DECAY_RATE = 0.01
BETA_1 = 0.9
BETA_2 = 0.999
EPSILON = 1e-6
EXCLUDE_FROM_WEIGHT_DECAY = ["LayerNorm", "layer_norm", "bias"]
# "This is how the model was pre-trained" (reference comment): clip to a global norm of 1.0.
CLIP_NORM = 1.0

# Dynamic loss scaling, the usual float16 settings (as Keras' LossScaleOptimizer).
INITIAL_LOSS_SCALE = 2.0**15
LOSS_SCALE_GROWTH_INTERVAL = 2000
LOSS_SCALE_FACTOR = 2.0
MIN_LOSS_SCALE = 1.0


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, use_tpu,
                     optimizer_name="adamw", num_accumulation_steps=1, use_amp=False):
    """Creates the training op: schedule, gradients, clipping, update and global-step increment.

    Must run in the graph that holds the model, at the root variable scope, in a replica context
    (an Estimator model_fn is one). The global step is used, or created if missing.

    Args:
      loss: float32 scalar tensor, the loss of one (micro-)batch on this replica.
      init_lr: float, the peak learning rate.
      num_train_steps: int >= 1, optimizer updates after which the learning rate reaches 0.
      num_warmup_steps: int >= 0, updates of linear warmup (0 or None: no warmup).
      use_tpu: bool, wrap the optimizer in `tf1.tpu.CrossShardOptimizer`.
      optimizer_name: "adamw" (the reference) or "lamb".
      num_accumulation_steps: int >= 1, micro-batches whose gradients are averaged per update.
      use_amp: bool, dynamic loss scaling (and the float16 graph rewrite when a GPU is visible).

    Returns:
      The train op. Running it once processes one micro-batch.

    Raises:
      ValueError: an argument is out of range, or the call is in a cross-replica context.
    """
    _validate_arguments(num_train_steps, num_warmup_steps, use_tpu, optimizer_name,
                        num_accumulation_steps, use_amp)
    num_accumulation_steps = int(num_accumulation_steps)
    if tf.distribute.has_strategy() and tf.distribute.in_cross_replica_context():
        raise ValueError("create_optimizer must be called in a replica context (inside the "
                         "Estimator's model_fn or strategy.run), not under strategy.scope() alone.")

    global_step = tf1.train.get_or_create_global_step()
    learning_rate = create_learning_rate(global_step, init_lr, num_train_steps, num_warmup_steps)
    tf1.add_to_collection(LEARNING_RATE_COLLECTION, learning_rate)
    optimizer = _make_optimizer(optimizer_name, learning_rate)
    tf1.logging.info(
        "Optimizer %s: init_lr=%g, %d train steps, %d warmup steps, %d accumulation step(s), "
        "amp=%s, tpu=%s", optimizer_name, init_lr, num_train_steps, num_warmup_steps or 0,
        num_accumulation_steps, use_amp, use_tpu)

    loss_scale = None
    if use_amp:
        _enable_float16_rewrite_if_gpu(optimizer)
        loss_scale = DynamicLossScale()
        loss = loss_scale.scale_loss(loss)

    tvars = tf1.trainable_variables()
    grads = tf1.gradients(loss, tvars)
    if loss_scale is not None:
        grads = loss_scale.unscale(grads)
    grads = _mean_across_replicas(grads)

    if num_accumulation_steps == 1 and loss_scale is None:
        return _reference_train_op(optimizer, grads, tvars, global_step, use_tpu)

    # From here on an update may be skipped (accumulating, or non-finite float16 gradients).
    # Everything is computed on every call and the new values are selected with tf.where under
    # `apply_now`: no control flow, so it behaves the same in graph mode and under a strategy.
    extra_ops = []
    if num_accumulation_steps > 1:
        grads, apply_now, accumulate_ops = _accumulate_gradients(
            grads, tvars, num_accumulation_steps)
        extra_ops.extend(accumulate_ops)
    else:
        apply_now = tf.constant(True)
    if loss_scale is not None:
        grads_finite = all_finite(grads)
        extra_ops.append(loss_scale.update(grads_finite, apply_now))
        apply_now = tf.logical_and(apply_now, grads_finite)

    (grads, _) = tf.clip_by_global_norm(grads, clip_norm=CLIP_NORM)
    if use_tpu:
        # CrossShardOptimizer.apply_gradients cannot pass `apply_mask` on, so do its one job
        # (summing the gradients over the shards) here and call the optimizer directly.
        grads = [None if g is None else tf1.tpu.cross_replica_sum(g) for g in grads]
    apply_op = optimizer.apply_gradients(
        zip(grads, tvars), global_step=global_step, apply_mask=apply_now)
    with tf.control_dependencies([apply_op]):
        # After the update, so the learning rate of this step reads the old step.
        increment = global_step.assign_add(tf.cast(apply_now, global_step.dtype.base_dtype))
    return tf.group(apply_op, increment, *extra_ops)


def create_learning_rate(global_step, init_lr, num_train_steps, num_warmup_steps):
    """The reference schedule: linear warmup, then linear decay to 0 computed from step 0.

    After warmup the rate is `init_lr * (1 - step / num_train_steps)` (not re-normalised, so it
    starts at `init_lr * (1 - num_warmup_steps / num_train_steps)`), and 0 from num_train_steps on.

    Args:
      global_step: integer scalar tensor or variable, the number of updates done.
      init_lr: float, the peak learning rate.
      num_train_steps: int, decay length.
      num_warmup_steps: int, warmup length (0 or None: no warmup).

    Returns:
      float32 scalar tensor.
    """
    learning_rate = tf.constant(value=init_lr, shape=[], dtype=tf.float32)
    learning_rate = tf1.train.polynomial_decay(
        learning_rate, global_step, num_train_steps, end_learning_rate=0.0, power=1.0,
        cycle=False)
    if num_warmup_steps:
        global_steps_int = tf.cast(global_step, tf.int32)
        warmup_steps_int = tf.constant(num_warmup_steps, dtype=tf.int32)
        global_steps_float = tf.cast(global_steps_int, tf.float32)
        warmup_steps_float = tf.cast(warmup_steps_int, tf.float32)
        warmup_learning_rate = init_lr * (global_steps_float / warmup_steps_float)
        # A 0/1 mask rather than tf.cond, as the reference (it keeps the graph TPU friendly).
        is_warmup = tf.cast(global_steps_int < warmup_steps_int, tf.float32)
        learning_rate = (1.0 - is_warmup) * learning_rate + is_warmup * warmup_learning_rate
    return learning_rate


def get_learning_rate(graph=None):
    """Returns the learning-rate tensor create_optimizer built in `graph` (default graph) or None.

    Under a distribution strategy the model_fn, and so create_optimizer, runs once per replica; all
    replicas compute the same value and the first replica's tensor is returned.
    """
    graph = graph or tf1.get_default_graph()
    tensors = graph.get_collection(LEARNING_RATE_COLLECTION)
    return tensors[0] if tensors else None


class _DecoupledWeightDecayOptimizer(tf1.train.Optimizer):
    """Shared machinery of the BERT optimizers: slots by name, exclusions, masked updates.

    `apply_gradients` is overridden completely, as in the reference: the base-class slot machinery
    is not used, so the slots get the reference names `<var>/adam_m` and `<var>/adam_v` (created
    with `tf1.get_variable` at the current variable scope, float32 zeros, not trainable). It does
    not touch the global step: the caller increments it.
    """

    def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None, name="Optimizer"):
        super().__init__(False, name)
        self.learning_rate = learning_rate
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = exclude_from_weight_decay

    def apply_gradients(self, grads_and_vars, global_step=None, name=None, apply_mask=None):
        """Applies one update to every variable with a gradient.

        Args:
          grads_and_vars: iterable of (gradient, variable); pairs with a None gradient are skipped.
            Under a distribution strategy the gradients must already be averaged across replicas
            (create_optimizer does it).
          global_step: the global step; read by optimizers that need the update count (LAMB's bias
            correction), never incremented.
          name: name of the returned grouping op.
          apply_mask: optional boolean scalar tensor; where False, variables and slots keep their
            values (selected with tf.where, so the op runs the same either way).

        Returns:
          An op that runs all the assignments.
        """
        assignments = []
        for (grad, param) in grads_and_vars:
            if grad is None or param is None:
                continue
            param_name = self._get_variable_name(param.name)
            m = tf1.get_variable(
                name=param_name + "/adam_m", shape=param.shape.as_list(), dtype=tf.float32,
                trainable=False, initializer=tf1.zeros_initializer())
            v = tf1.get_variable(
                name=param_name + "/adam_v", shape=param.shape.as_list(), dtype=tf.float32,
                trainable=False, initializer=tf1.zeros_initializer())
            next_param, next_m, next_v = self._next_values(
                grad, param, m, v, param_name, global_step)
            if apply_mask is not None:
                next_param = tf.where(apply_mask, next_param, param)
                next_m = tf.where(apply_mask, next_m, m)
                next_v = tf.where(apply_mask, next_v, v)
            assignments.extend([param.assign(next_param), m.assign(next_m), v.assign(next_v)])
        return tf.group(*assignments, name=name)

    def _next_values(self, grad, param, m, v, param_name, global_step):
        """Returns (next_param, next_m, next_v) tensors for one variable."""
        raise NotImplementedError

    def _do_use_weight_decay(self, param_name):
        """Whether to use L2 weight decay for `param_name`."""
        if not self.weight_decay_rate:
            return False
        if self.exclude_from_weight_decay:
            for r in self.exclude_from_weight_decay:
                if re.search(r, param_name) is not None:
                    return False
        return True

    def _get_variable_name(self, param_name):
        """Gets the variable name from the tensor name (drops the ":0" suffix)."""
        m = re.match("^(.*):\\d+$", param_name)
        if m is not None:
            param_name = m.group(1)
        return param_name

    def _adam_moments(self, grad, m, v):
        # m and v are raw exponential averages; whether to bias-correct is the subclass' choice.
        next_m = tf.multiply(self.beta_1, m) + tf.multiply(1.0 - self.beta_1, grad)
        next_v = tf.multiply(self.beta_2, v) + tf.multiply(1.0 - self.beta_2, tf.square(grad))
        return next_m, next_v


class AdamWeightDecayOptimizer(_DecoupledWeightDecayOptimizer):
    """The reference optimizer: Adam with decoupled weight decay and no bias correction.

    update = m / (sqrt(v) + epsilon) [+ weight_decay_rate * w], w <- w - learning_rate * update.
    The missing bias correction is the reference's (maintainers: an oversight that warmup makes
    irrelevant); it is kept so results and checkpoints match. The decay is not part of the loss,
    so it does not interact with m and v ("Decoupled Weight Decay Regularization").
    """

    def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None, name="AdamWeightDecayOptimizer"):
        super().__init__(learning_rate, weight_decay_rate, beta_1, beta_2, epsilon,
                         exclude_from_weight_decay, name)

    def _next_values(self, grad, param, m, v, param_name, global_step):
        next_m, next_v = self._adam_moments(grad, m, v)
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self._do_use_weight_decay(param_name):
            update += self.weight_decay_rate * param
        update_with_lr = self.learning_rate * update
        next_param = param - update_with_lr
        return next_param, next_m, next_v


class LAMBOptimizer(_DecoupledWeightDecayOptimizer):
    """LAMB (You et al., "Large Batch Optimization for Deep Learning"), as in NVIDIA's BERT.

    m and v as Adam; update = m_hat / (sqrt(v_hat) + epsilon) [+ weight_decay_rate * w] with bias
    correction m_hat = m / (1 - beta_1^t), v_hat = v / (1 - beta_2^t), t = global_step + 1; then
    w <- w - learning_rate * ratio * update with the per-variable trust ratio
    ratio = ||w|| / ||update|| (1 when either norm is 0). Variables matching
    `exclude_from_weight_decay` get neither weight decay nor the trust ratio (ratio 1), as NVIDIA's
    `exclude_from_layer_adaptation` defaults to the same list. Moments use the `adam_m`/`adam_v`
    slots (see the module docstring).
    """

    def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, exclude_from_weight_decay=None, name="LAMBOptimizer"):
        super().__init__(learning_rate, weight_decay_rate, beta_1, beta_2, epsilon,
                         exclude_from_weight_decay, name)

    def _do_layer_adaptation(self, param_name):
        """Whether to scale the update of `param_name` by the trust ratio."""
        for r in self.exclude_from_weight_decay or []:
            if re.search(r, param_name) is not None:
                return False
        return True

    def _next_values(self, grad, param, m, v, param_name, global_step):
        if global_step is None:
            global_step = tf1.train.get_global_step()
        if global_step is None:
            raise ValueError("LAMBOptimizer needs the update count for its bias correction: pass "
                             "global_step to apply_gradients or create a global step first.")
        step = tf.cast(global_step, tf.float32) + 1.0
        next_m, next_v = self._adam_moments(grad, m, v)
        m_hat = next_m / (1.0 - tf.pow(self.beta_1, step))
        v_hat = next_v / (1.0 - tf.pow(self.beta_2, step))
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if self._do_use_weight_decay(param_name):
            update += self.weight_decay_rate * param
        ratio = 1.0
        if self._do_layer_adaptation(param_name):
            w_norm = tf.norm(param, ord=2)
            u_norm = tf.norm(update, ord=2)
            ratio = tf.where(w_norm > 0.0,
                             tf.where(u_norm > 0.0, w_norm / u_norm, 1.0), 1.0)
        next_param = param - ratio * self.learning_rate * update
        return next_param, next_m, next_v


class DynamicLossScale:
    """Loss scale for float16 training held in variables, so a resumed run keeps its scale.

    Creates `dynamic_loss_scale/scale` (float32) and `dynamic_loss_scale/good_steps` (int64), both
    non-trainable, at the current variable scope.
    """

    def __init__(self, initial_scale=INITIAL_LOSS_SCALE,
                 growth_interval=LOSS_SCALE_GROWTH_INTERVAL, factor=LOSS_SCALE_FACTOR,
                 min_scale=MIN_LOSS_SCALE):
        self.growth_interval = growth_interval
        self.factor = factor
        self.min_scale = min_scale
        with tf1.variable_scope("dynamic_loss_scale"):
            self.scale = tf1.get_variable(
                "scale", shape=[], dtype=tf.float32, trainable=False,
                initializer=tf1.constant_initializer(initial_scale))
            self.good_steps = tf1.get_variable(
                "good_steps", shape=[], dtype=tf.int64, trainable=False,
                initializer=tf1.zeros_initializer())

    def scale_loss(self, loss):
        """Returns `loss * scale` in the loss' dtype."""
        return loss * tf.cast(self.scale, loss.dtype)

    def unscale(self, grads):
        """Divides every gradient (None kept) by the scale, in float32."""
        inv_scale = 1.0 / self.scale
        return [None if g is None else tf.cast(_dense(g), tf.float32) * inv_scale for g in grads]

    def update(self, grads_finite, is_update_step):
        """Returns an op adjusting the scale after an update attempt.

        Args:
          grads_finite: boolean scalar tensor, the gradients of this update were all finite.
          is_update_step: boolean scalar tensor, an update was due now (False while accumulating:
            nothing changes).
        """
        good_steps = self.good_steps + 1
        grow = tf.logical_and(grads_finite, good_steps >= self.growth_interval)
        next_scale = tf.where(
            grads_finite,
            tf.where(grow, self.scale * self.factor, self.scale),
            tf.maximum(self.scale / self.factor, self.min_scale))
        next_good_steps = tf.where(
            tf.logical_and(grads_finite, tf.logical_not(grow)), good_steps,
            tf.zeros_like(good_steps))
        return tf.group(
            self.scale.assign(tf.where(is_update_step, next_scale, self.scale)),
            self.good_steps.assign(tf.where(is_update_step, next_good_steps, self.good_steps)))


def all_finite(grads):
    """Boolean scalar tensor: every value of every (non-None) gradient is finite."""
    checks = [tf.reduce_all(tf.math.is_finite(_dense(g))) for g in grads if g is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


def _validate_arguments(num_train_steps, num_warmup_steps, use_tpu, optimizer_name,
                        num_accumulation_steps, use_amp):
    if optimizer_name not in OPTIMIZER_NAMES:
        raise ValueError(f"Unknown optimizer {optimizer_name!r}: use 'adamw' (the reference) or "
                         "'lamb'.")
    if int(num_accumulation_steps) != num_accumulation_steps or num_accumulation_steps < 1:
        raise ValueError(f"num_accumulation_steps must be an integer >= 1, got "
                         f"{num_accumulation_steps!r}: use 1 to update after every batch.")
    if num_train_steps is None or num_train_steps < 1:
        raise ValueError(f"num_train_steps must be >= 1 for the learning-rate decay, got "
                         f"{num_train_steps!r}: check the number of training examples, epochs "
                         "and batch size.")
    if num_warmup_steps is not None and num_warmup_steps < 0:
        raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps!r}.")
    if use_amp and use_tpu:
        raise ValueError("use_amp is float16 with loss scaling for GPUs; TPUs train in bfloat16 "
                         "without it: drop --use_amp when --use_tpu is set.")


def _make_optimizer(optimizer_name, learning_rate):
    cls = {"adamw": AdamWeightDecayOptimizer, "lamb": LAMBOptimizer}[optimizer_name]
    return cls(learning_rate=learning_rate, weight_decay_rate=WEIGHT_DECAY_RATE, beta_1=BETA_1,
               beta_2=BETA_2, epsilon=EPSILON, exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY)


def _reference_train_op(optimizer, grads, tvars, global_step, use_tpu):
    """The reference's last lines: clip, (cross-shard) apply, increment the step."""
    if use_tpu:
        optimizer = tf1.tpu.CrossShardOptimizer(optimizer)
    (grads, _) = tf.clip_by_global_norm(grads, clip_norm=CLIP_NORM)
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step=global_step)
    # The optimizer does not increment the global step, so it is done here; a different
    # optimizer that does would need this increment removed. The control dependency makes the
    # learning rate of this update read the step before the increment.
    with tf.control_dependencies([train_op]):
        new_global_step = global_step + 1
    return tf.group(train_op, [global_step.assign(new_global_step)])


def _accumulate_gradients(grads, tvars, num_accumulation_steps):
    """Adds `grads` to per-variable accumulators; returns their mean and whether to update now.

    Returns:
      (mean_grads, apply_now, ops): mean_grads is the list of accumulated sums (this call
      included) divided by num_accumulation_steps (None where grads had None); apply_now a boolean
      scalar, True on every num_accumulation_steps-th call; ops reset the accumulators and counter
      after an update and store them otherwise.
    """
    micro_step = tf1.get_variable(
        "grad_accum_micro_step", shape=[], dtype=tf.int64, trainable=False,
        initializer=tf1.zeros_initializer())
    next_micro_step = micro_step + 1
    apply_now = next_micro_step >= num_accumulation_steps
    ops = [micro_step.assign(tf.where(apply_now, tf.zeros_like(next_micro_step),
                                      next_micro_step))]
    mean_grads = []
    for grad, param in zip(grads, tvars):
        if grad is None:
            mean_grads.append(None)
            continue
        accum = tf1.get_variable(
            name=_strip_tensor_suffix(param.name) + "/grad_accum", shape=param.shape.as_list(),
            dtype=tf.float32, trainable=False, initializer=tf1.zeros_initializer())
        total = accum + _dense(grad)
        ops.append(accum.assign(tf.where(apply_now, tf.zeros_like(total), total)))
        mean_grads.append(total / float(num_accumulation_steps))
    return mean_grads, apply_now, ops


def _mean_across_replicas(grads):
    """Averages gradients over the replicas of a distribution strategy (identity without one)."""
    if not tf.distribute.has_strategy():
        return grads
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads
    present = [i for i, g in enumerate(grads) if g is not None]
    # merge_call + batch_reduce rather than ReplicaContext.all_reduce: the latter wraps the values
    # in a custom gradient that looks variables up by name and fails on mirrored copies in TF 2.15.
    reduced = context.merge_call(_batch_mean, args=tuple(_dense(grads[i]) for i in present))
    grads = list(grads)
    for i, g in zip(present, reduced):
        grads[i] = g
    return grads


def _batch_mean(strategy, *per_replica_grads):
    """Cross-replica part of _mean_across_replicas: mean of each value, back on every replica."""
    pairs = [(g, g) for g in per_replica_grads]
    devices = strategy.extended.worker_devices
    if isinstance(strategy, tf.distribute.MirroredStrategy) and any(
            "CPU" in d.upper() for d in devices):
        # A MirroredStrategy built eagerly over CPU devices picks RING collectives, which hang in
        # a tf1 Session (seen with TF 2.15 on two logical CPUs); TF itself falls back to this
        # when the strategy is built in graph mode.
        return tf.distribute.ReductionToOneDevice().batch_reduce(
            tf.distribute.ReduceOp.MEAN, pairs)
    return strategy.extended.batch_reduce_to(tf.distribute.ReduceOp.MEAN, pairs)


def _enable_float16_rewrite_if_gpu(optimizer):
    if not tf.config.list_physical_devices("GPU"):
        tf1.logging.info("use_amp: no GPU visible, so the float16 graph rewrite is skipped and "
                         "training runs in float32 (dynamic loss scaling stays on, harmlessly).")
        return
    # The public switch that makes every new tf1 Session run grappler's auto_mixed_precision
    # pass. It also returns a loss-scaling wrapper of `optimizer`, unused here: our own
    # DynamicLossScale has to cooperate with gradient accumulation and tf.gradients.
    tf1.mixed_precision.enable_mixed_precision_graph_rewrite(optimizer, loss_scale=1)
    tf1.logging.info("use_amp: float16 graph rewrite enabled with dynamic loss scaling.")


def _dense(grad):
    return tf.convert_to_tensor(grad) if isinstance(grad, tf.IndexedSlices) else grad


def _strip_tensor_suffix(name):
    return re.sub(":\\d+$", "", name)
