"""The training layer: the parts of a model_fn that every task shares.

A task's `model_fn` reads its features, calls its `create_model`, then:

* `init_from_checkpoint(init_checkpoint, use_tpu)`: warm start from a released or earlier checkpoint
  (inside a scaffold on TPU), logging which variables were initialised;
* `create_train_op(loss, params, lr, num_train_steps, num_warmup_steps, use_tpu)`: the reference
  optimizer and schedule, or LAMB / gradient accumulation / loss scaling as the runtime options say;
* `make_spec(mode, params, ...)`: a TPUEstimatorSpec or an EstimatorSpec, whichever the estimator
  that `runtime.build_runner` built needs.

`decode_record` parses the TFRecords every task writes; `streaming_concat` / `streaming_last`
collect values across eval batches for metrics computed at the end (ranks, decoding). Estimator
construction and the run loop are in `runtime.py`; loaded models for inference and export in
`inference.py`.
"""

import tensorflow as tf

import cli
import modeling
import optimization

tf1 = tf.compat.v1

# Graph collections through which make_spec / create_train_op hand tensors to the run loop's
# progress hook (runtime._TrainProgressHook).
LOSS_COLLECTION = "bert_runtime_train_loss"
LR_COLLECTION = "bert_runtime_learning_rate"


def decode_record(record, name_to_features):
    """Parses one serialized tf.train.Example and casts int64 features to int32 (TPUs need int32).

    Args:
      record: scalar string tensor, a serialized tf.train.Example.
      name_to_features: dict name -> tf.io.FixedLenFeature / VarLenFeature.

    Returns:
      dict name -> tensor, int64 features cast to int32.
    """
    example = tf.io.parse_single_example(record, name_to_features)
    for name in list(example.keys()):
        tensor = example[name]
        if tensor.dtype == tf.int64:
            example[name] = tf.cast(tensor, tf.int32)
    return example




def tfrecord_input_fn(input_file, name_to_features, is_training, drop_remainder):
    """An Estimator `input_fn(params)` over one TFRecord file of a fine-tuning task.

    Training repeats the file and shuffles in a window of 100, as the reference does (the examples
    were shuffled before conversion); evaluation and prediction read it once, in order.

    Args:
      input_file: path of the TFRecord file.
      name_to_features: dict name -> tf.io.FixedLenFeature of its tf.train.Examples.
      is_training: repeat and shuffle.
      drop_remainder: drop the last partial batch (TPUs need static shapes).

    Returns:
      `input_fn(params)` -> dataset of feature dicts batched by params["batch_size"], int64
      features cast to int32.
    """

    def input_fn(params):
        d = tf.data.TFRecordDataset(input_file)
        if is_training:
            d = d.repeat()
            d = d.shuffle(buffer_size=100)
        d = d.map(lambda record: decode_record(record, name_to_features),
                  num_parallel_calls=tf.data.AUTOTUNE)
        d = d.batch(params["batch_size"], drop_remainder=drop_remainder)
        return d.prefetch(tf.data.AUTOTUNE)

    return input_fn


def init_from_checkpoint(init_checkpoint, use_tpu):
    """Warm-starts the trainable variables that exist in `init_checkpoint` and logs them.

    Call inside model_fn after building the model. On TPU, init_from_checkpoint must run inside the
    Scaffold function, so the work is wrapped in a scaffold_fn for TPUEstimatorSpec.

    Args:
      init_checkpoint: checkpoint prefix (or a directory with a checkpoint), or None/"" for none.
      use_tpu: whether the model runs on a TPU.

    Returns:
      scaffold_fn (TPU with a checkpoint) or None.
    """
    tvars = tf1.trainable_variables()
    initialized_variable_names = {}
    scaffold_fn = None
    if init_checkpoint:
        init_checkpoint = cli.resolve_checkpoint(init_checkpoint)
        assignment_map, initialized_variable_names = modeling.get_assignment_map_from_checkpoint(
            tvars, init_checkpoint
        )
        if use_tpu:

            def tpu_scaffold():
                tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)
                return tf1.train.Scaffold()

            scaffold_fn = tpu_scaffold
        else:
            tf1.train.init_from_checkpoint(init_checkpoint, assignment_map)

    tf1.logging.info("**** Trainable Variables ****")
    for var in tvars:
        init_string = ", *INIT_FROM_CKPT*" if var.name in initialized_variable_names else ""
        tf1.logging.info("  name = %s, shape = %s%s", var.name, var.shape, init_string)
    if init_checkpoint:
        count = sum(1 for var in tvars if var.name in initialized_variable_names)
        tf1.logging.info(
            "Initialized %d of %d variables from %s", count, len(tvars), init_checkpoint
        )
    return scaffold_fn


def create_train_op(loss, params, init_lr, num_train_steps, num_warmup_steps, use_tpu):
    """Builds the train op with optimization.create_optimizer and the runtime options.

    Args:
      loss: scalar float loss tensor.
      params: model_fn's params; its "runtime_options" (set by runtime.build_runner) choose the
        optimizer, gradient accumulation and loss scaling (defaults: adamw, 1, off).
      init_lr: peak learning rate.
      num_train_steps: decay horizon (global steps).
      num_warmup_steps: linear warmup steps.
      use_tpu: whether the model runs on a TPU (CrossShardOptimizer, no summaries).

    Returns:
      The train op (it increments the global step once per optimizer update).
    """
    options = params.get("runtime_options")
    collection_before = len(tf1.get_collection(optimization.LEARNING_RATE_COLLECTION))
    train_op = optimization.create_optimizer(
        loss,
        init_lr,
        num_train_steps,
        num_warmup_steps,
        use_tpu,
        optimizer_name=getattr(options, "optimizer", "adamw"),
        num_accumulation_steps=getattr(options, "num_accumulation_steps", 1),
        use_amp=getattr(options, "use_amp", False),
    )
    # create_optimizer publishes its learning-rate tensor; the progress hook logs it.
    learning_rate = tf1.get_collection(optimization.LEARNING_RATE_COLLECTION)[collection_before]
    tf1.add_to_collection(LR_COLLECTION, learning_rate)
    if not use_tpu and _is_first_replica():
        tf1.summary.scalar("learning_rate", learning_rate)
    return train_op


def _is_first_replica():
    context = tf.distribute.get_replica_context()
    if context is None:
        return True
    replica_id = tf.get_static_value(context.replica_id_in_sync_group)
    return replica_id is None or int(replica_id) == 0


def make_spec(
    mode,
    params,
    loss=None,
    train_op=None,
    eval_metrics=None,
    predictions=None,
    scaffold_fn=None,
    export_outputs=None,
):
    """Returns a TPUEstimatorSpec or an EstimatorSpec, whichever the running estimator needs.

    Args:
      mode: tf.estimator.ModeKeys value.
      params: model_fn's params (params["tpu_estimator"] decides the spec type).
      loss: scalar loss (TRAIN, EVAL).
      train_op: from create_train_op (TRAIN).
      eval_metrics: (metric_fn, tensors) as in the TPU API; tensors is a list or a dict (EVAL).
      predictions: dict of tensors (PREDICT).
      scaffold_fn: from init_from_checkpoint.
      export_outputs: optional dict for SavedModel signatures.
    """
    if mode == tf.estimator.ModeKeys.TRAIN and loss is not None:
        tf1.add_to_collection(LOSS_COLLECTION, loss)
    if params.get("tpu_estimator"):
        return tf1.estimator.tpu.TPUEstimatorSpec(
            mode=mode,
            loss=loss,
            train_op=train_op,
            eval_metrics=eval_metrics,
            predictions=predictions,
            scaffold_fn=scaffold_fn,
            export_outputs=export_outputs,
        )
    eval_metric_ops = None
    if eval_metrics is not None:
        metric_fn, tensors = eval_metrics
        eval_metric_ops = metric_fn(**tensors) if isinstance(tensors, dict) else metric_fn(*tensors)
    scaffold = scaffold_fn() if scaffold_fn is not None else None
    return tf.estimator.EstimatorSpec(
        mode=mode,
        loss=loss,
        train_op=train_op,
        eval_metric_ops=eval_metric_ops,
        predictions=predictions,
        export_outputs=export_outputs,
        scaffold=scaffold,
    )


def streaming_concat(name, values):
    """A local metric variable that grows by `values` (along axis 0) at every update.

    For metrics that need every value at the end (ranks, decoding): the value op reads the
    variable, never the input, because it runs after the last batch.

    Returns:
      (variable, update_op).
    """
    inner = values.shape.as_list()[1:]
    variable = tf1.Variable(tf.zeros([0] + inner, values.dtype), trainable=False,
                            validate_shape=False, name=name, shape=tf.TensorShape(None),
                            collections=[tf1.GraphKeys.LOCAL_VARIABLES,
                                         tf1.GraphKeys.METRIC_VARIABLES])
    update = tf1.assign(variable, tf.concat([variable, values], axis=0), validate_shape=False)
    return variable, update


def streaming_last(name, values):
    """A local metric variable set to `values` at every update; returns (variable, update_op)."""
    inner = values.shape.as_list()[1:]
    variable = tf1.Variable(tf.zeros([0] + inner, values.dtype), trainable=False,
                            validate_shape=False, name=name, shape=tf.TensorShape(None),
                            collections=[tf1.GraphKeys.LOCAL_VARIABLES,
                                         tf1.GraphKeys.METRIC_VARIABLES])
    return variable, tf1.assign(variable, values, validate_shape=False)
