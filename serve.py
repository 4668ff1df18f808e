"""A sentence-encoding and prediction service that bert-as-service's clients talk to unchanged.

Started like `bert-serving-start` (absl reads its single-dash flags):

    python serve.py -model_dir=$BERT_BASE_DIR -num_worker=2 -max_seq_len=25

then, from any Python program (`pip install bert-serving-client`, version 1.10):

    from bert_serving.client import BertClient
    bc = BertClient()
    vectors = bc.encode(["First do it", "then do it right"])  # float32 [2, 768]

The same flags as bert-serving-start where they make sense (defaults too: ports 5555/5556,
pooling layer -2, REDUCE_MEAN, max_seq_len 25); lists are comma-separated
(`-pooling_layer=-4,-3,-2,-1`, `-device_map=0,1`). Also serves fine-tuned classifiers: a
run_classifier.py checkpoint (`-task=classifier -tuned_model_dir=<output_dir>`) or an
export_model.py SavedModel (`-saved_model_dir=<export_dir>/saved_model`); `encode` then returns
the class probabilities and HTTP `POST /predict` labels with probabilities. `-http_port` adds the
HTTP/JSON API. It listens on 127.0.0.1 only unless `-bind_address=0.0.0.0`.

SIGTERM or Ctrl-C: stop accepting, finish what was accepted, exit 0. See serving/ for the design.
"""

import os
import shutil
import signal
import subprocess

from absl import flags, logging

import cli
from serving import config as serving_config
from serving import pooling
from serving.server import Server

FLAGS = flags.FLAGS


def define_flags():
    """Defines serve.py's flags: bert-serving-start's names and defaults, plus our own."""
    _define_model_flags()
    _define_bert_flags()
    _define_serving_flags()
    _define_reliability_flags()


def _define_model_flags():
    # bert-serving-start's File Paths group, plus classifier checkpoints and SavedModels.
    flags.DEFINE_string("model_dir", None,
                        "Directory of a pretrained BERT model: bert_config.json, vocab.txt and "
                        "the checkpoint (-ckpt_name).")
    flags.DEFINE_string("tuned_model_dir", None,
                        "Directory of fine-tuned weights (e.g. a run_classifier.py output_dir); "
                        "the checkpoint is read from here, config and vocab from -model_dir.")
    flags.DEFINE_string("ckpt_name", "bert_model.ckpt",
                        "Checkpoint prefix inside the model directory; if absent, the "
                        "directory's latest checkpoint is used.")
    flags.DEFINE_string("config_name", "bert_config.json", "Config file inside -model_dir.")
    flags.DEFINE_string("saved_model_dir", None,
                        "Serve an export_model.py SavedModel (<export_dir>/saved_model) instead "
                        "of a checkpoint: a classifier's probabilities or an encoder export's "
                        "pooled_output.")
    flags.DEFINE_enum("task", "encoder", list(serving_config.TASKS),
                      "encoder: sentence vectors. classifier: a run_classifier.py checkpoint "
                      "(-tuned_model_dir); encode() returns probabilities, POST /predict labels.")
    flags.DEFINE_list("labels", None,
                      "Classifier labels in id order; default: labels.txt in -tuned_model_dir.")


def _define_bert_flags():
    flags.DEFINE_string("max_seq_len", "25",
                        "Longest sequence in tokens ([CLS]/[SEP] included); longer ones are "
                        "truncated. NONE: no fixed length, each batch is padded only to its "
                        "longest sentence.")
    flags.DEFINE_bool("cased_tokenization", False,
                      "Keep case and accents (cased and multilingual-cased models).")
    flags.DEFINE_list("pooling_layer", ["-2"],
                      "Encoder layer(s) to pool, comma-separated; several are concatenated.")
    flags.DEFINE_enum("pooling_strategy", "REDUCE_MEAN", list(pooling.STRATEGIES),
                      "How token vectors become one vector: NONE (all token vectors), "
                      "REDUCE_MEAN, REDUCE_MAX, REDUCE_MEAN_MAX, FIRST_TOKEN/CLS_TOKEN, "
                      "LAST_TOKEN/SEP_TOKEN, CLS_POOLED.", case_sensitive=False)
    flags.DEFINE_bool("mask_cls_sep", False,
                      "Mask [CLS] and [SEP] (input mask 0): they are left out of REDUCE_* pools.")
    flags.DEFINE_bool("show_tokens_to_client", False,
                      "Send the tokenization with every reply (encode(show_tokens=True)).")


def _define_serving_flags():
    flags.DEFINE_integer("port", 5555, "Port receiving requests from clients.")
    flags.DEFINE_alias("port_in", "port")
    flags.DEFINE_alias("port_data", "port")
    flags.DEFINE_integer("port_out", 5556, "Port publishing results to clients.")
    flags.DEFINE_alias("port_result", "port_out")
    flags.DEFINE_integer("http_port", None, "Port of the HTTP/JSON API (off by default).")
    flags.DEFINE_string("cors", "*", "Access-Control-Allow-Origin of HTTP replies ('' for none).")
    flags.DEFINE_string("bind_address", "127.0.0.1",
                        "Address to listen on; 0.0.0.0 accepts other machines (mind your "
                        "firewall).")
    flags.DEFINE_integer("num_worker", 1, "Worker processes, each holding one loaded model.")
    flags.DEFINE_integer("max_batch_size", 256, "Most sentences one worker runs at once.")
    flags.DEFINE_integer("priority_batch_size", 16,
                         "Requests of at most this many texts are batched before bigger ones.")
    flags.DEFINE_bool("cpu", False, "Run on the CPU even where GPUs exist.")
    flags.DEFINE_list("device_map", [],
                      "GPU ids for the workers, comma-separated (reused round-robin if fewer "
                      "than -num_worker); default: every visible GPU in turn.")
    flags.DEFINE_bool("fp16", False, "Send float16 vectors (half the bytes).")
    flags.DEFINE_bool("xla", False, "Compile the model with XLA.")
    flags.DEFINE_bool("verbose", False, "Debug logging, TensorFlow's included.")
    flags.DEFINE_integer("num_threads", 0,
                         "TensorFlow threads per worker; 0 splits the machine's cores between "
                         "the workers.")


def _define_reliability_flags():
    flags.DEFINE_integer("max_queue_size", 65536,
                         "Most sentences waiting; beyond it a request gets 'server busy'.")
    flags.DEFINE_integer("max_request_bytes", 32 * 1024 * 1024, "Largest request body accepted.")
    flags.DEFINE_float("load_timeout", 300.0, "Seconds a worker may take to load the model.")
    flags.DEFINE_float("shutdown_timeout", 60.0,
                       "Seconds to finish accepted requests after SIGTERM; the rest then fail.")
    flags.DEFINE_integer("batch_retries", 1,
                         "Times a batch is re-run after its worker died before its requests "
                         "fail.")


def _max_seq_len(text):
    if str(text).strip().upper() == "NONE":
        return None
    try:
        return int(text)
    except ValueError:
        raise cli.UsageError("-max_seq_len=%s: give a number of tokens (e.g. 25) or NONE"
                             % text) from None


def _int_list(name, values):
    try:
        return [int(v) for v in values]
    except ValueError:
        raise cli.UsageError("-%s=%s: give comma-separated integers, e.g. -%s=%s"
                             % (name, ",".join(values), name,
                                "-4,-3" if name == "pooling_layer" else "0,1")) from None


def validated(config):
    """`config` once its values are checked (UsageError naming the flag otherwise)."""
    try:
        config.validate()
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    return config


def count_gpus():
    """GPUs the driver lists (`nvidia-smi -L`), without loading TensorFlow; 0 when none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def worker_devices(config):
    """One device per worker: -device_map round-robin, else every GPU in turn, else the CPU."""
    if config.cpu:
        return [-1] * config.num_worker
    if config.device_map:
        return [config.device_map[i % len(config.device_map)] for i in range(config.num_worker)]
    num_gpus = count_gpus()
    if not num_gpus:
        logging.info("no GPU found: the workers run on the CPU")
        return [-1] * config.num_worker
    return [i % num_gpus for i in range(config.num_worker)]


def main(argv):
    del argv
    logging.set_verbosity(logging.DEBUG if FLAGS.verbose else logging.INFO)
    config = serving_config.ServeConfig(
        model_dir=FLAGS.model_dir, tuned_model_dir=FLAGS.tuned_model_dir,
        ckpt_name=FLAGS.ckpt_name, config_name=FLAGS.config_name,
        saved_model_dir=FLAGS.saved_model_dir, task=FLAGS.task, labels=FLAGS.labels,
        max_seq_len=_max_seq_len(FLAGS.max_seq_len), do_lower_case=not FLAGS.cased_tokenization,
        pooling_layer=_int_list("pooling_layer", FLAGS.pooling_layer),
        pooling_strategy=FLAGS.pooling_strategy, mask_cls_sep=FLAGS.mask_cls_sep,
        show_tokens_to_client=FLAGS.show_tokens_to_client, num_worker=FLAGS.num_worker,
        max_batch_size=FLAGS.max_batch_size, priority_batch_size=FLAGS.priority_batch_size,
        port=FLAGS.port, port_out=FLAGS.port_out, http_port=FLAGS.http_port,
        bind_address=FLAGS.bind_address, cors=FLAGS.cors, cpu=FLAGS.cpu,
        device_map=_int_list("device_map", FLAGS.device_map), fp16=FLAGS.fp16, xla=FLAGS.xla,
        verbose=FLAGS.verbose, max_queue_size=FLAGS.max_queue_size,
        max_request_bytes=FLAGS.max_request_bytes, load_timeout=FLAGS.load_timeout,
        shutdown_timeout=FLAGS.shutdown_timeout, batch_retries=FLAGS.batch_retries,
        num_threads=FLAGS.num_threads)
    config = validated(config)
    try:
        model = serving_config.resolve_model(config)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    progress = cli.ProgressLogger(unit="sentences", name="served", every_seconds=60.0)
    server = Server(config, model, worker_devices(config), progress=progress)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _: server.request_shutdown(signal.Signals(s).name))
    try:
        status, message = server.run()
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    progress.done()
    if status:
        raise cli.UsageError(message)


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
