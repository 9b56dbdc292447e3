"""Figures of fitted layouts (spiking.report.layout_figures): PNGs written, the feature-map
CSV matches feature_map_, small maps labelled, large ones not, errors raised."""
import csv

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from spiking.data.layout import make_layout
from spiking.report.layout_figures import plot_class_mean_images, plot_feature_map, plot_sample_image

NAMES = ["identity", "square", "random", "correlation_1d", "embedding_2d"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 30))
    y = np.repeat([0, 1, 2], [14, 13, 13])
    X[y == 1, :5] += 2.0
    feats = [f"GENE{i}" for i in range(30)]
    return X, y, feats


def _png_ok(p):
    assert p.exists() and p.stat().st_size > 1000
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _texts(fig):
    return {t.get_text() for ax in fig.axes for t in ax.texts}


@pytest.mark.parametrize("name", NAMES)
def test_all_figures(name, data, tmp_path):
    X, y, feats = data
    lay = make_layout(name).fit(X)
    p, fig = plot_feature_map(lay, feats, tmp_path / "sub" / "map.png", return_figure=True)
    _png_ok(p)
    # small map: every feature labelled
    assert set(feats) <= _texts(fig)
    # CSV: every feature once, at its feature_map_ position
    with open(tmp_path / "sub" / "map.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["feature_index"]) for r in rows) == list(range(30))
    fmap = lay.feature_map_
    for r in rows:
        f = int(r["feature_index"])
        assert r["feature_name"] == feats[f]
        pos = (int(r["row"]), int(r["col"])) if fmap.ndim == 2 else (int(r["position"]),)
        assert fmap[pos] == f
    _png_ok(plot_sample_image(lay, X[0], tmp_path / "s.png", title="sample 0"))
    _png_ok(plot_class_mean_images(lay, X, y, ["a", "b", "c"], tmp_path / "m.png"))


def test_large_map_not_labelled(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6, 2500))
    feats = [f"G{i}" for i in range(2500)]
    lay = make_layout("square").fit(X)
    p, fig = plot_feature_map(lay, feats, tmp_path / "big.png", return_figure=True)
    _png_ok(p)
    texts = _texts(fig)
    assert not (set(feats) & texts)
    assert any("too large to label" in t and "big.csv" in t for t in texts)
    with open(tmp_path / "big.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == 2500


def test_errors(data, tmp_path):
    X, y, feats = data
    lay = make_layout("square").fit(X)
    with pytest.raises(ValueError, match="feature_names has 29"):
        plot_feature_map(lay, feats[:-1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="x_row must have shape"):
        plot_sample_image(lay, X[0, :-1], tmp_path / "x.png")
    with pytest.raises(ValueError, match="samples but y has"):
        plot_class_mean_images(lay, X, y[:-1], ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="class_names"):
        plot_class_mean_images(lay, X, y, ["a", "b"], tmp_path / "x.png")
    with pytest.raises(NotFittedError):
        plot_feature_map(make_layout("square"), feats, tmp_path / "x.png")


def test_feature_map_refuses_a_path_its_csv_would_overwrite(tmp_path):
    lay = make_layout("square").fit(np.random.default_rng(0).normal(size=(10, 9)))
    with pytest.raises(ValueError, match="give a .png path"):
        plot_feature_map(lay, [f"g{i}" for i in range(9)], tmp_path / "map.csv")
    assert not (tmp_path / "map.csv").exists()


def _fig_calls(lay, X, y, feats):
    return {
        "feature_map": lambda p: plot_feature_map(lay, feats, p),
        "sample_image": lambda p: plot_sample_image(lay, X[0], p),
        "class_mean_images": lambda p: plot_class_mean_images(lay, X, y, ["a", "b", "c"], p),
    }


@pytest.mark.parametrize("which", ["feature_map", "sample_image", "class_mean_images"])
@pytest.mark.parametrize("name", ["x.jpg", "x.pdf", "x.csv", "x", "sub/x.svg"])
def test_every_figure_refuses_a_non_png_path(which, name, data, tmp_path):
    X, y, feats = data
    lay = make_layout("square").fit(X)
    with pytest.raises(ValueError, match=r"give a \.png path"):
        _fig_calls(lay, X, y, feats)[which](tmp_path / name)
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder created
    _png_ok(_fig_calls(lay, X, y, feats)[which](str(tmp_path / "ok.PNG")))


def test_feature_names_generator_none_and_bad_entries(data, tmp_path):
    from spiking.report.layout_figures import feature_map_table
    X, y, feats = data
    lay = make_layout("square").fit(X)
    p, fig = plot_feature_map(lay, (f for f in feats), tmp_path / "gen.png", return_figure=True)
    _png_ok(p)
    assert set(feats) <= _texts(fig)  # the generator was read once, every cell labelled
    assert [r["feature_name"] for r in feature_map_table(lay, iter(feats))] == \
        [feats[i] for i in lay.feature_map_.ravel() if i >= 0]
    with pytest.raises(ValueError, match="feature_names is required"):
        plot_feature_map(lay, None, tmp_path / "n.png")
    with pytest.raises(ValueError, match="feature_names is required"):
        feature_map_table(lay, None)
    with pytest.raises(ValueError, match="feature_names has 31 entries"):
        plot_feature_map(lay, (f for f in feats + ["extra"]), tmp_path / "n.png")
    with pytest.raises(TypeError, match="single str"):
        plot_feature_map(lay, "GENE0", tmp_path / "n.png")
    with pytest.raises(TypeError, match="entry 0 is 0"):
        plot_feature_map(lay, list(range(30)), tmp_path / "n.png")
    with pytest.raises(TypeError, match="iterable"):
        plot_feature_map(lay, 30, tmp_path / "n.png")
    assert not (tmp_path / "n.png").exists() and not (tmp_path / "n.csv").exists()
