"""Tests for spiking.layout: spatial layouts of expression profiles."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from spiking.layout import (
    LAYOUTS,
    Correlation1DLayout,
    Embedding2DLayout,
    RandomLayout,
    SquareLayout,
    make_layout,
)


def block_data(n_samples=120, n_blocks=6, per_block=8, noise=0.3, seed=0):
    """Features in blocks sharing a latent factor; columns shuffled.

    Returns X (n_samples, n_blocks*per_block) float32 and the block of each column.
    """
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n_samples, n_blocks))
    block = np.repeat(np.arange(n_blocks), per_block)
    perm = rng.permutation(len(block))
    block = block[perm]
    X = f[:, block] + noise * rng.standard_normal((n_samples, len(block)))
    return X.astype(np.float32), block


def all_layouts():
    return [cls() for cls in LAYOUTS.values()] + [Embedding2DLayout(method="tsne")]


@pytest.mark.parametrize("n_features", [1, 2, 17, 100])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_injection_and_exact_inverse(name, n_features):
    rng = np.random.default_rng(n_features)
    X = rng.standard_normal((15, n_features)).astype(np.float32)
    lay = make_layout(name).fit(X)
    fm = lay.feature_map_
    assert fm.shape == lay.shape_
    assert lay.n_features_in_ == n_features
    used = fm[fm >= 0]
    assert sorted(used.tolist()) == list(range(n_features))
    assert np.all(fm[fm < 0] == -1)
    img = lay.transform(X)
    assert img.dtype == np.float32
    assert img.shape == (15, 1) + lay.shape_
    assert len(lay.shape_) in (1, 2)
    assert np.array_equal(lay.inverse_transform(img), X)
    assert np.all(img.reshape(15, -1)[:, (fm < 0).ravel()] == 0)
    # image value at each position is the mapped feature
    flat = img.reshape(15, -1)
    pos = np.flatnonzero(fm.ravel() >= 0)
    assert np.array_equal(flat[:, pos], X[:, fm.ravel()[pos]])


def test_tsne_injection():
    X, _ = block_data(n_samples=30, n_blocks=3, per_block=5)
    lay = Embedding2DLayout(method="tsne").fit(X)
    assert np.array_equal(lay.inverse_transform(lay.transform(X)), X)
    assert sorted(lay.feature_map_[lay.feature_map_ >= 0].tolist()) == list(range(15))


def test_shapes():
    X = np.random.default_rng(0).standard_normal((5, 17)).astype(np.float32)
    assert SquareLayout().fit(X).shape_ == (5, 5)
    assert make_layout("identity").fit(X).shape_ == (17,)
    assert Embedding2DLayout().fit(X).shape_ == (5, 5)
    assert Embedding2DLayout(shape=(3, 6)).fit(X).transform(X).shape == (5, 1, 3, 6)
    X16 = X[:, :16]
    assert SquareLayout().fit(X16).shape_ == (4, 4)
    with pytest.raises(ValueError, match="fewer than the 17 features"):
        Embedding2DLayout(shape=(4, 4)).fit(X)


def test_make_layout_unknown():
    with pytest.raises(ValueError, match="valid: .*correlation_1d.*embedding_2d"):
        make_layout("nope")


@pytest.mark.parametrize("lay", all_layouts(), ids=lambda l: type(l).__name__)
def test_errors(lay):
    X, _ = block_data(n_samples=20, n_blocks=3, per_block=4)
    with pytest.raises(NotFittedError):
        lay.transform(X)
    with pytest.raises(NotFittedError):
        lay.inverse_transform(np.zeros((2, 1, 12)))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        lay.fit(bad)
    lay.fit(X)
    with pytest.raises(ValueError, match="non-finite"):
        lay.transform(bad)
    with pytest.raises(ValueError, match="has 11 features.*fitted with 12"):
        lay.transform(X[:, :11])
    with pytest.raises(ValueError, match="2-D"):
        lay.transform(X[0])
    with pytest.raises(ValueError, match="images must have shape"):
        lay.inverse_transform(np.zeros((2, 1, 7)))


@pytest.mark.parametrize("lay", all_layouts(), ids=lambda l: type(l).__name__)
def test_fit_uses_only_given_data(lay):
    X, _ = block_data(n_samples=40, n_blocks=3, per_block=6, seed=1)
    Z = np.random.default_rng(5).standard_normal((9, X.shape[1])).astype(np.float32)
    lay.fit(X)
    fm = lay.feature_map_.copy()
    img = lay.transform(Z)
    assert np.array_equal(lay.feature_map_, fm)  # transform does not refit
    flat = img.reshape(9, -1)
    pos = np.flatnonzero(fm.ravel() >= 0)
    assert np.array_equal(flat[:, pos], Z[:, fm.ravel()[pos]])
    # refitting on the same X is deterministic; fitting on Z is a different fit
    assert np.array_equal(type(lay)(**lay.get_params()).fit(X).feature_map_, fm)


def test_random_layout_seeded():
    X = np.zeros((3, 50), np.float32)
    a = RandomLayout(seed=3).fit(X).feature_map_
    b = RandomLayout(seed=3).fit(X).feature_map_
    c = RandomLayout(seed=4).fit(X).feature_map_
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))


def mean_neighbour_corr(X, order):
    C = np.corrcoef(X[:, order].T)
    return float(np.mean(np.diag(C, 1)))


def test_correlation1d_blocks_contiguous():
    X, block = block_data()
    lay = Correlation1DLayout().fit(X)
    order = lay.feature_map_
    b = block[order]
    # each block is one contiguous run: exactly n_blocks - 1 boundaries
    assert int(np.sum(b[1:] != b[:-1])) == 5
    assert mean_neighbour_corr(X, order) > mean_neighbour_corr(X, np.arange(X.shape[1])) + 0.4


def test_correlation1d_large_regime_groups_blocks():
    X, block = block_data(n_samples=60, n_blocks=10, per_block=30, noise=0.5, seed=2)
    lay = Correlation1DLayout(max_exact=100).fit(X)  # force the PCA+kNN-ward path
    assert lay.regime_ == "pca-knn-ward"
    b = block[lay.feature_map_]
    assert np.mean(b[1:] == b[:-1]) > 0.9
    assert np.array_equal(lay.inverse_transform(lay.transform(X)), X)


def grid_distances(fm, block):
    idx = np.argwhere(fm >= 0)
    feat = fm[fm >= 0]
    coords = np.empty((len(feat), 2))
    coords[feat] = idx
    d = np.sqrt(((coords[:, None] - coords[None]) ** 2).sum(-1))
    same = block[:, None] == block[None]
    off = ~np.eye(len(feat), dtype=bool)
    return d[same & off].mean(), d[off].mean()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding2d_correlated_nearer(method):
    X, block = block_data(n_blocks=4, per_block=10, seed=3)
    lay = Embedding2DLayout(method=method).fit(X)
    d_same, d_all = grid_distances(lay.feature_map_, block)
    assert d_same < 0.7 * d_all


def test_embedding2d_banded_assignment():
    from spiking.layout.transforms import _assign_to_pixels
    rng = np.random.default_rng(0)
    H, W = 40, 30
    coords = rng.uniform(0, [H - 1, W - 1], size=(1100, 2))
    pos = _assign_to_pixels(coords, (H, W), max_dense=0)  # banded path
    assert len(np.unique(pos)) == 1100 and pos.min() >= 0 and pos.max() < H * W
    rr, cc = np.divmod(pos, W)
    err = np.sqrt((rr - coords[:, 0]) ** 2 + (cc - coords[:, 1]) ** 2)
    assert np.median(err) < 3


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_of_identical_feature_vectors_does_not_crash(method):
    """Every column constant: t-SNE's PCA start divided by zero and crashed the process (exit 139)."""
    X = np.ones((5, 6))
    lay = make_layout("embedding_2d", method=method).fit(X)
    assert sorted(lay.feature_map_[lay.feature_map_ >= 0].tolist()) == list(range(6))
    np.testing.assert_array_equal(lay.inverse_transform(lay.transform(X)), X)
