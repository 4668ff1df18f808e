"""`ServeConfig`: every setting of a server, and `resolve_model`: which model files it serves.

Everything is checked here, before a socket is bound or a worker started, so a wrong path or value
costs a second and one message naming the setting (serve.py turns the ValueError into `ERROR:`).
No TensorFlow: the frontend only needs the vocab, the config JSON and the labels.

Three kinds of model:
- `encoder`: a BERT checkpoint (`model_dir` with bert_config.json, vocab.txt, bert_model.ckpt, as
  bert-as-service; `tuned_model_dir` for fine-tuned weights): sentence vectors.
- `classifier`: a run_classifier.py checkpoint (`tuned_model_dir` = its output_dir with
  labels.txt): labels and probabilities.
- `saved_model`: an export_model.py SavedModel (`saved_model_dir`): a classifier's probabilities,
  an encoder export's pooled_output, or, for any other task's export (NER, SQuAD, ...), the
  answers of the predictor class it names (HTTP /predict only).
"""

import dataclasses
import json
import os

from serving import pooling

TASKS = ("encoder", "classifier")


@dataclasses.dataclass
class ServeConfig:
    """The settings of a server; names and defaults follow bert-serving-start where it has them."""

    model_dir: str = None
    tuned_model_dir: str = None
    ckpt_name: str = "bert_model.ckpt"
    config_name: str = "bert_config.json"
    saved_model_dir: str = None
    task: str = "encoder"
    labels: list = None
    max_seq_len: int = 25  # None = the longest sentence of each batch (bert-as-service's NONE)
    do_lower_case: bool = True
    pooling_layer: list = dataclasses.field(default_factory=lambda: [-2])
    pooling_strategy: str = "REDUCE_MEAN"
    mask_cls_sep: bool = False
    show_tokens_to_client: bool = False
    num_worker: int = 1
    max_batch_size: int = 256
    priority_batch_size: int = 16
    port: int = 5555
    port_out: int = 5556
    http_port: int = None
    bind_address: str = "127.0.0.1"
    cors: str = "*"
    cpu: bool = False
    device_map: list = dataclasses.field(default_factory=list)
    fp16: bool = False
    xla: bool = False
    verbose: bool = False
    max_queue_size: int = 65536
    max_request_bytes: int = 32 * 1024 * 1024
    load_timeout: float = 300.0
    shutdown_timeout: float = 60.0
    batch_retries: int = 1
    num_threads: int = 0  # per worker; 0 = the machine's cores split between the workers

    def validate(self):
        """Checks values that do not depend on files.

        Raises:
          ValueError: naming the setting (as a flag) and the fix.
        """
        self.pooling_strategy = pooling.canonical(self.pooling_strategy)
        if self.task not in TASKS:
            raise ValueError("-task=%s: use one of %s" % (self.task, ", ".join(TASKS)))
        if self.max_seq_len is not None and self.max_seq_len < 3:
            raise ValueError("-max_seq_len=%d leaves no room for text; use at least 3 or NONE"
                             % self.max_seq_len)
        _at_least(1, num_worker=self.num_worker, max_batch_size=self.max_batch_size,
                  max_queue_size=self.max_queue_size, max_request_bytes=self.max_request_bytes)
        _at_least(0, priority_batch_size=self.priority_batch_size,
                  batch_retries=self.batch_retries, num_threads=self.num_threads)
        if self.load_timeout <= 0 or self.shutdown_timeout < 0:
            raise ValueError("-load_timeout must be > 0 and -shutdown_timeout >= 0 (seconds)")
        ports = [("port", self.port), ("port_out", self.port_out)]
        if self.http_port:
            ports.append(("http_port", self.http_port))
        for name, port in ports:
            if not 1 <= port <= 65535:
                raise ValueError("-%s=%d is not a TCP port; use 1..65535" % (name, port))
        if len({port for _, port in ports}) != len(ports):
            raise ValueError("-port, -port_out and -http_port must differ (%s)"
                             % ", ".join("%s=%d" % p for p in ports))
        if any(d < 0 for d in self.device_map):
            raise ValueError("-device_map=%s: GPU ids start at 0" % self.device_map)

    def status_fields(self):
        """The settings as bert-as-service reports them in SHOW_CONFIG (JSON-ready)."""
        fields = dataclasses.asdict(self)
        fields["cased_tokenization"] = not self.do_lower_case
        return fields


def _at_least(minimum, **values):
    for name, value in values.items():
        if value < minimum:
            raise ValueError("-%s=%d must be at least %d" % (name, value, minimum))


@dataclasses.dataclass
class ModelSpec:
    """The files and shape of the model a server runs (what workers load, what the frontend
    tokenizes with)."""

    kind: str  # "encoder", "classifier" or "saved_model"
    vocab_file: str
    do_lower_case: bool
    hidden_size: int
    max_length: int  # truncation length, [CLS]/[SEP] included
    bert_config_file: str = None
    checkpoint: str = None
    saved_model_dir: str = None
    num_hidden_layers: int = 0
    max_position_embeddings: int = 0
    labels: list = None
    fixed_length: int = None  # SavedModels take inputs padded to exactly this length
    export_task: str = None  # the SavedModel's task: "classifier" or "encoder"

    @property
    def is_classifier(self):
        return self.kind == "classifier" or self.export_task == "classifier"

    @property
    def is_task_predictor(self):
        """An export of another task (NER, SQuAD, ...): its own predictor reads raw inputs."""
        return self.kind == "saved_model" and self.export_task not in TASKS

    def to_dict(self):
        return dataclasses.asdict(self)


def resolve_model(config):
    """Finds and checks the model files a config names.

    Returns:
      ModelSpec.

    Raises:
      ValueError: a missing file or directory, a bad config, or values that do not fit the model.
    """
    if config.saved_model_dir:
        return _saved_model_spec(config)
    if not config.model_dir:
        raise ValueError("-model_dir is required: the folder with bert_config.json, vocab.txt and "
                         "bert_model.ckpt (or pass -saved_model_dir=<export_dir>/saved_model)")
    _require_dir("model_dir", config.model_dir)
    if config.tuned_model_dir:
        _require_dir("tuned_model_dir", config.tuned_model_dir)
    bert_config_file = os.path.join(config.model_dir, config.config_name)
    vocab_file = os.path.join(config.model_dir, "vocab.txt")
    for flag, path in (("config_name", bert_config_file), ("model_dir", vocab_file)):
        if not os.path.isfile(path):
            raise ValueError("%s does not exist; check -%s" % (path, flag))
    bert_config = _read_json(bert_config_file, "-config_name")
    checkpoint = find_checkpoint(config.tuned_model_dir or config.model_dir, config.ckpt_name)
    spec = ModelSpec(
        kind=config.task, vocab_file=vocab_file, do_lower_case=config.do_lower_case,
        hidden_size=int(bert_config["hidden_size"]), max_length=0,
        bert_config_file=bert_config_file, checkpoint=checkpoint,
        num_hidden_layers=int(bert_config["num_hidden_layers"]),
        max_position_embeddings=int(bert_config.get("max_position_embeddings", 512)))
    spec.max_length = _max_length(config.max_seq_len, spec.max_position_embeddings)
    _check_layers(config.pooling_layer, spec.num_hidden_layers)
    if config.task == "classifier":
        spec.labels = config.labels or _labels_beside(config.tuned_model_dir or config.model_dir)
    return spec


def _max_length(max_seq_len, max_position_embeddings):
    if max_seq_len is None:
        return max_position_embeddings
    if max_seq_len > max_position_embeddings:
        raise ValueError("-max_seq_len=%d is longer than the model's max_position_embeddings=%d; "
                         "use at most %d or NONE"
                         % (max_seq_len, max_position_embeddings, max_position_embeddings))
    return max_seq_len


def _check_layers(layers, num_layers):
    if not layers:
        raise ValueError("-pooling_layer is empty; give at least one layer index, e.g. -2")
    for layer in layers:
        if not -num_layers <= layer < num_layers:
            raise ValueError("-pooling_layer=%s: layer %d does not exist in a %d-layer model; use "
                             "%d..%d (negative counts from the top)"
                             % (",".join(map(str, layers)), layer, num_layers, -num_layers,
                                num_layers - 1))


def _saved_model_spec(config):
    directory = config.saved_model_dir
    _require_dir("saved_model_dir", directory)
    export_config_file = os.path.join(directory, "assets", "export_config.json")
    vocab_file = os.path.join(directory, "assets", "vocab.txt")
    if not os.path.isfile(export_config_file) or not os.path.isfile(vocab_file):
        raise ValueError("-saved_model_dir=%s is not a SavedModel written by export_model.py (no "
                         "assets/export_config.json or assets/vocab.txt); pass "
                         "<export_dir>/saved_model" % directory)
    export = _read_json(export_config_file, "-saved_model_dir")
    length = int(export["max_seq_length"])
    return ModelSpec(
        kind="saved_model", vocab_file=vocab_file, do_lower_case=bool(export["do_lower_case"]),
        hidden_size=int(export["hidden_size"]), max_length=length, saved_model_dir=directory,
        labels=export.get("labels"), fixed_length=length, export_task=export["task"])


def find_checkpoint(directory, ckpt_name):
    """`<directory>/<ckpt_name>` if it exists, else the directory's latest checkpoint.

    The fallback lets `-tuned_model_dir` point at a run_classifier.py output_dir whose checkpoints
    are named model.ckpt-<step> (read from its `checkpoint` file, as TensorFlow does).

    Raises:
      ValueError: neither exists.
    """
    prefix = os.path.join(directory, ckpt_name)
    if os.path.isfile(prefix + ".index"):
        return prefix
    state = os.path.join(directory, "checkpoint")
    if os.path.isfile(state):
        with open(state, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model_checkpoint_path":
                    path = value.strip().strip('"')
                    path = path if os.path.isabs(path) else os.path.join(directory, path)
                    if os.path.isfile(path + ".index"):
                        return path
    raise ValueError("no checkpoint %s.index (and no usable `checkpoint` file) in %s; pass "
                     "-ckpt_name=<prefix without .index>" % (ckpt_name, directory))


def _labels_beside(directory):
    path = os.path.join(directory, "labels.txt")
    if not os.path.isfile(path):
        raise ValueError("-task=classifier needs the label list: no labels.txt in %s (written by "
                         "run_classifier.py); pass -labels=<label0>,<label1>,... in id order"
                         % directory)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _require_dir(flag, path):
    if not os.path.isdir(path):
        raise ValueError("-%s=%s is not a directory" % (flag, path))


def _read_json(path, flag):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError("cannot read %s (%s); check %s" % (path, e, flag)) from None
