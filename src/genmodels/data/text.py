"""English text that ships inside gensim's test data, read from the installed package at run
time (never copied): two corpora and the word-similarity and analogy sets that evaluate
embeddings trained on them.

=========  ====================================================================================
corpus     what
=========  ====================================================================================
enwiki     106 English Wikipedia articles (a shortened dump, ~453,000 tokens), tokenised by
           gensim's ``WikiCorpus`` (lower case, markup removed); an article is one "sentence"
lee        the Lee background corpus: 300 Australian news articles (~60,000 tokens), one per
           line, split on white space (case kept)
=========  ====================================================================================

Evaluation sets (``word_pairs``, ``analogy_questions``): WordSim-353 (353 pairs, relatedness
0–10), SimLex-999 (999 pairs, similarity 0–10) and Mikolov et al.'s 19,544 analogy questions
in 14 sections. A path to a text file (one sentence per line, tokens split on white space)
works wherever a corpus name does.
"""

from __future__ import annotations

import functools
import importlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CORPORA", "PAIR_SETS", "Corpus", "Vocabulary", "analogy_questions",
           "corpus_dataset", "gensim_datapath", "load_corpus", "word_pairs"]

#: corpus name → (gensim test-data file, description)
CORPORA: dict[str, tuple[str, str]] = {
    "enwiki": ("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
               "106 English Wikipedia articles (gensim's shortened dump), lower-cased tokens, "
               "one article per sentence"),
    "lee": ("lee_background.cor",
            "the Lee background corpus: 300 news articles, one per line, white-space tokens"),
}
#: similarity set name → gensim test-data file
PAIR_SETS: dict[str, str] = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt"}
ANALOGIES = "questions-words.txt"


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus. sentences: token tuples (the unit a context window never
    crosses); immutable, as ``load_corpus`` caches it."""

    name: str
    sentences: tuple[tuple[str, ...], ...]
    description: str = ""

    @property
    def num_tokens(self) -> int:
        return sum(len(s) for s in self.sentences)


@dataclass(frozen=True)
class Vocabulary:
    """The words of a corpus that occur at least ``min_count`` times, most frequent first
    (ties in order of first appearance), with their counts.

    words: (V,) the words (gensim's ``index_to_key``); counts: (V,) int64 occurrences.
    """

    words: tuple[str, ...]
    counts: np.ndarray

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_count: int = 1) -> Vocabulary:
        counter: Counter[str] = Counter()
        for s in sentences:
            counter.update(s)
        kept = sorted(((w, c) for w, c in counter.items() if c >= min_count),
                      key=lambda wc: -wc[1])  # stable: ties keep their first appearance
        if not kept:
            raise ValueError(f"no word occurs at least min_count={min_count} times in the "
                             f"corpus ({sum(counter.values())} tokens); lower min_count.")
        return cls(tuple(w for w, _ in kept), np.array([c for _, c in kept], dtype=np.int64))

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """word → its index (gensim's ``key_to_index``)."""
        return {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """The corpus as word ids, out-of-vocabulary tokens dropped: (tokens (N,) int64,
        sentence_starts (S + 1,) int64 — sentence s is tokens[starts[s]:starts[s + 1]])."""
        lengths = np.fromiter((len(s) for s in sentences), np.int64, len(sentences))
        get = self.index.get
        flat = np.fromiter((get(w, -1) for s in sentences for w in s), np.int64,
                           int(lengths.sum()))
        keep = flat >= 0
        sentence = np.repeat(np.arange(len(sentences)), lengths)
        kept = np.bincount(sentence[keep], minlength=len(sentences))
        return flat[keep], np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)


def corpus_dataset(name: str) -> Any:
    """A corpus as a ``genmodels.data.Dataset`` (what ``load_dataset("enwiki")`` returns):
    X the word ids (N,) over its whole vocabulary (``feature_names``, most frequent first),
    ``index`` the sentence offsets (S + 1,)."""
    from genmodels.data import Dataset

    corpus = load_corpus(name)
    vocab = Vocabulary.build(corpus.sentences)
    tokens, starts = vocab.encode(corpus.sentences)
    return Dataset(name=corpus.name, X=torch.from_numpy(tokens), description=corpus.description,
                   feature_names=list(vocab.words), index=torch.from_numpy(starts))


def gensim_datapath(filename: str) -> Path:
    """The path of a file in the installed gensim's test data."""
    try:
        utils = importlib.import_module("gensim.test.utils")
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "the text corpora and evaluation sets ship inside gensim, which is not installed; "
            "install it with `pip install 'genmodels[peers]'` (or `pip install gensim`)."
        ) from err
    return Path(utils.datapath(filename))


@functools.lru_cache(maxsize=4)
def load_corpus(name: str) -> Corpus:
    """A corpus by name (``enwiki``, ``lee``) or a path to a text file (one sentence per line).

    enwiki is parsed by gensim's ``WikiCorpus`` (about 5 s; cached for the process)."""
    if name in CORPORA:
        filename, description = CORPORA[name]
        path = gensim_datapath(filename)
        if name == "enwiki":
            from gensim.corpora import WikiCorpus

            wiki = WikiCorpus(str(path), dictionary={}, processes=1)
            sentences = tuple(tuple(t) for t in wiki.get_texts())
        else:
            sentences = _read_lines(path)
        return Corpus(name, sentences, description)
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"unknown corpus {name!r}: choose one of {sorted(CORPORA)} or give the "
                         "path of a text file (one sentence per line).")
    sentences = _read_lines(path)
    if not any(sentences):
        raise ValueError(f"the text file {path} holds no tokens.")
    return Corpus(path.stem, sentences, f"read from {path}")


def _read_lines(path: Path) -> tuple[tuple[str, ...], ...]:
    with path.open(encoding="utf-8", errors="replace") as f:
        return tuple(tuple(line.split()) for line in f if line.strip())


def word_pairs(name_or_path: str) -> list[tuple[str, str, float]]:
    """A word-similarity set (``wordsim353``, ``simlex999``, or a tab-separated file
    ``word1<TAB>word2<TAB>score`` with ``#`` comments) as (word1, word2, human score)."""
    path = gensim_datapath(PAIR_SETS[name_or_path]) if name_or_path in PAIR_SETS \
        else Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown similarity set {name_or_path!r}: choose one of "
                         f"{sorted(PAIR_SETS)} or give a tab-separated file.")
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            try:
                out.append((parts[0], parts[1], float(parts[2])))
            except (IndexError, ValueError):
                continue  # a malformed line is skipped, as gensim skips it
    return out


def analogy_questions(path: str | None = None) -> list[tuple[str, list[tuple[str, ...]]]]:
    """The analogy questions ``a b c d`` (a : b :: c : d) by section: [(section, questions)].
    Default: Mikolov et al.'s questions-words.txt from gensim's test data."""
    p = gensim_datapath(ANALOGIES) if path is None else Path(path)
    sections: list[tuple[str, list[tuple[str, ...]]]] = []
    with p.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith(": "):
                sections.append((line[2:].strip(), []))
            elif sections and len(words := line.split()) == 4:
                sections[-1][1].append(tuple(words))
    return sections
