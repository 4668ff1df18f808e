"""Real English corpora for tests and benchmarks, in the input format of create_pretraining_data.py.

The text comes from gensim's test data (tests/artifacts.py): 300 news documents and an extract of
English Wikipedia, split into naive sentences.
"""

import bz2
import html
import os
import re

from tests import artifacts

_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WIKI_TEXT_RE = re.compile(r"<text[^>]*>(.*?)</text>", re.S)
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE_RE = re.compile(r"\{\|.*?\|\}", re.S)
_REF_RE = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.S)
_TAG_RE = re.compile(r"<[^>]+>")
_LINK_RE = re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]")
_EXTERNAL_LINK_RE = re.compile(r"\[https?://[^\s\]]+\s?([^\]]*)\]")


def split_sentences(text):
    """Naive sentence split: after . ! ? followed by space and an upper-case letter or digit."""
    return [s.strip() for s in _SENTENCE_END_RE.split(text) if s.strip()]


def news_documents():
    """The 300 news documents of lee_background.cor, each a list of sentences."""
    with open(artifacts.news_corpus(), encoding="utf-8", errors="replace") as f:
        return [split_sentences(line) for line in f if line.strip()]


def _clean_wiki_markup(text):
    text = html.unescape(text)
    text = _REF_RE.sub(" ", text)
    for _ in range(3):  # Nested templates, innermost first.
        text = _TEMPLATE_RE.sub(" ", text)
    text = _TABLE_RE.sub(" ", text)
    text = re.sub(r"\[\[(?:File|Image|Category):[^\n]*", " ", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _EXTERNAL_LINK_RE.sub(r"\1", text)
    text = _TAG_RE.sub(" ", text)
    return text.replace("'''", "").replace("''", "")


def wiki_documents(max_bytes=None):
    """Articles of the enwiki XML extract as lists of sentences (about 4 MB of text in all)."""
    path = os.path.join(artifacts.gensim_test_data(),
                        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    with bz2.open(path, "rt", encoding="utf-8") as f:
        xml = f.read()
    documents = []
    total = 0
    for match in _WIKI_TEXT_RE.finditer(xml):
        body = match.group(1)
        if body.lstrip().upper().startswith("#REDIRECT"):
            continue
        sentences = []
        for paragraph in _clean_wiki_markup(body).split("\n"):
            paragraph = paragraph.strip()
            # Headings, lists, tables and leftover template lines are not prose.
            if len(paragraph) < 40 or paragraph[0] in "=*#:;|!{}":
                continue
            sentences.extend(split_sentences(paragraph))
        if len(sentences) >= 2:
            documents.append(sentences)
            total += sum(len(s) + 1 for s in sentences)
            if max_bytes and total >= max_bytes:
                break
    return documents


def write_corpus(path, documents):
    """Writes documents in the input format; returns the number of bytes."""
    with open(path, "w", encoding="utf-8") as f:
        for document in documents:
            f.write("\n".join(document))
            f.write("\n\n")
    return os.path.getsize(path)


def write_shards(directory, documents, num_shards, prefix="shard"):
    """Splits documents round-robin into `num_shards` files; returns their paths."""
    paths = []
    for k in range(num_shards):
        path = os.path.join(directory, f"{prefix}-{k:03d}.txt")
        write_corpus(path, documents[k::num_shards])
        paths.append(path)
    return paths
