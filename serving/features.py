"""Texts (or pre-tokenized token lists) -> the WordPiece ids a BERT model reads, in the frontend.

Tokenization runs in the frontend, before batching, so that (1) batches can be grouped by their
real token lengths, (2) a worker only ever runs the model, and (3) tokens can be shown to clients.
Raw text is tokenized exactly as extract_features.py and run_classifier.py do (`A ||| B` is a
pair, `[CLS] A [SEP] (B [SEP])`, the longer side truncated first), so the vectors equal theirs.

Pre-tokenized input follows bert-as-service: the tokens are taken as WordPieces as they are
(unknown ones become `[UNK]`, nothing is lower-cased), and a `|||` token separates a pair.
"""

import re

import numpy as np

import tokenization
from serving import protocol

_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


class SentenceFeatures:
    """One tokenized sentence, unpadded (padding is added per batch)."""

    __slots__ = ("tokens", "input_ids", "input_mask", "input_type_ids")

    def __init__(self, tokens, input_ids, input_mask, input_type_ids):
        self.tokens = tokens
        self.input_ids = input_ids
        self.input_mask = input_mask
        self.input_type_ids = input_type_ids

    def __len__(self):
        return len(self.input_ids)


class Featurizer:
    """Turns the texts of one request into `SentenceFeatures`.

    Args:
      vocab_file: WordPiece vocab of the model.
      do_lower_case: must match the model (True for uncased models).
      max_length: longer inputs are truncated to this many tokens, [CLS]/[SEP] included
        (`max_seq_len`, or the model's max_position_embeddings when it is NONE).
      mask_cls_sep: give [CLS] and [SEP] a 0 in the input mask (bert-as-service's
        `-mask_cls_sep`: the model does not attend to them and the pools leave them out).
    """

    def __init__(self, vocab_file, do_lower_case, max_length, mask_cls_sep=False):
        self.tokenizer = tokenization.FullTokenizer(vocab_file=vocab_file,
                                                    do_lower_case=do_lower_case)
        self.max_length = max_length
        self.mask_cls_sep = mask_cls_sep
        self._unk = "[UNK]"

    def featurize(self, texts, is_tokenized):
        """Returns one `SentenceFeatures` per text, in order (texts already validated)."""
        split = self._split_tokens if is_tokenized else self._split_text
        return [self._pack(*split(text)) for text in texts]

    def _split_text(self, text):
        text_a, text_b = split_pair(text.strip())
        tokens_b = self.tokenizer.tokenize(text_b) if text_b else None
        return self.tokenizer.tokenize(text_a), tokens_b

    def _split_tokens(self, tokens):
        vocab = self.tokenizer.vocab
        known = [t if t in vocab else self._unk for t in tokens]
        if protocol.PAIR_SEPARATOR in tokens:
            cut = tokens.index(protocol.PAIR_SEPARATOR)
            return known[:cut], known[cut + 1:]
        return known, None

    def _pack(self, tokens_a, tokens_b):
        tokens, type_ids = tokenization.pack_sequence_pair(tokens_a, tokens_b or None,
                                                           self.max_length)
        mask = [1] * len(tokens)
        if self.mask_cls_sep:
            for i, token in enumerate(tokens):
                if token in ("[CLS]", "[SEP]"):
                    mask[i] = 0
        return SentenceFeatures(tokens, self.tokenizer.convert_tokens_to_ids(tokens), mask,
                                type_ids)


class RawInput:
    """An input for another task's predictor, queued as is; its length (characters) only
    groups batches."""

    __slots__ = ("value", "length")

    def __init__(self, value):
        self.value = value
        self.length = sum(map(len, value)) if isinstance(value, list) else len(value)

    def __len__(self):
        return self.length


def split_pair(text):
    """`A ||| B` -> (A, B), anything else -> (text, None): the reference's pair rule, regex and all.

    The regex is greedy and `.` stops at line ends, so a text splits at its last ` ||| ` and a
    text with a line break is never a pair, as in extract_features.py and run_classifier.py.
    """
    match = _PAIR_RE.match(text)
    if match is None:
        return text, None
    return match.group(1), match.group(2)


def pad_batch(features, length):
    """Stacks features into int32 arrays [batch, length], zero-padded on the right.

    Returns:
      dict with input_ids, input_mask, input_type_ids (int32 [batch, length]) and lengths
      (int32 [batch], the real token counts).
    """
    batch = len(features)
    arrays = {name: np.zeros([batch, length], dtype=np.int32)
              for name in ("input_ids", "input_mask", "input_type_ids")}
    lengths = np.zeros([batch], dtype=np.int32)
    for row, feature in enumerate(features):
        n = len(feature)
        arrays["input_ids"][row, :n] = feature.input_ids
        arrays["input_mask"][row, :n] = feature.input_mask
        arrays["input_type_ids"][row, :n] = feature.input_type_ids
        lengths[row] = n
    arrays["lengths"] = lengths
    return arrays
