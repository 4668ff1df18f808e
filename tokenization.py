"""WordPiece tokenization with the exact behaviour of the reference tokenization.py, made fast.

`FullTokenizer(vocab_file, do_lower_case).tokenize(text)` returns the same tokens as the reference
for every input (checked token for token against a literal transcription of the reference algorithm,
tests/reference_tokenizer.py, on real English and Chinese text and CJK-heavy fuzzing) and, with a
fresh, cold instance over a few thousand lines, runs about 15-17x faster on Chinese text, 13-14x on
mixed Chinese and Latin text and 9-11x on English (bench/bench_tokenizer.py prints the ratios; a
heavily loaded machine gives the lower ends). The speed comes from observations that leave the
output unchanged:

  * The reference pipeline is a per-character map (drop controls, map whitespace to " ", pad CJK
    ideographs) followed by work on whitespace-separated tokens only, so text can be cut at
    whitespace and the pieces handled independently.
  * ASCII text (most of English) needs no Unicode tables: control characters are deleted with one
    `str.translate`, lower-casing cannot change the length or add accents, and the punctuation
    split is done by padding each ASCII punctuation character that occurs with spaces
    (`str.replace`, memchr-fast) and one `str.split()`.
  * Some characters are a basic token of their own wherever they stand: CJK ideographs and CJK or
    full-width punctuation ("solo" characters; none has a case or a combining class). Chinese text
    is cut with one regex into runs of them and the parts between; a run becomes its tokens with a
    single `map` of a per-tokenizer dict (character -> its WordPiece piece, the vocab's characters
    entered up front) over its characters, all in C. Lower-casing the whole line first is exact
    (see _lower_like_reference).
  * Other text with non-ASCII characters (and the parts between solo runs) is cut at whitespace and
    ASCII punctuation; the runs that hold non-ASCII characters ("café", "don’t") finish the
    reference pipeline with `str.translate` tables that fill themselves on the first sight of each
    code point (so `unicodedata` runs once per distinct character).
  * FullTokenizer keeps one cache from those runs (and one from the parts) to their final
    WordPiece pieces, so a known word costs one dict lookup in C (`map` over the line, results
    joined with list +=). The vocab's own tokens are entered when the tokenizer is made. A new word
    is split by a closure that skips the reference's probes longer than the longest vocab piece and
    caches the "##" pieces of each remainder (endings such as "ing" repeat).

Caches are bounded (cleared when they exceed `_CACHE_MAX_ENTRIES`). Special tokens typed in raw text
(`[MASK]`, `[SEP]`) are split into `[`, `mask`, `]` exactly as the reference does; pass
`never_split=("[MASK]",)` or `keep_special_tokens=True` to keep them whole.

This module has no flags and imports TensorFlow only for a remote (`gs://`) vocab path.
"""

import collections
import functools
import itertools
import operator
import os
import re
import unicodedata

# Bound on each cache (chunk -> tokens, word -> pieces, run -> pieces). Clearing is cheap: common
# words come back within a few lines, so the hit rate recovers almost at once.
_CACHE_MAX_ENTRIES = 1 << 20
# Longer chunks (whole Chinese sentences, URLs) rarely repeat; caching them would only cost memory.
_MAX_CACHED_CHUNK_CHARS = 64

# The released checkpoints and their casing, used by validate_case_matches_checkpoint.
_LOWER_CASED_MODELS = (
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
)
_CASED_MODELS = (
    "cased_L-12_H-768_A-12",
    "cased_L-24_H-1024_A-16",
    "multi_cased_L-12_H-768_A-12",
)

# Tokens kept whole by `keep_special_tokens=True` (those present in the vocab).
DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
    """Checks that `do_lower_case` agrees with the casing of a released checkpoint.

    Only the released model names (spec section 10) are recognised, from paths of the form
    `.../<model_name>/bert_model.ckpt`; anything else is accepted without a check.

    Args:
      do_lower_case: bool, the value of `--do_lower_case`.
      init_checkpoint: str or None, the value of `--init_checkpoint`.

    Raises:
      ValueError: the checkpoint is a known cased model and `do_lower_case` is True, or the reverse.
    """
    if not init_checkpoint:
        return
    match = re.match(r"^.*?([A-Za-z0-9_-]+)/bert_model\.ckpt", init_checkpoint)
    if match is None:
        return
    model_name = match.group(1)
    if model_name in _LOWER_CASED_MODELS and not do_lower_case:
        actual_flag, case_name, opposite_flag = "False", "lowercased", "True"
    elif model_name in _CASED_MODELS and do_lower_case:
        actual_flag, case_name, opposite_flag = "True", "cased", "False"
    else:
        return
    raise ValueError(
        f"You passed in `--do_lower_case={actual_flag}` with "
        f"`--init_checkpoint={init_checkpoint}`. "
        f"However, `{model_name}` seems to be a {case_name} model, so you should pass in "
        f"`--do_lower_case={opposite_flag}` so that the fine-tuning matches how the model was "
        f"pre-trained. If this error is wrong, please just comment out this check.")


def convert_to_unicode(text):
    """Returns `text` as str; bytes are decoded as UTF-8, silently dropping undecodable bytes.

    Raises:
      ValueError: `text` is neither str nor bytes.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise ValueError(f"Unsupported string type: {type(text)}")


def printable_text(text):
    """Returns `text` as a str suitable for print() and logging (bytes decoded as UTF-8)."""
    return convert_to_unicode(text)


def _read_vocab_text(vocab_file):
    """Returns the whole vocab file decoded as UTF-8, with errors that say what to pass instead."""
    if "://" in vocab_file:
        # Remote paths (gs://...) need TensorFlow's file system; imported here only because the
        # import costs seconds and local vocabularies are the common case.
        import tensorflow as tf

        if not tf.io.gfile.exists(vocab_file):
            raise FileNotFoundError(
                f"vocab file {vocab_file} does not exist: pass the vocab.txt that ships with the "
                f"checkpoint via --vocab_file")
        with tf.io.gfile.GFile(vocab_file, "rb") as reader:
            data = reader.read()
    else:
        if not os.path.isfile(vocab_file):
            what = "is a directory" if os.path.isdir(vocab_file) else "does not exist"
            raise FileNotFoundError(
                f"vocab file {vocab_file} {what}: pass the vocab.txt that ships with the "
                f"checkpoint "
                f"(one WordPiece token per line) via --vocab_file")
        with open(vocab_file, "rb") as reader:
            data = reader.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ValueError(
            f"vocab file {vocab_file} is not valid UTF-8 (byte 0x{data[e.start]:02x} on line "
            f"{line}): pass the WordPiece vocab.txt that ships with the checkpoint via "
            f"--vocab_file") from None


def load_vocab(vocab_file):
    """Loads a vocabulary file (one token per line) into an OrderedDict token -> line index.

    As in the reference, every line is `strip()`ped and counted, so a blank line maps "" to its
    index, and a duplicated token keeps the index of its last occurrence. Lines end at "\\n" only.

    Args:
      vocab_file: str, local path or TensorFlow-readable URL of the vocab file.

    Returns:
      collections.OrderedDict mapping token (str) -> id (int).

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not valid UTF-8.
    """
    lines = _read_vocab_text(vocab_file).split("\n")
    if lines and not lines[-1]:
        lines.pop()  # The text after the final "\n" is empty: end of file, not a line.
    # Assigning the pairs in order keeps a duplicate at its first position with its last index, as
    # the reference's loop does.
    return collections.OrderedDict(zip(map(str.strip, lines), itertools.count()))


def convert_by_vocab(vocab, items):
    """Maps every item through `vocab` (plain dict lookups: KeyError on an unknown item)."""
    return [vocab[item] for item in items]


def convert_tokens_to_ids(vocab, tokens):
    return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
    return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
    """Strips `text` and splits it on whitespace; an empty or blank text gives []."""
    return text.split()


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """Truncates a sequence pair in place to `max_length` tokens, one at a time from the longer.

    This makes more sense than truncating an equal share of each: a short sequence probably carries
    information that a proportion-based cut would remove, while the long one loses little. On a tie
    the token comes off `tokens_b`, as in the reference.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def pack_sequence_pair(tokens_a, tokens_b, max_seq_length):
    """Truncates WordPiece tokens and wraps them as `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.

    The convention in BERT is:
      (a) sequence pairs:   tokens   [CLS] is this jack ##son ##ville ? [SEP] no it is not . [SEP]
                            type ids 0     0  0    0    0     0       0 0     1  1  1  1   1 1
      (b) single sequences: tokens   [CLS] the dog is hairy . [SEP]
                            type ids 0     0   0   0  0     0 0
    The type ids select the learned segment embedding; the [CLS] vector is a sentence vector only
    after fine-tuning, which is what a classifier head relies on.

    Args:
      tokens_a: list of str, the first sequence (truncated in place for a pair).
      tokens_b: list of str or None, the second sequence (truncated in place).
      max_seq_length: int, the length of the result including [CLS] and [SEP]s.

    Returns:
      (tokens, segment_ids): lists of equal length, at most `max_seq_length`.
    """
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)  # [CLS], [SEP], [SEP]
    elif len(tokens_a) > max_seq_length - 2:
        tokens_a = tokens_a[:max_seq_length - 2]  # [CLS], [SEP]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    return tokens, segment_ids


# --------------------------------------------------------------------------------------------------
# Character classes, exactly as the reference defines them (tests and the tables below use them).


def _is_whitespace(char):
    """True for space, tab, newline, carriage return and Unicode category Zs."""
    if char == " " or char == "\t" or char == "\n" or char == "\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char):
    """True for categories Cc and Cf, except tab, newline and carriage return (spaces)."""
    if char == "\t" or char == "\n" or char == "\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
    """True for all non-alphanumeric printable ASCII (so `$`, `^`, `+` count) and categories P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp):
    """True for code points in the CJK Unified Ideographs blocks (not Hangul or kana)."""
    return (0x4E00 <= cp <= 0x9FFF or
            0x3400 <= cp <= 0x4DBF or
            0x20000 <= cp <= 0x2A6DF or
            0x2A700 <= cp <= 0x2B73F or
            0x2B740 <= cp <= 0x2B81F or
            0x2B820 <= cp <= 0x2CEAF or
            0xF900 <= cp <= 0xFAFF or
            0x2F800 <= cp <= 0x2FA1F)


class _LazyTranslationTable(dict):
    """A `str.translate` table that computes a code point's replacement the first time it is seen.

    `str.translate` looks every character up in C; only new code points reach Python, so each
    `unicodedata` query happens once per process instead of once per character. The table is bounded
    by the number of code points.
    """

    def __init__(self, replacement_fn):
        super().__init__()
        self._replacement_fn = replacement_fn

    def __missing__(self, cp):
        value = self._replacement_fn(cp)
        self[cp] = value
        return value


def _clean_replacement(cp):
    char = chr(cp)
    if cp == 0 or cp == 0xFFFD or _is_control(char):
        return None  # Deleted.
    if _is_whitespace(char):
        return " "
    return char


def _strip_mn_replacement(cp):
    char = chr(cp)
    return None if unicodedata.category(char) == "Mn" else char


def _pad_punctuation_replacement(cp):
    char = chr(cp)
    return f" {char} " if _is_punctuation(char) else char


_CLEAN_TABLE = _LazyTranslationTable(_clean_replacement)
_PAD_CJK_TABLE = _LazyTranslationTable(
    lambda cp: f" {chr(cp)} " if _is_chinese_char(cp) else chr(cp))
_STRIP_MN_TABLE = _LazyTranslationTable(_strip_mn_replacement)
_PAD_PUNCTUATION_TABLE = _LazyTranslationTable(_pad_punctuation_replacement)

# ASCII control characters (all category Cc) except tab, newline and carriage return, which the
# reference treats as spaces.
_ASCII_CONTROL_TABLE = {cp: None for cp in range(128) if _clean_replacement(cp) is None}
# An ASCII punctuation character (33-47, 58-64, 91-96, 123-126) alone, or a run of anything else but
# the four ASCII whitespace characters left after deleting controls. On cleaned, lower-cased ASCII
# text this yields exactly the reference's basic tokens.
_ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
_ASCII_TOKEN_RE = re.compile(f"[{_ASCII_PUNCTUATION}]|[^{_ASCII_PUNCTUATION} \t\n\r]+")
# Each ASCII punctuation character with a space on both sides, for _split_at_ascii_punctuation.
_ASCII_PUNCTUATION_PADDING = tuple(
    (chr(cp), f" {chr(cp)} ") for cp in range(33, 127) if not chr(cp).isalnum())


def _split_at_ascii_punctuation(text):
    """Cuts cleaned text at whitespace and around every ASCII punctuation character.

    Returns each ASCII punctuation character alone and every run of other non-whitespace
    characters: on cleaned ASCII text exactly `_ASCII_TOKEN_RE.findall(text)`, the reference's basic
    tokens. Runs with non-ASCII characters ("café", "don’t", "北京") are finished by
    _lowered_fragment_tokens.

    Padding the punctuation with spaces and calling str.split() takes about 60% of the instructions
    of a regex `findall` over the line (counted with callgrind on the benchmark text): `in` and
    `replace` scan with memchr, only the characters that occur are replaced, and str.split() is one
    pass (FullTokenizer.tokenize inlines this loop).
    """
    for char, padded in _ASCII_PUNCTUATION_PADDING:
        if char in text:
            text = text.replace(char, padded)
    return text.split()


def _ascii_basic_tokens(text, do_lower_case):
    """The reference's basic tokens for ASCII `text`: no CJK, accents or Unicode classes."""
    if not text.isprintable():
        text = text.translate(_ASCII_CONTROL_TABLE)
    if do_lower_case:
        text = text.lower()  # ASCII lower-casing maps A-Z only: no length change, no accents.
    return _ASCII_TOKEN_RE.findall(text)


def _lowered_fragment_tokens(fragment, do_lower_case):
    """Basic tokens of a _split_at_ascii_punctuation run, cleaned (and lower-cased if asked).

    After cleaning and lower-casing, the reference's remaining steps (pad CJK characters, split on
    whitespace, then per token: NFD and drop category Mn, split off punctuation) map one character
    at a time, except that NFD reorders runs of combining marks; those never extend past an ASCII
    character or a space. So the line can be cut at whitespace and ASCII punctuation first, and
    each step done on a whole fragment.
    """
    fragment = fragment.translate(_PAD_CJK_TABLE)
    if do_lower_case:
        fragment = unicodedata.normalize("NFD", fragment).translate(_STRIP_MN_TABLE)
    return fragment.translate(_PAD_PUNCTUATION_TABLE).split()


# The code point ranges of _is_chinese_char, for a regex character class.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# Blocks of punctuation used with CJK text: CJK symbols and punctuation, CJK compatibility and
# small forms, full-width forms. Not general punctuation (curly quotes, dashes): in English lines
# those would cut long runs that the general path handles faster in one piece.
_SOLO_PUNCTUATION_BLOCKS = ((0x3000, 0x303F), (0xFE30, 0xFE6B), (0xFF01, 0xFF65))


def _is_solo_punctuation(char):
    """True for a punctuation character that is one basic token on its own in any context.

    Non-ASCII (ASCII text takes its own path), not a combining mark, caseless, and left as one
    character by NFD, so lower-casing and accent stripping turn it into exactly one character.
    """
    return (not char.isascii() and _is_punctuation(char) and unicodedata.combining(char) == 0
            and char.lower() == char and len(unicodedata.normalize("NFD", char)) == 1)


def _compile_solo_run_re():
    """Returns a regex whose one group matches a run of solo characters.

    A solo character is a basic token of its own whatever surrounds it: a CJK ideograph (which the
    reference surrounds with spaces) or a punctuation character of _is_solo_punctuation (which it
    splits off). None of them has a case or a combining class, so cutting text at them changes
    neither lower-casing nor NFD reordering of the rest. The set has to be a subset of such
    characters, not all of them: any other character takes the general path, exact for everything.
    Building it asks unicodedata about a few hundred code points.
    """
    punctuation = [chr(cp) for first, last in _SOLO_PUNCTUATION_BLOCKS
                   for cp in range(first, last + 1) if _is_solo_punctuation(chr(cp))]
    ideographs = "".join(f"{chr(first)}-{chr(last)}" for first, last in _CJK_RANGES)
    return re.compile("([" + ideographs + re.escape("".join(punctuation)) + "]+)")


# re.split() with this regex alternates runs of other text (even indices, possibly empty) and runs
# of solo characters (odd indices): a Chinese line becomes a few items, not one per character.
_SOLO_RUN_RE = _compile_solo_run_re()


def _lower_like_reference(text):
    """Lower-cases `text` as the reference does after cleaning it, without cleaning all of it.

    str.lower() maps one character at a time except a capital sigma, which becomes final or not by
    its neighbours: a control character deleted by cleaning can change that (`"\\u03a3\\x00a"`), so
    only text with a sigma and something to delete is cleaned first. Everything else is cleaned
    later, in the pieces that hold non-solo characters.
    """
    if "\u03a3" in text and (not text.isprintable() or "\ufffd" in text):
        text = text.translate(_CLEAN_TABLE)
    return text.lower()


def _cleaned(text):
    """`text` with controls, U+0000 and U+FFFD deleted and whitespace mapped to " " (reference)."""
    if text.isprintable() and "\ufffd" not in text:
        return text  # Nothing to clean: the common case, tested in C without building a string.
    return text.translate(_CLEAN_TABLE)



def _compile_special_tokens(tokens):
    """Returns a regex with one group matching any of `tokens` (longest first), or None."""
    if not tokens:
        return None
    ordered = sorted(set(tokens), key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")


def _check_special_tokens(tokens):
    tokens = tuple(tokens or ())
    for token in tokens:
        if not isinstance(token, str) or len(token.split()) != 1 or token != token.strip():
            raise ValueError(
                f"never_split entries must be non-empty strings without whitespace, got {token!r}")
    return tokens


def _concat(sequences):
    """Concatenates an iterable of tuples or lists into a new list.

    `list += tuple` copies in C without creating an iterator per item, unlike itertools.chain: on
    millions of one-piece words this is faster and leaves the garbage collector far less to do.
    """
    return functools.reduce(operator.iadd, sequences, [])


class _Memo(dict):
    """A bounded cache `key -> fn(key)` whose hits never leave C.

    `memo[key]` (or `map(memo.__getitem__, keys)`) is a plain dict lookup when the key is known;
    only misses call `__missing__`, which computes the value, stores it (unless the key is longer
    than `max_key_chars`) and clears everything first when `_CACHE_MAX_ENTRIES` is reached.
    """

    __slots__ = ("_fn", "_max_key_chars")

    def __init__(self, fn, max_key_chars=None):
        super().__init__()
        self._fn = fn
        self._max_key_chars = max_key_chars

    def __missing__(self, key):
        value = self._fn(key)
        if self._max_key_chars is None or len(key) <= self._max_key_chars:
            if len(self) >= _CACHE_MAX_ENTRIES:
                self.clear()
            self[key] = value
        return value


# Solo character -> its basic token when lower-casing (NFD maps CJK compatibility ideographs such
# as U+F900 to unified ones; every other solo character stays as it is). Shared by all tokenizers:
# it does not depend on a vocab, and it holds at most the ~82k solo characters.
_SOLO_NFD = _Memo(functools.partial(unicodedata.normalize, "NFD"))


def _tokenize_solo_runs(text, solo_token, part_tokens):
    """Tokens of `text` cut into runs of solo characters and the parts between them.

    Args:
      text: str, lower-cased by _lower_like_reference if the tokenizer lower-cases, else raw.
      solo_token: function solo character -> its one token, or None to keep the characters.
      part_tokens: dict-like part -> tuple of its tokens (the text between two solo runs).

    Returns:
      list of str tokens.
    """
    parts = _SOLO_RUN_RE.split(text)
    output = list(part_tokens[parts[0]])
    for index in range(1, len(parts), 2):
        # One C-level map per run: a Chinese sentence costs a dict lookup per character.
        output += parts[index] if solo_token is None else map(solo_token, parts[index])
        output += part_tokens[parts[index + 1]]
    return output


def _tokenize_segments(text, special_re, tokenize_text):
    """Applies `tokenize_text` to the text around special tokens and keeps the special tokens whole.

    Args:
      text: str.
      special_re: compiled regex from _compile_special_tokens, or None.
      tokenize_text: function str -> list of str tokens.

    Returns:
      list of str tokens.
    """
    if special_re is None:
        return tokenize_text(text)
    output = []
    # re.split with one group alternates raw text (even index) and a matched special token (odd).
    for index, part in enumerate(special_re.split(text)):
        if index % 2:
            output.append(part)
        elif part:
            output.extend(tokenize_text(part))
    return output


class BasicTokenizer(object):
    """Basic tokenization: cleaning, CJK padding, lower-casing, accent and punctuation splitting.

    Exactly the reference's behaviour; `never_split` is an opt-in extension (default: none, so
    `[MASK]` in raw text becomes `[`, `mask`, `]` like the reference).
    """

    def __init__(self, do_lower_case=True, never_split=None):
        """Constructs a BasicTokenizer.

        Args:
          do_lower_case: bool, lower-case the input and strip accents (they are tied together, as in
            the reference).
          never_split: optional sequence of str (e.g. `("[MASK]", "[SEP]")`). Exact, case-sensitive
            occurrences in the raw text are emitted as single tokens, untouched; the text around
            them is tokenized as if the special token were surrounded by spaces.

        Raises:
          ValueError: a never_split entry is empty or contains whitespace.
        """
        self._do_lower_case = bool(do_lower_case)
        self.never_split = _check_special_tokens(never_split)
        self._never_split_re = _compile_special_tokens(self.never_split)
        # Part of non-ASCII text between solo runs -> tuple of its basic tokens.
        self._cache = _Memo(lambda part: tuple(self._tokenize_part(part)),
                            max_key_chars=_MAX_CACHED_CHUNK_CHARS)

    @property
    def do_lower_case(self):
        return self._do_lower_case

    @do_lower_case.setter
    def do_lower_case(self, value):
        self._do_lower_case = bool(value)
        self._cache.clear()

    def clear_cache(self):
        """Empties the chunk cache (memory only: results never depend on it)."""
        self._cache.clear()

    # Pickled as settings only (spawned worker processes receive tokenizers this way): the cache
    # holds a closure, and is rebuilt empty.
    def __getstate__(self):
        return {"do_lower_case": self._do_lower_case, "never_split": self.never_split}

    def __setstate__(self, state):
        self.__init__(**state)

    def tokenize(self, text):
        """Tokenizes a piece of text.

        Args:
          text: str or UTF-8 bytes.

        Returns:
          list of str tokens.
        """
        text = convert_to_unicode(text)
        return _tokenize_segments(text, self._never_split_re, self._tokenize_text)

    def _tokenize_text(self, text):
        if text.isascii():
            return _ascii_basic_tokens(text, self._do_lower_case)
        if self._do_lower_case:
            return _tokenize_solo_runs(_lower_like_reference(text), _SOLO_NFD.__getitem__,
                                       self._cache)
        return _tokenize_solo_runs(text, None, self._cache)

    def _tokenize_part(self, part):
        """Basic tokens of text between solo runs (already lower-cased if lower-casing)."""
        output = []
        for run in _split_at_ascii_punctuation(_cleaned(part)):
            if run.isascii():
                output.append(run)
            else:
                output += _lowered_fragment_tokens(run, self._do_lower_case)
        return output

    # The reference's helper methods, kept for callers that use them directly.

    def _clean_text(self, text):
        """Deletes U+0000, U+FFFD and control characters; maps each whitespace character to " "."""
        return text.translate(_CLEAN_TABLE)

    def _tokenize_chinese_chars(self, text):
        """Surrounds every CJK ideograph with spaces."""
        return text.translate(_PAD_CJK_TABLE)

    def _run_strip_accents(self, text):
        """NFD-normalises `text` and drops combining marks (category Mn)."""
        return unicodedata.normalize("NFD", text).translate(_STRIP_MN_TABLE)

    def _run_split_on_punc(self, text):
        """Splits `text` so every punctuation character is its own piece (whitespace is kept)."""
        output = []
        start_new_word = True
        for char in text:
            if _is_punctuation(char):
                output.append(char)
                start_new_word = True
            else:
                if start_new_word:
                    output.append("")
                start_new_word = False
                output[-1] += char
        return output

    def _is_chinese_char(self, cp):
        return _is_chinese_char(cp)


_NOT_CACHED = object()  # Sentinel: a cache has no entry (None is a valid cached value).


class _WordPieceCache(dict):
    """A bounded cache `word -> tuple of WordPiece pieces` that splits a word on its first sight.

    `cache[word]` is a plain dict lookup for a known word (the hot path never leaves C); only new
    words reach `__missing__`. On a cold pass over real English text about 44k of 63k distinct words
    are not in the vocab, so the split of a new word is a closure (see _make_splitter) whose state
    is in fast local variables rather than attributes.
    """

    __slots__ = ("_split", "max_input_chars")

    def reset(self, vocab, unk_token, max_input_chars):
        """Empties the cache and makes a new splitter from the current settings."""
        self.clear()
        self._split = _make_splitter(vocab, unk_token, max_input_chars)
        self.max_input_chars = max_input_chars

    def __missing__(self, word):
        if len(self) >= _CACHE_MAX_ENTRIES:
            self.clear()
        self[word] = pieces = self._split(word)
        return pieces


def _make_splitter(vocab, unk_token, max_input_chars):
    """Returns `split(word)`: the reference's greedy WordPiece split of one word, as a tuple.

    The reference tries word[start:end] (with "##" in front after the first piece) for `end` from
    the end of the word down to start + 1 and keeps the first that is in the vocab. The same longest
    match is found with fewer probes: candidates longer than the longest vocab piece are skipped,
    and later pieces are probed without "##" among the pieces' text after "##".
    """
    # Plain dicts of str -> None rather than frozensets: the garbage collector stops tracking such
    # dicts, while it walks every set in each full collection (tens of thousands of entries).
    pieces = dict.fromkeys(vocab)
    continuations = dict.fromkeys(p[2:] for p in pieces if p.startswith("##") and len(p) > 2)
    max_piece_chars = max(map(len, pieces), default=0)
    max_continuation_chars = max(map(len, continuations), default=0)
    unk = (unk_token,)
    # Remainder after the first piece -> tuple of "##" pieces (None: no split). Endings repeat
    # ("ing", "s", "ed"), so about 40% of new words reuse an entry.
    suffixes = {}

    def continuation_pieces(rest):
        tail = []
        start = 0
        num_chars = len(rest)
        while start < num_chars:
            end = start + max_continuation_chars
            if end > num_chars:
                end = num_chars
            while end > start and rest[start:end] not in continuations:
                end -= 1
            if end == start:
                return None  # No piece at this position: the whole word is unknown.
            tail.append("##" + rest[start:end])
            start = end
        return tuple(tail)

    def split(word):
        num_chars = len(word)
        if num_chars > max_input_chars:
            return unk
        if word in pieces:
            return (word,)  # The longest possible match: most words end here.
        end = num_chars - 1 if num_chars <= max_piece_chars else max_piece_chars
        while end and word[:end] not in pieces:
            end -= 1
        if not end:
            return unk
        rest = word[end:]
        tail = suffixes.get(rest, _NOT_CACHED)
        if tail is _NOT_CACHED:
            if len(suffixes) >= _CACHE_MAX_ENTRIES:
                suffixes.clear()
            tail = suffixes[rest] = continuation_pieces(rest)
        if tail is None:
            return unk
        return (word[:end],) + tail

    return split


class WordpieceTokenizer(object):
    """Greedy longest-match-first WordPiece tokenization (results cached per word)."""

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        """Constructs a WordpieceTokenizer.

        Args:
          vocab: dict-like token -> id; read-only (or call clear_cache() after changing it).
          unk_token: str emitted for a word that cannot be split into vocab pieces.
          max_input_chars_per_word: int, longer words (in code points) become one `unk_token`.
        """
        self._cache = _WordPieceCache()  # word -> tuple of pieces
        self._vocab = vocab
        self._unk_token = unk_token
        self._max_input_chars_per_word = max_input_chars_per_word
        self._rebuild()

    # Changing a setting empties the cache, so results always follow the current settings.

    @property
    def vocab(self):
        return self._vocab

    @vocab.setter
    def vocab(self, value):
        self._vocab = value
        self._rebuild()

    @property
    def unk_token(self):
        return self._unk_token

    @unk_token.setter
    def unk_token(self, value):
        self._unk_token = value
        self._rebuild()

    @property
    def max_input_chars_per_word(self):
        return self._max_input_chars_per_word

    @max_input_chars_per_word.setter
    def max_input_chars_per_word(self, value):
        self._max_input_chars_per_word = value
        self._rebuild()

    def clear_cache(self):
        """Empties the cache and re-reads the vocab (after changing `vocab` in place)."""
        self._rebuild()

    def __getstate__(self):
        return {"vocab": self._vocab, "unk_token": self._unk_token,
                "max_input_chars_per_word": self._max_input_chars_per_word}

    def __setstate__(self, state):
        self.__init__(**state)

    def _rebuild(self):
        self._vocab_size = len(self._vocab)
        self._cache.reset(self._vocab, self._unk_token, self._max_input_chars_per_word)

    def _check_vocab_size(self):
        """Rebuilds if tokens were added to or removed from the vocab in place (cheap check)."""
        if len(self._vocab) != self._vocab_size:
            self._rebuild()

    def tokenize(self, text):
        """Tokenizes whitespace-separated words into WordPiece pieces.

        For example, `"unaffable"` gives `["un", "##aff", "##able"]` with a suitable vocab; a word
        with no complete split, or longer than `max_input_chars_per_word`, gives `[unk_token]`.

        Args:
          text: str or UTF-8 bytes, normally already passed through BasicTokenizer.

        Returns:
          list of str pieces.
        """
        text = convert_to_unicode(text)
        self._check_vocab_size()
        return _concat(map(self._cache.__getitem__, text.split()))


class _PiecesCache(dict):
    """FullTokenizer's cache from the runs of _split_at_ascii_punctuation to their WordPiece pieces.

    Keys are ASCII basic tokens (value: their pieces) and runs with non-ASCII characters, already
    cleaned and lower-cased (value: the pieces of all their basic tokens). One dict for both lets a
    whole line go through a single `map` in C. Known keys never leave C;
    `__missing__` computes new ones with the WordpieceTokenizer's splitter, so the cache is remade
    (reset) whenever that splitter or the lower-casing setting changes.
    """

    __slots__ = ("split", "word_pieces", "do_lower_case", "solo", "parts")

    def __init__(self):
        super().__init__()
        self.split = self.word_pieces = self.do_lower_case = self.solo = self.parts = None

    def reset(self, word_pieces, do_lower_case, vocab):
        """Empties the cache; `word_pieces` is the WordpieceTokenizer's _WordPieceCache.

        ASCII vocab tokens are entered as their own single piece right away (a few milliseconds
        for a 30k vocab; about a third of the distinct words of real text are vocab tokens), unless
        the vocab would fill much of the cache bound. A vocab token not longer than the word limit
        is its own split, so the pieces are the 1-tuples of zip(), with no split() calls.
        """
        self.clear()
        self.word_pieces = word_pieces
        self.split = split = word_pieces._split
        self.do_lower_case = do_lower_case
        max_chars = word_pieces.max_input_chars
        if len(vocab) <= _CACHE_MAX_ENTRIES // 2:
            words = [token for token in vocab
                     if token and token.isascii() and len(token) <= max_chars]
            self.update(zip(words, zip(words)))
        self.solo = _SoloPieces(split, do_lower_case, vocab)
        self.parts = _Memo(self._part_pieces, max_key_chars=_MAX_CACHED_CHUNK_CHARS)

    def _part_pieces(self, part):
        """Pieces of non-ASCII text between solo runs (lower-cased already if lower-casing)."""
        return tuple(_concat(map(self.__getitem__, _split_at_ascii_punctuation(_cleaned(part)))))

    def __missing__(self, key):
        if key.isascii():
            pieces = self.split(key)
        else:
            pieces = tuple(_concat(map(self.word_pieces.__getitem__,
                                       _lowered_fragment_tokens(key, self.do_lower_case))))
            if len(key) > _MAX_CACHED_CHUNK_CHARS:
                return pieces
        if len(self) >= _CACHE_MAX_ENTRIES:
            self.clear()
        self[key] = pieces
        return pieces


class _SoloPieces(dict):
    """FullTokenizer's table solo character -> its WordPiece piece (the character or [UNK]).

    A solo character is a basic token and so a word of its own, and a one-character word is always
    one piece. The vocab's own solo characters (most of a Chinese vocab) are entered when the table
    is made; `__missing__` fills in the rest on first sight.
    """

    __slots__ = ("_split", "_do_lower_case")

    def __init__(self, split, do_lower_case, vocab):
        super().__init__()
        self._split = split
        self._do_lower_case = do_lower_case
        # A unified ideograph or solo punctuation mark in the vocab is its own piece (NFD leaves
        # them unchanged, unlike compatibility ideographs); split() checks the word length limit.
        # One regex pass over the vocab's characters finds the solo ones (7k in a Chinese vocab).
        chars = "".join(_SOLO_RUN_RE.findall("".join(t for t in vocab if len(t) == 1)))
        if not unicodedata.is_normalized("NFD", chars):
            chars = [char for char in chars if unicodedata.is_normalized("NFD", char)]
        self.update((char, split(char)[0]) for char in chars)

    def __missing__(self, char):
        word = _SOLO_NFD[char] if self._do_lower_case else char
        self[char] = piece = self._split(word)[0]
        return piece


class FullTokenizer(object):
    """End-to-end tokenization: BasicTokenizer, then WordPiece on every basic token."""

    def __init__(self, vocab_file, do_lower_case=True, never_split=None, keep_special_tokens=False):
        """Constructs a FullTokenizer.

        Args:
          vocab_file: str, path of the WordPiece vocab (one token per line).
          do_lower_case: bool, must match the checkpoint (True for uncased models).
          never_split: optional sequence of vocab tokens (e.g. `("[MASK]",)`) kept whole when they
            occur in the raw text. Default: none, exactly like the reference.
          keep_special_tokens: bool, also keep whole those of DEFAULT_SPECIAL_TOKENS in the vocab.

        Raises:
          FileNotFoundError: `vocab_file` does not exist.
          ValueError: the vocab is not UTF-8, or a never_split token is not in the vocab.
        """
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = dict(zip(self.vocab.values(), self.vocab.keys()))
        special = list(_check_special_tokens(never_split))
        if keep_special_tokens:
            special += [t for t in DEFAULT_SPECIAL_TOKENS if t in self.vocab and t not in special]
        missing = [t for t in special if t not in self.vocab]
        if missing:
            raise ValueError(
                f"never_split tokens {missing} are not in the vocab {vocab_file}: list only tokens "
                f"that have an id (for example [MASK], [SEP], [CLS])")
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=special)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._pieces = _PiecesCache()
        self._pieces.reset(self.wordpiece_tokenizer._cache, self.basic_tokenizer._do_lower_case,
                           self.vocab)

    def clear_cache(self):
        """Empties all caches (memory only: results never depend on them)."""
        self.basic_tokenizer.clear_cache()
        self.wordpiece_tokenizer.clear_cache()
        self._pieces.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_pieces"]  # Holds closures; rebuilt (empty) when unpickled.
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._pieces = _PiecesCache()
        self._pieces.reset(self.wordpiece_tokenizer._cache, self.basic_tokenizer._do_lower_case,
                           self.vocab)

    def tokenize(self, text):
        """Tokenizes text into WordPiece tokens, identical to the reference's FullTokenizer.

        Args:
          text: str or UTF-8 bytes.

        Returns:
          list of str tokens, each a key of `vocab`.
        """
        if type(text) is not str:
            text = convert_to_unicode(text)
        # The cache follows the current settings of both sub-tokenizers (cheap identity checks).
        wordpiece = self.wordpiece_tokenizer
        if len(wordpiece._vocab) != wordpiece._vocab_size:
            wordpiece._rebuild()
        pieces = self._pieces
        do_lower_case = self.basic_tokenizer._do_lower_case
        if pieces.split is not wordpiece._cache._split or pieces.do_lower_case != do_lower_case:
            pieces.reset(wordpiece._cache, do_lower_case, wordpiece._vocab)
        special_re = self.basic_tokenizer._never_split_re
        if special_re is not None:
            return _tokenize_segments(text, special_re, self._tokenize_text)
        if text.isascii():
            # _tokenize_text inlined for the path almost all English text takes: a few memchr
            # passes, one split and one cache lookup per basic token, all in C for known words.
            if not text.isprintable():
                text = text.translate(_ASCII_CONTROL_TABLE)
            if do_lower_case:
                text = text.lower()
            for char, padded in _ASCII_PUNCTUATION_PADDING:  # _split_at_ascii_punctuation
                if char in text:
                    text = text.replace(char, padded)
            return _concat(map(pieces.__getitem__, text.split()))
        return self._tokenize_text(text)

    def _tokenize_text(self, text):
        """WordPiece tokens of `text` (no special tokens in it); the cache is up to date."""
        pieces = self._pieces
        if text.isascii():
            if not text.isprintable():
                text = text.translate(_ASCII_CONTROL_TABLE)
            if pieces.do_lower_case:
                text = text.lower()
            return _concat(map(pieces.__getitem__, _split_at_ascii_punctuation(text)))
        # The reference cleans, pads CJK characters and then lower-cases each whitespace token.
        # Lower-casing the whole line first gives the same text (see _lower_like_reference):
        # padding only adds spaces around characters that have no case, and whitespace is not
        # case-ignorable, so no final sigma changes.
        if pieces.do_lower_case:
            text = _lower_like_reference(text)
        # Solo characters are all 3 or 4 bytes in UTF-8. Text with few such characters (English with
        # curly quotes or accents) has few solo runs to gain from, and cutting it at them would cost
        # more than it saves: it goes the general way, cut at whitespace and ASCII punctuation.
        # (Both ways give the same tokens; this measures only which is faster.)
        if 2 * len(text.encode("utf-8", "surrogatepass")) >= 3 * len(text):
            return _tokenize_solo_runs(text, pieces.solo.__getitem__, pieces.parts)
        return _concat(map(pieces.__getitem__, _split_at_ascii_punctuation(_cleaned(text))))

    def convert_tokens_to_ids(self, tokens):
        return convert_by_vocab(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids):
        return convert_by_vocab(self.inv_vocab, ids)
