"""scripts/k8s_manifests.py: the renderings are byte-identical to the Makefile's former sed
lines (run here as the reference), its checks refuse what the Makefile refused, and its
command line reports a refusal in one line with exit code 2, never starting kubectl."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "k8s_manifests.py"
_spec = importlib.util.spec_from_file_location("k8s_manifests", SCRIPT)
km = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(km)

DEFAULTS = {"name": "spiking-snn-pt1", "image": "registry.example.com/spiking:0.1.0", "exp": "snn_pt1",
            "budget": "smoke", "storage": "s3://spiking/tune", "shards": "s3://spiking/shards/tcga-mirna-rpm",
            "gpus": "0.25", "args": ""}


def _sed_rayjob(v: dict) -> str:
    """The Makefile's former RENDER_RAYJOB, for values it accepted."""
    exprs = [f"s|{p}|{v[k]}|g" for p, k in zip(km.PLACEHOLDERS, DEFAULTS)]
    cmd = ["sed", *[a for e in exprs for a in ("-e", e)], "k8s/rayjob.yaml"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _sed_raycluster(image: str) -> str:
    """The Makefile's former RENDER_RAYCLUSTER."""
    expr = rf"s|\(image:[[:space:]]*\)&image[[:space:]].*$|\1\&image {image}|"
    return subprocess.run(["sed", expr, "raycluster.yaml"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, env=env)


def _opts(**over: str) -> list[str]:
    return [f"--{k}={v}" for k, v in {**DEFAULTS, **over}.items()]


@pytest.mark.parametrize("over", [{}, {"name": "again-1", "image": "reg.io/x/spiking:9.9", "exp": "cnn_pt2",
                                      "budget": "paper", "storage": "s3://other/tune", "args": "--resume"},
                                  {"exp": "cnn_pt2", "shards": "gs://b/s=x", "gpus": "1",
                                   "args": "--resume --overwrite"}])
def test_rayjob_is_byte_identical_to_the_former_sed_rendering(over):
    values = {**DEFAULTS, **over}
    text = km.render_rayjob(**values)
    assert text == _sed_rayjob(values)
    assert "__" not in text.split("apiVersion:", 1)[1]
    assert _cli("rayjob", *_opts(**over)).stdout == text
    [job] = [d for d in yaml.safe_load_all(text) if d]
    assert job["metadata"]["name"] == values["name"]
    assert job["spec"]["entrypoint"].rstrip().endswith(f"--gpus-per-trial {values['gpus']} {values['args']}".rstrip())


def test_placeholders_are_replaced_in_the_former_sed_order():
    # a value holding a later placeholder is filled in again, as sed -e ... -e ... did
    assert km.render_rayjob(**{**DEFAULTS, "image": "a/__EXP__"}, template="__IMAGE__") == "a/snn_pt1"


@pytest.mark.parametrize("image", ["registry.example.com/spiking:7.7.7", "localhost:5000/x/spiking",
                                   "reg.io/s@sha256:abc"])
def test_raycluster_is_byte_identical_to_the_former_sed_rendering(image):
    text = km.render_raycluster(image)
    assert text == _sed_raycluster(image)
    assert _cli("raycluster", f"--image={image}").stdout == text
    [rc] = [d for d in yaml.safe_load_all(text) if d]
    images = {rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]}
    images |= {g["template"]["spec"]["containers"][0]["image"] for g in rc["spec"]["workerGroupSpecs"]}
    assert images == {image}


def test_raycluster_keeps_what_follows_image_only_on_anchor_lines():
    text = "a:\n  image: &image old  # c\n  image: *image\nimage:x &image y\n"
    assert km.render_raycluster("n:1", text) == "a:\n  image: &image n:1\n  image: *image\nimage:x &image y\n"


def test_image_ref_and_its_halves_match_the_former_sed():
    sed = r"s/^[[:space:]]*image:[[:space:]]*&image[[:space:]]\{1,\}\([^[:space:]]*\).*$/\1/p"
    ref = subprocess.run(["sed", "-n", sed, "raycluster.yaml"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert km.image_ref() == ref == _cli("image-ref").stdout.strip()
    assert _cli("image-ref", "--split").stdout.split() == list(km.split_image_ref(ref))
    assert km.split_image_ref("registry.example.com/spiking:0.1.0") == ("registry.example.com/spiking", "0.1.0")
    assert km.split_image_ref("localhost:5000/spiking") == ("localhost:5000/spiking", "")
    assert km.split_image_ref("reg.io/s@sha256:abc") == ("reg.io/s@sha256", "abc")
    with pytest.raises(km.ManifestError, match="exactly one"):
        km.image_ref("image: &image a\nimage: &image b\n")


def test_experiments_and_nengo_experiments_come_from_the_files():
    files = sorted((ROOT / "spiking" / "search" / "experiments").glob("*.toml"))
    assert km.experiments() == [p.stem for p in files] and "snn_pt1" in km.experiments()
    nengo = [p.stem for p in files if tomllib.loads(p.read_text()).get("environment") == "nengo"]
    assert km.nengo_experiments() == nengo and "snn_k" in nengo


@pytest.mark.parametrize("over, words", [
    ({"exp": "nope"}, "unknown experiment EXP=nope; valid: cnn_pt1 "),
    ({"exp": "snn_pt1 cnn_pt2"}, "unknown experiment"),
    ({"exp": ""}, "unknown experiment"),
    ({"exp": "snn_k"}, "EXP=snn_k runs in the Keras/NengoDL environment, which the cluster's images do not provide"),
    ({"name": "Bad"}, "RAYJOB must be a Kubernetes name"),
    ({"name": "a b"}, "RAYJOB must be a Kubernetes name"),
    ({"name": ""}, "RAYJOB must be a Kubernetes name"),
    ({"name": "-a"}, "RAYJOB must be a Kubernetes name"),
    ({"name": "a-"}, "RAYJOB must be a Kubernetes name"),
    ({"name": "a" * 64}, "RAYJOB must be a Kubernetes name"),
    ({"budget": "a'b"}, "may hold only letters, digits and - _ . / : = (ARGS also spaces), got: BUDGET=a'b"),
    ({"budget": "small paper"}, "got: BUDGET=small paper"),
    ({"storage": "s3://a|b"}, "got: STORAGE="),
    ({"shards": "s3://a&b"}, "got: SHARDS="),
    ({"gpus": "0.25\nx: 1"}, "got: GPUS_PER_TRIAL="),
    ({"args": "--resume # x"}, "got: ARGS="),
    ({"args": "--resume\n--x"}, "got: ARGS="),
    ({"storage": "runs/tune"}, "K8S=1 needs an object-store STORAGE (s3://...), not runs/tune"),
    ({"shards": "data/shards"}, "K8S=1 needs SHARDS in object storage (s3://...), not data/shards"),
    ({"image": "reg.io/x:1 2"}, "IMAGE and TAG may hold only"),
    # the first refusal is the one reported, in the Makefile's order
    ({"exp": "nope", "name": "Bad"}, "unknown experiment"),
    ({"name": "Bad", "args": "'"}, "RAYJOB must be"),
    ({"args": "'", "storage": "runs"}, "may hold only"),
])
def test_rayjob_refuses_what_the_makefile_refused(over, words, tmp_path):
    with pytest.raises(km.ManifestError) as e:
        km.render_rayjob(**{**DEFAULTS, **over})
    assert words in str(e.value)
    r = _cli("rayjob", *_opts(**over), "--check")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and words.split("\n")[0] in r.stderr


@pytest.mark.parametrize("over", [{"name": "a" * 63}, {"name": "0"}, {"args": "--resume --overwrite"},
                                  {"storage": "gs://b/t", "budget": "Paper_2", "gpus": "1"}])
def test_rayjob_accepts_kubernetes_names_and_spaces_between_args(over):
    km.check_rayjob(**{**DEFAULTS, **over})
    r = _cli("rayjob", *_opts(**over), "--check")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def _fake_kubectl(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\nexit 3\n')
    (bin_dir / "kubectl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_kubectl_gets_the_rendered_manifest_and_its_exit_code_is_returned(tmp_path):
    env = _fake_kubectl(tmp_path)
    r = _cli("rayjob", *_opts(), "--kubectl", "create", env=env)
    assert r.returncode == 3 and r.stdout == ""  # the stand-in's exit code
    assert (tmp_path / "argv").read_text().split() == ["create", "-f", "-"]
    assert (tmp_path / "stdin").read_text() == km.render_rayjob(**DEFAULTS)
    r = _cli("raycluster", "--image=r/x:2", "--kubectl", "apply", env=env)
    assert (tmp_path / "argv").read_text().split() == ["apply", "-f", "-"]
    assert (tmp_path / "stdin").read_text() == km.render_raycluster("r/x:2")


def test_a_refused_value_never_starts_kubectl(tmp_path):
    env = _fake_kubectl(tmp_path)
    for args in (["rayjob", *_opts(exp="nope")], ["raycluster", "--image=a|b"]):
        verb = "create" if args[0] == "rayjob" else "apply"
        r = _cli(*args, "--kubectl", verb, env=env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert not (tmp_path / "argv").exists() and not (tmp_path / "stdin").exists()


def test_a_missing_kubectl_is_reported(tmp_path):
    r = _cli("rayjob", *_opts(), "--kubectl", "create", env={**os.environ, "PATH": str(tmp_path)})
    assert r.returncode == 127 and "kubectl is not on PATH" in r.stderr


def test_the_script_runs_on_python_3_8_with_the_standard_library_only():
    source = SCRIPT.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" in source, "annotations such as str | None stay strings"
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= sys.stdlib_module_names - {"tomllib"}, modules  # tomllib: 3.11+
    assert not re.search(r"\.removeprefix|\.removesuffix|\bmatch\s+\w+:", source)  # 3.9+ / 3.10+
    doc = ast.get_docstring(tree)
    assert doc and len(doc.splitlines()) <= 11
