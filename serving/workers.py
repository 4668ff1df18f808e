"""The worker process: one loaded model, batches in, outputs out (`python -m serving.workers`).

The frontend starts each worker as its own process (`python -m serving.workers '<JSON settings>'`)
with the device it may use already set in CUDA_VISIBLE_DEVICES, in a session of its own (a Ctrl-C
in the terminal reaches only the frontend, which then stops the workers in order). A worker:

1. connects a DEALER socket to the frontend's local ipc:// address under its identity,
2. loads its model (an error is sent as FATAL with the message, then the process exits 1),
3. runs one small warm-up batch and says READY, then runs every BATCH it gets (already tokenized
   and padded: the frontend does the tokenizing, so the model never waits for it) and sends back
   RESULT (arrays) or FAILED (the error text, for that batch only),
4. exits on STOP, or within a second of its frontend's end (its parent pid changed), even while
   the model is still loading.

Models: `EncoderRunner` (a BERT checkpoint through the encoder API, pooled as bert-as-service
does), `SavedModelRunner` (an encoder or classifier SavedModel through `inference.Predictor`),
`ClassifierRunner` (a run_classifier.py checkpoint through `inference.InferenceModel`) and
`TaskRunner` (any other task's export through the predictor it names: raw INPUTS in, JSON
ANSWERS out).
"""

import json
import logging
import os
import sys
import threading
import time

import numpy as np
import zmq

from serving import pooling, protocol

# How often (ms) an idle worker checks that its frontend is still alive.
_PARENT_CHECK_MS = 1000


class _Row:
    """One unpadded row of a batch, in the shape the encoder API reads (ids, mask, type ids)."""

    __slots__ = ("input_ids", "input_mask", "input_type_ids")

    def __init__(self, input_ids, input_mask, input_type_ids):
        self.input_ids = input_ids
        self.input_mask = input_mask
        self.input_type_ids = input_type_ids

    def __len__(self):
        return len(self.input_ids)


def _rows(arrays):
    lengths = arrays["lengths"]
    return [_Row(arrays["input_ids"][i, :n], arrays["input_mask"][i, :n],
                 arrays["input_type_ids"][i, :n]) for i, n in enumerate(lengths)]


class EncoderRunner:
    """A BERT checkpoint loaded once through `BertEncoder`; pools with a bert-as-service strategy.

    Args:
      spec: dict of `config.ModelSpec` fields.
      strategy: pooling strategy name.
      layers: pooling layer indexes.
      batch_size: the most rows a batch can have (one session run per batch).
      num_threads: TensorFlow intra/inter-op threads (0 = TensorFlow's choice).
      use_xla: compile the encoder with XLA.
      fp16: send float16 vectors.
    """

    def __init__(self, spec, strategy, layers, batch_size, num_threads, use_xla, fp16):
        from tasks.features import BertEncoder
        self.strategy = pooling.canonical(strategy)
        self.fetch = pooling.fetched_layers(self.strategy, layers, spec["num_hidden_layers"])
        self.dtype = np.float16 if fp16 else np.float32
        self.encoder = BertEncoder(
            spec["bert_config_file"], spec["vocab_file"], spec["checkpoint"],
            do_lower_case=spec["do_lower_case"], max_seq_length=spec["max_length"],
            layer_indexes=self.fetch, batch_size=batch_size, num_threads=num_threads,
            use_xla=use_xla)
        self.pooler = None
        if self.strategy == "CLS_POOLED":
            self.pooler = _read_pooler(spec["checkpoint"])

    def run(self, arrays):
        """Encodes one padded batch.

        Args:
          arrays: input_ids, input_mask, input_type_ids int32 [batch, length]; lengths [batch].

        Returns:
          {"encodes": [batch, dim]} ([batch, length, dim] for NONE).
        """
        rows = _rows(arrays)
        lengths = np.asarray(arrays["lengths"])
        length = arrays["input_ids"].shape[1]
        out = None
        for positions, states, mask in self.encoder.run_batches(rows, self.fetch):
            pooled = pooling.pool(self.strategy, states, mask, lengths[positions], self.pooler)
            if out is None:
                shape = [len(rows), length, pooled.shape[-1]] if pooled.ndim == 3 \
                    else [len(rows), pooled.shape[-1]]
                out = np.zeros(shape, dtype=self.dtype)
            if pooled.ndim == 3:
                # XLA pads lengths up to a multiple of 16: keep the batch's own length.
                out[positions, :min(length, pooled.shape[1])] = pooled[:, :length]
            else:
                out[positions] = pooled
        return {"encodes": out}

    def close(self):
        self.encoder.close()


def _read_pooler(checkpoint):
    """The pooler's weights (kernel [hidden, hidden], bias [hidden]) for CLS_POOLED."""
    import tensorflow as tf
    names = dict(tf.train.list_variables(checkpoint))
    kernel, bias = "bert/pooler/dense/kernel", "bert/pooler/dense/bias"
    if kernel not in names or bias not in names:
        raise ValueError("-pooling_strategy=CLS_POOLED needs the pooler (%s) but %s has none; "
                         "use another strategy, e.g. FIRST_TOKEN" % (kernel, checkpoint))
    return tf.train.load_variable(checkpoint, kernel), tf.train.load_variable(checkpoint, bias)


class SavedModelRunner:
    """An export_model.py SavedModel through `Predictor` (inputs padded to its fixed length)."""

    def __init__(self, spec, batch_size, fp16):
        from inference import Predictor
        self.predictor = Predictor(spec["saved_model_dir"], batch_size=batch_size)
        self.task = spec["export_task"]
        self.dtype = np.float16 if fp16 else np.float32

    def run(self, arrays):
        outputs = self.predictor.run_features({
            "input_ids": np.asarray(arrays["input_ids"]),
            "input_mask": np.asarray(arrays["input_mask"]),
            "segment_ids": np.asarray(arrays["input_type_ids"])})
        if self.task == "classifier":
            return {"probabilities": outputs["probabilities"], "logits": outputs["logits"]}
        return {"encodes": outputs["pooled_output"].astype(self.dtype)}

    def close(self):
        pass


class ClassifierRunner:
    """A run_classifier.py checkpoint: the classifier head's graph, restored once.

    Built through the one inference path (`inference.InferenceModel` with the classifier's
    registered head), with inputs of any length, so batches are padded to their longest text.
    """

    def __init__(self, spec, num_threads, use_xla):
        import inference
        import modeling
        from tasks import classifier
        self.model = inference.InferenceModel(
            modeling.BertConfig.from_json_file(spec["bert_config_file"]), spec["checkpoint"],
            classifier.CLASSIFIER_HEAD.build, seq_length=None, num_labels=len(spec["labels"]),
            num_threads=num_threads, use_xla=use_xla)

    def run(self, arrays):
        outputs = self.model.run({"input_ids": np.asarray(arrays["input_ids"]),
                                  "input_mask": np.asarray(arrays["input_mask"]),
                                  "segment_ids": np.asarray(arrays["input_type_ids"])})
        return {"probabilities": outputs["probabilities"], "logits": outputs["logits"]}

    def close(self):
        self.model.close()


class TaskRunner:
    """Another task's export (NER, SQuAD, ...) through the predictor class it names.

    `inference.load_predictor` picks the task's own predictor, which tokenizes (windows, doc
    stride) and post-processes by itself; the server queues and batches the raw inputs.
    """

    def __init__(self, spec, batch_size):
        import inference
        self.predictor = inference.load_predictor(spec["saved_model_dir"], batch_size=batch_size)

    def run_inputs(self, inputs):
        """Raw inputs (a list inside means a tuple, e.g. (question, context)) -> JSON answers."""
        answers = self.predictor.predict([tuple(x) if isinstance(x, list) else x
                                          for x in inputs])
        return json.loads(json.dumps(list(answers), default=_json_default))

    def close(self):
        pass


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError("%s is not JSON serializable" % type(value).__name__)


def build_runner(settings):
    """The runner for a worker's settings (see `serve`)."""
    spec = settings["spec"]
    if spec["kind"] == "saved_model" and spec["export_task"] not in ("encoder", "classifier"):
        return TaskRunner(spec, settings["max_batch_size"])
    if spec["kind"] == "saved_model":
        return SavedModelRunner(spec, settings["max_batch_size"], settings["fp16"])
    if spec["kind"] == "classifier":
        return ClassifierRunner(spec, settings["num_threads"], settings["xla"])
    return EncoderRunner(spec, settings["pooling_strategy"], settings["pooling_layer"],
                         settings["max_batch_size"], settings["num_threads"], settings["xla"],
                         settings["fp16"])


def _warm_up(runner, spec):
    """Runs one small batch, so the first request does not pay TensorFlow's first-run setup."""
    length = spec.get("fixed_length") or min(8, spec["max_length"])
    ids = np.zeros([1, length], dtype=np.int32)
    runner.run({"input_ids": ids, "input_mask": np.ones_like(ids), "input_type_ids": ids,
                "lengths": np.array([length], dtype=np.int32)})


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def serve(settings):
    """Runs one worker until STOP or until its frontend is gone; returns the exit status.

    Args:
      settings: dict with identity, address, parent_pid, spec (ModelSpec fields),
        pooling_strategy, pooling_layer, max_batch_size, num_threads, xla, fp16.
    """
    _exit_with_parent(settings["parent_pid"])
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, settings["identity"].encode("ascii"))
    sock.setsockopt(zmq.LINGER, 5000)
    sock.connect(settings["address"])
    try:
        started = time.time()
        try:
            runner = build_runner(settings)
        except Exception as e:  # any load error ends this worker, with its message to the frontend
            logging.exception("cannot load the model")
            sock.send_multipart([protocol.W_FATAL, _one_line(e).encode("utf-8")])
            return 1
        if not isinstance(runner, TaskRunner):  # its inputs mean something to the task only
            _warm_up(runner, settings["spec"])
        info = {"pid": os.getpid(), "load_seconds": round(time.time() - started, 2),
                "tensorflow_version": _tensorflow_version()}
        sock.send_multipart([protocol.W_READY, json.dumps(info).encode("utf-8")])
        _loop(sock, runner, settings["parent_pid"])
        runner.close()
        return 0
    finally:
        sock.close()
        context.term()


def _exit_with_parent(parent_pid):
    """Ends this process within a second of its frontend's end, even while the model loads."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        logging.warning("the frontend (pid %d) is gone; exiting", parent_pid)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _loop(sock, runner, parent_pid):
    while True:
        if not sock.poll(_PARENT_CHECK_MS):
            if os.getppid() != parent_pid:
                logging.warning("the frontend (pid %d) is gone; exiting", parent_pid)
                return
            continue
        frames = sock.recv_multipart()
        if frames[0] == protocol.W_STOP:
            return
        if frames[0] not in (protocol.W_BATCH, protocol.W_INPUTS) or len(frames) < 3:
            logging.error("unexpected message %r from the frontend; ignored", frames[0][:32])
            continue
        batch_id = frames[1]
        started = time.perf_counter()
        try:
            if frames[0] == protocol.W_INPUTS:
                answers = runner.run_inputs(json.loads(frames[2].decode("utf-8")))
                reply = [json.dumps(answers).encode("utf-8")]
            else:
                reply = protocol.pack_arrays(runner.run(protocol.unpack_arrays(frames[2:])))
        except Exception as e:  # a failed batch fails its requests, not the worker
            logging.exception("batch %s failed", batch_id)
            sock.send_multipart([protocol.W_FAILED, batch_id, _one_line(e).encode("utf-8")])
            continue
        # The model time goes back with the result: the frontend sizes batches by it.
        seconds = b"%.6f" % (time.perf_counter() - started)
        command = protocol.W_ANSWERS if frames[0] == protocol.W_INPUTS else protocol.W_RESULT
        sock.send_multipart([command, batch_id, seconds] + reply)


def _tensorflow_version():
    module = sys.modules.get("tensorflow")
    return getattr(module, "__version__", None)


def main(argv):
    settings = json.loads(argv[1])
    logging.basicConfig(
        level=logging.DEBUG if settings.get("verbose") else logging.INFO,
        format="%%(asctime)s worker-%s %%(levelname)s %%(message)s" % settings["identity"])
    if not settings.get("verbose"):
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
