"""Converts BERT checkpoints between Hugging Face folders and the released TF checkpoint layout.

--from_hf: a Hugging Face folder (config.json, vocab.txt, model.safetensors or pytorch_model.bin,
possibly sharded) becomes `bert_model.ckpt.{index,data-00000-of-00001}`, `bert_config.json` and
`vocab.txt` with the variable names and shapes of Google's released checkpoints, so every script
here can start from it:

    python convert_checkpoint.py --from_hf=/models/all-MiniLM-L6-v2 --output_dir=/models/minilm_tf
    python extract_features.py --init_checkpoint=/models/minilm_tf/bert_model.ckpt \
        --bert_config_file=/models/minilm_tf/bert_config.json \
        --vocab_file=/models/minilm_tf/vocab.txt ...

--to_hf: one of our checkpoints (pretrained, or fine-tuned: optimizer slots and task heads are
skipped and listed) becomes a folder that `transformers.BertModel.from_pretrained` loads:

    python convert_checkpoint.py --to_hf --init_checkpoint=/tmp/out/model.ckpt-1000 \
        --bert_config_file=/models/minilm_tf/bert_config.json \
        --vocab_file=/models/minilm_tf/vocab.txt --output_dir=/models/minilm_hf

What changes on the way: Linear weights are [out, in] in PyTorch and [in, out] as
`tf.layers.dense` kernels, so they are transposed; LayerNorm `weight`/`bias` are `gamma`/`beta`; the
MLM decoder is tied to the word embeddings in both worlds and is not stored twice; `hidden_act` is
renamed so that the converted model computes the same function (Hugging Face's "gelu" is the exact
erf GELU, which this project calls "gelu_exact"; our "gelu" is the tanh approximation, Hugging
Face's "gelu_new").

Anything the converter does not understand (another architecture, a missing tensor, a shape that
disagrees with the config, an unknown tensor) stops it with one line before anything is written; the
output directory appears only when the conversion has finished.
"""

import json
import os
import re

import numpy as np
import tensorflow as tf
from absl import flags

import cli

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

def define_flags(flag_values=flags.FLAGS):
    """The direction, the folders and the checkpoint files to convert."""
    flags.DEFINE_string("from_hf", None,
                        "A Hugging Face BERT folder (config.json, vocab.txt, model.safetensors or "
                        "pytorch_model.bin) to convert into a TF checkpoint in --output_dir.",
                        flag_values=flag_values)
    flags.DEFINE_bool("to_hf", False,
                      "Convert --init_checkpoint (with --bert_config_file and --vocab_file) into a "
                      "Hugging Face folder in --output_dir.", flag_values=flag_values)
    flags.DEFINE_string("output_dir", None,
                        "The directory to create. It must not exist yet, or hold only the files of "
                        "an earlier conversion (they are replaced).", flag_values=flag_values)
    flags.DEFINE_string("init_checkpoint", None,
                        "--to_hf: the checkpoint prefix to convert, e.g. /tmp/out/model.ckpt-1000 "
                        "(a directory means its latest checkpoint).", flag_values=flag_values)
    flags.DEFINE_string("bert_config_file", None, "--to_hf: the bert_config.json of the "
                        "checkpoint.", flag_values=flag_values)
    flags.DEFINE_string("vocab_file", None, "--to_hf: the vocab.txt of the checkpoint.",
                        flag_values=flag_values)
    flags.DEFINE_bool("do_lower_case", True,
                      "--to_hf: written into tokenizer_config.json; must match how the model was "
                      "trained (True for uncased models).", flag_values=flag_values)
    flags.DEFINE_bool("allow_missing_pooler", False,
                      "--from_hf: convert a model saved without pooler weights (e.g. "
                      "BertForMaskedLM). "
                      "The pooler is then initialised randomly by the scripts that use it.",
                      flag_values=flag_values)
    flags.DEFINE_bool("ignore_unknown_tensors", False,
                      "--from_hf: skip (and list) tensors the converter does not know, e.g. a "
                      "task-specific head, instead of stopping.", flag_values=flag_values)


CKPT_NAME = "bert_model.ckpt"

# bert_config.json fields, in the order of the released files' documentation (written sorted).
BERT_CONFIG_KEYS = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob",
                    "hidden_size", "initializer_range", "intermediate_size",
                    "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
                    "type_vocab_size", "vocab_size")

# transformers.BertConfig defaults, used for keys a config.json leaves out.
HF_DEFAULTS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "initializer_range": 0.02, "layer_norm_eps": 1e-12,
}

# Hugging Face activation name -> ours, chosen so that the function computed stays the same.
HF_TO_OUR_ACT = {
    "gelu": "gelu_exact",  # transformers' "gelu" is the exact erf form.
    "gelu_new": "gelu",  # The tanh approximation, which is what our "gelu" computes.
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",  # Same tanh formula, factored differently.
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}
OUR_TO_HF_ACT = {"gelu_exact": "gelu", "gelu": "gelu_new", "gelu_new": "gelu_new",
                 "relu": "relu", "tanh": "tanh", "linear": "linear"}

# modeling.layer_norm uses this epsilon; a model trained with another one would compute differently.
LAYER_NORM_EPS = 1e-12

# Tensors some HF files carry that hold no weights of their own.
HARMLESS_HF_TENSORS = ("embeddings.position_ids",)

# Outputs of an earlier conversion; an output_dir holding only these may be replaced.
KNOWN_OUTPUT_FILES = re.compile(
    r"^(bert_model\.ckpt\.(index|data-\d+-of-\d+|meta)|checkpoint|bert_config\.json|vocab\.txt|"
    r"config\.json|model\.safetensors|tokenizer_config\.json)$")


# ------------------------------------------------------------------------------------------------
# The name mapping: one table, used in both directions.
# ------------------------------------------------------------------------------------------------

def _linear(hf_prefix, tf_prefix):
    """An HF Linear (weight [out, in]) and its tf.layers.dense twin (kernel [in, out])."""
    return [(hf_prefix + ".weight", tf_prefix + "/kernel", True),
            (hf_prefix + ".bias", tf_prefix + "/bias", False)]


def _layer_norm(hf_prefix, tf_prefix):
    return [(hf_prefix + ".weight", tf_prefix + "/gamma", False),
            (hf_prefix + ".bias", tf_prefix + "/beta", False)]


def encoder_mapping(num_layers):
    """The encoder's tensors as (hf_name without `bert.`, tf_name, transpose) triples."""
    m = [("embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings", False),
         ("embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings",
          False),
         ("embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings", False)]
    m += _layer_norm("embeddings.LayerNorm", "bert/embeddings/LayerNorm")
    for i in range(num_layers):
        hf, tf_ = f"encoder.layer.{i}", f"bert/encoder/layer_{i}"
        for part in ("query", "key", "value"):
            m += _linear(f"{hf}.attention.self.{part}", f"{tf_}/attention/self/{part}")
        m += _linear(f"{hf}.attention.output.dense", f"{tf_}/attention/output/dense")
        m += _layer_norm(f"{hf}.attention.output.LayerNorm", f"{tf_}/attention/output/LayerNorm")
        m += _linear(f"{hf}.intermediate.dense", f"{tf_}/intermediate/dense")
        m += _linear(f"{hf}.output.dense", f"{tf_}/output/dense")
        m += _layer_norm(f"{hf}.output.LayerNorm", f"{tf_}/output/LayerNorm")
    return m


POOLER_MAPPING = _linear("pooler.dense", "bert/pooler/dense")

# The masked-LM head. Its output layer reuses the word embeddings (tied): only the bias is stored.
MLM_MAPPING = (_linear("cls.predictions.transform.dense", "cls/predictions/transform/dense")
               + _layer_norm("cls.predictions.transform.LayerNorm",
                             "cls/predictions/transform/LayerNorm")
               + [("cls.predictions.bias", "cls/predictions/output_bias", False)])

# The next-sentence head: `output_weights` is a hand-made [2, H] variable used with transpose_b, the
# same orientation as the PyTorch Linear weight, so it is not transposed.
NSP_MAPPING = [("cls.seq_relationship.weight", "cls/seq_relationship/output_weights", False),
               ("cls.seq_relationship.bias", "cls/seq_relationship/output_bias", False)]


def expected_shapes(config):
    """Every variable name of ours -> the shape the config implies (encoder, pooler, both heads)."""
    h, i = config["hidden_size"], config["intermediate_size"]
    v, p, t = config["vocab_size"], config["max_position_embeddings"], config["type_vocab_size"]
    shapes = {"bert/embeddings/word_embeddings": [v, h],
              "bert/embeddings/token_type_embeddings": [t, h],
              "bert/embeddings/position_embeddings": [p, h],
              "cls/predictions/output_bias": [v],
              "cls/seq_relationship/output_weights": [2, h],
              "cls/seq_relationship/output_bias": [2]}
    mappings = (encoder_mapping(config["num_hidden_layers"]) + POOLER_MAPPING + MLM_MAPPING
                + NSP_MAPPING)
    for _, name, _ in mappings:
        if name in shapes:
            continue
        if name.endswith(("/gamma", "/beta")):
            shapes[name] = [h]
        elif "/intermediate/dense/" in name:
            shapes[name] = [h, i] if name.endswith("/kernel") else [i]
        elif "/output/dense/" in name and "/attention/" not in name:
            shapes[name] = [i, h] if name.endswith("/kernel") else [h]
        else:
            shapes[name] = [h, h] if name.endswith("/kernel") else [h]
    return shapes


# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------

def bert_config_from_hf(hf_config):
    """Our bert_config.json dict from a Hugging Face config.json dict.

    Raises:
      cli.UsageError: the model is not a plain BERT or computes something our model cannot.
    """
    model_type = hf_config.get("model_type", "bert")
    architectures = hf_config.get("architectures") or []
    unknown = [a for a in architectures if not a.startswith("Bert")]
    if model_type != "bert" or unknown:
        raise cli.UsageError(
            f"config.json describes model_type={model_type!r} architectures={architectures}; only "
            "BERT models (model_type 'bert', Bert* architectures) can be converted")
    cfg = dict(HF_DEFAULTS)
    cfg.update({k: v for k, v in hf_config.items() if k in HF_DEFAULTS})
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise cli.UsageError(
            f"position_embedding_type={hf_config['position_embedding_type']!r} is not supported: "
            "modeling.BertModel has absolute position embeddings only")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        raise cli.UsageError("config.json describes a decoder (is_decoder/add_cross_attention);"
                                 " only BERT encoders can be converted")
    if not np.isclose(float(cfg["layer_norm_eps"]), LAYER_NORM_EPS, rtol=1e-6, atol=0.0):
        raise cli.UsageError(
            f"layer_norm_eps={cfg['layer_norm_eps']} but modeling.layer_norm uses {LAYER_NORM_EPS};"
            " the converted model would compute something else")
    act = str(cfg["hidden_act"]).lower()
    if act not in HF_TO_OUR_ACT:
        raise cli.UsageError(
            f"hidden_act={cfg['hidden_act']!r} has no equivalent here (known: "
            f"{', '.join(sorted(HF_TO_OUR_ACT))})")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise cli.UsageError(f"hidden_size {cfg['hidden_size']} is not a multiple of "
                                 f"num_attention_heads {cfg['num_attention_heads']}")
    config = {k: cfg[k] for k in BERT_CONFIG_KEYS}
    config["hidden_act"] = HF_TO_OUR_ACT[act]
    return config


def hf_config_from_bert(config, architecture):
    """A Hugging Face config.json dict from our bert_config.json dict."""
    act = str(config.get("hidden_act", "gelu")).lower()
    if act not in OUR_TO_HF_ACT:
        raise cli.UsageError(
            f"hidden_act={config.get('hidden_act')!r} in the bert_config_file has no Hugging Face "
            f"equivalent (known: {', '.join(sorted(OUR_TO_HF_ACT))})")
    hf = {k: config[k] for k in BERT_CONFIG_KEYS if k != "hidden_act"}
    hf.update({"architectures": [architecture], "model_type": "bert",
               "hidden_act": OUR_TO_HF_ACT[act], "layer_norm_eps": LAYER_NORM_EPS,
               "pad_token_id": 0, "position_embedding_type": "absolute",
               "torch_dtype": "float32"})
    return hf


def read_json(path, what):
    if not tf.io.gfile.exists(path):
        raise cli.UsageError(f"{what} not found: {path}")
    with tf.io.gfile.GFile(path, "r") as f:
        try:
            return json.loads(f.read())
        except json.JSONDecodeError as e:
            raise cli.UsageError(f"{what} {path} is not valid JSON ({e})") from None


def read_bert_config(path):
    config = read_json(path, "bert_config_file")
    missing = [k for k in BERT_CONFIG_KEYS if k not in config and k != "hidden_act"]
    if missing:
        raise cli.UsageError(f"bert_config_file {path} lacks {', '.join(missing)}")
    return config


# ------------------------------------------------------------------------------------------------
# Hugging Face -> ours
# ------------------------------------------------------------------------------------------------

def _to_numpy_float32(array):
    array = np.asarray(array)
    # float16/bfloat16 files (bfloat16 is an ml_dtypes type, not of numpy kind "f"): our graphs keep
    # float32 variables, and mixed precision is a compute-time choice.
    if array.dtype.kind not in "biu" and array.dtype != np.float32:
        return array.astype(np.float32)
    return array


def _load_safetensors(paths):
    # pylint: disable=import-outside-toplevel
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    tensors = {}
    for path in paths:
        try:
            # bfloat16 files load too: importing TensorFlow registered numpy's bfloat16 (ml_dtypes).
            tensors.update(load_file(path))
        except (SafetensorError, OSError) as e:
            raise cli.UsageError(f"cannot read {path}: {e}") from None
    return tensors


def _load_pytorch_bins(paths):
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise cli.UsageError(
            f"{os.path.basename(paths[0])} needs PyTorch to read and torch is not installed; "
            "install torch, or save the model as model.safetensors") from None
    tensors = {}
    for path in paths:
        # weights_only: a pickle from the internet must not run code.
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, value in state.items():
            tensors[name] = value.detach().float().numpy() if value.is_floating_point() \
                else value.numpy()
    return tensors


def _shards(directory, index_name):
    with open(os.path.join(directory, index_name)) as f:
        weight_map = json.load(f).get("weight_map", {})
    return [os.path.join(directory, n) for n in sorted(set(weight_map.values()))]


def load_hf_tensors(directory):
    """All tensors of a Hugging Face folder as numpy arrays, preferring safetensors files.

    Returns:
      (dict name -> np.ndarray, the file name that was read).
    """
    candidates = [("model.safetensors", None, _load_safetensors),
                  ("model.safetensors.index.json", "index", _load_safetensors),
                  ("pytorch_model.bin", None, _load_pytorch_bins),
                  ("pytorch_model.bin.index.json", "index", _load_pytorch_bins)]
    for name, kind, loader in candidates:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            paths = _shards(directory, name) if kind == "index" else [path]
            return loader(paths), name
    raise cli.UsageError(
        f"{directory} has no model.safetensors or pytorch_model.bin (TF/Flax-only folders are not "
        "supported)")


def hf_tensors_to_variables(tensors, config, allow_missing_pooler=False,
                            ignore_unknown_tensors=False):
    """Renames and reorients Hugging Face tensors into our variables, checking every shape.

    Args:
      tensors: dict HF name (with or without `bert.`) -> array.
      config: our bert_config dict (from bert_config_from_hf).
      allow_missing_pooler: convert without `pooler.dense.*` instead of stopping.
      ignore_unknown_tensors: skip tensors that map to nothing instead of stopping.

    Returns:
      (OrderedDict-like dict tf_name -> float32 array, list of notes about what was skipped).

    Raises:
      cli.UsageError: a tensor is missing, has a shape other than the config implies, or is
        unknown.
    """
    # Strip the `bert.` prefix that BertForPreTraining & co. put in front of the encoder.
    stripped = {}
    for name, value in tensors.items():
        short = name.removeprefix("bert.")
        # Very old exports spell the LayerNorm parameters gamma/beta.
        short = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", short)
        short = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", short)
        if short in stripped:
            raise cli.UsageError(f"tensor {short} appears twice (with and without 'bert.')")
        stripped[short] = value

    mapping = list(encoder_mapping(config["num_hidden_layers"]))
    notes = []
    if any(k.startswith("pooler.") for k in stripped):
        mapping += POOLER_MAPPING
    elif allow_missing_pooler:
        notes.append("no pooler weights: bert/pooler/dense will be initialised randomly")
    else:
        raise cli.UsageError(
            "the model has no pooler weights (pooler.dense.*); pass --allow_missing_pooler to "
            "convert it anyway (the pooler is then random)")
    if any(k.startswith("cls.predictions.") for k in stripped):
        mapping += MLM_MAPPING
    if any(k.startswith("cls.seq_relationship.") for k in stripped):
        mapping += NSP_MAPPING

    shapes = expected_shapes(config)
    variables = {}
    used = set()
    for hf_name, tf_name, transpose in mapping:
        if hf_name not in stripped:
            raise cli.UsageError(
                f"tensor {hf_name} is missing from the model file (config.json says "
                f"{config['num_hidden_layers']} layers)")
        value = _to_numpy_float32(stripped[hf_name])
        if transpose:
            value = np.ascontiguousarray(value.T)
        if list(value.shape) != shapes[tf_name]:
            raise cli.UsageError(
                f"tensor {hf_name} has shape {list(stripped[hf_name].shape)} but config.json "
                f"implies {shapes[tf_name][::-1] if transpose else shapes[tf_name]}")
        variables[tf_name] = value
        used.add(hf_name)

    # The MLM decoder is tied to the word embeddings (and its bias to cls.predictions.bias) in both
    # models; an untied copy that differs would be silently lost, so it stops the conversion.
    tied = {"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
            "cls.predictions.decoder.bias": "cls.predictions.bias"}
    for name, twin in tied.items():
        if name in stripped:
            if twin not in stripped or not np.array_equal(stripped[name], stripped[twin]):
                raise cli.UsageError(
                    f"{name} is not tied to {twin}; the MLM output layer here always is")
            used.add(name)
    unknown = sorted(k for k in stripped if k not in used and k not in HARMLESS_HF_TENSORS)
    if unknown:
        listing = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                            else "")
        if not ignore_unknown_tensors:
            raise cli.UsageError(
                f"unknown tensors {listing}: not a plain BERT encoder/pretraining model; pass "
                "--ignore_unknown_tensors to skip them")
        notes.append(f"skipped unknown tensors: {listing}")
    return variables, notes


def write_tf_checkpoint(variables, prefix):
    """Writes `prefix.index` and `prefix.data-00000-of-00001` holding exactly `variables`.

    A raw SaveV2 (what tf1.train.Saver runs underneath) stores each array under its own name, with
    no graph, no global_step and no object-graph metadata, like the released checkpoints.
    """
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(variables[n]) for n in names])


def check_vocab(vocab_file, vocab_size):
    """Returns the number of lines of vocab_file; stops if ids would fall outside the embeddings."""
    if not tf.io.gfile.exists(vocab_file):
        raise cli.UsageError(f"vocab file not found: {vocab_file}")
    with tf.io.gfile.GFile(vocab_file, "rb") as f:
        lines = sum(1 for _ in f)
    if lines > vocab_size:
        raise cli.UsageError(f"{vocab_file} has {lines} entries but vocab_size is {vocab_size}")
    if lines < vocab_size:
        tf1.logging.info("vocab.txt has %d entries, vocab_size is %d (unused rows are normal)",
                         lines, vocab_size)
    return lines


def from_hf(hf_dir, output_dir, allow_missing_pooler=False, ignore_unknown_tensors=False):
    """Converts a Hugging Face BERT folder into a TF checkpoint folder (see module docstring)."""
    if not os.path.isdir(hf_dir):
        raise cli.UsageError(f"--from_hf {hf_dir} is not a directory")
    check_output_dir(output_dir)
    hf_config = read_json(os.path.join(hf_dir, "config.json"), "config.json")
    config = bert_config_from_hf(hf_config)
    vocab_file = os.path.join(hf_dir, "vocab.txt")
    check_vocab(vocab_file, config["vocab_size"])
    tensors, source = load_hf_tensors(hf_dir)
    variables, notes = hf_tensors_to_variables(tensors, config, allow_missing_pooler,
                                               ignore_unknown_tensors)
    for note in notes:
        tf1.logging.warning("%s", note)
    heads = [h for h, p in (("MLM", "cls/predictions/"), ("NSP", "cls/seq_relationship/"))
             if any(n.startswith(p) for n in variables)]

    with cli.atomic_output(output_dir) as tmp_dir:
        tf.io.gfile.makedirs(tmp_dir)
        write_tf_checkpoint(variables, os.path.join(tmp_dir, CKPT_NAME))
        with tf.io.gfile.GFile(os.path.join(tmp_dir, "bert_config.json"), "w") as f:
            f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
        tf.io.gfile.copy(vocab_file, os.path.join(tmp_dir, "vocab.txt"), overwrite=True)

    tf1.logging.info("Converted %s (%d tensors, heads: %s) into %d variables in %s",
                     os.path.join(hf_dir, source), len(tensors), ", ".join(heads) or "none",
                     len(variables), os.path.join(output_dir, CKPT_NAME))
    tf1.logging.info("hidden_act %r (Hugging Face) -> %r (bert_config.json)",
                     hf_config.get("hidden_act", "gelu"), config["hidden_act"])
    _log_lower_case_hint(hf_dir)
    return variables


def _log_lower_case_hint(hf_dir):
    path = os.path.join(hf_dir, "tokenizer_config.json")
    if os.path.exists(path):
        with open(path) as f:
            lower = json.load(f).get("do_lower_case")
        if lower is not None:
            tf1.logging.info("tokenizer_config.json says do_lower_case=%s: pass "
                             "--do_lower_case=%s to the scripts", lower, str(bool(lower)).lower())


# ------------------------------------------------------------------------------------------------
# Ours -> Hugging Face
# ------------------------------------------------------------------------------------------------

def _skip_reason(name):
    """Why a checkpoint variable outside the encoder and the pretraining heads is skipped."""
    if name.endswith(("/adam_m", "/adam_v")):
        return "optimizer slots"
    if name == "global_step" or name.startswith("global_step/"):
        return "training state"
    if name in ("output_weights", "output_bias"):
        return "classifier head"
    if name.startswith("cls/squad/"):
        return "SQuAD head"
    return "other variables"


def tf_variables_to_hf(reader, config):
    """Reads our checkpoint into HF-named [out, in] numpy tensors.

    Args:
      reader: a tf.train.load_checkpoint reader.
      config: our bert_config dict.

    Returns:
      (dict HF name -> array, architecture name, dict reason -> list of skipped variable names).
    """
    available = reader.get_variable_to_shape_map()
    has_mlm = any(n.startswith("cls/predictions/") and not n.endswith(("/adam_m", "/adam_v"))
                  for n in available)
    has_nsp = any(n.startswith("cls/seq_relationship/") and not n.endswith(("/adam_m", "/adam_v"))
                  for n in available)
    architecture = {(True, True): "BertForPreTraining", (True, False): "BertForMaskedLM",
                    (False, True): "BertForNextSentencePrediction",
                    (False, False): "BertModel"}[(has_mlm, has_nsp)]
    # transformers saves head models with the encoder under `bert.`, and BertModel without it.
    prefix = "" if architecture == "BertModel" else "bert."

    mapping = list(encoder_mapping(config["num_hidden_layers"])) + POOLER_MAPPING
    mapping += MLM_MAPPING if has_mlm else []
    mapping += NSP_MAPPING if has_nsp else []
    shapes = expected_shapes(config)
    tensors, used = {}, set()
    for hf_name, tf_name, transpose in mapping:
        if tf_name not in available:
            raise cli.UsageError(f"variable {tf_name} is missing from the checkpoint")
        if list(available[tf_name]) != shapes[tf_name]:
            raise cli.UsageError(
                f"variable {tf_name} has shape {list(available[tf_name])} but the bert_config_file "
                f"implies {shapes[tf_name]}")
        value = np.asarray(reader.get_tensor(tf_name))
        if value.dtype != np.float32:
            value = value.astype(np.float32)
        if transpose:
            value = value.T
        hf_key = hf_name if hf_name.startswith("cls.") else prefix + hf_name
        tensors[hf_key] = np.ascontiguousarray(value)
        used.add(tf_name)

    skipped = {}
    for name in sorted(available):
        if name in used:
            continue
        if name.startswith("bert/") and not name.endswith(("/adam_m", "/adam_v")):
            raise cli.UsageError(
                f"variable {name} is not part of a BERT encoder with {config['num_hidden_layers']}"
                " layers; is --bert_config_file the right one?")
        skipped.setdefault(_skip_reason(name), []).append(name)
    return tensors, architecture, skipped


def _make_readable(path):
    """safetensors creates files readable by their owner only; give them the usual umask mode."""
    if "://" in path:
        return
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def to_hf(init_checkpoint, bert_config_file, vocab_file, output_dir, do_lower_case=True):
    """Converts our checkpoint into a Hugging Face folder (see the module docstring)."""
    from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

    check_output_dir(output_dir)
    config = read_bert_config(bert_config_file)
    check_vocab(vocab_file, config["vocab_size"])
    checkpoint = cli.resolve_checkpoint(init_checkpoint)
    reader = tf.train.load_checkpoint(checkpoint)
    tensors, architecture, skipped = tf_variables_to_hf(reader, config)
    hf_config = hf_config_from_bert(config, architecture)
    tokenizer_config = {"do_lower_case": bool(do_lower_case), "tokenizer_class": "BertTokenizer",
                        "model_max_length": config["max_position_embeddings"]}

    with cli.atomic_output(output_dir) as tmp_dir:
        tf.io.gfile.makedirs(tmp_dir)
        # transformers refuses safetensors files whose metadata does not name a framework.
        weights_path = os.path.join(tmp_dir, "model.safetensors")
        save_file(tensors, weights_path, metadata={"format": "pt"})
        _make_readable(weights_path)
        for name, obj in (("config.json", hf_config), ("tokenizer_config.json", tokenizer_config)):
            with tf.io.gfile.GFile(os.path.join(tmp_dir, name), "w") as f:
                f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        tf.io.gfile.copy(vocab_file, os.path.join(tmp_dir, "vocab.txt"), overwrite=True)

    for reason, names in sorted(skipped.items()):
        shown = ", ".join(names[:4]) + (f" ... ({len(names)} in all)" if len(names) > 4 else "")
        tf1.logging.info("Skipped %s: %s", reason, shown)
    tf1.logging.info("Converted %s into %d tensors (%s, hidden_act %r -> %r) in %s", checkpoint,
                     len(tensors), architecture, config.get("hidden_act"),
                     hf_config["hidden_act"], output_dir)
    return tensors, skipped


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------

def check_output_dir(output_dir):
    """Refuses to replace a directory that holds anything but an earlier conversion's files."""
    if not tf.io.gfile.exists(output_dir):
        return
    if not tf.io.gfile.isdir(output_dir):
        raise cli.UsageError(f"--output_dir {output_dir} exists and is not a directory")
    foreign = [n for n in tf.io.gfile.listdir(output_dir) if not KNOWN_OUTPUT_FILES.match(n)]
    if foreign:
        raise cli.UsageError(
            f"--output_dir {output_dir} already holds other files "
            f"({', '.join(sorted(foreign)[:3])}); choose a new directory")


def validate_flags(from_hf_dir, to_hf_wanted, output_dir, to_hf_inputs):
    """Checks the flag combination; `to_hf_inputs` maps the flags --to_hf needs to their values."""
    if bool(from_hf_dir) == bool(to_hf_wanted):
        raise cli.UsageError("pass exactly one of --from_hf=DIR or --to_hf")
    if not output_dir:
        raise cli.UsageError("--output_dir is required")
    if to_hf_wanted:
        missing = [f"--{name}" for name, value in to_hf_inputs.items() if not value]
        if missing:
            raise cli.UsageError(f"--to_hf needs {', '.join(missing)}")


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    validate_flags(FLAGS.from_hf, FLAGS.to_hf, FLAGS.output_dir, {
        "init_checkpoint": FLAGS.init_checkpoint, "bert_config_file": FLAGS.bert_config_file,
        "vocab_file": FLAGS.vocab_file})
    if FLAGS.from_hf:
        from_hf(FLAGS.from_hf, FLAGS.output_dir, FLAGS.allow_missing_pooler,
                FLAGS.ignore_unknown_tensors)
    else:
        to_hf(FLAGS.init_checkpoint, FLAGS.bert_config_file, FLAGS.vocab_file, FLAGS.output_dir,
              FLAGS.do_lower_case)


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("output_dir")
    cli.run_main(main)
