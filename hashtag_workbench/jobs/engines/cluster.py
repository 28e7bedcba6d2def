"""Joining or starting Ray for one job. Imports Ray only when a job asks for it."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from hashtag_workbench.core.errors import InputError

ENV_ADDRESS = "RAY_ADDRESS"
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the folder that holds the hashtag_workbench package


class ClusterError(InputError):
    """Ray could not be joined, or the cluster cannot run what the job asks for."""


def worker_env() -> dict:
    """The runtime env every worker gets: this checkout importable (it sits at the same path on
    every node, see README "Scaling out"), nothing else from the driver's environment."""
    path = os.environ.get("PYTHONPATH")
    return {"env_vars": {"PYTHONPATH": str(PROJECT_ROOT) + (os.pathsep + path if path else "")}}


def init_options(*, address: str | None, cpus: int) -> dict:
    """ray.init's arguments: join `address` if given, else a private local Ray with `cpus` CPUs."""
    common = {"include_dashboard": False, "logging_level": logging.WARNING, "runtime_env": worker_env()}
    if address:
        return {"address": address, **common}
    return {"num_cpus": cpus, **common}


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once, in one line, when nothing listens at a cluster address (ray.init would wait for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address must look like HOST:PORT (as `ray start --head` prints), got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                           "`ray start --head`, or leave out --address and $RAY_ADDRESS to use a local Ray") from None


@contextlib.contextmanager
def ray_cluster(*, address: str | None = None, cpus: int = 1) -> Iterator[dict]:
    """Ray for the length of one job.

    Joins `address` (or $RAY_ADDRESS); with neither, starts a local Ray with `cpus`
    CPUs and stops it afterwards. When this process is connected already (a test
    session, a notebook), that connection is used and left open. Yields a description:
    address, cpus (the cluster's), node_cpus (each live node's), started (whether this job started Ray).
    """
    import ray

    if ray.is_initialized():
        yield {"address": "already connected", "cpus": int(ray.cluster_resources().get("CPU", 0)),
               "node_cpus": _node_cpus(), "started": False}
        return
    address = address or os.environ.get(ENV_ADDRESS) or None
    if address:
        check_reachable(address)
    try:
        ctx = ray.init(**init_options(address=address, cpus=cpus))
    except ConnectionError as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}. Start it with `ray start --head` "
                           "or leave out --address and $RAY_ADDRESS to use a local Ray") from None
    try:
        yield {"address": address or ctx.address_info.get("address", "local"),
               "cpus": int(ray.cluster_resources().get("CPU", 0)), "node_cpus": _node_cpus(),
               "started": address is None}
    finally:
        ray.shutdown()


def _node_cpus() -> list[int]:
    """The CPUs of each live node (a worker's CPUs must all come from one node)."""
    import ray
    return [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]


def require_cpus(info: dict, needed: int, what: str) -> None:
    """Refuse plainly when the cluster can never schedule `needed` CPUs at once."""
    if info["cpus"] < needed:
        raise ClusterError(f"{what} needs {needed} CPU(s) but the Ray cluster ({info['address']}) has "
                           f"{info['cpus']}; use fewer --workers or --threads, or add nodes")
