"""Render and check the Kubernetes manifests of `make submit K8S=1` and `make deploy` (any python3 >= 3.8, stdlib only).

rayjob: k8s/rayjob.yaml with its __PLACEHOLDERS__ replaced (plain string replacement, in the order sed -e ran them);
raycluster: raycluster.yaml with the value of its `image: &image` line replaced; image-ref: that value (--split: the
IMAGE and TAG halves the Makefile defaults to). Values go into YAML unquoted, hence the character whitelists.
A refused value: one line on stderr (naming the Makefile's variable), exit code 2, nothing rendered.
--check only checks; --kubectl create|apply pipes the manifest to `kubectl VERB -f -` after the checks passed, so a
refused value never starts kubectl (a shell pipe `script | kubectl` would run it with empty input), and the
Makefile calls --check inside $(shell) while expanding the recipe, so `make -n` fails on a refused value too.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAYJOB_TEMPLATE = ROOT / "k8s" / "rayjob.yaml"
RAYCLUSTER = ROOT / "raycluster.yaml"
EXPERIMENTS_DIR = ROOT / "spiking" / "search" / "experiments"
# Characters allowed in BUDGET, STORAGE, SHARDS, GPUS_PER_TRIAL (ARGS: also spaces between options).
SAFE = re.compile(r"[A-Za-z0-9_./:=-]*")
SAFE_ARGS = re.compile(r"[A-Za-z0-9_./:= -]*")
# An image reference: also @ (a digest, repo@sha256:...).
SAFE_IMAGE = re.compile(r"[A-Za-z0-9_./:@-]*")
# RFC 1123 label: what Kubernetes accepts as the RayJob's name.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# `image: &image VALUE` (as the Makefile's sed read it): group 1 is VALUE.
IMAGE_LINE = re.compile(r"^[ \t\r\f\v]*image:[ \t\r\f\v]*&image[ \t\r\f\v]+([^ \t\r\f\v]*)")
IMAGE_ANCHOR = re.compile(r"(image:[ \t\r\f\v]*)&image[ \t\r\f\v].*$")
NENGO_ENVIRONMENT = re.compile(r'^environment *= *"nengo"', re.M)
# The placeholders of k8s/rayjob.yaml, in the order render_rayjob replaces them (that of its arguments).
PLACEHOLDERS = ("__NAME__", "__IMAGE__", "__EXP__", "__BUDGET__", "__STORAGE__", "__SHARDS__", "__GPUS__", "__ARGS__")


class ManifestError(ValueError):
    """A value the manifests refuse; its message is one line for the user."""


def _shown(value: str) -> str:
    """`value` for a one-line message: a newline or other unprintable character escaped (\\n)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def experiments() -> list[str]:
    """Names of the experiments (stems of spiking/search/experiments/*.toml), sorted."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.toml"))


def nengo_experiments() -> list[str]:
    """The experiments whose file sets `environment = "nengo"` (they need the Keras/NengoDL environment)."""
    return [name for name in experiments() if NENGO_ENVIRONMENT.search(_read(EXPERIMENTS_DIR / f"{name}.toml"))]


def check_image(image: str) -> None:
    """Refuse an image reference (IMAGE:TAG) with characters other than letters, digits, - _ . / : @ (ManifestError)."""
    if not SAFE_IMAGE.fullmatch(image):
        raise ManifestError(f"IMAGE and TAG may hold only letters, digits and - _ . / : @, got: {_shown(image)}")


def check_rayjob(name: str, image: str, exp: str, budget: str, storage: str, shards: str, gpus: str,
                 args: str) -> None:
    """Raise ManifestError for the first value `make submit K8S=1` refuses, in the Makefile's order."""
    names = experiments()
    if exp not in names:
        raise ManifestError(f"unknown experiment EXP={_shown(exp)}; valid: {' '.join(names)}")
    if exp in nengo_experiments():
        raise ManifestError(
            f"EXP={exp} runs in the Keras/NengoDL environment, which the cluster's images do not provide (its "
            f"TensorFlow 2.12 excludes ray[default]); run it with make tune EXP={exp} or make submit EXP={exp} "
            "without K8S=1")
    if not DNS_LABEL.fullmatch(name):
        raise ManifestError("RAYJOB must be a Kubernetes name (lower-case letters, digits, -; at most 63, starting "
                            f"and ending with a letter or digit), got: {_shown(name)}")
    values = {"BUDGET": budget, "STORAGE": storage, "SHARDS": shards, "GPUS_PER_TRIAL": gpus}
    bad = [f"{k}={_shown(v)}" for k, v in values.items() if not SAFE.fullmatch(v)]
    bad += [f"ARGS={_shown(args)}"] if not SAFE_ARGS.fullmatch(args) else []
    if bad:
        raise ManifestError("BUDGET, STORAGE, SHARDS, GPUS_PER_TRIAL and ARGS may hold only letters, digits and "
                            f"- _ . / : = (ARGS also spaces), got: {bad[0]}")
    if "://" not in storage:
        raise ManifestError(f"K8S=1 needs an object-store STORAGE (s3://...), not {_shown(storage)}")
    if "://" not in shards:
        raise ManifestError(f"K8S=1 needs SHARDS in object storage (s3://...), not {_shown(shards)}")
    check_image(image)


def render_rayjob(name: str, image: str, exp: str, budget: str, storage: str, shards: str, gpus: str,
                  args: str, template: str | None = None) -> str:
    """k8s/rayjob.yaml (or `template`) with its placeholders filled in, after check_rayjob (ManifestError)."""
    check_rayjob(name, image, exp, budget, storage, shards, gpus, args)
    text = _read(RAYJOB_TEMPLATE) if template is None else template
    # One after the other, as the sed -e expressions did.
    for placeholder, value in zip(PLACEHOLDERS, (name, image, exp, budget, storage, shards, gpus, args)):
        text = text.replace(placeholder, value)
    return text


def image_ref(text: str | None = None) -> str:
    """The value of raycluster.yaml's (or `text`'s) `image: &image VALUE` line; ManifestError unless exactly one."""
    text = _read(RAYCLUSTER) if text is None else text
    refs = [m.group(1) for m in map(IMAGE_LINE.match, text.split("\n")) if m]
    if len(refs) != 1:
        raise ManifestError(f"raycluster.yaml needs exactly one `image: &image VALUE` line, found {len(refs)}")
    return refs[0]


def split_image_ref(ref: str) -> tuple[str, str]:
    """IMAGE and TAG of a reference: TAG is what follows the last `:` when it holds no `/` (else empty)."""
    m = re.search(r":([^:/]*)$", ref)
    return (ref[:m.start()], m.group(1)) if m else (ref, "")


def render_raycluster(image: str, text: str | None = None) -> str:
    """raycluster.yaml (or `text`) with the value of every `image: &image` line replaced by `image` (ManifestError)."""
    check_image(image)
    text = _read(RAYCLUSTER) if text is None else text
    # Line by line, as sed: a line is what lies between two newlines.
    return "\n".join(IMAGE_ANCHOR.sub(lambda m: m.group(1) + "&image " + image, line, count=1)
                     for line in text.split("\n"))


def _kubectl(verb: str, manifest: str) -> int:
    try:
        return subprocess.run(["kubectl", verb, "-f", "-"], input=manifest, text=True).returncode
    except FileNotFoundError:
        print("kubectl is not on PATH", file=sys.stderr)
        return 127


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    rj = sub.add_parser("rayjob", help="print k8s/rayjob.yaml filled in")
    for opt, var in (("name", "RAYJOB"), ("image", "IMAGE:TAG"), ("exp", "EXP"), ("budget", "BUDGET"),
                     ("storage", "STORAGE"), ("shards", "SHARDS"), ("gpus", "GPUS_PER_TRIAL"), ("args", "ARGS")):
        rj.add_argument(f"--{opt}", required=opt != "args", default="", metavar=var,
                        help="(write --args=VALUE: the value may start with --)" if opt == "args" else None)
    rc = sub.add_parser("raycluster", help="print raycluster.yaml with its &image value replaced")
    rc.add_argument("--image", required=True, metavar="IMAGE:TAG")
    for s in (rj, rc):
        s.add_argument("--check", action="store_true", help="only check the values, print nothing")
        s.add_argument("--kubectl", choices=("create", "apply"), help="pipe the manifest to kubectl VERB -f -")
    ref = sub.add_parser("image-ref", help="print the value of raycluster.yaml's `image: &image` line")
    ref.add_argument("--split", action="store_true", help="print IMAGE and TAG, separated by a space")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (2: a refused value, its message on stderr)."""
    a = _parser().parse_args(argv)
    try:
        if a.command == "image-ref":
            ref = image_ref()
            print(" ".join(split_image_ref(ref)) if a.split else ref)
            return 0
        if a.command == "rayjob":
            manifest = render_rayjob(a.name, a.image, a.exp, a.budget, a.storage, a.shards, a.gpus, a.args)
        else:
            manifest = render_raycluster(a.image)
    except ManifestError as e:
        print(e, file=sys.stderr)
        return 2
    if a.check:
        return 0
    if a.kubectl:
        return _kubectl(a.kubectl, manifest)
    sys.stdout.write(manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
