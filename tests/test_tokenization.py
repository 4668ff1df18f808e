"""Tests for tokenization.py: the reference's unit cases, edge cases on the real English and Chinese
vocabularies, and token-for-token parity with a literal implementation of the reference algorithm
(tests/reference_tokenizer.py) on real text."""

import os
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


def test_python_whitespace_list_is_complete():
    every_space = {chr(cp) for cp in range(0x110000) if chr(cp).isspace()}
    assert set(tokenization._PY_WHITESPACE) == every_space


def test_split_at_ascii_punctuation_equals_the_regex_split():
    # The fast path pads punctuation with str.replace and calls str.split(); it must cut exactly
    # where a regex over the same classes does (Python's str.split() and regex \s whitespace).
    regex = re.compile(r"[!-/:-@\[-`{-~]|[^!-/:-@\[-`{-~\s]+")
    rng = random.Random(7)
    pool = _TRICKY_CHARS + "".join(chr(cp) for cp in range(0x2000, 0x2060)) + "abc de,f.(g)"
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(20000)]
    texts += ["".join(chr(cp) for cp in range(128)), " ".join(tokenization._PY_WHITESPACE)]
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
