"""Tests for spiking.data.layout: spatial layouts of expression profiles."""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from spiking.data.layout import (
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


@pytest.mark.parametrize("lay", all_layouts(), ids=lambda lay: type(lay).__name__)
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


@pytest.mark.parametrize("lay", all_layouts(), ids=lambda lay: type(lay).__name__)
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
    from spiking.data.layout.transforms import _assign_to_pixels
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


# --------------------------------------------------------------------------- bad-input pass
def test_dataframe_columns_must_match_fit_order():
    pd = pytest.importorskip("pandas")
    X, _ = block_data(n_samples=20, n_blocks=3, per_block=4)
    cols = [f"g{i}" for i in range(12)]
    df = pd.DataFrame(X, columns=cols)
    lay = SquareLayout().fit(df)
    assert list(lay.feature_names_in_) == cols
    np.testing.assert_array_equal(lay.transform(df), lay.transform(X))  # ndarray: positional
    with pytest.raises(ValueError, match="another order: column 0 is 'g11' but was 'g0'"):
        lay.transform(df[cols[::-1]])
    swapped = cols[:3] + [cols[4], cols[3]] + cols[5:]
    with pytest.raises(ValueError, match="column 3 is 'g4' but was 'g3'"):
        lay.transform(df[swapped])
    with pytest.raises(ValueError, match="differ from those seen in fit: first mismatch 'x0'"):
        lay.transform(df.rename(columns={"g5": "x0"}))
    with pytest.raises(ValueError, match="missing"):
        lay.transform(df[cols[:11]])
    # a refit on a plain array forgets the names
    lay.fit(X)
    assert not hasattr(lay, "feature_names_in_")
    np.testing.assert_array_equal(lay.transform(df[cols[::-1]]), lay.transform(X[:, ::-1]))


@pytest.mark.parametrize("shape", [(4.7, 4.9), "44", (4,), (4.0, 4.0), (True, 4), (0, 5), (-1, 5),
                                   (4, 4, 1), 5, (4, "4"), (np.float64(4), 4)],
                         ids=repr)
def test_embedding2d_refuses_bad_shape(shape):
    X = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    lay = Embedding2DLayout(shape=shape)  # no validation in __init__
    with pytest.raises(ValueError, match="shape"):
        lay.fit(X)


def test_embedding2d_shape_numpy_ints_and_pixel_bound():
    from spiking.data.layout.transforms import MAX_PIXELS
    X = np.random.default_rng(0).standard_normal((5, 10)).astype(np.float32)
    lay = Embedding2DLayout(shape=(np.int64(3), np.int32(4))).fit(X)
    assert lay.shape_ == (3, 4) and all(type(s) is int for s in lay.shape_)
    assert Embedding2DLayout(shape=np.array([4, 4])).fit(X).shape_ == (4, 4)
    with pytest.raises(ValueError, match="MAX_PIXELS"):
        Embedding2DLayout(shape=(100_000, 100_000)).fit(X)
    with pytest.raises(ValueError, match="MAX_PIXELS"):
        Embedding2DLayout(shape=(1, MAX_PIXELS + 1)).fit(X)


def test_correlation1d_regime_reset_on_every_fit():
    X, _ = block_data(n_samples=30, n_blocks=5, per_block=30, seed=4)
    lay = Correlation1DLayout(max_exact=100).fit(X)
    assert lay.regime_ == "pca-knn-ward"
    assert lay.fit(X[:, :20]).regime_ == "exact"
    for small in (X[:, :1], X[:, :2], np.ones((4, 5))):  # early-return and constant paths
        lay.fit(X)
        assert lay.regime_ == "pca-knn-ward"
        assert lay.fit(small).regime_ == "exact"


def test_embedding2d_embedding_reset_on_every_fit():
    X, _ = block_data(n_samples=20, n_blocks=3, per_block=10)
    lay = Embedding2DLayout().fit(X)
    assert lay.embedding_.shape == (30, 2)
    for n in (1, 2):
        assert lay.fit(X[:, :n]).embedding_.shape == (n, 2)
        lay.fit(X)
    assert lay.fit(np.ones((4, 7))).embedding_.shape == (7, 2)


@pytest.mark.parametrize("cls", [RandomLayout, Embedding2DLayout])
@pytest.mark.parametrize("seed", [1.0, 2.5, "0", None, True, False, -1, np.float64(3)], ids=repr)
def test_layout_refuses_bad_seed(cls, seed):
    X = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        cls(seed=seed).fit(X)


@pytest.mark.parametrize("cls", [RandomLayout, Embedding2DLayout])
def test_layout_accepts_numpy_integer_seed(cls):
    X = np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32)
    np.testing.assert_array_equal(cls(seed=np.int64(7)).fit(X).feature_map_,
                                  cls(seed=7).fit(X).feature_map_)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_empty_batch_transform_and_inverse(name):
    X, _ = block_data(n_samples=20, n_blocks=3, per_block=4)
    lay = make_layout(name).fit(X)
    img = lay.transform(np.zeros((0, 12), np.float32))
    assert img.shape == (0, 1) + lay.shape_ and img.dtype == np.float32
    back = lay.inverse_transform(img)
    assert back.shape == (0, 12) and back.dtype == np.float32
    with pytest.raises(ValueError, match="has 11 features"):
        lay.transform(np.zeros((0, 11)))
    with pytest.raises(ValueError, match="at least 1 sample"):
        make_layout(name).fit(np.zeros((0, 12)))
