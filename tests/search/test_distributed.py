"""A search on a two-node local Ray cluster runs trials on both nodes."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import ray
from ray import tune
from ray.cluster_utils import Cluster

from search import experiment_files as files
from search.run_search import run_search


class RecordRaylet(tune.Callback):
    """Record, per trial, the raylet that started its worker: each node runs its own raylet.

    The nodes of a local cluster share the host name and IP address, so Tune's ``hostname`` and
    ``node_ip`` cannot tell them apart. A worker's parent process is its node's raylet.
    """

    def __init__(self) -> None:
        self.raylet_of_trial: dict[str, int] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if trial.trial_id not in self.raylet_of_trial:
            self.raylet_of_trial[trial.trial_id] = psutil.Process(int(result["pid"])).ppid()


@pytest.fixture
def two_node_cluster():
    """A head node and a worker node with 1 CPU each and a custom resource naming the node."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"node_a": 1},
            "object_store_memory": 100 * 1024**2,
            "include_dashboard": False,
        },
    )
    try:
        cluster.add_node(num_cpus=1, resources={"node_b": 1}, object_store_memory=100 * 1024**2)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_search_uses_both_nodes(two_node_cluster, make_options):
    raylets = {
        node.all_processes["raylet"][0].process.pid: node.node_id
        for node in two_node_cluster.list_all_nodes()
    }
    recorder = RecordRaylet()
    options = make_options(
        "two-nodes", address=two_node_cluster.address, num_cpus=None, scheduler="fifo",
        callbacks=[recorder],
    )

    experiment_dir = run_search(options)

    summary = files.read_summary(experiment_dir)
    assert summary["status_counts"] == {"TERMINATED": 2, "ERROR": 0, "UNFINISHED": 0}
    assert summary["max_concurrent"] == 2  # one trial fits on each 1-CPU node
    assert len(recorder.raylet_of_trial) == 2
    nodes_used = {raylets[raylet] for raylet in recorder.raylet_of_trial.values()}
    assert nodes_used == set(raylets.values())
    assert Path(files.read_options(experiment_dir)["storage_path"]).is_absolute()
