"""bert-as-service's pooling strategies, on the encoder's layer outputs (NumPy, in the worker).

The strategies and their meaning are bert-as-service 1.10's (`-pooling_strategy`):

| strategy | vector | same as extract_features.py |
|---|---|---|
| REDUCE_MEAN (default) | mean over the tokens whose input mask is 1 | `mean` |
| REDUCE_MAX | max over the same tokens | `max` |
| REDUCE_MEAN_MAX | [mean, max] | `mean_max` (see below for several layers) |
| FIRST_TOKEN = CLS_TOKEN | the first token ([CLS]) | `cls` |
| LAST_TOKEN = SEP_TOKEN | the last real token ([SEP]) | |
| CLS_POOLED | the pooler's tanh(W [CLS] + b) of the last layer | export's `pooled_output` |
| NONE | every token vector, padding (and masked tokens) zeroed: [batch, length, dim] | |

Several `-pooling_layer`s are concatenated along the hidden axis BEFORE pooling, as bert-as-
service does; for REDUCE_MEAN_MAX this gives [mean(l1) mean(l2) max(l1) max(l2)], where
extract_features.py's `mean_max` gives [mean(l1) max(l1) mean(l2) max(l2)] (same numbers, other
column order). With `-mask_cls_sep` the mask has 0 at [CLS] and [SEP] (see features.py); a
REDUCE_MAX over a sentence with no unmasked token gives zeros (bert-as-service gave -1e30).
"""

import numpy as np

# Name -> canonical strategy; the aliases are bert-as-service's enum aliases.
STRATEGIES = {
    "NONE": "NONE",
    "REDUCE_MAX": "REDUCE_MAX",
    "REDUCE_MEAN": "REDUCE_MEAN",
    "REDUCE_MEAN_MAX": "REDUCE_MEAN_MAX",
    "FIRST_TOKEN": "FIRST_TOKEN",
    "CLS_TOKEN": "FIRST_TOKEN",
    "LAST_TOKEN": "LAST_TOKEN",
    "SEP_TOKEN": "LAST_TOKEN",
    "CLS_POOLED": "CLS_POOLED",
}


def canonical(strategy):
    """`cls_token` -> `FIRST_TOKEN`; raises ValueError for an unknown name."""
    name = str(strategy).upper()
    if name not in STRATEGIES:
        raise ValueError("unknown pooling strategy %r; use one of %s"
                         % (strategy, ", ".join(STRATEGIES)))
    return STRATEGIES[name]


def output_dim(strategy, hidden_size, num_layers):
    """Width of a vector (or of each token vector for NONE)."""
    strategy = canonical(strategy)
    if strategy == "CLS_POOLED":
        return hidden_size
    width = hidden_size * num_layers
    return 2 * width if strategy == "REDUCE_MEAN_MAX" else width


def fetched_layers(strategy, pooling_layers, num_hidden_layers):
    """The encoder layers a strategy reads: the pooling layers, or the last one for CLS_POOLED."""
    if canonical(strategy) == "CLS_POOLED":
        return [num_hidden_layers - 1]
    return list(pooling_layers)


def pool(strategy, layer_states, input_mask, lengths, pooler=None):
    """Pools a batch of encoder outputs.

    Args:
      strategy: a name in STRATEGIES.
      layer_states: list of float32 [batch, length, hidden], one per layer of
        `fetched_layers(...)`, in that order.
      input_mask: int [batch, length], 1 for tokens that enter the pools.
      lengths: int [batch], real tokens per row ([CLS] ... [SEP], masked or not).
      pooler: (kernel [hidden, hidden], bias [hidden]) for CLS_POOLED.

    Returns:
      float32 [batch, dim], or [batch, length, dim] for NONE.
    """
    strategy = canonical(strategy)
    states = np.concatenate(layer_states, axis=-1) if len(layer_states) > 1 else layer_states[0]
    mask = np.asarray(input_mask, dtype=np.float32)[:, :, None]  # [batch, length, 1]
    if strategy == "NONE":
        return (states * mask).astype(np.float32)
    if strategy == "FIRST_TOKEN":
        return np.array(states[:, 0], dtype=np.float32)
    if strategy == "LAST_TOKEN":
        rows = np.arange(states.shape[0])
        return np.array(states[rows, np.asarray(lengths) - 1], dtype=np.float32)
    if strategy == "CLS_POOLED":
        kernel, bias = pooler
        return np.tanh(states[:, 0] @ kernel + bias).astype(np.float32)
    mean = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    if strategy == "REDUCE_MEAN":
        return mean.astype(np.float32)
    maximum = np.where(mask > 0, states, -np.inf).max(axis=1)
    maximum = np.where(np.isfinite(maximum), maximum, 0.0)  # rows with nothing unmasked
    if strategy == "REDUCE_MAX":
        return maximum.astype(np.float32)
    return np.concatenate([mean, maximum], axis=-1).astype(np.float32)
