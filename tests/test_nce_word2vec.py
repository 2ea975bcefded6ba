"""Skip-gram with negative sampling: the compiled word2vec pass takes exact SGD steps on the
negative-sampling loss (equal to autograd), learns the shifted PMI on a synthetic corpus
(Levy & Goldberg 2014), builds gensim's vocabulary and subsampling, and — side by side with
gensim's ``Word2Vec`` on the Lee corpus — learns the same similarity structure; the
evaluations equal gensim's on the same vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genmodels
from genmodels.data.text import Vocabulary, load_corpus
from genmodels.estimators.word2vec import Word2Vec
from genmodels.learning.nce import skipgram_negative_sampling_loss
from genmodels.models import _sgns_numba
from genmodels.models.embeddings import (
    SkipGram,
    WordVectors,
    chunk_corpus,
    keep_probabilities,
    skipgram_pairs,
    spearman,
)

gensim = pytest.importorskip("gensim")
from gensim.test.utils import datapath  # noqa: E402


def test_a_compiled_step_is_an_exact_sgd_step_on_the_negative_sampling_loss():
    """Three pairs, one after another, each with distinct negatives: the kernel's updates equal
    θ ← θ − α ∇ℓ(pair) with the gradient by autograd (float32)."""
    g = torch.Generator().manual_seed(0)
    V, D = 12, 16
    syn0 = ((torch.rand(V, D, generator=g) - 0.5) / 2).float()
    syn1 = (torch.randn(V, D, generator=g) * 0.3).float()
    inputs, targets = np.array([3, 7, 3]), np.array([5, 1, 2])
    negatives = np.array([[0, 9, 11], [4, 6, 8], [10, 1, 7]])
    alphas = np.array([0.1, 0.05, 0.2])
    U, Vc = syn1.clone().double(), syn0.clone().double()
    for c, w, neg, a in zip(inputs, targets, negatives, alphas):
        U.requires_grad_(True)
        Vc.requires_grad_(True)
        loss = skipgram_negative_sampling_loss(U, Vc, torch.tensor([c]), torch.tensor([w]),
                                               torch.tensor(neg)[None])
        gu, gv = torch.autograd.grad(loss, (U, Vc))
        U, Vc = (U - a * gu).detach(), (Vc - a * gv).detach()
    s0, s1 = syn0.numpy().copy(), syn1.numpy().copy()
    _sgns_numba.train_pairs(s0, s1, inputs, targets, negatives, alphas)
    np.testing.assert_allclose(s0, Vc.numpy(), atol=2e-6)
    np.testing.assert_allclose(s1, U.numpy(), atol=2e-6)


def test_a_negative_equal_to_the_positive_word_is_skipped():
    syn0 = np.full((3, 2), 0.5, dtype=np.float32)
    syn1 = np.full((3, 2), 0.1, dtype=np.float32)
    a0, a1 = syn0.copy(), syn1.copy()
    b0, b1 = syn0.copy(), syn1.copy()
    _sgns_numba.train_pairs(a0, a1, np.array([0]), np.array([1]), np.array([[1, 2]]),
                            np.array([0.1]))
    _sgns_numba.train_pairs(b0, b1, np.array([0]), np.array([1]), np.array([[2, 2]])[:, :1],
                            np.array([0.1]))
    np.testing.assert_array_equal(a0, b0)
    np.testing.assert_array_equal(a1, b1)


def _markov_corpus(V: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(V) * 0.7, size=V)
    C = P.cumsum(1)
    u = rng.random(n)
    x = np.empty(n, np.int64)
    x[0] = 0
    for t in range(1, n):  # a Markov chain is sequential by nature
        x[t] = min(int(np.searchsorted(C[x[t - 1]], u[t])), V - 1)
    return x


def test_the_compiled_pass_learns_the_shifted_pmi():
    """Window 1, no subsampling, q the unigram distribution, k = 3, full rank (D = V + 2): the
    learned u_wᵀv_c reach the optimum of word2vec's loss, the shifted PMI
    log p(c, w)/(k q(w)(p(c) − p(c, w))) — PMI − log k (Levy & Goldberg 2014) with the
    correction for the skipped negatives equal to the positive word — and not the plain
    PMI − log k, from which they differ by the correction."""
    V, k, n = 6, 3, 200_000
    x = _markov_corpus(V, n, 0)
    starts = np.arange(0, n + 1, 1000)
    counts = np.bincount(x, minlength=V).astype(float)
    J = np.zeros((V, V))  # empirical (input c, target w) pair frequencies
    seg = x.reshape(-1, 1000)
    np.add.at(J, (seg[:, :-1], seg[:, 1:]), 1)
    np.add.at(J, (seg[:, 1:], seg[:, :-1]), 1)
    J /= J.sum()
    pc, q = J.sum(1), counts / counts.sum()
    target = np.log(J / (k * q[None, :] * (pc[:, None] - J)))
    model = SkipGram(counts, V + 2, negative=k, ns_exponent=1.0, seed=0)
    model.fit_corpus(x, starts, window=1, sample=0, epochs=20, alpha=0.05, min_alpha=1e-4,
                     shrink_windows=False)
    S = (model.input_vectors.detach().double() @ model.output_vectors.detach().double().T)
    assert np.abs(S.numpy() - target).max() < 0.12
    plain = np.log(J / (pc[:, None] * q[None, :])) - np.log(k)
    assert np.abs(S.numpy() - plain).max() > 0.4


def test_skipgram_pairs_are_every_pair_within_the_window():
    tokens = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    starts = torch.tensor([0, 5, 8])  # sentences [0..4], [5..7]
    pairs = skipgram_pairs(tokens, starts, 2, shrink_windows=False)
    brute = {(int(tokens[j]), int(tokens[i])) for s in range(2)
             for i in range(int(starts[s]), int(starts[s + 1]))
             for j in range(int(starts[s]), int(starts[s + 1])) if 0 < abs(i - j) <= 2}
    assert sorted(map(tuple, pairs.tolist())) == sorted(brute)
    # shrunk windows keep offset o with probability (window − o + 1)/window
    g = torch.Generator().manual_seed(0)
    long = torch.arange(20_000)  # word id = position
    p = skipgram_pairs(long, torch.tensor([0, 20_000]), 4, generator=g)
    offsets = (p[:, 0] - p[:, 1]).abs()
    frac = torch.bincount(offsets, minlength=5)[1:5] / (2 * 20_000)
    torch.testing.assert_close(frac, torch.tensor([1.0, 0.75, 0.5, 0.25]), atol=0.01, rtol=0)


def test_alias_table_and_chunks():
    probs = np.array([0.5, 0.1, 0.0, 0.25, 0.15])
    keep, alias = _sgns_numba.alias_table(probs)
    V = probs.size
    implied = keep / 2.0**32 / V
    np.add.at(implied, alias, (1 - keep / 2.0**32) / V)
    np.testing.assert_allclose(implied, probs, atol=1e-9)
    starts = np.array([0, 4000, 9000, 25_000, 26_000, 31_000])
    cs, cw = chunk_corpus(starts)
    # sentences whose first word falls in the same block of 10,000 corpus words share a chunk
    np.testing.assert_array_equal(cs, [0, 3, 5])
    np.testing.assert_array_equal(cw, [0, 25_000])


@pytest.fixture(scope="module")
def lee():
    return [s for s in load_corpus("lee").sentences]


def test_vocabulary_and_subsampling_equal_gensims(lee):
    g = gensim.models.Word2Vec(vector_size=10, min_count=3, sg=1, sample=1e-3)
    g.build_vocab(lee)
    vocab = Vocabulary.build(lee, 3)
    assert set(vocab.words) == set(g.wv.index_to_key)
    counts = np.array([g.wv.get_vecattr(w, "count") for w in vocab.words])
    np.testing.assert_array_equal(vocab.counts, counts)
    assert bool(np.all(np.diff(vocab.counts) <= 0))
    sample_int = np.array([g.wv.get_vecattr(w, "sample_int") for w in vocab.words])
    np.testing.assert_array_equal(
        (keep_probabilities(vocab.counts, 1e-3) * (2**32 - 1)).astype(np.uint32), sample_int)
    tokens, starts = vocab.encode(lee)
    assert starts[-1] == tokens.size == sum(1 for s in lee for w in s if w in vocab.index)
    assert [vocab.words[i] for i in tokens[starts[1]:starts[2]]] == \
        [w for w in lee[1] if w in vocab.index]


def test_side_by_side_with_gensim_the_same_similarity_structure(lee):
    """Same corpus, window, dimension, negatives, epochs: the cosine similarities among the
    200 most frequent words agree with gensim's as well as two gensim runs (different seeds)
    agree with each other."""
    kw = dict(vector_size=50, window=5, min_count=3, negative=5, epochs=5, workers=1)
    ours = Word2Vec(lee, seed=1, **kw)
    g1 = gensim.models.Word2Vec(lee, sg=1, seed=1, **kw)
    g2 = gensim.models.Word2Vec(lee, sg=1, seed=2, **kw)
    words = g1.wv.index_to_key[20:220]
    iu = np.triu_indices(len(words), 1)

    def sims(wv):
        X = np.stack([wv[w] for w in words]).astype(np.float64)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        return (X @ X.T)[iu]

    reference = spearman(sims(g1.wv), sims(g2.wv))
    assert reference > 0.5
    assert spearman(sims(ours.wv), sims(g1.wv)) > 0.9 * reference
    assert spearman(sims(ours.wv), sims(g2.wv)) > 0.9 * reference


def test_evaluations_equal_gensims_on_the_same_vectors(lee):
    g = gensim.models.Word2Vec(lee, vector_size=30, min_count=2, sg=1, epochs=2, seed=0,
                               workers=1)
    wv = WordVectors(g.wv.index_to_key, g.wv.vectors)
    for name, file in (("wordsim353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")):
        ours = wv.evaluate_word_pairs(name)
        (pearson, _), spear, oov = g.wv.evaluate_word_pairs(datapath(file))
        assert ours.spearman == pytest.approx(spear.statistic, abs=1e-9)
        assert ours.pearson == pytest.approx(pearson, abs=1e-6)
        assert ours.oov_ratio == pytest.approx(oov)
    ours_a = wv.evaluate_word_analogies()
    score, sections = g.wv.evaluate_word_analogies(datapath("questions-words.txt"))
    assert ours_a.accuracy == pytest.approx(score)
    for s in sections[:-1]:
        c, n = ours_a.sections[s["section"]]
        assert (c, n) == (len(s["correct"]), len(s["correct"]) + len(s["incorrect"]))
    assert [w for w, _ in wv.most_similar("government", topn=5)] == \
        [w for w, _ in g.wv.most_similar("government", topn=5)]
    assert wv.similarity("the", "a") == pytest.approx(float(g.wv.similarity("the", "a")),
                                                      abs=1e-6)


def test_spearman_equals_scipys_with_ties():
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, 200).astype(float), rng.normal(size=200)
    b[:50] = b[50:100]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_word2vec_face_threads_torch_backend_save_and_errors(lee, tmp_path):
    small = lee[:60]
    two = Word2Vec(small, vector_size=20, min_count=2, epochs=2, workers=2)
    assert len(two.wv) == len(Vocabulary.build(small, 2))
    assert np.isfinite(two.wv.vectors).all() and np.abs(two.syn1neg).max() > 0
    assert 0 < two.effective_words_ < two.corpus_total_words * 2
    via_trainer = Word2Vec(small, vector_size=20, min_count=2, epochs=1, backend="torch",
                           batch_size=512)
    assert np.isfinite(via_trainer.wv.vectors).all() and np.abs(via_trainer.syn1neg).max() > 0
    two.save(tmp_path / "w2v")
    back = genmodels.load(tmp_path / "w2v").word_vectors()
    np.testing.assert_array_equal(back.vectors, two.wv.vectors)
    assert back.index_to_key == two.wv.index_to_key
    with pytest.raises(ValueError, match=r"only skip-gram with negative sampling.*sg=0"):
        Word2Vec(sg=0)
    with pytest.raises(ValueError, match=r"hs=1"):
        Word2Vec(hs=1)
    with pytest.raises(ValueError, match="the corpus is empty"):
        Word2Vec([])
    with pytest.raises(ValueError, match="sentence 1 must be a list of string tokens"):
        Word2Vec([["a", "b"], "a b"])
    with pytest.raises(ValueError, match="no word occurs at least min_count=5 times"):
        Word2Vec([["a", "b"]])
    with pytest.raises(ValueError, match="not fitted"):
        Word2Vec().wv
    m = SkipGram(np.ones(4), 3)
    with pytest.raises(ValueError, match=r"tokens must be word ids in \[0, 4\)"):
        m.fit_corpus(np.array([0, 5]), np.array([0, 2]))
    with pytest.raises(ValueError, match="sentence_starts must rise from 0 to len"):
        m.fit_corpus(np.array([0, 1]), np.array([0, 3]))
    with pytest.raises(ValueError, match="unknown corpus 'nope'"):
        load_corpus("nope")
    with pytest.raises(KeyError, match="not in vocabulary"):
        two.wv["no-such-word"]
    assert math.isfinite(two.wv.similarity(two.wv.index_to_key[0], two.wv.index_to_key[1]))
