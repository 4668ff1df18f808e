"""Tests for tokenization.py: the reference's unit cases, edge cases on the real English and Chinese
vocabularies, and token-for-token parity with a literal implementation of the reference algorithm
(tests/reference_tokenizer.py) on real text."""

import os
import pickle
import random
import re
import unicodedata

import pytest

import tokenization
from tests import reference_tokenizer

# The vocab of the reference's test_full_tokenizer / test_wordpiece_tokenizer.
_TOY_VOCAB = ["[UNK]", "[CLS]", "[SEP]", "want", "##want", "##ed", "wa", "un", "runn", "##ing", ","]

# Characters that exercise every rule: controls, every kind of separator, CJK, Hangul, accents,
# casing that changes length (U+0130), final sigma, full-width punctuation, emoji, private use.
_TRICKY_CHARS = (
    "aZ09 ,.!?$^`+<>[]#_-'\"\t\n\r\x0b\x0c\x1c\x1f\x85\x00\x01\x7f\ufffd\u00ad\u200b\u200d\ufeff"
    "\u00a0\u1680\u2003\u2028\u2029\u202f\u3000\u00e9\u00c9\u00df\u0130\u0131\u03a3\u03c3\u0391"
    "\u0301\u0308\u0323\u0345\u1e9e\ufb01\u4e2d\u6587\u535a\u3400\U00020000\uf900\u3042\u30a2"
    "\uac00\ud55c\u1100\uff0c\uff01\u3002\u300c\u00bf\u00a1\u2014\u2026\U0001f600\U0001f4a9"
    "\U0001f917\ue000\U000f0000\u0660\u00b2\u2162\u0600\u202e"
)


# Every character str.split() splits on.
_PY_WHITESPACE = "".join(chr(cp) for cp in range(0x110000) if chr(cp).isspace())


@pytest.fixture
def toy_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("".join(t + "\n" for t in _TOY_VOCAB).encode("utf-8"))
    return str(path)


@pytest.fixture(scope="module")
def english(english_vocab):
    """(fast lower, fast cased, literal lower, literal cased) on the English uncased vocab."""
    return (tokenization.FullTokenizer(english_vocab, do_lower_case=True),
            tokenization.FullTokenizer(english_vocab, do_lower_case=False),
            reference_tokenizer.FullTokenizer(english_vocab, do_lower_case=True),
            reference_tokenizer.FullTokenizer(english_vocab, do_lower_case=False))


@pytest.fixture(scope="module")
def chinese(chinese_vocab):
    return (tokenization.FullTokenizer(chinese_vocab, do_lower_case=True),
            reference_tokenizer.FullTokenizer(chinese_vocab, do_lower_case=True))


def _synthetic_lines(seed, count, max_len=40):
    rng = random.Random(seed)
    words = ["the", "Running", "UNwant\u00e9d", "caf\u00e9", "na\u00efve", "\u4e2d\u6587",
             "\u535a\u63a8zz", "\ud55c\uad6d\uc5b4", "\u0130stanbul", "\u039f\u0394\u039f\u03a3",
             "[MASK]", "[SEP]", "e\u0301", "\U0001f600ok", "Stra\u00dfe", "unaffable"]
    lines = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, max_len)):
            if rng.random() < 0.3:
                parts.append(rng.choice(words))
            else:
                parts.append(rng.choice(_TRICKY_CHARS))
        lines.append("".join(parts))
    # Long words cost the literal reference quadratic time: a few are enough.
    lines += ["x" * 150 + " " + "y" * 250, "Z" * 199 + "\u00e9 a", "\u00c9" * 201, "q" * 200 + ","]
    return lines


# --------------------------------------------------------------------------------------------------
# The reference's nine unit tests (spec section 11).


def test_full_tokenizer(toy_vocab_file):
    tokenizer = tokenization.FullTokenizer(toy_vocab_file)
    tokens = tokenizer.tokenize("UNwant\u00e9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert tokenizer.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tokenizer.convert_ids_to_tokens([7, 4, 5, 10, 8, 9]) == tokens


def test_chinese():
    tokenizer = tokenization.BasicTokenizer()
    assert tokenizer.tokenize("ah\u535a\u63a8zz") == ["ah", "\u535a", "\u63a8", "zz"]


def test_basic_tokenizer_lower():
    tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == [
        "hello", "!", "how", "are", "you", "?"]
    assert tokenizer.tokenize("H\u00e9llo") == ["hello"]


def test_basic_tokenizer_no_lower():
    tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
    assert tokenizer.tokenize(" \tHeLLo!how  \n Are yoU?  ") == [
        "HeLLo", "!", "how", "Are", "yoU", "?"]


def test_wordpiece_tokenizer():
    vocab = {token: i for i, token in enumerate(_TOY_VOCAB)}
    tokenizer = tokenization.WordpieceTokenizer(vocab=vocab)
    assert tokenizer.tokenize("") == []
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]


def test_convert_tokens_to_ids():
    vocab = {token: i for i, token in enumerate(_TOY_VOCAB)}
    tokens = ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenization.convert_tokens_to_ids(vocab, tokens) == [7, 4, 5, 8, 9]


def test_is_whitespace():
    for char in (" ", "\t", "\r", "\n", "\u00a0"):
        assert tokenization._is_whitespace(char)
    for char in ("A", "-"):
        assert not tokenization._is_whitespace(char)


def test_is_control():
    assert tokenization._is_control("\u0005")
    for char in ("A", " ", "\t", "\r", "\U0001f4a9"):
        assert not tokenization._is_control(char)


def test_is_punctuation():
    for char in ("-", "$", "`", "."):
        assert tokenization._is_punctuation(char)
    for char in ("A", " "):
        assert not tokenization._is_punctuation(char)


# --------------------------------------------------------------------------------------------------
# Real vocabularies and edge cases.


def test_real_vocab_sizes_and_special_ids(english, chinese):
    lower = english[0]
    assert len(lower.vocab) == 30522
    assert len(chinese[0].vocab) == 21128
    assert [lower.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [
        0, 100, 101, 102, 103]
    assert lower.inv_vocab[103] == "[MASK]"


def test_english_sentence(english):
    lower, cased, ref_lower, _ = english
    text = "Hello, World! I'm unaffable."
    assert lower.tokenize(text) == [
        "hello", ",", "world", "!", "i", "'", "m", "una", "##ffa", "##ble", "."]
    assert lower.tokenize(text) == ref_lower.tokenize(text)
    assert cased.tokenize("Hello") == ["[UNK]"]  # The uncased vocab has no capitals.


@pytest.mark.parametrize("text", [
    "I love \U0001f917 pizza \U0001f4a9!",             # emoji (So, astral): kept, unknown
    "a\x00b\ufffdc d\x01e\x7ff",                       # U+0000, U+FFFD, controls: deleted
    "\uff08\u5168\u89d2\uff09\uff0c\u3002\uff01\uff1f",  # full-width punctuation
    "re\u0301sume\u0301 cafe\u0301 \u00c5ngstro\u0308m",  # combining accents
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",               # Hangul: not CJK-padded, NFD to jamo
    "\u0130stanbul \u0130I",                          # U+0130 lower() grows: i + U+0307
    "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u039f\u03a3",  # final sigma depends on context
    "a\x0bb c\x1cd e\x85f",                            # Python whitespace the reference deletes
    "a\u2028b c\u00a0d e\u3000f g\u200bh",             # separators kept as such; ZWSP deleted
    "\u0647\u0630\u0627 \u0627\u062e\u062a\u0628\u0627\u0631\u061f",  # Arabic with U+061F
    "x" * 150 + " " + "y" * 250,                       # long words
    "Stra\u00dfe \ufb01ne \u2162 \u00b2 \u2026 \u00bfQu\u00e9?",
])
def test_edge_cases_match_reference(english, chinese, text):
    lower, cased, ref_lower, ref_cased = english
    assert lower.tokenize(text) == ref_lower.tokenize(text)
    assert cased.tokenize(text) == ref_cased.tokenize(text)
    assert chinese[0].tokenize(text) == chinese[1].tokenize(text)


def test_edge_case_expectations(english, chinese):
    lower, cased, _, _ = english
    assert lower.tokenize("I love \U0001f917!") == ["i", "love", "[UNK]", "!"]
    assert lower.basic_tokenizer.tokenize("a\x00b\ufffdc") == ["abc"]
    assert lower.basic_tokenizer.tokenize("a\x0bb a\u2028b") == ["ab", "a", "b"]
    assert lower.basic_tokenizer.tokenize("cafe\u0301 \u00c9t\u00e9") == ["cafe", "ete"]
    assert cased.basic_tokenizer.tokenize("\u00c9t\u00e9") == ["\u00c9t\u00e9"]  # accents kept
    assert lower.basic_tokenizer.tokenize("\u0130stanbul") == ["istanbul"]
    # Hangul is not padded like CJK; lower-casing NFD-decomposes it into conjoining jamo.
    hangul = lower.basic_tokenizer.tokenize("\ud55c\uad6d")
    assert hangul == [unicodedata.normalize("NFD", "\ud55c\uad6d")]
    assert cased.basic_tokenizer.tokenize("\ud55c\uad6d") == ["\ud55c\uad6d"]
    assert chinese[0].tokenize("\u4f60\u597d\uff0c\u4e16\u754c\uff01") == [
        "\u4f60", "\u597d", "\uff0c", "\u4e16", "\u754c", "\uff01"]


def test_word_length_limit(english):
    lower = english[0]
    assert lower.tokenize("a" * 150) != ["[UNK]"]
    assert "".join(p.lstrip("#") for p in lower.tokenize("a" * 150)) == "a" * 150
    assert lower.tokenize("a" * 250) == ["[UNK]"]
    assert lower.tokenize("a" * 200) != ["[UNK]"]
    assert lower.tokenize("a" * 201) == ["[UNK]"]
    # The limit counts code points, after basic tokenization (punctuation splits long strings).
    assert lower.tokenize("\u00e9" * 201) == ["[UNK]"]
    assert lower.tokenize(",".join(["a"] * 150)) == ["a", ","] * 149 + ["a"]


def test_mask_in_raw_text_default_and_opt_in(english_vocab, english):
    lower = english[0]
    text = "The [MASK] sat on the mat.[SEP]"
    assert lower.tokenize(text) == english[2].tokenize(text)
    assert lower.tokenize(text)[:5] == ["the", "[", "mask", "]", "sat"]
    keep = tokenization.FullTokenizer(english_vocab, never_split=("[MASK]",))
    assert keep.tokenize(text) == ["the", "[MASK]", "sat", "on", "the", "mat", ".", "[", "sep", "]"]
    keep_all = tokenization.FullTokenizer(english_vocab, keep_special_tokens=True)
    assert keep_all.tokenize(text) == ["the", "[MASK]", "sat", "on", "the", "mat", ".", "[SEP]"]
    assert keep_all.tokenize("x[MASK][MASK]y [mask]") == [
        "x", "[MASK]", "[MASK]", "y", "[", "mask", "]"]  # Case-sensitive match.
    ids = keep_all.convert_tokens_to_ids(keep_all.tokenize("[CLS] hi [SEP]"))
    assert ids == [101, keep_all.vocab["hi"], 102]
    basic = tokenization.BasicTokenizer(never_split=["[MASK]"])
    assert basic.tokenize("A[MASK]b") == ["a", "[MASK]", "b"]
    with pytest.raises(ValueError, match="not in the vocab"):
        tokenization.FullTokenizer(english_vocab, never_split=("[NOPE]",))


def test_bytes_input_and_bad_type(english):
    lower = english[0]
    assert lower.tokenize("caf\u00e9".encode("utf-8")) == lower.tokenize("caf\u00e9")
    assert lower.basic_tokenizer.tokenize(b"ab\xffcd") == ["abcd"]  # undecodable bytes dropped
    with pytest.raises(ValueError, match="Unsupported string type"):
        lower.tokenize(12)
    assert tokenization.printable_text(b"caf\xc3\xa9") == "caf\u00e9"
    assert tokenization.convert_to_unicode("x") == "x"


def test_unknown_token_raises_key_error(english):
    with pytest.raises(KeyError):
        english[0].convert_tokens_to_ids(["hello", "definitely-not-a-token"])
    with pytest.raises(KeyError):
        english[0].convert_ids_to_tokens([10 ** 6])


# --------------------------------------------------------------------------------------------------
# Vocab loading and errors.


def test_load_vocab_matches_reference_rules(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\n  spaced  \n\ndup\nx\r\ndup\n\xc3\xa9\nlast")
    vocab = tokenization.load_vocab(str(path))
    assert vocab == reference_tokenizer.load_vocab(str(path))
    assert list(vocab.items()) == [("[PAD]", 0), ("spaced", 1), ("", 2), ("dup", 5), ("x", 4),
                                   ("\u00e9", 6), ("last", 7)]


def test_missing_vocab_file_names_path_and_flag(tmp_path):
    missing = str(tmp_path / "nope" / "vocab.txt")
    with pytest.raises(FileNotFoundError, match="--vocab_file") as info:
        tokenization.FullTokenizer(missing)
    assert missing in str(info.value)
    with pytest.raises(FileNotFoundError, match="is a directory"):
        tokenization.load_vocab(str(tmp_path))


def test_vocab_not_utf8(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(byte 0xe9 on line 2\)"):
        tokenization.load_vocab(str(path))


def test_validate_case_matches_checkpoint():
    validate = tokenization.validate_case_matches_checkpoint
    validate(True, None)
    validate(False, "")
    validate(True, "/m/uncased_L-12_H-768_A-12/bert_model.ckpt")
    validate(False, "/m/cased_L-12_H-768_A-12/bert_model.ckpt")
    validate(True, "/m/wwm_cased_L-24_H-1024_A-16/bert_model.ckpt")  # not in the lists
    validate(False, "/m/uncased_L-12_H-768_A-12/model.ckpt-100")  # name does not match
    with pytest.raises(ValueError, match="should pass in `--do_lower_case=True`") as info:
        validate(False, "gs://b/uncased_L-12_H-768_A-12/bert_model.ckpt")
    assert "comment out this check" in str(info.value)
    assert "lowercased" in str(info.value)
    with pytest.raises(ValueError, match="should pass in `--do_lower_case=False`"):
        validate(True, "/m/multi_cased_L-12_H-768_A-12/bert_model.ckpt")
    with pytest.raises(ValueError, match="--do_lower_case=True"):
        validate(False, "/m/chinese_L-12_H-768_A-12/bert_model.ckpt")


def test_whitespace_tokenize():
    assert tokenization.whitespace_tokenize("  a \u3000b\n") == ["a", "b"]
    assert tokenization.whitespace_tokenize(" \t ") == []


# --------------------------------------------------------------------------------------------------
# The fast implementation's internals agree with the reference definitions.


def test_split_at_ascii_punctuation_equals_the_regex_split():
    # The fast path pads punctuation with str.replace and calls str.split(); it must cut exactly
    # where a regex over the same classes does (Python's str.split() and regex \s whitespace).
    regex = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~\s]+")
    rng = random.Random(7)
    pool = _TRICKY_CHARS + "".join(chr(cp) for cp in range(0x2000, 0x2060)) + "abc de,f.(g)"
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(20000)]
    texts += ["".join(chr(cp) for cp in range(128)), " ".join(_PY_WHITESPACE)]
    for text in texts:
        assert tokenization._split_at_ascii_punctuation(text) == regex.findall(text), repr(text)


def test_character_tables_match_reference_functions():
    # Every BMP code point plus a sample of the astral planes.
    code_points = list(range(0x10000)) + list(range(0x10000, 0x110000, 97)) + [
        0x1F4A9, 0x20000, 0x2A6DF, 0x2A700, 0x2B81F, 0x2CEAF, 0x2CEB0, 0x2F800, 0x2FA1F, 0xE0001]
    ref = reference_tokenizer
    ref_basic = ref.BasicTokenizer()
    for cp in code_points:
        char = chr(cp)
        assert tokenization._is_whitespace(char) == ref._is_whitespace(char)
        assert tokenization._is_control(char) == ref._is_control(char)
        assert tokenization._is_punctuation(char) == ref._is_punctuation(char)
        assert tokenization._is_chinese_char(cp) == ref_basic._is_chinese_char(cp)
    text = "".join(map(chr, code_points))
    basic = tokenization.BasicTokenizer()
    assert basic._clean_text(text) == ref_basic._clean_text(text)
    assert basic._tokenize_chinese_chars(text) == ref_basic._tokenize_chinese_chars(text)
    assert basic._run_strip_accents(text) == ref_basic._run_strip_accents(text)
    assert basic._run_split_on_punc(text[:20000]) == ref_basic._run_split_on_punc(text[:20000])


def test_every_character_alone_and_between_letters(english_vocab, english):
    # Each BMP character (and sampled astral ones) inside a word, so it meets casing, NFD and the
    # punctuation split in context; both casings.
    lower, cased, ref_lower, ref_cased = english
    chars = [chr(cp) for cp in list(range(0x10000)) + list(range(0x10000, 0x110000, 251))]
    chars = [c for c in chars if not 0xD800 <= ord(c) <= 0xDFFF]
    for start in range(0, len(chars), 256):
        text = " ".join("A" + c + "b\u03a3" + c for c in chars[start:start + 256])
        assert lower.tokenize(text) == ref_lower.tokenize(text)
        if start % 1024 == 0:  # The cased path is simpler; a quarter of the characters suffice.
            assert cased.tokenize(text) == ref_cased.tokenize(text)


def test_cache_is_bounded_and_results_unchanged(english_vocab, english, monkeypatch):
    monkeypatch.setattr(tokenization, "_CACHE_MAX_ENTRIES", 50)
    tokenizer = tokenization.FullTokenizer(english_vocab)
    lines = _synthetic_lines(seed=3, count=300)
    for line in lines:
        assert tokenizer.tokenize(line) == english[2].tokenize(line)
        assert len(tokenizer.wordpiece_tokenizer._cache) <= 50
        assert len(tokenizer.basic_tokenizer._cache) <= 50


def test_settings_changes_are_not_hidden_by_caches(english_vocab):
    tokenizer = tokenization.FullTokenizer(english_vocab, do_lower_case=True)
    assert tokenizer.tokenize("Hello \u00c9cole") == ["hello", "ecole"]
    tokenizer.basic_tokenizer.do_lower_case = False
    assert tokenizer.tokenize("Hello \u00c9cole") == ["[UNK]", "[UNK]"]
    tokenizer.wordpiece_tokenizer.max_input_chars_per_word = 3
    assert tokenizer.tokenize("cat dogs") == ["cat", "[UNK]"]
    tokenizer.wordpiece_tokenizer.unk_token = "[MASK]"
    assert tokenizer.tokenize("dogs") == ["[MASK]"]
    vocab = {"a": 0, "[UNK]": 1}
    wordpiece = tokenization.WordpieceTokenizer(vocab)
    assert wordpiece.tokenize("ab") == ["[UNK]"]
    vocab["##b"] = 2  # Changed in place: the size check notices.
    assert wordpiece.tokenize("ab") == ["a", "##b"]


# --------------------------------------------------------------------------------------------------
# Parity with the literal reference on real text.


def _real_lines(gensim_test_data):
    with open(os.path.join(gensim_test_data, "lee_background.cor"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    with open(os.path.join(gensim_test_data, "pang_lee_polarity.cor"), encoding="latin-1") as f:
        lines += f.read().splitlines()
    return lines


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_parity_with_literal_reference_on_real_text(english_vocab, gensim_test_data, do_lower_case):
    lines = _real_lines(gensim_test_data) + _synthetic_lines(seed=1, count=1500)
    fast = tokenization.FullTokenizer(english_vocab, do_lower_case=do_lower_case)
    literal = reference_tokenizer.FullTokenizer(english_vocab, do_lower_case=do_lower_case)
    assert len(lines) > 1900
    for number, line in enumerate(lines):
        assert fast.tokenize(line) == literal.tokenize(line), f"line {number}: {line[:80]!r}"
    # Second pass: answered from the caches, still identical.
    for line in lines[:400]:
        assert fast.tokenize(line) == literal.tokenize(line)
    # BasicTokenizer and WordpieceTokenizer on their own agree as well.
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    for line in lines[::7]:
        expected = literal.basic_tokenizer.tokenize(line)
        assert basic.tokenize(line) == expected
        words = " ".join(expected)
        expected_pieces = literal.wordpiece_tokenizer.tokenize(words)
        assert fast.wordpiece_tokenizer.tokenize(words) == expected_pieces


def test_parity_on_chinese_vocab(chinese):
    fast, literal = chinese
    lines = _synthetic_lines(seed=2, count=1000) + [
        "\u5317\u4eac\u5927\u5b66\u6210\u7acb\u4e8e1898\u5e74\u3002"
        "BERT\u6a21\u578b\uff08\u4e2d\u6587\uff09",
        "\u6211\u559c\u6b22\u5403\u82f9\u679c\uff0c\u4f60\u5462\uff1f\U0001f600 facebooktwitter",
    ]
    for line in lines:
        assert fast.tokenize(line) == literal.tokenize(line), repr(line)


# --------------------------------------------------------------------------------------------------
# Chinese, Japanese, Korean and mixed text: real corpora and CJK-heavy fuzzing against the literal
# reference. Lines with many CJK characters take the solo-run path of the fast tokenizer, others the
# general path; both are also forced on every fuzz line (test_both_paths_agree_on_fuzz_lines).


def _block(first, last, step=1):
    return [chr(cp) for cp in range(first, last + 1, step)]


# Ideographs of every range the reference pads (with both ends of each), compatibility ideographs
# (NFD maps most to unified ones), ideographs just outside those ranges (Extension F and G, CJK
# radicals, strokes: not padded), and the rest of what Chinese, Japanese and Korean text holds.
_CJK_POOLS = {
    "unified": _block(0x4E00, 0x9FFF, 37) + ["\u4e00", "\u9fff", "\u4e2d", "\u6587", "\u7684"],
    "ext_a": _block(0x3400, 0x4DBF, 53) + ["\u3400", "\u4dbf"],
    "astral": (_block(0x20000, 0x2A6DF, 997) + _block(0x2A700, 0x2B73F, 211)
               + _block(0x2B740, 0x2B81F, 23) + _block(0x2B820, 0x2CEAF, 101)
               + _block(0x2F800, 0x2FA1F, 13)
               + ["\U00020000", "\U0002a6df", "\U0002a700", "\U0002b73f", "\U0002b740",
                  "\U0002b81f", "\U0002b820", "\U0002ceaf", "\U0002f800", "\U0002fa1f"]),
    "compatibility": _block(0xF900, 0xFAFF, 3) + ["\uf900", "\ufa0e", "\ufa11", "\ufaff"],
    "not_padded": (_block(0x2CEB0, 0x2EBEF, 401) + ["\U00030000", "\U0002ceb0"]
                   + _block(0x2E80, 0x2EF3, 7) + _block(0x2F00, 0x2FD5, 11)
                   + _block(0x2FF0, 0x2FFB) + _block(0x31C0, 0x31E3, 3) + _block(0x3190, 0x319F)
                   + _block(0x3200, 0x33FF, 9)),
    "cjk_punctuation": _block(0x3000, 0x303F),
    "full_width": _block(0xFF01, 0xFF65) + _block(0xFE30, 0xFE6B) + _block(0xFE10, 0xFE19),
    "kana": (_block(0x3041, 0x30FF) + _block(0xFF66, 0xFF9F) + ["\u304c", "\u30d1", "\u3099",
                                                                 "\u309a", "\u309b"]),
    "hangul": (_block(0xAC00, 0xD7A3, 157) + _block(0x1100, 0x11FF, 5) + _block(0x3131, 0x318E, 3)
               + ["\ud55c", "\uad6d\uc5b4"]),
    "bopomofo": _block(0x3105, 0x312F) + _block(0x31A0, 0x31BF),
    "emoji": ["\U0001f600", "\U0001f44d\U0001f3fb", "\u2764\ufe0f", "\U0001f468\u200d\U0001f469",
              "\U0001f1e8\U0001f1f3", "\u263a", "\u2605", "\U0001f4a9", "\u00a9", "\u2122"],
    "marks": (_block(0x0300, 0x036F, 5) + _block(0x20D0, 0x20F0, 4)
              + ["\u302a", "\u302b", "\u302e", "\u302f", "\u0345", "\u1d165", "\U0001d165",
                 "\U0001d16d", "\u1734", "\u0f39"]),
    "latin": list("abcXYZ019 ,.!?$()[]'\"-") + ["caf\u00e9", "\u00c9", "\u0130", "\u03a3", "\u03c3",
                                              "\u039f\u0394\u039f\u03a3", "Stra\u00dfe", "iPhone",
                                              "BERT", "USB3.0", "e\u0301", "\u1e9e", "\ufb01"],
    "separators": [" ", "  ", "\t", "\n", "\r", "\u3000", "\u00a0", "\u2028", "\u2029", "\u202f",
                   "\x0b", "\x0c", "\x1c", "\x85"],
    "deleted": ["\x00", "\x01", "\x7f", "\ufffd", "\u200b", "\u200d", "\ufeff", "\u00ad", "\u202e",
                "\U000e0001"],
}
_CJK_POOL_WEIGHTS = {"unified": 30, "ext_a": 3, "astral": 3, "compatibility": 3, "not_padded": 3,
                     "cjk_punctuation": 8, "full_width": 8, "kana": 6, "hangul": 4, "bopomofo": 1,
                     "emoji": 2, "marks": 3, "latin": 14, "separators": 6, "deleted": 2}


def _cjk_fuzz_lines(seed, count, max_atoms=60):
    """Random lines of CJK-heavy text; each line leans towards a few pools, as real text does.

    A quarter of the lines lean towards Latin text with a few CJK characters, which the fast
    tokenizer sends down its general path; the others mostly down its solo-run path.
    """
    rng = random.Random(seed)
    names = list(_CJK_POOLS)
    lines = []
    for index in range(count):
        # A per-line mix: some lines almost all ideographs, some mostly Latin or kana.
        weights = [_CJK_POOL_WEIGHTS[name] * rng.choice((0, 0.2, 1, 1, 3)) for name in names]
        if index % 4 == 0:
            weights = [w * (20 if name in ("latin", "separators") else 1)
                       for name, w in zip(names, weights)]
        if not any(weights):
            weights = [_CJK_POOL_WEIGHTS[name] for name in names]
        pools = rng.choices(names, weights, k=rng.randint(0, max_atoms))
        lines.append("".join(rng.choice(_CJK_POOLS[name]) for name in pools))
    return lines


@pytest.fixture(scope="module")
def chinese_lines(chinese_corpus):
    """1,500 news lines, 1,500 review lines and 1,000 lines that mix in Latin words."""
    with open(os.path.join(chinese_corpus, "news.txt"), encoding="utf-8") as f:
        news = f.read().splitlines()
    with open(os.path.join(chinese_corpus, "reviews.txt"), encoding="utf-8") as f:
        reviews = f.read().splitlines()
    mixed = [line for line in reviews[1500:] + news[1500:]
             if re.search("[\u4e00-\u9fff]", line) and re.search("[A-Za-z]{2,}", line)]
    return news[:1500] + reviews[:1500] + mixed[:1000]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_parity_on_real_chinese_text(chinese_vocab, chinese_lines, do_lower_case):
    fast = tokenization.FullTokenizer(chinese_vocab, do_lower_case=do_lower_case)
    literal = reference_tokenizer.FullTokenizer(chinese_vocab, do_lower_case=do_lower_case)
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    assert len(chinese_lines) == 4000
    for number, line in enumerate(chinese_lines):
        assert fast.tokenize(line) == literal.tokenize(line), f"line {number}: {line[:80]!r}"
    for line in chinese_lines[::5]:
        assert basic.tokenize(line) == literal.basic_tokenizer.tokenize(line)
    # A second pass answers from the caches: still identical.
    for line in chinese_lines[:300]:
        assert fast.tokenize(line) == literal.tokenize(line)


_FUZZ_LINES = 3000


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_cjk_fuzz_parity(chinese_vocab, english_vocab, do_lower_case):
    lines = _cjk_fuzz_lines(seed=11 + do_lower_case, count=_FUZZ_LINES)
    for vocab_file in (chinese_vocab, english_vocab):
        fast = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
        literal = reference_tokenizer.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
        basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
        for line in lines:
            expected = literal.tokenize(line)
            assert fast.tokenize(line) == expected, repr(line)
            assert basic.tokenize(line) == literal.basic_tokenizer.tokenize(line), repr(line)
    # Every pool was drawn from, and both paths were taken.
    text = "".join(lines)
    assert all(any(atom in text for atom in pool) for pool in _CJK_POOLS.values())
    non_ascii = [line for line in lines if not line.isascii()]
    solo_heavy = sum(2 * len(line.encode("utf-8", "surrogatepass")) >= 3 * len(line)
                     for line in non_ascii)
    assert solo_heavy > 0.5 * _FUZZ_LINES and len(non_ascii) - solo_heavy > 0.05 * _FUZZ_LINES


def _forced_paths(tokenizer, text):
    """The fast tokenizer's two non-ASCII paths on `text`, whichever its heuristic would choose."""
    pieces = tokenizer._pieces
    if pieces.do_lower_case:
        text = tokenization._lower_like_reference(text)
    solo = tokenization._tokenize_solo_runs(text, pieces.solo.__getitem__, pieces.parts)
    general = tokenization._concat(map(
        pieces.__getitem__,
        tokenization._split_at_ascii_punctuation(tokenization._cleaned(text))))
    return solo, general


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_both_paths_agree_on_fuzz_lines(chinese_vocab, do_lower_case):
    fast = tokenization.FullTokenizer(chinese_vocab, do_lower_case=do_lower_case)
    literal = reference_tokenizer.FullTokenizer(chinese_vocab, do_lower_case=do_lower_case)
    fast.tokenize("x")  # Brings the caches up to date with the settings.
    for line in _cjk_fuzz_lines(seed=5, count=1000) + _synthetic_lines(seed=6, count=300):
        if line.isascii():
            continue
        expected = literal.tokenize(line)
        solo, general = _forced_paths(fast, line)
        assert solo == expected, repr(line)
        assert general == expected, repr(line)


def test_cjk_edge_cases(chinese):
    fast, literal = chinese
    cases = [
        "\u03a3\x00\u4e2d\u03a3\u0391 \u0391\u03a3\x01\u0392\u4e2d\u6587",  # sigma beside deletions
        "\u0391\u03a3\ufffd\u0392\u4e2d\u6587\u4e2d\u6587",
        "\uf900\uf901\ufa0e\U0002f800\u8c48",       # compatibility ideographs: NFD if lower
        "\u4e2d\u0301\u6587\u0308\uff0c\u0301",      # combining marks after solo characters
        "\u4e2d\u302e\u302a\u302f\u6587",            # tone marks of non-zero class, Mc and Mn
        "\u304c\u30d1\u3099\u4e2d\uff8a\uff9f",      # kana NFD decomposes, half-width sound mark
        "\u4e2d\U0002ceb0\U00030000\u2f00\u2e80\u6587",  # ideographs the reference does not pad
        "\u4e2d\u3000\u6587\u00a0\u4e2d\u2028\u6587\x0b\u4e2d\x85\u6587",  # separators, deletions
        "\U0001f468\u200d\U0001f469\u4e2d\u2764\ufe0f\u6587\U0001f44d\U0001f3fb",
        "\u4e2d\u6587" * 200 + "x" * 201,            # long solo run, over-long word
        "\uff11\uff19\uff19\uff18\u5e74\uff11\uff12\u6708\uff08\u65b0\u534e\u793e\uff09",
    ]
    for text in cases:
        assert fast.tokenize(text) == literal.tokenize(text), repr(text)
        for path in _forced_paths(fast, text):
            assert path == literal.tokenize(text), repr(text)
    assert fast.tokenize("\uf900") == literal.tokenize("\uf900") == ["\u8c48"]


def test_solo_characters_are_tokens_of_their_own():
    # Every character the solo-run regex accepts, between letters, splits off alone in the
    # reference, lower-cased (to one NFD character) and cased; checked in batches of 2,000.
    solo_chars = [chr(cp) for first, last in tokenization._CJK_RANGES + ((0x3000, 0x303F),
                                                                        (0xFE30, 0xFE6B),
                                                                        (0xFF01, 0xFF65))
                  for cp in range(first, last + 1)
                  if tokenization._SOLO_RUN_RE.fullmatch(chr(cp))]
    assert len(solo_chars) > 81000
    sample = solo_chars[::23] + [c for c in solo_chars if not "\u4e00" <= c <= "\u9fff"][::3]
    for do_lower_case in (True, False):
        basic = reference_tokenizer.BasicTokenizer(do_lower_case=do_lower_case)
        for start in range(0, len(sample), 2000):
            chars = sample[start:start + 2000]
            tokens = basic.tokenize(" ".join("a" + c + "b" for c in chars))
            expected = []
            for c in chars:
                expected += ["a", unicodedata.normalize("NFD", c) if do_lower_case else c, "b"]
            assert tokens == expected


def test_tokenizers_pickle_with_their_settings(english_vocab, chinese):
    # Spawned worker processes (create_pretraining_data.py --num_workers on macOS) get tokenizers
    # by pickling.
    fast, literal = chinese
    lines = _cjk_fuzz_lines(seed=21, count=200) + ["\u5317\u4eac[MASK]\u5927\u5b66 Hello"]
    copy = pickle.loads(pickle.dumps(fast))
    assert [copy.tokenize(line) for line in lines] == [literal.tokenize(line) for line in lines]
    assert copy.vocab == fast.vocab and copy.inv_vocab == fast.inv_vocab
    keep = tokenization.FullTokenizer(english_vocab, do_lower_case=False, keep_special_tokens=True)
    keep.wordpiece_tokenizer.max_input_chars_per_word = 5
    copy = pickle.loads(pickle.dumps(keep))
    text = "The [MASK] Saturday \u4e2d"
    assert copy.tokenize(text) == keep.tokenize(text)
    assert copy.tokenize("The [MASK] Saturday") == ["[UNK]", "[MASK]", "[UNK]"]
    basic = pickle.loads(pickle.dumps(tokenization.BasicTokenizer(False, never_split=["[X]"])))
    assert basic.tokenize("A[X]\u4e2d\u6587") == ["A", "[X]", "\u4e2d", "\u6587"]


def test_special_tokens_in_chinese_text(chinese_vocab):
    keep = tokenization.FullTokenizer(chinese_vocab, keep_special_tokens=True)
    assert keep.tokenize("\u5317\u4eac[MASK]\u5927\u5b66[SEP]\uff01") == [
        "\u5317", "\u4eac", "[MASK]", "\u5927", "\u5b66", "[SEP]", "\uff01"]
