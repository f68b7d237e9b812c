"""Resource checks against alive nodes, and the fail-fast path of a search that fits no node."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.cluster import (
    NodeResources,
    RayOptions,
    ResourceRequestError,
    check_trial_fits,
    max_trials_that_fit,
    stage_modules,
)
from search.run_search import SearchOptions, run_search


def _node(cpus: float, gpus: float, name: str = "n") -> NodeResources:
    return NodeResources(node_id=f"{name}" * 12, address="10.0.0.1", cpus=cpus, gpus=gpus, resources={})


@pytest.mark.parametrize(
    ("cpus", "gpus", "nodes"),
    [
        (1, 0, [_node(1, 0)]),
        (2, 1, [_node(4, 0), _node(2, 1)]),
        (0.5, 0.25, [_node(1, 1)]),
        (8, 0, [_node(2, 0), _node(8, 2)]),
    ],
)
def test_trial_that_fits_passes(cpus, gpus, nodes):
    check_trial_fits(cpus, gpus, nodes)


@pytest.mark.parametrize(
    ("cpus", "gpus", "nodes", "message"),
    [
        (4, 0, [_node(2, 0), _node(3, 0)], "requests 4 CPUs and 0 GPUs"),
        (1, 1, [_node(16, 0)], "the largest node has 16 CPUs and 0 GPUs"),
        # 3 CPUs exist in total and 1 GPU, but never on the same node.
        (3, 1, [_node(3, 0, "a"), _node(1, 1, "b")], "the node with the most CPUs has 3 CPUs"),
        (1, 2, [_node(8, 1), _node(8, 1)], "1 GPUs"),
        (1, 0, [], "no alive node"),
    ],
)
def test_trial_that_fits_no_node_is_rejected(cpus, gpus, nodes, message):
    with pytest.raises(ResourceRequestError) as caught:
        check_trial_fits(cpus, gpus, nodes)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("cpus", "gpus", "nodes", "expected"),
    [
        (1, 0, [_node(4, 0)], 4),
        (1, 0, [_node(2, 0), _node(2, 0)], 4),
        (3, 0, [_node(2, 0), _node(2, 0)], 1),  # fits nowhere: at least 1
        (1, 0.5, [_node(8, 1)], 2),
        (2, 1, [_node(8, 2), _node(1, 4)], 2),  # GPU-bound on the first node, CPU on the second
        (1.5, 0, [_node(4.5, 0)], 3),
    ],
)
def test_max_trials_that_fit_table(cpus, gpus, nodes, expected):
    assert max_trials_that_fit(cpus, gpus, nodes) == expected


def test_stage_modules_are_the_five_packages():
    names = [module.__name__ for module in stage_modules()]

    assert names == ["data", "trainable", "search", "results", "ensemble"]


def test_search_too_large_for_cluster_fails_fast(tmp_path, synthetic_root):
    """A real 2-CPU Ray instance: the search raises before it writes any file."""
    options = SearchOptions(
        num_samples=2,
        data_root=synthetic_root,
        name="too-large",
        n_folds=2,
        storage_path=tmp_path,
        cpus_per_trial=3,
        gpus_per_trial=0.5,
        verbose=0,
        ray=RayOptions(num_cpus=2, num_gpus=0, include_dashboard=False, object_store_memory_mib=200),
    )
    with pytest.raises(ResourceRequestError) as caught:
        run_search(options)

    message = str(caught.value)
    assert "a trial requests 3 CPUs and 0.5 GPUs, more than any single alive node has" in message
    assert "the largest node has 2 CPUs and 0 GPUs" in message
    assert not (Path(tmp_path) / "too-large").exists()


def _unused_local_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_address_fails_at_once():
    from search.cluster import ClusterConnectionError, check_cluster_reachable

    address = f"127.0.0.1:{_unused_local_port()}"
    with pytest.raises(ClusterConnectionError, match="no Ray cluster accepts connections at 127.0.0.1") as caught:
        check_cluster_reachable(address, timeout_s=2)
    assert "ray start --head" in str(caught.value)


@pytest.mark.parametrize("address", ["6379", "headnode", ":6379", "host:port"])
def test_malformed_address_is_rejected(address):
    from search.cluster import ClusterConnectionError, check_cluster_reachable

    with pytest.raises(ClusterConnectionError, match="expected HOST:PORT"):
        check_cluster_reachable(address)


def test_cli_with_unreachable_address_exits_2(tmp_path, synthetic_root, caplog):
    from search.run_search import main

    code = main(["--data-root", str(synthetic_root), "--n-folds", "2", "--name", "joined", "--storage-path",
                 str(tmp_path), "--address", f"127.0.0.1:{_unused_local_port()}"])

    assert code == 2
    assert "no Ray cluster accepts connections" in caplog.text
    assert not (tmp_path / "joined").exists()
