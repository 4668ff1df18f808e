"""An independent NumPy forward pass of a BERT encoder, written from the equations.

Nothing here imports TensorFlow or the project's modules: it is the yardstick that modeling.py and
convert_checkpoint.py are measured against. It computes in float64 by default so that the float32
TensorFlow graph is compared with something more precise than itself.

Weights are a dict of numpy arrays named the Hugging Face way (`embeddings.word_embeddings.weight`,
`encoder.layer.0.attention.self.query.weight` with Linear weights [out, in],
`...LayerNorm.weight/bias`), with or without a `bert.` prefix. A dict in the released TF naming
(`bert/embeddings/word_embeddings`, kernels [in, out], `LayerNorm/gamma`/`beta`, e.g. read with
`tf.train.load_checkpoint`) is accepted too and renamed by `hf_weights_from_tf`, which is written
independently of convert_checkpoint.py.

Example:
    weights = safetensors.numpy.load_file("model.safetensors")
    config = json.load(open("config.json"))
    out = numpy_bert.forward(weights, config, input_ids, input_mask, token_type_ids)
    emb = numpy_bert.l2_normalize(numpy_bert.mean_pool(out["sequence_output"], input_mask))

Shape letters: B = batch size, S = sequence length, H = hidden size, N = attention heads,
D = size per head (H / N), I = intermediate size, V = vocab size.
"""

import math
import re

import numpy as np

# What a `hidden_act` string computes, under each naming convention. Hugging Face's "gelu" is the
# exact (erf) GELU, while the reference BERT code's "gelu" is the tanh approximation.
_ACTIVATIONS = {
    "hf": {
        "gelu": "gelu_erf", "gelu_exact": "gelu_erf", "gelu_new": "gelu_tanh",
        "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "relu": "relu", "tanh": "tanh",
        "linear": "linear",
    },
    "bert": {
        "gelu": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_exact": "gelu_erf", "relu": "relu",
        "tanh": "tanh", "linear": "linear",
    },
}

_ERF = np.vectorize(math.erf, otypes=[np.float64])


def gelu_erf(x):
    """The exact GELU: x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + _ERF(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))).astype(x.dtype)


def gelu_tanh(x):
    """The tanh approximation of GELU used by the reference BERT code."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def activation_fn(hidden_act, convention="hf"):
    """Returns the NumPy function that `hidden_act` names under `convention` ("hf" or "bert")."""
    try:
        kind = _ACTIVATIONS[convention][str(hidden_act).lower()]
    except KeyError:
        raise ValueError(f"numpy_bert: unknown hidden_act {hidden_act!r} for convention "
                         f"{convention!r}") from None
    return {
        "gelu_erf": gelu_erf,
        "gelu_tanh": gelu_tanh,
        "relu": lambda x: np.maximum(x, 0.0),
        "tanh": np.tanh,
        "linear": lambda x: x,
    }[kind]


def _config_value(config, key, default=None):
    """Reads `key` from a dict or an object with attributes (e.g. modeling.BertConfig)."""
    if isinstance(config, dict):
        value = config.get(key, default)
    else:
        value = getattr(config, key, default)
    if value is None and default is None:
        raise ValueError(f"numpy_bert: config has no {key!r}")
    return value


def hf_weights_from_tf(variables):
    """Renames a dict of released-TF-named arrays to Hugging Face names, transposing kernels.

    Args:
      variables: dict name -> array, e.g. `bert/encoder/layer_0/attention/self/query/kernel`
        [in, out].
        Names outside `bert/` and `cls/` (optimizer slots, global_step, task heads) are ignored.

    Returns:
      dict of HF names (no `bert.` prefix on the encoder, `cls.` on the pretraining heads) -> array.
    """
    out = {}
    for name, value in variables.items():
        if not name.startswith(("bert/", "cls/")):
            continue
        if name.endswith(("/adam_m", "/adam_v")):
            continue
        value = np.asarray(value)
        parts = name.split("/")
        if parts[0] == "bert":
            parts = parts[1:]
        parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", p) for p in parts]
        leaf = parts[-1]
        if leaf == "kernel":
            parts[-1], value = "weight", value.T
        elif leaf == "gamma":
            parts[-1] = "weight"
        elif leaf == "beta":
            parts[-1] = "bias"
        elif parts[0] == "embeddings" and leaf.endswith("_embeddings"):
            parts.append("weight")
        hf = ".".join(parts)
        # The heads' hand-made variables have their own names in each world.
        hf = hf.replace("cls.predictions.output_bias", "cls.predictions.bias")
        hf = hf.replace("cls.seq_relationship.output_weights", "cls.seq_relationship.weight")
        hf = hf.replace("cls.seq_relationship.output_bias", "cls.seq_relationship.bias")
        out[hf] = value
    return out


def _normalise_names(weights):
    """Accepts HF names with or without `bert.`, or TF names; returns HF names without it."""
    if any("/" in k for k in weights):
        weights = hf_weights_from_tf(weights)
    out = {}
    for name, value in weights.items():
        name = name.removeprefix("bert.")
        # Old checkpoints spell LayerNorm parameters gamma/beta.
        name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
        name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
        out[name] = value
    return out


def layer_norm(x, gamma, beta, eps=1e-12):
    """LayerNorm over the last axis with the biased variance, as in BERT."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _dense(x, weights, prefix):
    """x @ W^T + b, the HF Linear `<prefix>.weight` [out, in] and `<prefix>.bias` [out]."""
    return x @ weights[prefix + ".weight"].T + weights[prefix + ".bias"]


def _layer_norm(x, weights, prefix, eps):
    return layer_norm(x, weights[prefix + ".weight"], weights[prefix + ".bias"], eps)


def _attention(x, weights, prefix, additive_mask, num_heads):
    """Multi-head self-attention.

    Args:
      x: [B, S, H].
      additive_mask: [B, 1, 1, S], 0 for real keys and -10000 for padding keys (queries are never
        masked).

    Returns:
      [B, S, H], the context before the output projection.
    """
    batch, seq, hidden = x.shape
    size_per_head = hidden // num_heads

    def heads(t):
        # [B, S, H] -> [B, N, S, D]
        return t.reshape(batch, seq, num_heads, size_per_head).transpose(0, 2, 1, 3)

    q = heads(_dense(x, weights, prefix + ".query"))
    k = heads(_dense(x, weights, prefix + ".key"))
    v = heads(_dense(x, weights, prefix + ".value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size_per_head)  # [B, N, S, S]
    scores = scores + additive_mask
    scores = scores - scores.max(axis=-1, keepdims=True)  # Stable softmax.
    probs = np.exp(scores)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    context = probs @ v  # [B, N, S, D]
    return context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)


def forward(weights, config, input_ids, input_mask=None, token_type_ids=None, convention="hf",
            dtype=np.float64):
    """Runs the BERT encoder (post-LN) and pooler.

    Args:
      weights: dict of arrays, HF names (with or without `bert.`) or released TF names.
      config: dict (e.g. HF config.json or bert_config.json loaded) or object with attributes; reads
        `num_hidden_layers`, `num_attention_heads`, `hidden_act` and optionally `layer_norm_eps`
        (default 1e-12).
      input_ids: int array [B, S].
      input_mask: (optional) 0/1 array [B, S]; None means all ones.
      token_type_ids: (optional) int array [B, S]; None means all zeros.
      convention: how to read `hidden_act`: "hf" (gelu = erf) or "bert" (gelu = tanh approximation).
      dtype: compute dtype (float64 by default).

    Returns:
      dict with `embedding_output` [B, S, H], `all_layers` (list of L arrays [B, S, H]),
      `sequence_output` [B, S, H] (= all_layers[-1]) and `pooled_output` [B, H] (None when the
      weights carry no pooler).
    """
    w = {k: np.asarray(v).astype(dtype) for k, v in _normalise_names(weights).items()
         if np.asarray(v).dtype.kind == "f"}
    input_ids = np.asarray(input_ids)
    if input_ids.ndim != 2:
        raise ValueError(f"numpy_bert: input_ids must be [batch, seq], got {input_ids.shape}")
    seq = input_ids.shape[1]
    input_mask = np.ones_like(input_ids) if input_mask is None else np.asarray(input_mask)
    token_type_ids = (np.zeros_like(input_ids) if token_type_ids is None
                      else np.asarray(token_type_ids))
    eps = float(_config_value(config, "layer_norm_eps", 1e-12))
    num_layers = int(_config_value(config, "num_hidden_layers"))
    num_heads = int(_config_value(config, "num_attention_heads"))
    act = activation_fn(_config_value(config, "hidden_act"), convention)

    x = (w["embeddings.word_embeddings.weight"][input_ids]
         + w["embeddings.token_type_embeddings.weight"][token_type_ids]
         + w["embeddings.position_embeddings.weight"][:seq][None, :, :])
    x = _layer_norm(x, w, "embeddings.LayerNorm", eps)
    embedding_output = x

    additive_mask = (1.0 - input_mask.astype(dtype))[:, None, None, :] * -10000.0
    all_layers = []
    for i in range(num_layers):
        p = f"encoder.layer.{i}"
        context = _attention(x, w, p + ".attention.self", additive_mask, num_heads)
        attention_output = _layer_norm(_dense(context, w, p + ".attention.output.dense") + x, w,
                                       p + ".attention.output.LayerNorm", eps)
        intermediate = act(_dense(attention_output, w, p + ".intermediate.dense"))
        x = _layer_norm(_dense(intermediate, w, p + ".output.dense") + attention_output, w,
                        p + ".output.LayerNorm", eps)
        all_layers.append(x)

    pooled = None
    if "pooler.dense.weight" in w:
        pooled = np.tanh(_dense(x[:, 0], w, "pooler.dense"))
    return {"embedding_output": embedding_output, "all_layers": all_layers, "sequence_output": x,
            "pooled_output": pooled}


def mlm_logits(weights, config, sequence_output, convention="hf", dtype=np.float64):
    """Masked-LM logits [B, S, V] from `cls.predictions.*` (decoder tied to the word embeddings)."""
    w = {k: np.asarray(v).astype(dtype) for k, v in _normalise_names(weights).items()
         if np.asarray(v).dtype.kind == "f"}
    eps = float(_config_value(config, "layer_norm_eps", 1e-12))
    act = activation_fn(_config_value(config, "hidden_act"), convention)
    h = act(_dense(sequence_output, w, "cls.predictions.transform.dense"))
    h = _layer_norm(h, w, "cls.predictions.transform.LayerNorm", eps)
    return h @ w["embeddings.word_embeddings.weight"].T + w["cls.predictions.bias"]


def nsp_logits(weights, pooled_output, dtype=np.float64):
    """Next-sentence logits [B, 2] from `cls.seq_relationship.*` (weight [2, H])."""
    w = _normalise_names(weights)
    return (pooled_output @ np.asarray(w["cls.seq_relationship.weight"], dtype).T
            + np.asarray(w["cls.seq_relationship.bias"], dtype))


def mean_pool(sequence_output, input_mask):
    """Average of the token vectors where input_mask is 1: [B, S, H], [B, S] -> [B, H]."""
    mask = np.asarray(input_mask, dtype=sequence_output.dtype)[:, :, None]
    return (sequence_output * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)


def l2_normalize(x, eps=1e-12):
    """Rows scaled to unit L2 norm: [B, H] -> [B, H]."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def sentence_embedding(sequence_output, input_mask):
    """Sentence-transformers style embedding: mean pool over real tokens, then L2-normalise."""
    return l2_normalize(mean_pool(sequence_output, input_mask))
