"""Creates masked-LM / next-sentence pretraining data (TFRecord of tf.train.Example) from raw text.

Input: UTF-8 text files, one sentence per line, a blank line between documents (comma-separated list
of globs in --input_file). Output: the reference features, in the reference order and dtypes:
`input_ids`, `input_mask`, `segment_ids` (int64, --max_seq_length long), `masked_lm_positions`,
`masked_lm_ids` (int64) and `masked_lm_weights` (float, --max_predictions_per_seq long),
`next_sentence_labels` (int64, 1 = random next, 0 = actual next).

Two modes:

* Reference mode (default, `--num_workers=0`): byte-identical to google-research/bert's script for
  the same input, vocab, flags and --random_seed: every `random.Random` draw is made in the
  reference order (shuffle documents; per document `random()`/`randint`; per chunk; truncation;
  candidate shuffle; per-index draws; one final shuffle of all instances). Instances are written
  round-robin over the comma-separated --output_file paths. One process; all instances are held in
  memory, but as serialized bytes (about 3x less than the reference's Python objects).

* Streaming mode (`--num_workers=N`, N >= 1): every input file (after glob expansion) is an
  independent shard processed by one of N worker processes: its documents are read and shuffled, the
  `--dupe_factor` passes run over that shard only, random next sentences come from the same shard,
  and instances are written as they are made through a seeded shuffle buffer of
  --shuffle_buffer_size instances. The random stream of shard k is seeded from (--random_seed, k),
  so the output does not depend on N. Unless whole-word masking is on, only the masked positions
  are drawn (a partial shuffle: same distribution as the reference's shuffle of all candidates,
  far fewer draws). Peak memory is one shard's documents plus the buffer per
  worker, whatever the corpus size: split big corpora into shards of, say, 50-200 MB. Output naming:
  one output file per input shard. If --output_file lists exactly one path per shard, shard k goes
  to the k-th path; otherwise --output_file must be a single path P and shard k of S is written to
  `P-0000k-of-0000S` (e.g. `out.tfrecord-00000-of-00004`; a glob `out.tfrecord-*` reads them all in
  run_pretraining.py). Each output file is written atomically.

New flags beyond the reference's 11: --num_workers, --shuffle_buffer_size (streaming mode only) and
--chinese_whole_word_mask (whole-word masking for input whose words are separated by spaces, e.g.
Chinese after a word segmenter: all WordPieces of one space-separated word are masked together; the
tokens and ids are exactly those written without the flag, and for Chinese text also those of the
unsegmented text, because BERT splits CJK characters anyway). Words are split on exactly the
characters the tokenizer treats as whitespace, so the grouping never changes the tokens.

Sample command line:

    python create_pretraining_data.py \
      --input_file=./sample_text.txt \
      --output_file=/tmp/tf_examples.tfrecord \
      --vocab_file=$BERT_BASE_DIR/vocab.txt \
      --do_lower_case=True --max_seq_length=128 --max_predictions_per_seq=20 \
      --masked_lm_prob=0.15 --random_seed=12345 --dupe_factor=5

Parallel, for a corpus split into many files:

    python create_pretraining_data.py --input_file='corpus/shard-*.txt' \
      --output_file=/data/pretrain.tfrecord --vocab_file=vocab.txt --num_workers=8
"""

import array
import collections
import contextlib
import dataclasses
import functools
import multiprocessing
import os
import random
import re
import struct
import time

import tensorflow as tf
from absl import flags

import cli
import tokenization

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

def define_flags(flag_values=flags.FLAGS):
    """The reference's 11 flags and the streaming-mode flags."""
    # The reference's 11 flags: same names, types, defaults and meaning.
    flags.DEFINE_string(
        "input_file", None,
        "Input raw text file (or comma-separated list of files); each element may be a glob.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "output_file", None,
        "Output TF example file (or comma-separated list of files). In streaming mode "
        "(--num_workers "
        ">= 1): one path per input shard, or one path used as the prefix of '-0000k-of-0000n' "
        "files.", flag_values=flag_values)
    flags.DEFINE_string("vocab_file", None,
                        "The vocabulary file that the BERT model was trained on.",
                        flag_values=flag_values)
    flags.DEFINE_bool(
        "do_lower_case", True,
        "Whether to lower case the input text. Should be True for uncased models and False for "
        "cased models.", flag_values=flag_values)
    flags.DEFINE_bool("do_whole_word_mask", False,
                      "Whether to use whole word masking rather than per-WordPiece masking.",
                      flag_values=flag_values)
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.", flag_values=flag_values)
    flags.DEFINE_integer("max_predictions_per_seq", 20,
                         "Maximum number of masked LM predictions per sequence.",
                         flag_values=flag_values)
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.",
                         flag_values=flag_values)
    flags.DEFINE_integer("dupe_factor", 10,
                         "Number of times to duplicate the input data (with different masks).",
                         flag_values=flag_values)
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.", flag_values=flag_values)
    flags.DEFINE_float(
        "short_seq_prob", 0.1,
        "Probability of creating sequences which are shorter than the maximum length.",
        flag_values=flag_values)

    # New flags.
    flags.DEFINE_integer(
        "num_workers", 0,
        "0 (default): reference mode, byte-identical to the reference script. N >= 1: streaming "
        "mode with N worker processes; every input file is an independent shard written to its own "
        "output file, and the output does not depend on N (see the module docstring).",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "shuffle_buffer_size", 10000,
        "Streaming mode only: instances of a shard pass through a seeded shuffle buffer of this "
        "many serialized examples before being written (0 or 1 = write in creation order).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "chinese_whole_word_mask", False,
        "Input words are separated by spaces (e.g. Chinese after word segmentation): mask all "
        "WordPieces of one space-separated word together. Implies --do_whole_word_mask. Tokens and "
        "ids are unchanged.", flag_values=flag_values)


CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"

# Smallest max_seq_length the algorithm supports: [CLS] A [SEP] B [SEP] needs room for at least two
# tokens, and the short target length is drawn from randint(2, max_seq_length - 3).
MIN_MAX_SEQ_LENGTH = 5

# Number of instances logged in full, as in the reference.
NUM_LOGGED_INSTANCES = 20

# Characters BERT's BasicTokenizer treats as whitespace: space, \t, \n, \r and Unicode category Zs.
# Splitting a line on exactly these gives words whose tokens concatenate to the tokens of the line.
_TOKENIZER_WHITESPACE = " \t\n\r\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_WORD_SPLIT_RE = re.compile(f"[{_TOKENIZER_WHITESPACE}]+")

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
                 "masked_lm_weights", "next_sentence_labels")


# ------------------------------------------------------------------------------------------------
# Reference data classes
# ------------------------------------------------------------------------------------------------


class TrainingInstance:
    """A single training instance (sentence pair), with token strings after masking."""

    def __init__(self, tokens, segment_ids, masked_lm_positions, masked_lm_labels, is_random_next):
        self.tokens = tokens
        self.segment_ids = segment_ids
        self.is_random_next = is_random_next
        self.masked_lm_positions = masked_lm_positions
        self.masked_lm_labels = masked_lm_labels

    def __str__(self):
        s = "tokens: %s\n" % " ".join(tokenization.printable_text(x) for x in self.tokens)
        s += "segment_ids: %s\n" % " ".join(str(x) for x in self.segment_ids)
        s += "is_random_next: %s\n" % self.is_random_next
        s += "masked_lm_positions: %s\n" % " ".join(str(x) for x in self.masked_lm_positions)
        s += "masked_lm_labels: %s\n" % " ".join(
            tokenization.printable_text(x) for x in self.masked_lm_labels)
        return s + "\n"

    def __repr__(self):
        return self.__str__()


MaskedLmInstance = collections.namedtuple("MaskedLmInstance", ["index", "label"])


# ------------------------------------------------------------------------------------------------
# Exact, faster replicas of random.Random.randint / shuffle
# ------------------------------------------------------------------------------------------------


def _fast_rng_ops(rng):
    """Returns (random, randint, shuffle) drawing exactly what `rng`'s own methods would draw.

    `Random.randint(a, b)` is `a + _randbelow(b - a + 1)` and `shuffle` a Fisher-Yates loop over
    `_randbelow`; both go through several Python-level calls per draw. Inlining `_randbelow`
    (rejection sampling on `getrandbits(n.bit_length())`) consumes the same Mersenne Twister words
    in the same order, about twice as fast. Only used for a plain `random.Random`, after a
    self-check at import.
    """
    if type(rng) is not random.Random or not _FAST_RNG_VERIFIED:
        return rng.random, rng.randint, rng.shuffle
    getrandbits = rng.getrandbits

    def randint(a, b):
        n = b - a + 1
        if n <= 0:
            raise ValueError(f"empty range for randint({a}, {b})")
        k = n.bit_length()
        r = getrandbits(k)
        while r >= n:
            r = getrandbits(k)
        return a + r

    def shuffle(x):
        for i in range(len(x) - 1, 0, -1):
            n = i + 1
            k = n.bit_length()
            j = getrandbits(k)
            while j >= n:
                j = getrandbits(k)
            x[i], x[j] = x[j], x[i]

    return rng.random, randint, shuffle


def _verify_fast_rng_ops():
    """True if the inlined draws match this Python's random.Random (guards stdlib changes)."""
    for seed in (0, 12345):
        a, b = random.Random(seed), random.Random(seed)
        _, randint, shuffle = _fast_rng_ops_unchecked(a)
        xs, ys = list(range(300)), list(range(300))
        shuffle(xs)
        b.shuffle(ys)
        if xs != ys:
            return False
        for hi in (1, 2, 3, 7, 100, 30521, 1 << 40):
            if randint(0, hi) != b.randint(0, hi) or randint(2, hi + 2) != b.randint(2, hi + 2):
                return False
        if a.random() != b.random():
            return False
    return True


def _fast_rng_ops_unchecked(rng):
    global _FAST_RNG_VERIFIED
    saved, _FAST_RNG_VERIFIED = _FAST_RNG_VERIFIED, True
    try:
        return _fast_rng_ops(rng)
    finally:
        _FAST_RNG_VERIFIED = saved


_FAST_RNG_VERIFIED = False
_FAST_RNG_VERIFIED = _verify_fast_rng_ops()


# ------------------------------------------------------------------------------------------------
# The algorithm on integer token codes
# ------------------------------------------------------------------------------------------------
#
# Documents are lists of sentences; a sentence is a sequence of integer codes: the vocab id of the
# token, or, when whole-word masking is on, `~id` (a negative number) for a token that continues the
# previous token's word. Integers make the per-instance work cheap, and the sign bit carries the
# word grouping through truncation without a parallel list.


class InstanceMaker:
    """Creates the reference's instances from documents of token codes.

    An instance is a tuple `(input_ids, num_a, masked_lm_positions, masked_lm_ids, is_random_next)`:
    `input_ids` = `[CLS] A [SEP] B [SEP]` after masking (ids, unpadded), `num_a` = len(A)
    (segment 0 is the first num_a + 2 tokens), positions sorted ascending with the ids of the
    original tokens.
    """

    def __init__(self, max_seq_length, short_seq_prob, masked_lm_prob, max_predictions_per_seq,
                 cls_id, sep_id, mask_id, replacement_ids, whole_word_mask,
                 sample_masked_positions=False):
        """Args:
          max_seq_length: int, length of `[CLS] A [SEP] B [SEP]` at most.
          short_seq_prob: float, probability of a random shorter target length per document.
          masked_lm_prob: float, fraction of tokens (counting [CLS]/[SEP]) to predict.
          max_predictions_per_seq: int, cap on the predictions per instance.
          cls_id, sep_id, mask_id: ids of [CLS], [SEP], [MASK].
          replacement_ids: list of the ids of the vocab words in vocab file order (the pool for the
            10% random replacements; one uniform `randint` over it).
          whole_word_mask: bool, codes may be negative (word continuations) and group candidates.
          sample_masked_positions: bool, streaming mode only (not reference-exact): without
            whole-word masking, draw only the masked positions (the first steps of a Fisher-Yates
            shuffle) instead of shuffling every candidate position and keeping the first ones.
            Same distribution (a uniformly random subset in random order) for about 20 draws
            instead of one per token.
        """
        self.max_seq_length = max_seq_length
        self.short_seq_prob = short_seq_prob
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.cls_id = cls_id
        self.sep_id = sep_id
        self.mask_id = mask_id
        self.replacement_ids = replacement_ids
        self.whole_word_mask = whole_word_mask
        self.sample_masked_positions = sample_masked_positions

    def document_instances(self, all_documents, document_index, rng, rng_ops=None):
        """The reference `create_instances_from_document` (NSP segments, truncation, masking).

        Args:
          all_documents: list of documents, each a list of sentences of token codes.
          document_index: int, the document to cut into instances.
          rng: random.Random, drawn in the reference order.
          rng_ops: optional `_fast_rng_ops(rng)` result (saves rebuilding it per document).

        Returns:
          list of instance tuples (see the class docstring).
        """
        rand, randint, _ = rng_ops or _fast_rng_ops(rng)
        document = all_documents[document_index]
        num_documents = len(all_documents)
        max_num_tokens = self.max_seq_length - 3
        # Usually fill the whole sequence; sometimes (short_seq_prob) use a shorter one so that the
        # model also sees short inputs, as at fine-tuning time.
        target_seq_length = max_num_tokens
        if rand() < self.short_seq_prob:
            target_seq_length = randint(2, max_num_tokens)

        instances = []
        current_chunk = []
        current_length = 0
        i = 0
        num_sentences = len(document)
        while i < num_sentences:
            segment = document[i]
            current_chunk.append(segment)
            current_length += len(segment)
            if i == num_sentences - 1 or current_length >= target_seq_length:
                chunk_size = len(current_chunk)
                a_end = 1
                if chunk_size >= 2:
                    a_end = randint(1, chunk_size - 1)
                tokens_a = []
                for j in range(a_end):
                    tokens_a.extend(current_chunk[j])

                tokens_b = []
                # A one-sentence chunk has no actual next sentence: it always takes a random one
                # (no draw then, as in the reference's short-circuit `or`).
                if chunk_size == 1 or rand() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    # Up to 10 tries for another document; a one-document corpus uses itself.
                    for _ in range(10):
                        random_document_index = randint(0, num_documents - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The chunk's unused sentences are "put back" for the next instance.
                    i -= chunk_size - a_end
                else:
                    is_random_next = False
                    for j in range(a_end, chunk_size):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair_at_random(tokens_a, tokens_b, max_num_tokens, rng)
                assert tokens_a and tokens_b

                tokens = [self.cls_id]
                tokens.extend(tokens_a)
                tokens.append(self.sep_id)
                tokens.extend(tokens_b)
                tokens.append(self.sep_id)
                input_ids, positions, label_ids = self.mask_tokens(tokens, rng, rng_ops)
                instances.append((input_ids, len(tokens_a), positions, label_ids, is_random_next))
                current_chunk = []
                current_length = 0
            i += 1
        return instances

    def mask_tokens(self, tokens, rng, rng_ops=None):
        """The reference `create_masked_lm_predictions` on codes.

        Args:
          tokens: list of codes of `[CLS] A [SEP] B [SEP]` (modified in place when not whole-word).
          rng: random.Random.
          rng_ops: optional `_fast_rng_ops(rng)` result.

        Returns:
          (input_ids after masking, sorted masked positions, ids of the original tokens there).
        """
        rand, randint, shuffle = rng_ops or _fast_rng_ops(rng)
        cls_id, sep_id = self.cls_id, self.sep_id
        num_to_predict = min(self.max_predictions_per_seq,
                             max(1, int(round(len(tokens) * self.masked_lm_prob))))
        positions = []
        if self.whole_word_mask:
            # Word groups: a continuation code joins the previous candidate group (even across a
            # [SEP], exactly like the reference's "##" rule).
            cand_indexes = []
            for index, code in enumerate(tokens):
                if code == cls_id or code == sep_id:
                    continue
                if code < 0 and cand_indexes:
                    cand_indexes[-1].append(index)
                else:
                    cand_indexes.append([index])
            output = [code if code >= 0 else ~code for code in tokens]
            shuffle(cand_indexes)
            # Groups partition the positions, so the reference's "already covered" test never
            # fires; a group that would overshoot num_to_predict is skipped.
            selected = []
            for group in cand_indexes:
                if len(selected) >= num_to_predict:
                    break
                if len(selected) + len(group) > num_to_predict:
                    continue
                selected.extend(group)
        else:
            output = tokens
            num_tokens = len(tokens)
            if (self.sample_masked_positions and tokens.count(sep_id) == 2
                    and tokens.count(cls_id) == 1):
                # [CLS] A [SEP] B [SEP] with no special ids inside A or B: the candidates are
                # every position but these three, listed without a Python loop.
                first_sep = tokens.index(sep_id)
                cand_indexes = list(range(1, first_sep))
                cand_indexes += range(first_sep + 1, num_tokens - 1)
            else:
                cand_indexes = [index for index, code in enumerate(tokens)
                                if code != cls_id and code != sep_id]
            if self.sample_masked_positions:
                # The first num_to_predict steps of a Fisher-Yates shuffle: a uniformly random
                # subset in random order, with one draw per selected position.
                last = len(cand_indexes) - 1
                for i in range(min(num_to_predict, last + 1)):
                    j = randint(i, last)
                    cand_indexes[i], cand_indexes[j] = cand_indexes[j], cand_indexes[i]
                selected = cand_indexes[:num_to_predict]
            else:
                # Shuffling single positions draws exactly what shuffling [[index], ...] draws.
                shuffle(cand_indexes)
                selected = cand_indexes[:num_to_predict]

        labels = {}
        mask_id = self.mask_id
        replacement_ids = self.replacement_ids
        last_word = len(replacement_ids) - 1
        for index in selected:
            original = output[index]
            labels[index] = original
            # 80% [MASK], 10% keep, 10% a random vocab word (drawn per WordPiece even for whole
            # words, as in the reference).
            if rand() < 0.8:
                output[index] = mask_id
            elif rand() >= 0.5:
                output[index] = replacement_ids[randint(0, last_word)]
        positions = sorted(labels)
        return output, positions, [labels[p] for p in positions]


def truncate_seq_pair_at_random(tokens_a, tokens_b, max_num_tokens, rng):
    """Truncates a pair of lists in place to a total of at most `max_num_tokens`.

    The longer list loses one token at a time (B when equal), from the front or the back with equal
    probability, one `rng.random()` per removed token.
    """
    rand = rng.random
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        # Truncating from both ends at random adds noise that the reference found useful.
        if rand() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


# ------------------------------------------------------------------------------------------------
# Serialization: tf.train.Example bytes written directly
# ------------------------------------------------------------------------------------------------


def _varint(value):
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


@functools.lru_cache(maxsize=4)
def _varint_table(size):
    """`[_varint(i) for i in range(size)]`, built once per process (streaming mode builds an encoder
    per shard, and the table costs about as much as a thousand instances)."""
    return [_varint(i) for i in range(size)]


def _length_delimited(tag, payload):
    return tag + _varint(len(payload)) + payload


def create_int_feature(values):
    """A tf.train.Feature holding an int64 list."""
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def create_float_feature(values):
    """A tf.train.Feature holding a float list."""
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _proto_example(input_ids, num_a, positions, label_ids, is_random_next, max_seq_length,
                   max_predictions_per_seq):
    """The reference's tf.train.Example for one instance (the slow, obviously correct path)."""
    num_tokens = len(input_ids)
    assert num_tokens <= max_seq_length
    padding = max_seq_length - num_tokens
    num_predictions = len(positions)
    mlm_padding = max_predictions_per_seq - num_predictions
    features = collections.OrderedDict()
    features["input_ids"] = create_int_feature(list(input_ids) + [0] * padding)
    features["input_mask"] = create_int_feature([1] * num_tokens + [0] * padding)
    features["segment_ids"] = create_int_feature(
        [0] * (num_a + 2) + [1] * (num_tokens - num_a - 2) + [0] * padding)
    features["masked_lm_positions"] = create_int_feature(list(positions) + [0] * mlm_padding)
    features["masked_lm_ids"] = create_int_feature(list(label_ids) + [0] * mlm_padding)
    features["masked_lm_weights"] = create_float_feature(
        [1.0] * num_predictions + [0.0] * mlm_padding)
    features["next_sentence_labels"] = create_int_feature([1 if is_random_next else 0])
    return tf.train.Example(features=tf.train.Features(feature=features))


class ExampleEncoder:
    """Serializes instances to the exact bytes of `tf.train.Example(...).SerializeToString()`.

    Building a proto per instance costs more than making the instance; the wire format of these
    seven fixed-length packed lists is simple, so it is written directly. Protobuf writes map
    entries in its own (hash) order, not insertion order: the order is read from a probe example
    serialized by protobuf itself, and the encoder is checked byte for byte against it. If the check
    fails (a different protobuf runtime), every instance goes through the proto path instead.
    """

    def __init__(self, max_seq_length, max_predictions_per_seq, vocab_size):
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        # Varints of ids, positions and of every length that occurs inside an example.
        max_id_bytes = len(_varint(max(vocab_size, max_seq_length)))
        table_size = max(vocab_size, max_seq_length,
                         max_id_bytes * (max_seq_length + max_predictions_per_seq) + 256)
        self._varints = _varint_table(table_size)
        self._keys = {name: _length_delimited(b"\x0a", name.encode()) for name in FEATURE_NAMES}
        self._zeros = [b"\x00" * (max_seq_length - n) for n in range(max_seq_length + 1)]
        self._mlm_zeros = [b"\x00" * (max_predictions_per_seq - n)
                           for n in range(max_predictions_per_seq + 1)]
        self._mask_entries = {}
        self._segment_entries = {}
        self._weight_entries = {}
        self._label_entries = [self._int64_entry("next_sentence_labels", b"\x00"),
                               self._int64_entry("next_sentence_labels", b"\x01")]
        self._order = None
        self.exact = False
        probe = ([101, 7, 300, 102, 20000, 102] + list(range(5, 5 + max(0, max_seq_length - 6))))
        probe = [min(i, vocab_size - 1) for i in probe[:max_seq_length]]
        num_predictions = min(2, max_predictions_per_seq)
        probe_args = (probe, 2, [1, 4][:num_predictions],
                      [min(1999, vocab_size - 1), 3][:num_predictions], True)
        if len(probe) < 6:
            probe_args = (probe[:max_seq_length], 0, [], [], True)
        expected = _proto_example(*probe_args, max_seq_length,
                                  max_predictions_per_seq).SerializeToString()
        self._order = self._entry_order(expected)
        if self._order is not None:
            self._order_index = [FEATURE_NAMES.index(name) for name in self._order]
        if self._order is not None and self.encode(*probe_args) == expected:
            self.exact = True
        else:
            tf1.logging.warning("ExampleEncoder: protobuf serializes differently than expected; "
                                "using the (slower) tf.train.Example path.")

    def _entry_order(self, serialized):
        """Reads the feature-name order of the map entries in a serialized Example."""
        example = tf.train.Example.FromString(serialized)
        if list(example.features.feature.keys()) and serialized[:1] == b"\x0a":
            order = []
            for name in FEATURE_NAMES:
                position = serialized.find(self._keys[name] + b"\x12")
                if position < 0:
                    return None
                order.append((position, name))
            return [name for _, name in sorted(order)]
        return None

    def _int64_entry(self, name, packed):
        """Map entry bytes (as a field of Features) of an int64 feature with packed values."""
        lengths = self._varints
        inner = b"\x0a" + lengths[len(packed)] + packed if packed else b""
        feature = b"\x1a" + lengths[len(inner)] + inner
        entry = self._keys[name] + b"\x12" + lengths[len(feature)] + feature
        return b"\x0a" + lengths[len(entry)] + entry

    def _float_entry(self, name, packed):
        lengths = self._varints
        inner = b"\x0a" + lengths[len(packed)] + packed if packed else b""
        feature = b"\x12" + lengths[len(inner)] + inner
        entry = self._keys[name] + b"\x12" + lengths[len(feature)] + feature
        return b"\x0a" + lengths[len(entry)] + entry

    def encode(self, input_ids, num_a, positions, label_ids, is_random_next):
        """Returns the serialized tf.train.Example of one instance (see InstanceMaker)."""
        num_tokens = len(input_ids)
        max_seq_length = self.max_seq_length
        if num_tokens > max_seq_length:
            raise AssertionError(f"{num_tokens} tokens > max_seq_length {max_seq_length}")
        num_predictions = len(positions)
        varints = self._varints
        # Entries that depend only on lengths are built once and reused.
        mask_entry = self._mask_entries.get(num_tokens)
        if mask_entry is None:
            mask_entry = self._mask_entries[num_tokens] = self._int64_entry(
                "input_mask", b"\x01" * num_tokens + b"\x00" * (max_seq_length - num_tokens))
        segment_entry = self._segment_entries.get((num_tokens, num_a))
        if segment_entry is None:
            segment_entry = self._segment_entries[(num_tokens, num_a)] = self._int64_entry(
                "segment_ids", b"\x00" * (num_a + 2) + b"\x01" * (num_tokens - num_a - 2)
                + b"\x00" * (max_seq_length - num_tokens))
        weights_entry = self._weight_entries.get(num_predictions)
        if weights_entry is None:
            weights_entry = self._weight_entries[num_predictions] = self._float_entry(
                "masked_lm_weights", struct.pack("<f", 1.0) * num_predictions
                + b"\x00\x00\x00\x00" * (self.max_predictions_per_seq - num_predictions))
        mlm_zeros = self._mlm_zeros[num_predictions]
        entries = (
            self._int64_entry("input_ids", b"".join(map(varints.__getitem__, input_ids))
                              + self._zeros[num_tokens]),
            mask_entry,
            segment_entry,
            self._int64_entry("masked_lm_positions",
                              b"".join(map(varints.__getitem__, positions)) + mlm_zeros),
            self._int64_entry("masked_lm_ids",
                              b"".join(map(varints.__getitem__, label_ids)) + mlm_zeros),
            weights_entry,
            self._label_entries[1 if is_random_next else 0],
        )
        body = b"".join([entries[i] for i in self._order_index])
        return b"\x0a" + _varint(len(body)) + body

    def serialize(self, input_ids, num_a, positions, label_ids, is_random_next):
        """Fast bytes when verified, else the proto path; both equal SerializeToString()."""
        if self.exact:
            return self.encode(input_ids, num_a, positions, label_ids, is_random_next)
        return _proto_example(input_ids, num_a, positions, label_ids, is_random_next,
                              self.max_seq_length,
                              self.max_predictions_per_seq).SerializeToString()


# ------------------------------------------------------------------------------------------------
# Reading and tokenizing
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    """Everything the algorithm needs besides the input and output paths (one field per flag)."""

    vocab_file: str
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    random_seed: int = 12345
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    num_workers: int = 0
    shuffle_buffer_size: int = 10000
    chinese_whole_word_mask: bool = False

    @property
    def whole_word_mask(self):
        return self.do_whole_word_mask or self.chinese_whole_word_mask


class TokenCoder:
    """Turns lines of text into sentences of token codes (see InstanceMaker) with one tokenizer."""

    def __init__(self, tokenizer, whole_word_mask=False, word_segmented=False):
        self.tokenizer = tokenizer
        self.vocab = tokenizer.vocab
        self.whole_word_mask = whole_word_mask or word_segmented
        self.word_segmented = word_segmented
        self._continuation_ids = frozenset(
            i for token, i in self.vocab.items() if token.startswith("##"))

    def _ids(self, tokens):
        vocab = self.vocab
        try:
            return [vocab[t] for t in tokens]
        except KeyError as e:
            raise cli.UsageError(
                f"the tokenizer produced {e.args[0]!r}, which is not in the vocab: check that "
                "--vocab_file has [UNK] and matches --do_lower_case") from None

    def encode_line(self, line):
        """Codes of one stripped line ([] if it tokenizes to nothing)."""
        if self.word_segmented:
            codes = []
            tokenize = self.tokenizer.tokenize
            for word in _WORD_SPLIT_RE.split(line):
                ids = self._ids(tokenize(word))
                if ids:
                    # The first piece starts the word; all later pieces continue it.
                    codes.append(ids[0] if ids[0] not in self._continuation_ids else ~ids[0])
                    codes.extend(~i for i in ids[1:])
            return codes
        ids = self._ids(self.tokenizer.tokenize(line))
        if self.whole_word_mask:
            continuation = self._continuation_ids
            return [~i if i in continuation else i for i in ids]
        return ids

    def read_documents(self, input_files, progress=None):
        """The reference reader: one sentence per line, blank line = new document.

        Returns:
          (documents, bytes read): documents are lists of sentences (array('i') of codes), empty
          documents dropped, in input order.
        """
        all_documents = [[]]
        num_bytes = 0
        for path in input_files:
            for line_number, raw in enumerate(_document_lines(path), 1):
                num_bytes += len(raw)
                if progress is not None:
                    progress.update(len(raw))
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise cli.UsageError(
                        f"{path}:{line_number} is not valid UTF-8 ({e.reason} at byte {e.start}): "
                        "convert the input to UTF-8") from None
                line = line.strip()
                if not line:
                    all_documents.append([])
                    continue
                codes = self.encode_line(line)
                if codes:
                    all_documents[-1].append(array.array("i", codes))
        return [d for d in all_documents if d], num_bytes


def _document_lines(path):
    """Yields the raw lines (bytes) of a file; like GFile.readline, splits on "\\n" only."""
    if "://" in path:
        with tf.io.gfile.GFile(path, "rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                yield line
    else:
        with open(path, "rb") as reader:
            yield from reader


# ------------------------------------------------------------------------------------------------
# Reference API (token strings), built on the code-level algorithm
# ------------------------------------------------------------------------------------------------


class _StringCodes:
    """Maps token strings to private integer codes for the string-level reference functions."""

    def __init__(self, vocab_words, do_whole_word_mask):
        self.words = list(vocab_words)
        self.index = {}
        for i, w in enumerate(self.words):
            self.index.setdefault(w, i)
        self.do_whole_word_mask = do_whole_word_mask
        self.num_vocab_words = len(self.words)

    def code(self, token):
        i = self.index.get(token)
        if i is None:
            i = self.index[token] = len(self.words)
            self.words.append(token)
        if self.do_whole_word_mask and token.startswith("##"):
            return ~i
        return i

    def token(self, code):
        return self.words[code if code >= 0 else ~code]

    def maker(self, max_seq_length, short_seq_prob, masked_lm_prob, max_predictions_per_seq):
        cls_id, sep_id, mask_id = (self.code(t) for t in (CLS_TOKEN, SEP_TOKEN, MASK_TOKEN))
        return InstanceMaker(max_seq_length, short_seq_prob, masked_lm_prob,
                             max_predictions_per_seq, cls_id, sep_id, mask_id,
                             list(range(self.num_vocab_words)), self.do_whole_word_mask)

    def training_instance(self, instance):
        input_ids, num_a, positions, label_ids, is_random_next = instance
        return TrainingInstance(
            tokens=[self.token(i) for i in input_ids],
            segment_ids=[0] * (num_a + 2) + [1] * (len(input_ids) - num_a - 2),
            masked_lm_positions=list(positions),
            masked_lm_labels=[self.token(i) for i in label_ids],
            is_random_next=is_random_next)


def create_masked_lm_predictions(tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                                 do_whole_word_mask=False):
    """Reference API: masks token strings; returns (output_tokens, positions, label tokens)."""
    codes = _StringCodes(vocab_words, do_whole_word_mask)
    maker = codes.maker(len(tokens), 0.0, masked_lm_prob, max_predictions_per_seq)
    output, positions, labels = maker.mask_tokens([codes.code(t) for t in tokens], rng)
    return ([codes.token(c) for c in output], positions, [codes.token(c) for c in labels])


def create_instances_from_document(all_documents, document_index, max_seq_length, short_seq_prob,
                                   masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                                   do_whole_word_mask=False):
    """Reference API: TrainingInstances of one document given as lists of token-string sentences."""
    codes = _StringCodes(vocab_words, do_whole_word_mask)
    documents = [[[codes.code(t) for t in sentence] for sentence in document]
                 for document in all_documents]
    maker = codes.maker(max_seq_length, short_seq_prob, masked_lm_prob, max_predictions_per_seq)
    return [codes.training_instance(x)
            for x in maker.document_instances(documents, document_index, rng)]


def _maker_for(tokenizer, options, sample_masked_positions=False):
    vocab = tokenizer.vocab
    missing = [t for t in (CLS_TOKEN, SEP_TOKEN, MASK_TOKEN) if t not in vocab]
    if missing:
        raise cli.UsageError(
            f"the vocab has no {', '.join(missing)}: pass a BERT WordPiece vocab (--vocab_file) "
            "that contains [CLS], [SEP] and [MASK]")
    return InstanceMaker(options.max_seq_length, options.short_seq_prob, options.masked_lm_prob,
                         options.max_predictions_per_seq, vocab[CLS_TOKEN], vocab[SEP_TOKEN],
                         vocab[MASK_TOKEN], [vocab[w] for w in vocab.keys()],
                         options.whole_word_mask, sample_masked_positions)


def _generate_instances(documents, maker, dupe_factor, rng, progress=None):
    """Yields instance tuples: `dupe_factor` passes over all documents, in order."""
    rng_ops = _fast_rng_ops(rng)
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            yield from maker.document_instances(documents, document_index, rng, rng_ops)
            if progress is not None:
                progress.update(1)


def create_training_instances(input_files, tokenizer, max_seq_length, dupe_factor, short_seq_prob,
                              masked_lm_prob, max_predictions_per_seq, rng,
                              do_whole_word_mask=False, chinese_whole_word_mask=False):
    """Reference API: reads, shuffles documents, makes the instances, shuffles them once.

    Returns:
      list of TrainingInstance, in the order the reference writes them.
    """
    options = Options(vocab_file="", do_whole_word_mask=do_whole_word_mask,
                      max_seq_length=max_seq_length,
                      max_predictions_per_seq=max_predictions_per_seq,
                      dupe_factor=dupe_factor, masked_lm_prob=masked_lm_prob,
                      short_seq_prob=short_seq_prob,
                      chinese_whole_word_mask=chinese_whole_word_mask)
    coder = TokenCoder(tokenizer, options.whole_word_mask, chinese_whole_word_mask)
    documents, _ = coder.read_documents(input_files)
    rng.shuffle(documents)
    maker = _maker_for(tokenizer, options)
    instances = list(_generate_instances(documents, maker, dupe_factor, rng))
    rng.shuffle(instances)
    inv_vocab = {i: t for t, i in tokenizer.vocab.items()}
    return [TrainingInstance(
        tokens=[inv_vocab[i] for i in ids],
        segment_ids=[0] * (num_a + 2) + [1] * (len(ids) - num_a - 2),
        masked_lm_positions=list(positions), masked_lm_labels=[inv_vocab[i] for i in labels],
        is_random_next=is_random_next)
        for ids, num_a, positions, labels, is_random_next in instances]


def write_instance_to_example_files(instances, tokenizer, max_seq_length, max_predictions_per_seq,
                                    output_files):
    """Reference API: writes TrainingInstances round-robin to `output_files`; returns the count."""
    encoder = ExampleEncoder(max_seq_length, max_predictions_per_seq, len(tokenizer.vocab))

    def records():
        for instance in instances:
            ids = tokenizer.convert_tokens_to_ids(instance.tokens)
            num_a = instance.segment_ids.count(0) - 2
            yield encoder.serialize(ids, num_a, instance.masked_lm_positions,
                                    tokenizer.convert_tokens_to_ids(instance.masked_lm_labels),
                                    instance.is_random_next)

    return _write_records_round_robin(records(), output_files, tokenizer, None)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _log_example(serialized, inv_vocab):
    """Logs one instance the way the reference does (`*** Example ***`, tokens, every feature)."""
    example = tf.train.Example.FromString(serialized)
    feature = example.features.feature
    input_ids = list(feature["input_ids"].int64_list.value)
    num_tokens = sum(feature["input_mask"].int64_list.value)
    tf1.logging.info("*** Example ***")
    tf1.logging.info("tokens: %s", " ".join(
        tokenization.printable_text(inv_vocab[i]) for i in input_ids[:num_tokens]))
    for name in FEATURE_NAMES:
        values = feature[name].int64_list.value or feature[name].float_list.value
        tf1.logging.info("%s: %s", name, " ".join(str(x) for x in values))


def _write_records_round_robin(records, output_files, tokenizer, progress):
    """Writes serialized examples round-robin over `output_files`, each written atomically."""
    inv_vocab = {i: t for t, i in tokenizer.vocab.items()}
    total_written = 0
    with contextlib.ExitStack() as stack:
        writers = []
        for path in output_files:
            tmp_path = stack.enter_context(cli.atomic_output(path))
            writers.append(stack.enter_context(tf.io.TFRecordWriter(tmp_path)))
        num_writers = len(writers)
        for serialized in records:
            writers[total_written % num_writers].write(serialized)
            if total_written < NUM_LOGGED_INSTANCES:
                _log_example(serialized, inv_vocab)
            total_written += 1
            if progress is not None:
                progress.update(1)
        for writer in writers:
            writer.close()
    tf1.logging.info("Wrote %d total instances", total_written)
    return total_written


# ------------------------------------------------------------------------------------------------
# Reference mode
# ------------------------------------------------------------------------------------------------


def create_reference_mode(input_files, output_files, tokenizer, options):
    """Reference mode: byte-identical output, all instances in memory (serialized).

    Returns:
      dict of counts: documents, instances, bytes (of input text), seconds.
    """
    start = time.time()
    rng = random.Random(options.random_seed)
    coder = TokenCoder(tokenizer, options.whole_word_mask, options.chinese_whole_word_mask)
    total_kb = max(1, sum(_file_size(p) for p in input_files) // 1024)
    reading = _KbProgress(cli.ProgressLogger(total=total_kb, unit="KB", name="reading text"))
    documents, num_bytes = coder.read_documents(input_files, reading)
    reading.done()
    if not documents:
        raise cli.UsageError(
            f"no documents in {', '.join(input_files)}: the input must be UTF-8 text with one "
            "sentence per line and a blank line between documents")
    tf1.logging.info("Read %d documents, %d sentences, %.2f MB", len(documents),
                     sum(len(d) for d in documents), num_bytes / 1e6)
    num_documents = len(documents)
    rng.shuffle(documents)

    maker = _maker_for(tokenizer, options)
    encoder = ExampleEncoder(options.max_seq_length, options.max_predictions_per_seq,
                             len(tokenizer.vocab))
    progress = cli.ProgressLogger(total=options.dupe_factor * len(documents),
                                      unit="documents", name="creating instances")
    serialize = encoder.serialize
    records = [serialize(*instance) for instance in
               _generate_instances(documents, maker, options.dupe_factor, rng, progress)]
    progress.done()
    del documents
    rng.shuffle(records)

    tf1.logging.info("*** Writing to output files ***")
    for path in output_files:
        tf1.logging.info("  %s", path)
    writing = cli.ProgressLogger(total=len(records), unit="instances", name="writing")
    count = _write_records_round_robin(records, output_files, tokenizer, writing)
    writing.done()
    seconds = time.time() - start
    tf1.logging.info("Processed %.2f MB of text in %.1f s (%.3f MB/s)", num_bytes / 1e6, seconds,
                     num_bytes / 1e6 / max(seconds, 1e-9))
    return {"documents": num_documents, "instances": count, "bytes": num_bytes,
            "seconds": seconds}


class _KbProgress:
    """Feeds byte counts to a ProgressLogger counting whole kilobytes."""

    def __init__(self, logger):
        self.logger = logger
        self._pending = 0

    def update(self, num_bytes):
        self._pending += num_bytes
        if self._pending >= 1024:
            kb, self._pending = divmod(self._pending, 1024)
            self.logger.update(kb)

    def done(self):
        self.logger.done()


def _file_size(path):
    try:
        return tf.io.gfile.stat(path).length
    except tf.errors.OpError:
        return 0


# ------------------------------------------------------------------------------------------------
# Streaming mode
# ------------------------------------------------------------------------------------------------


def shard_output_files(output_file, num_shards):
    """Output path of every shard (see the module docstring for the naming scheme)."""
    paths = [p for p in output_file.split(",") if p]
    if len(paths) == num_shards:
        return paths
    if len(paths) != 1:
        raise cli.UsageError(
            f"--output_file lists {len(paths)} paths but there are {num_shards} input shards: in "
            "streaming mode give one path per input file, or a single path used as a prefix")
    return [f"{paths[0]}-{k:05d}-of-{num_shards:05d}" for k in range(num_shards)]


def shard_seed(random_seed, shard_index):
    """Seed of shard `shard_index`'s random.Random (a str seed is hashed with SHA-512: stable)."""
    return f"create_pretraining_data:{random_seed}:{shard_index}"


_WORKER = {}


def _init_worker(tokenizer, options):
    _WORKER["tokenizer"] = tokenizer
    _WORKER["options"] = options


def process_shard(shard_index, input_path, output_path, tokenizer, options, log_examples=False):
    """Streaming mode for one shard: read, then write instances through a shuffle buffer.

    Returns:
      dict with shard, documents, instances, bytes, seconds.
    """
    start = time.time()
    rng = random.Random(shard_seed(options.random_seed, shard_index))
    # The tokenizer's caches would otherwise grow with every shard a worker processes.
    if hasattr(tokenizer, "clear_cache"):
        tokenizer.clear_cache()
    coder = TokenCoder(tokenizer, options.whole_word_mask, options.chinese_whole_word_mask)
    documents, num_bytes = coder.read_documents([input_path])
    if not documents:
        tf1.logging.warning("Shard %d (%s) has no documents; writing an empty %s", shard_index,
                            input_path, output_path)
    rng.shuffle(documents)
    # Streaming output need not match the reference draw for draw (only be seeded per shard), so
    # the masked positions are sampled instead of shuffling every candidate (the costliest step).
    maker = _maker_for(tokenizer, options, sample_masked_positions=True)
    encoder = ExampleEncoder(options.max_seq_length, options.max_predictions_per_seq,
                             len(tokenizer.vocab))
    inv_vocab = {i: t for t, i in tokenizer.vocab.items()} if log_examples else None
    buffer_size = max(1, options.shuffle_buffer_size)
    buffer = []
    count = 0
    progress = cli.ProgressLogger(total=options.dupe_factor * len(documents),
                                      unit="documents", name=f"shard {shard_index}")
    with cli.atomic_output(output_path) as tmp_path:
        with tf.io.TFRecordWriter(tmp_path) as writer:

            def write(serialized):
                nonlocal count
                writer.write(serialized)
                if log_examples and count < NUM_LOGGED_INSTANCES:
                    _log_example(serialized, inv_vocab)
                count += 1

            randint = _fast_rng_ops(rng)[1]
            for instance in _generate_instances(documents, maker, options.dupe_factor, rng,
                                                progress):
                serialized = encoder.serialize(*instance)
                if buffer_size <= 1:
                    write(serialized)
                elif len(buffer) < buffer_size:
                    buffer.append(serialized)
                else:
                    # Emit a random buffered example and keep the new one in its place.
                    slot = randint(0, buffer_size - 1)
                    write(buffer[slot])
                    buffer[slot] = serialized
            rng.shuffle(buffer)
            for serialized in buffer:
                write(serialized)
    return {"shard": shard_index, "documents": len(documents), "instances": count,
            "bytes": num_bytes, "seconds": time.time() - start}


def _process_shard_task(task):
    shard_index, input_path, output_path = task
    return process_shard(shard_index, input_path, output_path, _WORKER["tokenizer"],
                         _WORKER["options"], log_examples=(shard_index == 0))


def create_streaming_mode(input_files, output_file, tokenizer, options):
    """Streaming mode: every input file is a shard, processed by `options.num_workers` processes.

    Returns:
      dict of counts: documents, instances, bytes, seconds, shards.
    """
    start = time.time()
    output_files = shard_output_files(output_file, len(input_files))
    tasks = list(zip(range(len(input_files)), input_files, output_files))
    # Biggest shards first, so that the last worker to finish does not start a big shard late.
    tasks.sort(key=lambda task: -_file_size(task[1]))
    total_kb = max(1, sum(_file_size(p) for p in input_files) // 1024)
    progress = cli.ProgressLogger(total=total_kb, unit="KB", name="shards")
    totals = {"documents": 0, "instances": 0, "bytes": 0}
    num_workers = min(options.num_workers, len(tasks))
    tf1.logging.info("Streaming mode: %d shards, %d worker process(es), outputs %s%s",
                     len(tasks), num_workers, output_files[0],
                     " ..." if len(output_files) > 1 else "")

    def collect(result):
        for key in totals:
            totals[key] += result[key]
        progress.update(result["bytes"] // 1024)
        tf1.logging.info("Shard %d done: %d documents, %d instances, %.2f MB in %.1f s",
                         result["shard"], result["documents"], result["instances"],
                         result["bytes"] / 1e6, result["seconds"])

    # Built before forking, so that the workers share the encoder's varint table.
    ExampleEncoder(options.max_seq_length, options.max_predictions_per_seq, len(tokenizer.vocab))
    if num_workers <= 1:
        _init_worker(tokenizer, options)
        for task in tasks:
            collect(_process_shard_task(task))
    else:
        # fork shares the loaded tokenizer and TensorFlow with the workers for free; elsewhere
        # (macOS/Windows) spawn pickles them.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        with context.Pool(num_workers, initializer=_init_worker,
                          initargs=(tokenizer, options)) as pool:
            for result in pool.imap_unordered(_process_shard_task, tasks):
                collect(result)
    progress.done()
    if totals["documents"] == 0:
        raise cli.UsageError(
            f"no documents in {', '.join(input_files)}: the input must be UTF-8 text with one "
            "sentence per line and a blank line between documents")
    seconds = time.time() - start
    tf1.logging.info("Wrote %d total instances", totals["instances"])
    tf1.logging.info("Processed %.2f MB of text in %.1f s (%.3f MB/s)", totals["bytes"] / 1e6,
                     seconds, totals["bytes"] / 1e6 / max(seconds, 1e-9))
    totals.update(seconds=seconds, shards=len(tasks))
    return totals


# ------------------------------------------------------------------------------------------------
# Validation and main
# ------------------------------------------------------------------------------------------------


def validate_options(options, input_file, output_file):
    """Checks flags before any work; raises UsageError naming the problem and the fix."""
    if not tf.io.gfile.exists(options.vocab_file):
        raise cli.UsageError(
            f"--vocab_file {options.vocab_file} does not exist: pass the vocab.txt of the model "
            "you will pretrain (e.g. uncased_L-12_H-768_A-12/vocab.txt)")
    if options.max_seq_length < MIN_MAX_SEQ_LENGTH:
        raise cli.UsageError(
            f"--max_seq_length={options.max_seq_length} is too small: [CLS] A [SEP] B [SEP] needs "
            f"at least {MIN_MAX_SEQ_LENGTH}; use 128 or 512 as for the released models")
    if options.max_predictions_per_seq < 0:
        raise cli.UsageError("--max_predictions_per_seq must be >= 0 (20 for length 128)")
    if not 0.0 <= options.masked_lm_prob <= 1.0:
        raise cli.UsageError(
            f"--masked_lm_prob={options.masked_lm_prob} must be between 0 and 1 (usually 0.15)")
    if not 0.0 <= options.short_seq_prob <= 1.0:
        raise cli.UsageError(
            f"--short_seq_prob={options.short_seq_prob} must be between 0 and 1 (usually 0.1)")
    if options.dupe_factor < 1:
        raise cli.UsageError(f"--dupe_factor={options.dupe_factor} must be >= 1")
    if options.num_workers < 0:
        raise cli.UsageError(
            f"--num_workers={options.num_workers} must be 0 (reference mode) or the number of "
            "worker processes")
    if options.shuffle_buffer_size < 0:
        raise cli.UsageError("--shuffle_buffer_size must be >= 0")
    expected = int(round(options.max_seq_length * options.masked_lm_prob))
    if options.max_predictions_per_seq < expected:
        # The reference allows this (it caps the predictions), so it stays a warning.
        tf1.logging.warning(
            "--max_predictions_per_seq=%d is less than max_seq_length * masked_lm_prob = %d: "
            "full-length sequences get only %d predictions, i.e. a mask rate of %.3f instead of "
            "%.3f. Use --max_predictions_per_seq=%d (and the same value in run_pretraining.py).",
            options.max_predictions_per_seq, expected, options.max_predictions_per_seq,
            options.max_predictions_per_seq / options.max_seq_length, options.masked_lm_prob,
            expected)
    # The reference's globbing and order; a pattern that matches nothing is an error here (the
    # reference skips it silently, which turns a typo into missing data).
    input_files = cli.expand_input_files(input_file, "--input_file", "raw text file(s), one "
                                         "sentence per line")
    output_files = [p for p in output_file.split(",") if p]
    if not output_files:
        raise cli.UsageError("--output_file is empty: give an output TFRecord path")
    for path in output_files:
        directory = os.path.dirname(path)
        if directory and not tf.io.gfile.isdir(directory):
            raise cli.UsageError(
                f"the directory of --output_file {path} does not exist: create it first")
    return input_files, output_files


def options_from_flags(flag_values):
    return Options(**{field.name: flag_values[field.name].value
                      for field in dataclasses.fields(Options)})


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    options = options_from_flags(FLAGS)
    input_files, output_files = validate_options(options, FLAGS.input_file, FLAGS.output_file)
    tokenizer = tokenization.FullTokenizer(vocab_file=options.vocab_file,
                                           do_lower_case=options.do_lower_case)
    tf1.logging.info("*** Reading from input files ***")
    for path in input_files:
        tf1.logging.info("  %s", path)
    if options.num_workers == 0:
        create_reference_mode(input_files, output_files, tokenizer, options)
    else:
        create_streaming_mode(input_files, FLAGS.output_file, tokenizer, options)


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("input_file")
    flags.mark_flag_as_required("output_file")
    flags.mark_flag_as_required("vocab_file")
    cli.run_main(main)
