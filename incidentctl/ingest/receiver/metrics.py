"""Prometheus metrics of one receiver, in a registry of its own (so tests can run many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from incidentctl import __version__

CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # the `_created` series double the output and no dashboard reads them


class ReceiverMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("incidentctl_http_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "code"], registry=r)
        self.latency = Histogram(
            "incidentctl_http_request_duration_seconds", "Time from request start to response, by endpoint.",
            ["endpoint"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.bodies_stored = Counter("incidentctl_webhook_bodies_stored", "Webhook bodies committed to the archive.",
                                     ["source"], registry=r)
        self.bytes_stored = Counter("incidentctl_webhook_bytes_stored", "Bytes of webhook bodies committed.",
                                    registry=r)
        self.rejected = Counter("incidentctl_webhook_rejected", "Webhooks not stored, by reason.",
                                ["reason"], registry=r)
        self.replays = Counter("incidentctl_webhook_replays", "Signed webhooks already stored, answered 200 "
                               "and not stored again.", registry=r)
        self.actions_stored = Counter("incidentctl_actions_stored", "People's actions committed to the inbox, by "
                                      "door (slack, api).", ["door"], registry=r)
        self.database_errors = Counter("incidentctl_database_errors", "Failed commits and health checks.",
                                       registry=r)
        self.conflicts_retried = Counter(
            "incidentctl_database_conflicts_retried", "Group commits rolled back by a conflict and written again, "
            "by MySQL error code (1213 deadlock or Galera certification failure, 1205 lock wait timeout).",
            ["code"], registry=r)
        self.commit_answers_lost = Counter(
            "incidentctl_database_commit_answers_lost", "Group commits whose answer the connection lost, by what "
            "reading a row back found (committed, rolled_back, unknown: answered 503 and may be stored).",
            ["outcome"], registry=r)
        self.commit_batch = Histogram("incidentctl_commit_batch_size", "Rows per group commit.", registry=r,
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.queue_depth = Gauge("incidentctl_write_queue_depth", "Rows waiting for the writer.", registry=r)
        info = Gauge("incidentctl_build_info", "Version of the running receiver.", ["version"], registry=r)
        info.labels(__version__).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
