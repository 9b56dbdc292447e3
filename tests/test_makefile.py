"""The Makefile's search targets print the commands they would run (make -n), nothing executed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _dry(*args: str, env_extra: dict | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(env_extra or {})
    out = subprocess.run(["make", "-n", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return out.stdout


def test_submit_goes_to_the_cluster_when_ray_address_is_set():
    out = _dry("submit", "EXP=snn_pt1", env_extra={"RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert "ray job submit --address http://127.0.0.1:8265" in out
    assert "tune snn_pt1 --budget smoke" in out
    # local paths become absolute: the job runs in a copy of the repository
    assert f"--storage {ROOT}/runs/tune" in out and f"--shards {ROOT}/data/shards" in out


def test_submit_runs_locally_without_ray_address_and_keeps_uris():
    out = _dry("submit", "EXP=snn_pt1", "STORAGE=s3://bucket/prefix", "BUDGET=small")
    assert "ray job submit" not in out
    assert "spiking tune snn_pt1 --budget small --storage s3://bucket/prefix" in out
