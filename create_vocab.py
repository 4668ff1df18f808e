"""Learns a WordPiece vocabulary from raw text, or fills a released vocab's [unused] slots with it.

The reference BERT release could not include the code that built its vocabularies; this script
makes one that `tokenization.FullTokenizer` uses unchanged, for a new language or domain (the
SciBERT recipe: a domain vocabulary, then pretraining from scratch).

Words are counted after exactly the basic tokenization `FullTokenizer` applies before WordPiece
(cleaning, CJK characters split off, punctuation split, lower-casing and accent stripping per
--do_lower_case), one streaming pass over the corpus with progress and bounded memory (at most
--max_words distinct words are held; beyond that the rarest are dropped, and logged). The pieces are
learned by the WordPiece trainer of the Rust `tokenizers` package (`pip install -r
requirements-vocab.txt`) from those counts, so the merges are its well-tested code, not ours.

The vocab file has the released layout, so the special tokens keep their released ids with the
default --num_unused=99:

    [PAD]                        id 0
    [unused0] .. [unused98]      ids 1..99 (--num_unused slots for tokens added later)
    [UNK] [CLS] [SEP] [MASK]     ids 100..103
    every character seen, by code point ("a", "中", ...)
    the learned pieces, most useful first ("the", "##ing", ...)
    "##" + every character seen inside a word

New vocabulary (then pretrain from scratch with it):

    python create_vocab.py --input_file='corpus/*.txt' --output_file=vocab.txt \
      --vocab_size=30522 --min_frequency=2 --do_lower_case=True \
      --report=heldout.txt --compare_vocab=$BERT_BASE_DIR/vocab.txt

Keeping a released checkpoint (continued pretraining): the most frequent words of the corpus that
the released vocab does not hold as one token go into its [unusedN] lines; every other line, and so
every other id, stays as it is:

    python create_vocab.py --input_file='corpus/*.txt' --output_file=vocab_extended.txt \
      --extend_vocab=$BERT_BASE_DIR/vocab.txt --do_lower_case=True --report=heldout.txt

Coverage report only (how well does a vocab fit my text?):

    python create_vocab.py --report=heldout.txt --compare_vocab=$BERT_BASE_DIR/vocab.txt

The report is a table, printed to stdout and written next to --output_file as
`<output_file>.report.md`: per vocab its size, the share of held-out words that become [UNK], the
WordPiece pieces per word, the share of words kept whole (one piece), and the share of its tokens
the first vocab also has.
"""

import collections
import dataclasses
import itertools
import re

import tensorflow as tf
from absl import flags

import cli
import tokenization

tf1 = tf.compat.v1

FLAGS = flags.FLAGS

SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_TOKEN = "[PAD]"
_UNUSED_RE = re.compile(r"^\[unused\d+\]$")
# Words longer than this become [UNK] in FullTokenizer (max_input_chars_per_word): not counted.
_MAX_WORD_CHARS = 200
# Distinct-word counts are pruned when they reach this many times --max_words.
_PRUNE_FACTOR = 2
# The trainer reads the counts as text of this many characters per item ("the the the ...").
_TRAINER_CHUNK_CHARS = 1 << 20


def define_flags(flag_values=None):
    """Defines the flags of create_vocab.py (the reference has no such script).

    Args:
      flag_values: absl FlagValues to define them in (default: the global FLAGS).
    """
    flag_values = FLAGS if flag_values is None else flag_values  # An empty FlagValues is falsy.
    flags.DEFINE_string(
        "input_file", None,
        "Raw text to learn from: comma-separated list of globs, UTF-8, one sentence or paragraph "
        "per line (the input of create_pretraining_data.py works as it is).",
        flag_values=flag_values)
    flags.DEFINE_string(
        "output_file", None, "Where to write the vocab file (one token per line).",
        flag_values=flag_values)
    flags.DEFINE_bool(
        "do_lower_case", True,
        "Lower-case and strip accents before counting, as FullTokenizer(do_lower_case=...) "
        "will; True for an uncased model.",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "vocab_size", 30522,
        "Number of lines of the new vocab: [PAD], --num_unused [unused] slots, 4 special tokens, "
        "every character seen (and its ## form) and the learned pieces. A small corpus may give "
        "fewer. Not with --extend_vocab (the size stays the base vocab's).",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "min_frequency", 2,
        "A piece is learned only if it occurs at least this often in the corpus (with "
        "--extend_vocab: a word is added only if it does). Single characters are always kept.",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "num_unused", 99,
        "Number of [unusedN] lines after [PAD], free for tokens added later; 99 puts [UNK], "
        "[CLS], [SEP], [MASK] at ids 100-103 as in the released vocabs.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "extend_vocab", None,
        "A released vocab.txt: write it with its [unusedN] lines replaced by the corpus's most "
        "frequent words it does not hold as one token (same size, same ids for everything else), "
        "for continued pretraining from its checkpoint.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "report", None,
        "Held-out UTF-8 text: print a coverage table ([UNK] rate, pieces per word, words kept "
        "whole) of the new vocab and of --compare_vocab on it.",
        flag_values=flag_values)
    flags.DEFINE_string(
        "compare_vocab", None,
        "Comma-separated vocab files to compare against in --report (default: --extend_vocab).",
        flag_values=flag_values)
    flags.DEFINE_integer(
        "max_words", 2_000_000,
        "Most distinct words kept while counting (memory: about 150 bytes each, twice this many "
        "at the peak); rarer words beyond it are dropped. Raise it for exact counts of a huge, "
        "varied corpus.",
        flag_values=flag_values)


# --------------------------------------------------------------------------------------------------
# Options


@dataclasses.dataclass
class VocabOptions:
    """Everything create_vocab.py does, as plain values (see the flags for their meaning)."""

    input_files: list
    output_file: str
    do_lower_case: bool = True
    vocab_size: int = 30522
    min_frequency: int = 2
    num_unused: int = 99
    extend_vocab: str = None
    report: str = None
    compare_vocabs: list = dataclasses.field(default_factory=list)
    max_words: int = 2_000_000


def options_from_flags(flag_values):
    """Reads and checks the flags.

    Raises:
      cli.UsageError: a value that cannot work, naming the flag and the fix.
    """
    compare = [p for p in (flag_values.compare_vocab or "").split(",") if p]
    if not compare and flag_values.extend_vocab:
        compare = [flag_values.extend_vocab]
    if not flag_values.input_file:
        if not flag_values.report:
            raise cli.UsageError("--input_file is required: pass the raw text to learn from "
                                 "(or only --report and --compare_vocab for a coverage table)")
        if not compare:
            raise cli.UsageError("--report without --input_file needs --compare_vocab: the vocab "
                                 "files to measure on the held-out text")
        input_files = []
    else:
        input_files = cli.expand_input_files(flag_values.input_file, "--input_file", "raw text")
        if not flag_values.output_file:
            raise cli.UsageError("--output_file is required: where to write the vocab file")
    named_files = [("--report", flag_values.report), ("--extend_vocab", flag_values.extend_vocab)]
    named_files += [("--compare_vocab", path) for path in compare]
    for flag_name, path in named_files:
        # Checked now, not after counting a large corpus.
        if path and not tf.io.gfile.exists(path):
            raise cli.UsageError(f"{flag_name}={path}: no such file")
    if flag_values.extend_vocab and flag_values["vocab_size"].present:
        raise cli.UsageError("--vocab_size does not apply with --extend_vocab (the size stays the "
                             "base vocab's): drop one of them")
    options = VocabOptions(
        input_files=input_files, output_file=flag_values.output_file,
        do_lower_case=flag_values.do_lower_case, vocab_size=flag_values.vocab_size,
        min_frequency=flag_values.min_frequency, num_unused=flag_values.num_unused,
        extend_vocab=flag_values.extend_vocab, report=flag_values.report,
        compare_vocabs=compare, max_words=flag_values.max_words)
    check_options(options)
    return options


def check_options(options):
    """Raises cli.UsageError for numbers that cannot work."""
    for name, value, minimum in (("--vocab_size", options.vocab_size, 1),
                                 ("--min_frequency", options.min_frequency, 1),
                                 ("--num_unused", options.num_unused, 0),
                                 ("--max_words", options.max_words, 1)):
        if value < minimum:
            raise cli.UsageError(f"{name}={value} must be at least {minimum}")


# --------------------------------------------------------------------------------------------------
# Counting words


@dataclasses.dataclass
class WordCounts:
    """Counts of the corpus's basic tokens ("words").

    Attributes:
      counts: collections.Counter word -> occurrences (the most frequent --max_words at least).
      lines: int, lines read.
      words: int, words seen (including those dropped below).
      dropped_words: int, distinct words dropped to bound memory (their characters are kept).
      dropped_chars: set of the characters of dropped words, so no character is lost.
      long_words: int, occurrences of words over 200 characters (FullTokenizer makes them [UNK]).
    """

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    lines: int = 0
    words: int = 0
    dropped_words: int = 0
    dropped_chars: set = dataclasses.field(default_factory=set)
    long_words: int = 0


def _prune(word_counts, max_words):
    """Drops the rarest words until at most `max_words` remain (lossy counting).

    Whole frequency classes go at once (all words seen once, then twice, ...), so which words stay
    does not depend on the order of the corpus within a class.
    """
    counts = word_counts.counts
    by_count = collections.Counter(counts.values())
    remaining, threshold = len(counts), 0
    for count in sorted(by_count):
        if remaining <= max_words:
            break
        remaining -= by_count[count]
        threshold = count
    dropped = [word for word, count in counts.items() if count <= threshold]
    word_counts.dropped_chars.update(itertools.chain.from_iterable(dropped))
    for word in dropped:
        del counts[word]
    word_counts.dropped_words += len(dropped)
    tf1.logging.info("Dropped %s distinct words seen at most %d times (--max_words=%s)",
                     f"{len(dropped):,}", threshold, f"{max_words:,}")


def count_words(input_files, do_lower_case, max_words=2_000_000, progress_every_seconds=10.0,
                flag_name="--input_file"):
    """Counts the basic tokens of every line of `input_files`, streaming, with progress.

    Args:
      input_files: list of UTF-8 text file paths (local or gs://).
      do_lower_case: bool, as for FullTokenizer.
      max_words: int, bound on distinct words held (pruned to it when twice as many are held).
      progress_every_seconds: float, how often to log progress.
      flag_name: the flag the files came from, for error messages.

    Returns:
      WordCounts.

    Raises:
      cli.UsageError: a file is missing or not UTF-8, or the corpus has no words at all.
    """
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    result = WordCounts()
    counts = result.counts
    total_kb = sum(_file_size(path) for path in input_files) // 1024
    progress = cli.ProgressLogger(total=total_kb or None, unit="KB", name="counting words",
                                  every_seconds=progress_every_seconds)
    pending_bytes = 0
    for path in input_files:
        for line in cli.read_text_lines(path, flag_name):
            words = basic.tokenize(line)
            counts.update(words)  # C-level counting of the whole list.
            result.lines += 1
            result.words += len(words)
            if len(counts) >= _PRUNE_FACTOR * max_words:
                _prune(result, max_words)
            pending_bytes += len(line.encode("utf-8")) + 1
            if pending_bytes >= 1 << 16:
                progress.update(pending_bytes // 1024)
                pending_bytes %= 1024
    progress.update(pending_bytes // 1024)
    progress.done()
    if len(counts) > max_words:
        _prune(result, max_words)
    long_words = [word for word in counts if len(word) > _MAX_WORD_CHARS]
    for word in long_words:
        result.long_words += counts.pop(word)
    if not counts:
        raise cli.UsageError(
            f"no words in {flag_name} ({len(input_files)} file(s), {result.lines:,} lines, all "
            f"blank or over {_MAX_WORD_CHARS} characters): pass UTF-8 text, one sentence or "
            f"paragraph per line")
    tf1.logging.info("Counted %s words (%s distinct) in %s lines", f"{result.words:,}",
                     f"{len(counts):,}", f"{result.lines:,}")
    return result


def _file_size(path):
    try:
        return tf.io.gfile.stat(path).length
    except tf.errors.OpError:
        return 0


def alphabet(word_counts):
    """(every character seen, every character seen inside a word), each sorted by code point.

    The vocab holds each character as a token of its own, and those seen after a word's first
    character also as "##" pieces, as the released vocabs do (and the trainer's alphabet is).
    The characters of words dropped by pruning count as both.
    """
    words = list(word_counts.counts)
    inside = set(itertools.chain.from_iterable(word[1:] for word in words))
    inside |= word_counts.dropped_chars
    every = inside | {word[0] for word in words}
    return sorted(every), sorted(inside)


# --------------------------------------------------------------------------------------------------
# Learning a new vocab


def _import_tokenizers():
    """The `tokenizers` package, an optional dependency that only learning a new vocab needs."""
    try:
        import tokenizers
    except ImportError:
        raise cli.UsageError(
            "learning a vocab needs the `tokenizers` package: pip install -r "
            "requirements-vocab.txt (--extend_vocab and --report work without it)") from None
    return tokenizers


def _counts_as_text(counts, chunk_chars=_TRAINER_CHUNK_CHARS):
    """Yields the counted words as space-separated text, each word repeated `count` times.

    The trainer counts the words of the text it reads, so this gives it exactly our counts; words
    never contain whitespace (they come from str.split()). Items are about `chunk_chars` long, so
    the Rust side does the repetitive work.
    """
    buffer, size = [], 0
    for word, count in counts.items():
        unit = word + " "
        while count:
            repeat = min(count, max(1, (chunk_chars - size) // len(unit)))
            buffer.append(unit * repeat)
            size += repeat * len(unit)
            count -= repeat
            if size >= chunk_chars:
                yield "".join(buffer)
                buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def required_size(word_counts, num_unused):
    """Lines a vocab needs before any learned piece: specials, slots, characters, ## forms."""
    every, inside = alphabet(word_counts)
    return 1 + num_unused + len(SPECIAL_TOKENS) + len(every) + len(inside)


def learn_pieces(word_counts, num_pieces, min_frequency):
    """Runs the `tokenizers` WordPiece trainer on the counts.

    Args:
      word_counts: WordCounts.
      num_pieces: int, the size of the trainer's vocab (characters, ## characters and pieces).
      min_frequency: int, the least count of a learned piece.

    Returns:
      list of the learned tokens (characters and "##" forms included), in the trainer's order.
    """
    tokenizers = _import_tokenizers()
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    # The words are ours already: the trainer only splits our text at the spaces we put there.
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    trainer = tokenizers.trainers.WordPieceTrainer(
        vocab_size=num_pieces, min_frequency=min_frequency, show_progress=False,
        special_tokens=[], continuing_subword_prefix="##",
        initial_alphabet=sorted(word_counts.dropped_chars))
    tf1.logging.info("Learning up to %s pieces from %s distinct words", f"{num_pieces:,}",
                     f"{len(word_counts.counts):,}")
    tokenizer.train_from_iterator(_counts_as_text(word_counts.counts), trainer=trainer)
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.__getitem__)


def vocab_layout(learned, num_unused, alphabet_chars=(), continuation_chars=(), vocab_size=None):
    """The released layout: [PAD], [unused*], specials, characters, pieces, ## characters.

    Args:
      learned: list of tokens from learn_pieces (order kept for multi-character pieces).
      num_unused: int, number of [unusedN] slots.
      alphabet_chars: characters that must be present even if the trainer dropped them.
      continuation_chars: characters whose "##" form must be present.
      vocab_size: int or None, the most lines: the last learned pieces go first (never a
        character).

    Returns:
      list of str, the lines of the vocab file.
    """
    chars = set(alphabet_chars) | {t for t in learned if len(t) == 1}
    hashed = set(continuation_chars) | {t[2:] for t in learned if len(t) == 3 and t[:2] == "##"}
    pieces = [t for t in learned if len(t) > 1 and not (len(t) == 3 and t[:2] == "##")
              and t not in SPECIAL_TOKENS]
    head = [PAD_TOKEN] + [f"[unused{i}]" for i in range(num_unused)] + list(SPECIAL_TOKENS)
    if vocab_size is not None:
        # The pieces come most useful first (merge order), so the last ones are the ones to drop.
        del pieces[max(0, vocab_size - len(head) - len(chars) - len(hashed)):]
    return head + sorted(chars) + pieces + ["##" + c for c in sorted(hashed)]


def build_vocab(word_counts, vocab_size, min_frequency, num_unused):
    """A new vocab in the released layout, learned from `word_counts`.

    Raises:
      cli.UsageError: --vocab_size cannot hold the special tokens and the characters seen.
    """
    needed = required_size(word_counts, num_unused)
    if vocab_size < needed:
        raise cli.UsageError(
            f"--vocab_size={vocab_size} is smaller than the {1 + len(SPECIAL_TOKENS)} special "
            f"tokens, {num_unused} [unused] slots and the characters seen in the corpus with "
            f"their ## forms ({needed - 1 - len(SPECIAL_TOKENS) - num_unused}): pass "
            f"--vocab_size={needed} or more (or a smaller --num_unused)")
    every, inside = alphabet(word_counts)
    num_pieces = vocab_size - 1 - num_unused - len(SPECIAL_TOKENS)
    learned = learn_pieces(word_counts, num_pieces, min_frequency)
    # The trainer makes no ## form for characters seen only in words dropped by --max_words; the
    # layout adds them, so a few of the last pieces may have to make room.
    lines = vocab_layout(learned, num_unused, every, inside, vocab_size)
    if len(lines) < vocab_size:
        tf1.logging.info("The corpus gave %s lines, fewer than --vocab_size=%s (no more pieces "
                         "occur --min_frequency=%s times)", f"{len(lines):,}", f"{vocab_size:,}",
                         min_frequency)
    return lines


# --------------------------------------------------------------------------------------------------
# Extending a released vocab


def read_vocab_lines(vocab_file, flag_name):
    """The lines of a vocab file (without their "\\n"), checked to be readable UTF-8."""
    try:
        text = tokenization._read_vocab_text(vocab_file)
    except (FileNotFoundError, ValueError) as e:
        raise cli.UsageError(f"{flag_name}: {e}") from None
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _check_casing(lines, do_lower_case, flag_name):
    """Rejects --do_lower_case that plainly disagrees with the casing of the base vocab."""
    letters = [line for line in lines if line.isalpha()]
    cased = sum(line != line.lower() for line in letters)
    if do_lower_case and cased > 0.01 * len(letters):
        raise cli.UsageError(f"{flag_name} holds cased words ({cased:,} of {len(letters):,}) "
                             f"but --do_lower_case=True: pass --do_lower_case=False")
    if not do_lower_case and len(letters) >= 1000 and not cased:
        raise cli.UsageError(f"{flag_name} holds no capital letters (an uncased vocab) but "
                             f"--do_lower_case=False: pass --do_lower_case=True")


def extend_vocab(base_lines, word_counts, min_frequency, flag_name="--extend_vocab"):
    """Fills the [unusedN] lines of `base_lines` with the most frequent words it lacks.

    A word is missing if the base vocab does not hold it as one token (FullTokenizer splits it
    into several pieces or makes it [UNK]); the most frequent such words with at least
    `min_frequency` occurrences replace the [unused] lines in id order. Every other line is kept
    as it is.

    Returns:
      (lines, added): the new lines and the words written into them (most frequent first).

    Raises:
      cli.UsageError: the base vocab has no [unused] line.
    """
    slots = [i for i, line in enumerate(base_lines) if _UNUSED_RE.match(line.strip())]
    if not slots:
        raise cli.UsageError(
            f"{flag_name} has no [unusedN] lines to fill: pass a vocab with [unused] slots (the "
            f"released BERT vocabs have 994 (English) or 99 (Chinese)), or learn a new vocab "
            f"without --extend_vocab")
    known = {line.strip() for line in base_lines}
    candidates = [(count, word) for word, count in word_counts.counts.items()
                  if count >= min_frequency and word not in known]
    # Most frequent first; equal counts in a fixed order, so the result never depends on the run.
    candidates.sort(key=lambda item: (-item[0], item[1]))
    added = [word for _, word in candidates[:len(slots)]]
    lines = list(base_lines)
    for index, word in zip(slots, added):
        lines[index] = word
    tf1.logging.info("Filled %d of %d [unused] slots (%d candidate words occur at least %d times)",
                     len(added), len(slots), len(candidates), min_frequency)
    return lines, added


def write_vocab(lines, output_file):
    """Writes one token per line, atomically."""
    with cli.atomic_output(output_file) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            writer.write("".join(line + "\n" for line in lines))
    tf1.logging.info("Wrote %s lines to %s", f"{len(lines):,}", output_file)


# --------------------------------------------------------------------------------------------------
# Coverage report


@dataclasses.dataclass
class Coverage:
    """How one vocab tokenizes the held-out words."""

    vocab_file: str
    size: int
    words: int
    unk_words: int
    pieces: int
    whole_words: int
    shared_with_first: float

    @property
    def unk_rate(self):
        return self.unk_words / max(self.words, 1)

    @property
    def pieces_per_word(self):
        return self.pieces / max(self.words, 1)

    @property
    def whole_rate(self):
        return self.whole_words / max(self.words, 1)


def measure_coverage(heldout_counts, vocab_file, do_lower_case, first_vocab=None):
    """Coverage of one vocab on held-out word counts (see Coverage)."""
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    unk = tokenizer.wordpiece_tokenizer.unk_token
    words = unk_words = pieces = whole = 0
    for word, count in heldout_counts.items():
        split = tokenizer.wordpiece_tokenizer.tokenize(word)
        words += count
        pieces += count * len(split)
        if split == [unk]:
            unk_words += count
        elif len(split) == 1:
            whole += count
    vocab = set(tokenizer.vocab)
    shared = len(vocab & set(first_vocab)) / max(len(vocab), 1) if first_vocab else 1.0
    return Coverage(vocab_file, len(tokenizer.vocab), words, unk_words, pieces, whole, shared)


def coverage_report(heldout_file, vocab_files, do_lower_case):
    """Measures every vocab on the held-out text; returns (table as Markdown, list of Coverage).

    Raises:
      cli.UsageError: the held-out file is missing, not UTF-8 or has no words.
    """
    heldout = count_words([heldout_file], do_lower_case, max_words=10 ** 9, flag_name="--report")
    first = tokenization.load_vocab(vocab_files[0])
    rows = [measure_coverage(heldout.counts, path, do_lower_case, first) for path in vocab_files]
    title = (f"Coverage of {heldout_file} ({heldout.lines:,} lines, {heldout.words:,} words, "
             f"do_lower_case={do_lower_case}):")
    table = [title, "",
             "| vocab | size | [UNK] words | pieces per word | words kept whole | "
             "tokens shared with the first |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        table.append(f"| {row.vocab_file} | {row.size:,} | {100 * row.unk_rate:.3f}% | "
                     f"{row.pieces_per_word:.3f} | {100 * row.whole_rate:.1f}% | "
                     f"{100 * row.shared_with_first:.1f}% |")
    return "\n".join(table) + "\n", rows


def write_report(table, output_file):
    """Prints the report and writes it to `<output_file>.report.md` when there is an output file."""
    print(table, flush=True)
    if output_file:
        path = output_file + ".report.md"
        with cli.atomic_output(path) as tmp_path:
            with tf.io.gfile.GFile(tmp_path, "w") as writer:
                writer.write(table)
        tf1.logging.info("Wrote the coverage report to %s", path)


# --------------------------------------------------------------------------------------------------


def make_vocab(options):
    """Counts the corpus and writes the new or extended vocab; returns its path."""
    base_lines = None
    if options.extend_vocab:
        # Read and check the base vocab before the (long) counting pass.
        base_lines = read_vocab_lines(options.extend_vocab, "--extend_vocab")
        _check_casing(base_lines, options.do_lower_case, "--extend_vocab")
    else:
        _import_tokenizers()
    word_counts = count_words(options.input_files, options.do_lower_case, options.max_words)
    if base_lines is not None:
        lines, added = extend_vocab(base_lines, word_counts, options.min_frequency)
        tf1.logging.info("Most frequent words added: %s", " ".join(added[:30]))
    else:
        lines = build_vocab(word_counts, options.vocab_size, options.min_frequency,
                            options.num_unused)
    write_vocab(lines, options.output_file)
    return options.output_file


def run(options):
    """Makes the vocab (if there is a corpus) and then the report (if asked for).

    Returns:
      The report's list of Coverage, or None without --report.
    """
    vocab_files = list(options.compare_vocabs)
    if options.input_files:
        vocab_files.insert(0, make_vocab(options))
    if not options.report:
        return None
    table, rows = coverage_report(options.report, vocab_files, options.do_lower_case)
    write_report(table, options.output_file if options.input_files else None)
    return rows


def main(_):
    tf1.logging.set_verbosity(tf1.logging.INFO)
    run(options_from_flags(FLAGS))


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
