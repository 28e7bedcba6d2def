"""The thread budget of a Ray features job: how many workers, and how many CPU threads each.

A worker asks Ray for exactly the CPUs it runs on (`num_cpus` = its inference threads), so
Ray's accounting is the truth: on one machine workers x threads never exceeds the cores given
to Ray, and on a cluster each worker must fit on one node. No Ray here: the rule is plain
arithmetic over the nodes' CPU counts, tested on its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from hashtag_workbench.core.errors import InputError
from hashtag_workbench.jobs.engines.cluster import ClusterError


@dataclass(frozen=True)
class ThreadBudget:
    workers: int            # model workers (Ray actors), each loading the model once
    threads: int            # inference threads of each worker = the CPUs it asks Ray for
    cluster_cpus: int       # the CPUs Ray has, all nodes together
    node_cpus: tuple        # each node's CPUs (a worker runs on one node)
    chosen_by: str          # "asked" (--workers/--threads as given) or why they were changed

    def as_config(self) -> dict:
        return {**asdict(self), "node_cpus": list(self.node_cpus)}

    def line(self) -> str:
        return (f"{self.workers} worker(s) x {self.threads} thread(s) on {self.cluster_cpus} Ray CPU(s) "
                f"({len(self.node_cpus)} node(s)); {self.chosen_by}")


def fits(node_cpus, workers: int, threads: int) -> bool:
    """Whether `workers` actors of `threads` CPUs each can all run at once on these nodes."""
    return sum(int(c) // threads for c in node_cpus) >= workers


def widest(node_cpus, workers: int) -> int:
    """The most threads per worker with which `workers` workers still all fit (0: not even 1 each)."""
    return max((t for t in range(1, int(max(node_cpus, default=0)) + 1) if fits(node_cpus, workers, t)), default=0)


def plan_threads(workers: int, threads: int | None, node_cpus, *, own_cluster: bool) -> ThreadBudget:
    """Workers and threads per worker for a cluster whose nodes have `node_cpus` CPUs.

    `threads` None: the cores are split evenly (the most threads with which every worker fits).
    Asked-for numbers that do not fit are reduced on a Ray this job started on this machine
    (said in `chosen_by`); on a cluster someone else runs, they are refused in one line.
    """
    node_cpus = tuple(int(c) for c in node_cpus if int(c) > 0)
    total = sum(node_cpus)
    if workers < 1 or (threads is not None and threads < 1):
        raise InputError(f"--workers and --threads must be at least 1, got {workers} and {threads}")
    if threads is None and widest(node_cpus, workers):
        t = widest(node_cpus, workers)
        return ThreadBudget(workers, t, total, node_cpus, f"{t} thread(s) each: the CPUs split between the workers")
    if threads is not None and fits(node_cpus, workers, threads):
        return ThreadBudget(workers, threads, total, node_cpus, "as asked")
    asked = f"{workers} worker(s) x {threads or 1} thread(s)"
    if not own_cluster:
        raise ClusterError(f"{asked} do not fit the Ray cluster's CPUs (nodes: "
                           f"{', '.join(map(str, node_cpus)) or 'none'}); use fewer --workers or --threads, "
                           "or add nodes")
    w = min(workers, total) or 1
    t = widest(node_cpus, w) or 1
    return ThreadBudget(w, t, total, node_cpus, f"{asked} asked; reduced to fit the {total} core(s) given to Ray")
