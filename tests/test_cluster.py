"""A search on a simulated Ray cluster: a head and two worker nodes on this machine, one worker killed part-way.

``ray.cluster_utils.Cluster`` starts the nodes as separate Ray processes (GCS, raylets, object
stores, workers) on 127.0.0.1: the head with 0 CPUs, so every trial runs on a worker node, and
two workers with 1 CPU each, so the two concurrent trials run one per worker. The storage is a
local folder, seen by every simulated node (what a shared S3 bucket gives a real cluster).
Token authentication is on, with a token of the test's own (``RAY_AUTH_TOKEN``; nothing is
written to ``~/.ray``). Each trial records the Ray node it ran on (``node_id``, ``node_ids`` in
``trials.json``).

The driver (this process) runs ``run_experiment`` (Ray is initialised, so it joins the cluster
and leaves it running). A watcher thread follows the storage: the experiment snapshots (trial
statuses), each trial's ``result.json`` (its node) and checkpoint folders (its progress, written
by the worker before the driver records the epoch). As soon as one trial has finished, trials
have run on both workers, and a running trial has checkpointed between 1 and ``EPOCHS // 2``
epochs on a worker node (early enough that it cannot finish before the kill lands), it SIGKILLs
that node's raylet and every process on it, running trial included (``Cluster.remove_node``).
The experiment must still complete: the trial that was on the killed node is retried
(``max_failures``) on the surviving node from its last checkpoint, the other trials never fail,
and no finished trial's checkpoint is lost from storage. About 45 s on 2 idle cores, 85 s with
two other busy processes.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from spiking.data.ingest import SHARED_TCGA, ingest
from spiking.search import runner
from spiking.search.registry import load_experiment, parse_experiment
from spiking.search.trainable import CHECKPOINT_FILE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="simulated multi-node Ray cluster: Linux only"),
]

EXPERIMENT = "cnn_search"
# 3 rounds of 2 concurrent trials: trials finish while others start; batch size 2 makes an epoch about 0.2 s
TRIALS, EPOCHS, BATCH_SIZE = 6, 12, 2
KILL_TIMEOUT_S = 900  # the watcher's own limit; it stops anyway when the experiment returns (about 30 s idle)


@pytest.fixture(scope="module")
def shards(tcga_subset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster") / "shards"
    ingest(tcga_subset["matrix"], tcga_subset["labels"], out, **SHARED_TCGA)
    return str(out)


def _set_env(env: dict) -> None:
    for k, v in env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _reload_ray_settings() -> None:
    """Make this process read Ray's settings from the environment again (auth mode, token), as ``ray.init`` does
    when it switches token auth on for a new local cluster."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


@pytest.fixture
def ray_cluster():
    """A head node (0 CPUs) and two worker nodes (1 CPU each) on 127.0.0.1, this process connected as the driver.

    Yields ``(cluster, {node_id: worker Node})``. The cluster is always shut down and the environment
    restored, also when the test (or the cluster's start) fails.
    """
    import ray
    import ray._private.ray_constants as ray_constants
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "another Ray is connected in this process"
    ray_tmp = tempfile.mkdtemp(prefix="spk-ray-")  # short: Ray's socket paths must stay under 108 characters
    env = {
        # Ray resolves 127.0.0.1 in a cluster address to the machine's outward IP unless told that this is a
        # one-machine cluster (the switch Ray uses on Windows and macOS); then everything stays on loopback.
        ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0",
        # token authentication, with a token of this test's own (read from the environment by every node)
        "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_AUTH_TOKEN_PATH": None,
        "RAY_ADDRESS": None,  # never an outside cluster
        "RAY_TMPDIR": ray_tmp,
        # trial workers at normal priority: Ray starts them at niceness 15, which starves them (40 times slower
        # epochs, measured) behind any other busy process on 2 shared cores
        "RAY_worker_niceness": "0",
    }
    saved_env = {k: os.environ.get(k) for k in env}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    node = {"node_ip_address": "127.0.0.1", "object_store_memory": 100 * 2**20}
    cluster = None
    try:
        _set_env(env)
        ray_constants.ENABLE_RAY_CLUSTER = False  # this process (Ray is imported already)
        _reload_ray_settings()
        cluster = Cluster(shutdown_at_exit=True)
        # the first node added is the head; it declares a lost node dead after 3 missed 1 s health checks
        cluster.add_node(**node, num_cpus=0, include_dashboard=False,
                         _system_config={"health_check_period_ms": 1000, "health_check_failure_threshold": 3})
        workers = [cluster.add_node(**node, num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes(timeout=120)
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster, {w.node_id: w for w in workers}
    finally:
        try:
            ray.shutdown()
            if cluster is not None:
                cluster.shutdown()  # every node left, head included; waits for their processes to end
        finally:
            _set_env(saved_env)
            ray_constants.ENABLE_RAY_CLUSTER = saved_flag
            _reload_ray_settings()
            shutil.rmtree(ray_tmp, ignore_errors=True)


def small_experiment():
    """``cnn_search`` (smoke) as in its file but with FIFO (every trial runs all its epochs), TRIALS x EPOCHS and
    BATCH_SIZE (applied in memory, as ``benchmarks/tune_asha_vs_fifo.py`` does)."""
    base = load_experiment(EXPERIMENT)
    raw = copy.deepcopy(base.raw)
    raw["scheduler"]["type"] = "fifo"
    raw["budgets"]["smoke"].update(trials=TRIALS, epochs=EPOCHS, batch_size=BATCH_SIZE, max_concurrent=2)
    return parse_experiment(EXPERIMENT, raw, source=f"{base.source} (in memory: fifo, {TRIALS} x {EPOCHS})")


# --------------------------------------------------------------------------- reading the storage while it runs
def _rows(trial_dir: Path) -> list[dict]:
    """The trial's reported results (result.json, one JSON line each, written by the driver); a torn last line skipped."""
    try:
        text = (trial_dir / "result.json").read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break
    return rows


def _statuses(exp_dir: Path) -> dict:
    """Trial id -> status in the newest Tune experiment snapshot ({} if none yet or caught mid-write)."""
    files = sorted(exp_dir.glob("experiment_state-*.json"))
    if not files:
        return {}
    try:
        data = json.loads(files[-1].read_text())
        return {t["trial_id"]: t["status"] for t in (json.loads(s) for s, _ in data["trial_data"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _checkpoints(trial_dir: Path) -> dict:
    """checkpoint dir name -> (size, mtime) of its checkpoint.pt."""
    out = {}
    for f in sorted(trial_dir.glob("checkpoint_*/" + CHECKPOINT_FILE)):
        st = f.stat()
        out[f.parent.name] = (st.st_size, st.st_mtime_ns)
    return out


def _checkpointed_epoch(trial_dir: Path) -> int:
    """Epochs a (never restarted) trial has checkpointed: its newest ``checkpoint_<index>`` + 1.

    The worker writes a checkpoint to storage before the driver records that epoch's result, so
    this is the trial's actual progress, ahead of (or equal to) its result.json."""
    idx = [int(n) for d in trial_dir.glob("checkpoint_*") if (n := d.name.removeprefix("checkpoint_")).isdigit()]
    return max(idx) + 1 if idx else 0


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a raylet's workers and agents)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_node(cluster, node) -> list[int]:
    """Lose a worker node as a machine is lost: its raylet, object store and every worker process on it (running
    trials included) SIGKILLed. The raylet is stopped first (SIGSTOP) so that it starts no process while its
    children are listed and killed. Returns the pids killed."""
    import ray._private.ray_constants as ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    os.kill(raylet, signal.SIGSTOP)
    children = _children(raylet)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)  # SIGKILLs the raylet (and its other processes), waits for them
    return [raylet, *children]


class NodeKiller(threading.Thread):
    """Kills a worker node once a trial has finished and another has checkpointed an epoch on a worker node.

    The trial on the node must be early enough (at most ``EPOCHS // 2`` epochs checkpointed) that it
    cannot finish before the kill lands; if no trial qualifies before ``timeout``, nothing is killed
    (and the test fails, saying what it saw)."""

    def __init__(self, cluster, workers: dict, exp_dir: Path, timeout: float):
        super().__init__(daemon=True, name="node-killer")
        self.cluster, self.workers, self.exp_dir, self.timeout = cluster, workers, exp_dir, timeout
        self.stop = threading.Event()
        self.killed: dict | None = None
        self.error: BaseException | None = None
        self.last_seen: dict = {}

    def run(self):
        try:
            self._watch()
        except BaseException as e:  # reported by the test
            self.error = e

    def _watch(self):
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            statuses = _statuses(self.exp_dir)
            finished = {t for t, s in statuses.items() if s == "TERMINATED"}
            rows = {d.name.removeprefix("trial_"): _rows(d) for d in self.exp_dir.glob("trial_*")}
            nodes_seen = {r.get("node_id") for rs in rows.values() for r in rs}
            progress = {t: _checkpointed_epoch(self.exp_dir / f"trial_{t}") for t in rows}
            running = {t: rs[-1] for t, rs in rows.items()
                       if rs and t not in finished and rs[-1].get("node_id") in self.workers
                       and 1 <= progress[t] <= EPOCHS // 2}
            self.last_seen = {"statuses": statuses, "checkpointed epochs": progress,
                              "reported epochs": {t: [r["epoch"] for r in rs] for t, rs in rows.items()}}
            if finished and running and set(self.workers) <= nodes_seen:
                trial, last = sorted(running.items())[0]
                node_id = last["node_id"]
                kept = {t: _checkpoints(self.exp_dir / f"trial_{t}") for t in finished}
                pids = kill_node(self.cluster, self.workers[node_id])
                self.killed = {"node_id": node_id, "trial": trial, "reported_epoch": last["epoch"],
                               "checkpointed_epoch": progress[trial], "finished": kept, "pids": pids,
                               "statuses": statuses}
                return
            self.stop.wait(0.05)


# --------------------------------------------------------------------------- the test
def test_search_survives_a_killed_worker_node(ray_cluster, shards, tmp_path):
    import ray

    cluster, workers = ray_cluster
    head_id = cluster.head_node.node_id
    # Ray sees the simulated cluster: 3 nodes, 2 CPUs, all on loopback, and the driver on the head node.
    nodes = [n for n in ray.nodes() if n["Alive"]]
    assert {n["NodeID"] for n in nodes} == {head_id, *workers}
    assert {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
    assert ray.cluster_resources()["CPU"] == 2
    assert ray.get_runtime_context().get_node_id() == head_id

    exp = small_experiment()
    b = exp.budget("smoke")
    exp_dir = tmp_path / "store" / EXPERIMENT
    killer = NodeKiller(cluster, workers, exp_dir, timeout=KILL_TIMEOUT_S)

    killer.start()
    try:
        # Ray is initialised (connected to the cluster): run_experiment uses it and leaves it running.
        out = runner.run_experiment(exp, shards=shards, budget="smoke", storage=str(tmp_path / "store"),
                                    seed=42, cpus_per_trial=1, max_concurrent=2, max_failures=3, verbose=0)
    finally:
        killer.stop.set()
        killer.join(timeout=30)
    assert ray.is_initialized()  # not shut down by run_experiment: it did not start it
    assert killer.error is None, f"watcher failed: {killer.error!r}"
    k = killer.killed
    assert k is not None, f"no worker node was killed (no trial early enough in time): {killer.last_seen}"
    victim, (survivor,) = k["node_id"], set(workers) - {k["node_id"]}
    # The killed node's processes are gone, and the cluster marked it dead; the other worker and the head are alive.
    deadline = time.monotonic() + 30
    while (left := [pid for pid in k["pids"] if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes of the killed node still running: {left}"
    deadline = time.monotonic() + 60
    while victim in (alive := {n["NodeID"] for n in ray.nodes() if n["Alive"]}) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert victim not in alive and {head_id, survivor} <= alive

    # The experiment completed: every trial finished all its epochs, none with an error.
    trials = {t["trial_id"]: t for t in json.loads((exp_dir / "trials.json").read_text())}
    print(f"\nkilled node {victim[:8]} running trial {k['trial']} (reported epoch {k['reported_epoch']}, "
          f"checkpointed {k['checkpointed_epoch']}); finished before the kill: {sorted(k['finished'])}")
    for tid, t in sorted(trials.items()):
        print(f"trial {tid}: nodes {[n[:8] for n in t['node_ids']]}, epochs "
              f"{[(r['epoch'], r['node_id'][:8], r['resumed_from_epoch']) for r in _rows(exp_dir / f'trial_{tid}')]}")
    assert len(trials) == TRIALS == len(out["trials"])
    assert [t["trial_id"] for t in trials.values() if t["error"]] == []
    assert {t["epochs"] for t in trials.values()} == {EPOCHS}
    assert (exp_dir / "results.json").is_file() and (exp_dir / "best_model.pt").is_file()

    # Trials ran on both worker nodes (recorded per trial in trials.json), never on the head (0 CPUs);
    # both workers had started trials before the kill.
    assert all(t["node_ids"] and t["node_id"] == t["node_ids"][-1] for t in trials.values())
    assert {n for t in trials.values() for n in t["node_ids"]} == {victim, survivor}
    assert {t["node_ids"][0] for t in trials.values()} == {victim, survivor}
    assert k["finished"] and k["trial"] not in k["finished"]

    # The trial that was on the killed node moved to the survivor and resumed from its last checkpoint.
    moved = trials[k["trial"]]
    assert moved["node_ids"] == [victim, survivor], moved["node_ids"]
    rows = _rows(exp_dir / f"trial_{k['trial']}")
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1)), "an epoch was repeated or lost"
    before = [r for r in rows if r["node_id"] == victim]
    resumed = [r for r in rows if r["node_id"] == survivor]
    start = resumed[0]["resumed_from_epoch"]
    assert 1 <= k["reported_epoch"] <= start <= k["checkpointed_epoch"] + 1, (k, start)  # not from scratch
    assert [r["epoch"] for r in before] == list(range(1, start + 1))
    assert {r["resumed_from_epoch"] for r in before} == {0} and {r["resumed_from_epoch"] for r in resumed} == {start}
    # the training clock went on from the checkpoint's
    assert resumed[0]["train_seconds"] == pytest.approx(before[-1]["train_seconds"] + resumed[0]["epoch_seconds"])
    # and so did Adam: its step count covers every epoch, so the optimiser state was restored, not restarted
    ckpts = sorted((exp_dir / f"trial_{k['trial']}").glob("checkpoint_*/" + CHECKPOINT_FILE))
    last = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    steps_per_epoch = -(-out["results"]["search"]["train_rows"] // b.batch_size)
    assert last["epoch"] == EPOCHS
    assert {int(s["step"]) for s in last["optimizer"]["state"].values()} == {steps_per_epoch * EPOCHS}
    # The other trials never failed: one node each, every epoch reported once, never resumed.
    for tid, t in trials.items():
        if tid != k["trial"]:
            assert len(t["node_ids"]) == 1
            assert {r["resumed_from_epoch"] for r in _rows(exp_dir / f"trial_{tid}")} == {0}

    # No finished trial's checkpoint was lost or rewritten: every checkpoint of a trial finished before the kill
    # is still in storage, same size and modification time; every trial has its last epoch's checkpoint.
    for tid, kept in k["finished"].items():
        assert kept, f"finished trial {tid} had no checkpoint"
        assert _checkpoints(exp_dir / f"trial_{tid}") == kept, f"checkpoints of finished trial {tid} changed"
    for tid in trials:
        final = sorted((exp_dir / f"trial_{tid}").glob("checkpoint_*/" + CHECKPOINT_FILE))
        assert final and torch.load(final[-1], map_location="cpu", weights_only=False)["epoch"] == EPOCHS
