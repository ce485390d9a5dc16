"""Prometheus metrics of the ingress, rendered in the text exposition format at /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class IngressMetrics:
    """The Ingress's Prometheus registry: requests and latency counted here, the tracker's figures set at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lithoseg_http_requests", "HTTP requests by route and status.", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram("lithoseg_http_request_seconds", "HTTP request latency.", ["method", "route"], registry=self.registry)
        self.submitted = Counter("lithoseg_jobs_submitted", "Jobs accepted by POST /predict.", registry=self.registry)
        self.jobs = Gauge("lithoseg_jobs", "Jobs known to the tracker, by status.", ["status"], registry=self.registry)
        self.queue_length = Gauge("lithoseg_queue_length", "Jobs waiting in the queue.", registry=self.registry)
        self.in_flight = Gauge("lithoseg_jobs_in_flight", "Jobs being processed.", registry=self.registry)
        self.in_flight_limit = Gauge(
            "lithoseg_jobs_in_flight_limit",
            "Jobs the tracker may run at once (per Segmenter replica times replicas).",
            registry=self.registry,
        )
        self.segmenter_replicas = Gauge(
            "lithoseg_segmenter_replicas",
            "Segmenter replicas alive (heard from by the tracker; 1 without autoscaling).",
            registry=self.registry,
        )
        self.tiles_completed = Gauge(
            "lithoseg_tiles_completed",
            "Tiles segmented since the job tracker started (its rate is the service's throughput).",
            registry=self.registry,
        )
        self.waiting_for_store = Gauge(
            "lithoseg_jobs_waiting_for_store",
            "Jobs held back because the result store failed (unreachable, disk full); they run when it is back.",
            registry=self.registry,
        )
        self.backlog_tiles = Gauge(
            "lithoseg_backlog_tiles",
            "Tiles of queued jobs (estimated) and left of running jobs: what the Segmenter autoscales on.",
            registry=self.registry,
        )

    def render(self, tracker_stats: dict[str, Any] | None) -> bytes:
        if tracker_stats is not None:
            for status in ("queued", "started", "finished", "failed", "cancelled"):
                self.jobs.labels(status).set(tracker_stats["jobs"].get(status, 0))
            self.queue_length.set(tracker_stats["queued"])
            self.in_flight.set(tracker_stats["in_flight"])
            self.in_flight_limit.set(tracker_stats["in_flight_limit"])
            self.segmenter_replicas.set(tracker_stats["segmenter_replicas"])
            self.backlog_tiles.set(tracker_stats["backlog_tiles"])
            self.tiles_completed.set(tracker_stats["tiles_completed"])
            self.waiting_for_store.set(tracker_stats.get("waiting_for_store", 0))
        return generate_latest(self.registry)


# One per process, reached as `deployments.http.metrics.METRICS` (an attribute of this module)
# from both the Ingress's methods and its middleware. Not a global of deployments/ingress.py: Serve
# ships the Ingress class by value, with its own copy of that module's globals, while the
# middleware is found by reference, so each saw a different registry and /metrics counted no
# requests.
METRICS = IngressMetrics()
