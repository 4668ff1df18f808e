# coding=utf-8
"""Builds the demo WordPiece vocab and tiny model config for the bilingual sample corpus here.

The output is deterministic (no randomness, every list sorted) and committed next to this script:

  vocab.txt              [PAD] [UNK] [CLS] [SEP] [MASK]; then every character the corpus holds
                         after BERT's basic tokenization (lower-cased, accents stripped,
                         punctuation and CJK characters split), first word-initial, then as `##`
                         continuation; then the words seen at least MIN_WORD_COUNT times and the
                         common word endings (`##ing`, ...). Every character is in the vocab, so
                         the demo corpus and the classifier sample task never tokenize to [UNK].
  bert_config_tiny.json  2 layers, hidden 64, 2 heads, intermediate 256,
                         vocab_size = len(vocab.txt).

This is a demo vocab for smoke tests and the pretraining walk-through, not a substitute for a real
one (use the released vocab of the checkpoint you continue from).

    python sample_data/pretraining/build_vocab.py          # rewrite both files
    python sample_data/pretraining/build_vocab.py --check  # exit 1 if the committed files are stale
"""

import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The repo root, for `import tokenization`.
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import tokenization  # noqa: E402

CORPUS_FILES = ("sample_text_en.txt", "sample_text_zh.txt")
# The demo fine-tunes the model pretrained here on the bundled classification task, so the vocab
# covers its text too (the `text` column of these label<TAB>text files).
CLASSIFIER_FILES = ("train.tsv", "dev.tsv", "test.tsv")
CLASSIFIER_DIR = os.path.join(os.path.dirname(HERE), "classifier")
SEGMENTED_FILES = {"sample_text_zh_segmented.txt": "sample_text_zh.txt"}
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MIN_WORD_COUNT = 2
# Word endings are added as `##` pieces when this many distinct words that are not in the vocab end
# with them, so inflected forms split into a known stem and ending instead of single characters.
MIN_SUFFIX_TYPES = 4
SUFFIX_LENGTHS = (2, 3, 4)

TINY_CONFIG = collections.OrderedDict(
    [
        ("attention_probs_dropout_prob", 0.1),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("hidden_size", 64),
        ("initializer_range", 0.02),
        ("intermediate_size", 256),
        ("max_position_embeddings", 128),
        ("num_attention_heads", 2),
        ("num_hidden_layers", 2),
        ("type_vocab_size", 2),
        ("vocab_size", None),  # Filled in with len(vocab).
    ]
)


def read_words(path):
    """The basic (pre-WordPiece) tokens of a corpus file, split as BERT's uncased tokenizer does."""
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(basic_tokenizer.tokenize(line.strip()))
    return words


def read_classifier_words(path):
    """The basic tokens of the text column of a `label<TAB>text` file with a header row."""
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=True)
    words = []
    with open(path, encoding="utf-8") as f:
        for line in list(f)[1:]:
            words.extend(basic_tokenizer.tokenize(line.rstrip("\n").split("\t", 1)[-1]))
    return words


def check_segmented_copies():
    """The segmented Chinese file must be the plain one with spaces added between words."""
    for segmented, plain in SEGMENTED_FILES.items():
        with open(os.path.join(HERE, segmented), encoding="utf-8") as f:
            segmented_lines = [line.replace(" ", "").rstrip("\n") for line in f]
        with open(os.path.join(HERE, plain), encoding="utf-8") as f:
            plain_lines = [line.rstrip("\n") for line in f]
        if segmented_lines != plain_lines:
            raise ValueError(
                f"{segmented} without its spaces differs from {plain}; keep them in sync"
            )


def build_vocab(words):
    """Returns the vocab as a list of tokens (see the module docstring for the order)."""
    counts = collections.Counter(words)
    characters = sorted({char for word in counts for char in word})
    vocab = list(SPECIAL_TOKENS) + characters + ["##" + char for char in characters]
    known = set(vocab)

    # Whole words (Chinese text is split into single characters by the basic tokenizer, so these are
    # English): most frequent first, ties alphabetical.
    frequent = sorted(
        (w for w, c in counts.items() if c >= MIN_WORD_COUNT and w not in known),
        key=lambda w: (-counts[w], w),
    )
    vocab.extend(frequent)
    known.update(frequent)

    # Endings shared by several of the remaining words ("##ing", "##ed", "##ly", ...).
    suffix_types = collections.Counter()
    for word in counts:
        if word in known or not word.isalpha():
            continue
        for length in SUFFIX_LENGTHS:
            if len(word) >= length + 2:
                suffix_types[word[-length:]] += 1
    suffixes = sorted(
        (s for s, c in suffix_types.items() if c >= MIN_SUFFIX_TYPES),
        key=lambda s: (-suffix_types[s], s),
    )
    vocab.extend("##" + s for s in suffixes if "##" + s not in known)
    return vocab


def render_outputs():
    """Returns {file name: text} for vocab.txt and bert_config_tiny.json."""
    check_segmented_copies()
    words = []
    for name in CORPUS_FILES:
        words.extend(read_words(os.path.join(HERE, name)))
    for name in CLASSIFIER_FILES:
        words.extend(read_classifier_words(os.path.join(CLASSIFIER_DIR, name)))
    vocab = build_vocab(words)
    config = dict(TINY_CONFIG, vocab_size=len(vocab))
    return {
        "vocab.txt": "".join(token + "\n" for token in vocab),
        "bert_config_tiny.json": json.dumps(config, indent=2, sort_keys=True) + "\n",
    }


def write_atomically(path, text):
    tmp_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp_path, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def main(argv):
    outputs = render_outputs()
    if "--check" in argv[1:]:
        stale = []
        for name, text in outputs.items():
            path = os.path.join(HERE, name)
            if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
                stale.append(name)
        if stale:
            print(
                f"ERROR: {', '.join(stale)} out of date; run python {os.path.relpath(__file__)}",
                file=sys.stderr,
            )
            return 1
        print("vocab.txt and bert_config_tiny.json are up to date")
        return 0
    for name, text in outputs.items():
        write_atomically(os.path.join(HERE, name), text)
    print(
        f"wrote vocab.txt ({outputs['vocab.txt'].count(chr(10))} tokens) and bert_config_tiny.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
