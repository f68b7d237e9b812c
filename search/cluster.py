"""Ray start-up for the search: a private local instance or a running cluster, and resource checks.

Without an address the search starts its own Ray instance with ``ray.init(address="local")``,
so it never attaches to a cluster that happens to run on the machine (``ray.init()`` without an
address would). With an address it joins that cluster and ships the five pipeline packages to
every node through ``runtime_env={"py_modules": [...]}``, so the nodes need only the
third-party dependencies installed.
"""

from __future__ import annotations

import importlib
import logging
import math
import signal
import socket
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import ray

from search import dashboard

logger = logging.getLogger(__name__)

STAGE_PACKAGES: tuple[str, ...] = ("data", "trainable", "search", "results", "ensemble")
"""The pipeline packages shipped to cluster nodes with ``runtime_env`` ``py_modules``."""

DEFAULT_OBJECT_STORE_MIB = 256
"""Default object-store size of a local Ray instance, in MiB.

The search passes only configs and metrics through the object store: trials read images from
disk (or the decoded cache) and write checkpoints to the storage path as files. Ray's own
default (30 % of RAM) reserves gigabytes of shared memory that a search never uses.
"""

_PY_MODULE_EXCLUDES = ["__pycache__", "*.pyc"]

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP connection to the head node given by --address."""


class ClusterConnectionError(ValueError):
    """No Ray cluster accepts connections at the address given with --address."""


class ResourceRequestError(ValueError):
    """A trial requests more CPUs or GPUs than any single alive node has."""


@dataclass(frozen=True)
class RayOptions:
    """How to start or join Ray.

    Attributes:
        address: None starts a private local instance; otherwise the address of a running
            cluster (``"auto"``, ``"HOST:6379"`` or ``"ray://HOST:10001"``).
        num_cpus: CPUs of the local instance (None: all of the machine's). Ignored with address.
        num_gpus: GPUs of the local instance (None: all detected). Ignored with address.
        object_store_memory_mib: object-store size of the local instance in MiB. Ignored with
            address.
        include_dashboard: start Ray's dashboard with the local instance.
        dashboard_host: interface the dashboard listens on.
        dashboard_port: dashboard port (None: Ray's default, 8265).
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: float | None = None
    object_store_memory_mib: int = DEFAULT_OBJECT_STORE_MIB
    include_dashboard: bool = True
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int | None = None


@dataclass(frozen=True)
class NodeResources:
    """CPUs and GPUs of one alive Ray node."""

    node_id: str
    address: str
    cpus: float
    gpus: float
    resources: dict[str, float]


def stage_modules() -> list[ModuleType]:
    """Import and return the five pipeline packages, for ``runtime_env`` ``py_modules``."""
    return [importlib.import_module(name) for name in STAGE_PACKAGES]


def start_ray(options: RayOptions) -> Any:
    """Start a private local Ray instance, or join the cluster at ``options.address``.

    A SIGTERM handler that the caller installed before this call stays in place: ``ray.init``
    replaces the process's SIGTERM handler (Ray 2.60), which would break a caller's graceful
    shutdown.

    Returns:
        The context that ``ray.init`` returns.
    """
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if options.address is None:
        context = ray.init(address="local", **_local_init_kwargs(options))
    else:
        _warn_ignored_local_options(options)
        check_cluster_reachable(options.address)
        context = ray.init(
            address=options.address,
            runtime_env={"py_modules": stage_modules(), "excludes": _PY_MODULE_EXCLUDES},
        )
    if callable(previous_sigterm) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous_sigterm)

    nodes = alive_nodes()
    logger.info(
        "Ray %s: %d node(s), %s CPUs, %s GPUs",
        "started locally" if options.address is None else f"joined at {options.address}",
        len(nodes),
        _format_amount(sum(node.cpus for node in nodes)),
        _format_amount(sum(node.gpus for node in nodes)),
    )
    if options.address is not None or options.include_dashboard:
        logger.info("%s", dashboard.describe_dashboard(context))
    return context


def check_cluster_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ClusterConnectionError unless a TCP connection to ``address`` ("HOST:PORT") opens.

    ``ray.init`` keeps retrying an address where no cluster listens, for minutes and without an
    error of its own (Ray 2.60), so a wrong ``--address`` is checked here first. "auto" and
    "ray://" client addresses are left to Ray.
    """
    if address == "auto" or "://" in address:
        return
    host, separator, port_text = address.rpartition(":")
    if not separator or not host or not port_text.isdigit():
        raise ClusterConnectionError(
            f"invalid --address {address!r}: expected HOST:PORT of the head node's GCS "
            "(such as 10.0.0.5:6379) or 'auto'"
        )
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ClusterConnectionError(
            f"no Ray cluster accepts connections at {address} ({error}); start one with "
            "`ray start --head` on the head node and pass the address it prints, or leave out "
            "--address to start a local Ray instance"
        ) from None


def _local_init_kwargs(options: RayOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "num_cpus": options.num_cpus,
        "num_gpus": options.num_gpus,
        "object_store_memory": options.object_store_memory_mib * 1024**2,
        "include_dashboard": options.include_dashboard,
    }
    if options.include_dashboard:
        kwargs.update(dashboard.dashboard_init_kwargs(options.dashboard_host, options.dashboard_port))
    return kwargs


def _warn_ignored_local_options(options: RayOptions) -> None:
    defaults = RayOptions()
    ignored = [
        name
        for name in ("num_cpus", "num_gpus", "object_store_memory_mib")
        if getattr(options, name) != getattr(defaults, name)
    ]
    if ignored:
        logger.warning(
            "joining the cluster at %s: %s apply only to a local instance and are ignored",
            options.address,
            ", ".join(ignored),
        )


def alive_nodes() -> list[NodeResources]:
    """Return the CPUs and GPUs of every alive node of the connected Ray cluster."""
    nodes = []
    for node in ray.nodes():
        if not node.get("Alive", False):
            continue
        resources = dict(node.get("Resources", {}))
        nodes.append(
            NodeResources(
                node_id=node["NodeID"],
                address=node.get("NodeManagerAddress", "?"),
                cpus=float(resources.get("CPU", 0.0)),
                gpus=float(resources.get("GPU", 0.0)),
                resources=resources,
            )
        )
    return nodes


def check_trial_fits(cpus_per_trial: float, gpus_per_trial: float, nodes: list[NodeResources]) -> None:
    """Raise unless at least one alive node has the CPUs and GPUs of one trial.

    Tune leaves a trial that fits on no node PENDING forever without an error, so the search
    checks the request before it starts.

    Args:
        cpus_per_trial: CPUs one trial requests (> 0, fractions allowed).
        gpus_per_trial: GPUs one trial requests (>= 0, fractions allowed).
        nodes: the alive nodes, from :func:`alive_nodes`.

    Raises:
        ResourceRequestError: no node has both; the message names the request and the largest
            node.
    """
    # NOTE: an autoscaling cluster could add a larger node later, but this check reads only
    # the nodes alive now and rejects such requests all the same.
    if any(node.cpus >= cpus_per_trial and node.gpus >= gpus_per_trial for node in nodes):
        return
    request = f"{_format_amount(cpus_per_trial)} CPUs and {_format_amount(gpus_per_trial)} GPUs"
    if not nodes:
        raise ResourceRequestError(f"a trial requests {request}, but the Ray cluster has no alive node")
    largest = max(nodes, key=lambda node: (node.gpus, node.cpus))
    max_cpu_node = max(nodes, key=lambda node: node.cpus)
    described = _describe_node(largest)
    if max_cpu_node is not largest and max_cpu_node.cpus > largest.cpus:
        described += f"; the node with the most CPUs has {_describe_node(max_cpu_node)}"
    raise ResourceRequestError(
        f"a trial requests {request}, more than any single alive node has: the largest node "
        f"has {described}. Lower --cpus-per-trial / --gpus-per-trial, or add a larger node"
    )


def max_trials_that_fit(
    cpus_per_trial: float, gpus_per_trial: float, nodes: list[NodeResources]
) -> int:
    """Return how many trials of this request the alive nodes can run at once (at least 1).

    A trial's resources come from one node, so each node is counted on its own.
    """
    total = 0
    for node in nodes:
        by_cpu = math.floor(node.cpus / cpus_per_trial + 1e-9) if cpus_per_trial > 0 else math.inf
        by_gpu = math.floor(node.gpus / gpus_per_trial + 1e-9) if gpus_per_trial > 0 else math.inf
        fitting = min(by_cpu, by_gpu)
        total += 0 if fitting == math.inf else int(fitting)
    return max(total, 1)


def _describe_node(node: NodeResources) -> str:
    return (
        f"{_format_amount(node.cpus)} CPUs and {_format_amount(node.gpus)} GPUs "
        f"(node {node.node_id[:12]} at {node.address})"
    )


def _format_amount(value: float) -> str:
    return f"{value:g}"
