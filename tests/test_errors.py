"""User errors print one line and exit 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import inspect

import pytest

import spiking.data.ingest as ing
from spiking.cli import main as cli
from spiking.errors import SpikingError


def _ingest_raising(exc, monkeypatch, tmp_path):
    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(ing, "ingest", boom)
    return cli.main(["ingest", "--matrix", str(tmp_path / "m.csv"), "--labels", str(tmp_path / "l.csv"),
                     "--out", str(tmp_path / "out")])


def test_a_user_error_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    assert _ingest_raising(ing.IngestError("m.csv: bad header"), monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err
    assert err == "spiking: error: m.csv: bad header\n"


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("feature_names"), TypeError("a bug")])
def test_a_bug_keeps_its_traceback(exc, monkeypatch, tmp_path):
    with pytest.raises(type(exc)):
        _ingest_raising(exc, monkeypatch, tmp_path)


def test_every_project_error_type_is_a_spiking_error():
    import spiking.artifacts.storage as storage
    import spiking.data.layout as layout
    import spiking.report.inputs as report_inputs
    import spiking.search.registry as registry
    import spiking.search.tuner as tuner
    from spiking import artifacts, data, keras, models, specs, training
    from spiking.evaluation import metrics

    mods = [storage, layout, report_inputs, registry, tuner, artifacts, data, keras, models, specs, training, metrics,
            cli, ing]
    found = {obj for m in mods for _, obj in inspect.getmembers(m, inspect.isclass)
             if issubclass(obj, Exception) and obj.__module__.startswith("spiking")
             and not obj.__name__.startswith("_")}  # a private one is control flow, never shown
    assert len(found) >= 10
    assert all(issubclass(e, SpikingError) for e in found), [e for e in found if not issubclass(e, SpikingError)]
