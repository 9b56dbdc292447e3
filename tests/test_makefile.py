"""The Makefile's targets print the commands they would run (make -n); nothing is executed.

The only commands run for real are the scripts/k8s_manifests.py renderings of the Kubernetes
manifests that `make -n` prints, without their `--kubectl VERB` (what `make submit K8S=1` /
`make deploy` would send to kubectl), so the manifests that would be sent can be checked; and
`make submit K8S=1` itself, with a stand-in kubectl on PATH.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Variables of the Makefile a caller's environment could set; each test starts without them.
MAKE_VARS = ("RAY_ADDRESS", "K8S", "HEAD", "IMAGE", "TAG", "STORAGE", "SHARDS", "ARGS", "RAYJOB", "BUCKET",
             "EXP", "BUDGET", "GPUS_PER_TRIAL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
REQUIRED_TARGETS = ("install", "install-nengo", "demo", "test", "nas", "image", "push", "deploy", "submit", "dashboard",
                    "logs", "ray-up", "ray-down", "clean", "tune", "help")


def _run(*args: str, env_extra: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS}
    env.update(env_extra or {})
    # --no-print-directory: under `make test` the inherited MAKEFLAGS would add "Entering directory" lines
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=check)


def _dry(*args: str, env_extra: dict | None = None) -> str:
    return _run("-n", *args, env_extra=env_extra).stdout


def _render(dry_output: str, marker: str) -> list[dict]:
    """Run the command line of `make -n` output that ends in `marker` (without it), parse its YAML."""
    lines = [ln for ln in dry_output.splitlines() if ln.endswith(f" {marker}")]
    assert len(lines) == 1, dry_output
    cmd = lines[0][:-len(marker) - 1]
    assert cmd.startswith("python3 scripts/k8s_manifests.py "), cmd  # only ever run a rendering
    out = subprocess.run(["bash", "-c", cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _fake_kubectl(tmp_path: Path) -> tuple[dict, Path]:
    """A PATH whose `kubectl` saves its arguments and stdin under tmp_path (the env to pass, the stdin's file)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    (bin_dir / "kubectl").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, tmp_path / "stdin"


def test_submit_goes_to_the_cluster_when_ray_address_is_set():
    out = _dry("submit", "EXP=snn_pt1", env_extra={"RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert "ray job submit --address http://127.0.0.1:8265" in out
    assert "tune snn_pt1 --budget smoke" in out
    # local paths become absolute: the job runs in a copy of the repository
    assert f"--storage {ROOT}/runs/tune" in out and f"--shards {ROOT}/data/shards" in out
    assert "kubectl" not in out


def test_submit_runs_locally_without_ray_address_and_keeps_uris():
    out = _dry("submit", "EXP=snn_pt1", "STORAGE=s3://bucket/prefix", "BUDGET=small")
    assert "ray job submit" not in out and "kubectl" not in out
    assert "spiking tune snn_pt1 --budget small --storage s3://bucket/prefix" in out


def test_submit_passes_extra_tune_options():
    out = _dry("submit", "EXP=snn_pt1", "ARGS=--resume")
    assert "spiking tune snn_pt1 --budget smoke" in out and out.rstrip().endswith("--resume")


def test_submit_k8s_creates_a_rayjob_for_the_experiment():
    out = _dry("submit", "EXP=snn_pt1", "K8S=1", env_extra={"RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert "--kubectl create" in out
    assert "ray job submit" not in out and "spiking tune" not in out
    assert "pip install" not in out and ".venv" not in out, "submitting to the cluster needs no local environment"
    [job] = _render(out, "--kubectl create")
    assert job["kind"] == "RayJob" and job["metadata"]["name"] == "spiking-snn-pt1"
    assert job["metadata"]["namespace"] == "spiking"
    ep = job["spec"]["entrypoint"]
    assert ep.startswith("spiking tune snn_pt1 --budget smoke --storage s3://spiking/tune "
                         "--shards s3://spiking/shards/tcga-mirna-rpm --gpus-per-trial 0.25")
    assert "__" not in yaml.safe_dump(job), "every placeholder substituted"
    rc = [d for d in yaml.safe_load_all((ROOT / "raycluster.yaml").read_text()) if d][0]
    head_image = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] == head_image


def test_submit_k8s_takes_budget_storage_image_and_name():
    out = _dry("submit", "EXP=cnn_pt2", "K8S=1", "BUDGET=paper", "STORAGE=s3://other/tune", "IMAGE=reg.io/x/spiking",
               "TAG=9.9", "RAYJOB=again-1", "ARGS=--resume")
    [job] = _render(out, "--kubectl create")
    assert job["metadata"]["name"] == "again-1"
    assert job["spec"]["entrypoint"].startswith("spiking tune cnn_pt2 --budget paper --storage s3://other/tune ")
    assert job["spec"]["entrypoint"].endswith("--resume")
    assert job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] == "reg.io/x/spiking:9.9"


def test_submit_k8s_refuses_local_storage():
    r = _run("-n", "submit", "EXP=snn_pt1", "K8S=1", "STORAGE=runs/tune", check=False)
    assert r.returncode != 0 and "K8S=1 needs an object-store STORAGE" in r.stderr
    assert "kubectl" not in r.stdout


def test_deploy_applies_kustomize_then_the_raycluster_with_the_image():
    out = _dry("deploy", "TAG=7.7.7")
    assert "kubectl apply -k k8s/" in out
    assert out.index("kubectl apply -k k8s/") < out.index("--kubectl apply")
    assert "k8s/secret.yaml" in out and "CHANGE-ME" in out, "refuses a missing or unfilled secret"
    [rc] = _render(out, "--kubectl apply")
    images = {rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]}
    images |= {g["template"]["spec"]["containers"][0]["image"] for g in rc["spec"]["workerGroupSpecs"]}
    assert images == {"registry.example.com/spiking:7.7.7"}, "TAG changes every Ray container's image"


def test_image_builds_both_targets_with_the_raycluster_image():
    out = _dry("image")
    assert "--target train -t registry.example.com/spiking:0.1.0 ." in out
    assert "--target nengo -t registry.example.com/spiking:0.1.0-nengo ." in out
    push = _dry("push", "IMAGE=reg.io/me/spiking", "TAG=1.2")
    assert "docker push reg.io/me/spiking:1.2\n" in push and "docker push reg.io/me/spiking:1.2-nengo" in push


def test_dashboard_and_logs_use_the_cluster_names():
    assert "kubectl port-forward -n spiking --address 127.0.0.1 svc/spiking-head-svc 8265:8265" in _dry("dashboard")
    assert "kubectl logs -n spiking -f --tail=-1 -l job-name=spiking-snn-pt1" in _dry("logs", "EXP=snn_pt1")
    head = _dry("logs", "HEAD=1")
    assert "-l ray.io/cluster=spiking,ray.io/node-type=head" in head and "-c ray-head" in head


def test_install_nengo_makes_its_own_venv_with_the_nengo_extra_and_no_torch():
    out = _dry("install-nengo", "NENGO_VENV=/tmp/never-made")
    assert "python3.11 -m venv /tmp/never-made" in out
    installs = [ln for ln in out.splitlines() if "pip install" in ln and "--upgrade pip" not in ln]
    assert installs == ["/tmp/never-made/bin/python -m pip install -e '.[nengo,test-core]'"]


def test_nengo_experiments_and_nas_run_in_the_nengo_venv():
    tune = _dry("tune", "EXP=snn_k")
    assert ".venv-nengo/bin/spiking tune snn_k" in tune and "RAY_TRAIN_V2_ENABLED=0" in tune
    assert ".venv/bin/spiking tune cnn_pt2" in _dry("tune", "EXP=cnn_pt2")
    nas = _dry("nas", "NAS_BUDGET=small", "STORAGE=/tmp/st")
    assert ".venv-nengo/bin/spiking nas --budget small --grammar fast_denser_1d_relu --require-relu --name nas --storage /tmp/st" in nas
    assert ".venv-nengo/bin/spiking tune snn_k" in _dry("submit", "EXP=snn_k")


def test_submit_to_kubernetes_refuses_the_nengo_experiments():
    r = _run("-n", "submit", "K8S=1", "EXP=snn_k", "STORAGE=s3://b/t", "SHARDS=s3://b/s", check=False)
    assert r.returncode != 0 and "runs in the Keras/NengoDL environment" in r.stderr


def test_make_test_runs_both_environments_suites():
    out = _dry("test")
    assert "pytest -q tests --ignore=tests/nengo" in out
    assert ".venv-nengo/bin/python -m pytest -q -p no:nengo tests/nengo -m nengo" in out
    assert out.index("ruff check spiking tests benchmarks") < out.index("pytest -q tests")  # lint first


@pytest.mark.parametrize("target", REQUIRED_TARGETS)
def test_help_lists_every_target_once(target):
    lines = _run("help").stdout.splitlines()
    hits = [ln for ln in lines if ln.split()[0] == target]
    assert len(hits) == 1 and len(hits[0].split()) > 1, f"{target}: {hits}"


def test_submit_k8s_refuses_unsafe_values_before_any_command(tmp_path):
    """Values once went into a sed script: a quote in EXP ran an injected command. Now they are
    shell-quoted for the script, which refuses them; make stops (make -n too) before kubectl."""
    marker = tmp_path / "pwned"
    path, stdin = _fake_kubectl(tmp_path)
    for args, words in (([f"EXP=x'; touch {marker}; echo '"], "unknown experiment"),
                        (["EXP=unknown_exp"], "unknown experiment"),
                        (["EXP=snn_pt1 cnn_pt2"], "unknown experiment"),
                        (["EXP=snn_pt1", "RAYJOB=Bad;x"], "Kubernetes name"),
                        (["EXP=snn_pt1", "ARGS=--resume'|x"], "may hold only"),
                        (["EXP=snn_pt1", "BUDGET=small paper"], "may hold only"),
                        (["EXP=snn_pt1", "SHARDS=data/shards"], "K8S=1 needs SHARDS in object storage")):
        for dry in ([], ["-n"]):
            r = _run(*dry, "submit", "K8S=1", *args, env_extra=path, check=False)
            assert r.returncode != 0 and words in r.stderr, (args, r.stderr)
            assert "kubectl" not in r.stdout and r.stdout == "", (args, r.stdout)
    assert not marker.exists() and not stdin.exists()
    ok = _run("-n", "submit", "K8S=1", "EXP=snn_pt1", "ARGS=--resume --overwrite").stdout
    assert "--resume --overwrite" in ok


def test_submit_k8s_pipes_the_rendered_rayjob_to_kubectl_create(tmp_path):
    path, stdin = _fake_kubectl(tmp_path)
    r = _run("submit", "K8S=1", "EXP=snn_pt1", "ARGS=--resume --overwrite", env_extra=path)
    assert (tmp_path / "argv").read_text().split() == ["create", "-f", "-"]
    assert "RayJob spiking-snn-pt1 created" in r.stdout
    [job] = [d for d in yaml.safe_load_all(stdin.read_text()) if d]
    assert job["metadata"]["name"] == "spiking-snn-pt1"
    assert job["spec"]["entrypoint"].endswith("--gpus-per-trial 0.25 --resume --overwrite")


def test_deploy_refuses_an_unsafe_image_before_any_command():
    r = _run("-n", "deploy", "TAG=1|x", check=False)
    assert r.returncode != 0 and "IMAGE and TAG may hold only" in r.stderr
    assert "kubectl" not in r.stdout
