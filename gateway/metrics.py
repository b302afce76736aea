"""Prometheus metrics (prometheus_client, a private registry).

The rest of phigate calls a few methods on ``Metrics``; names carry no PHI
(no addresses, no subjects). With several worker processes the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` for the workers and serves the sum through
``Metrics.aggregated`` (prometheus_client's multiprocess mode).
"""
from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400)
OUTCOMES = ("delivered", "deferred", "bounced", "held", "shunted", "rejected", "refused")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue = Gauge("phigate_queue_messages", "Messages in the spool by area",
                           ["area"], registry=r, multiprocess_mode="livesum")
        self.outcomes = Counter("phigate_messages", "Messages and recipients by outcome",
                                ["outcome"], registry=r)
        self.submission = Histogram("phigate_submission_seconds",
                                    "From the end of DATA to the 250 reply", registry=r,
                                    buckets=LATENCY_BUCKETS)
        self.delivery = Histogram("phigate_delivery_seconds",
                                  "From acceptance to delivery, per recipient", registry=r,
                                  buckets=DELIVERY_BUCKETS)
        self.connections = Gauge("phigate_smtp_connections", "Open submission connections",
                                 registry=r, multiprocess_mode="livesum")
        self.auth_failures = Counter("phigate_auth_failures",
                                     "SMTP AUTH refused: wrong credentials (failed) or a "
                                     "locked login/address (locked)", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
        for outcome in ("failed", "locked"):
            self.auth_failures.labels(outcome)

    def observe_submission(self, seconds: float) -> None:
        self.submission.observe(seconds)

    def observe_delivery(self, seconds: float) -> None:
        self.delivery.observe(seconds)

    def count_outcome(self, outcome: str) -> None:
        self.outcomes.labels(outcome).inc()

    def count_auth_failure(self, outcome: str) -> None:
        self.auth_failures.labels(outcome).inc()

    def set_queue_sizes(self, **areas: int) -> None:
        for area, size in areas.items():
            self.queue.labels(area).set(size)

    def set_connections(self, count: int) -> None:
        self.connections.set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    @staticmethod
    def aggregated(directory: Path) -> AggregatedMetrics:
        return AggregatedMetrics(directory)


class AggregatedMetrics:
    """The sum over worker processes writing to ``directory``."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(directory))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def prepare_multiprocess_dir(directory: Path) -> None:
    """Empty the shared metrics directory before workers start."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in os.scandir(directory):
        if entry.name.endswith(".db"):
            os.unlink(entry.path)


def mark_worker_dead(directory: Path, pid: int) -> None:
    """A worker exited: drop its live gauges (queue size, connections) from
    the sum; its counters and histograms stay counted."""
    mark_process_dead(pid, str(directory))
