"""The environment Ray's own processes run with: one place, used by `make serve` (and the tests)
through `deployments.local.start_ray` and rendered into the RayService by
`scripts/render_rayservice.py`.

Every entry is a Ray setting read when Ray starts its processes; an entry already present in the
environment wins, so an operator can override any of them.
"""

from __future__ import annotations

import os

# Everywhere.
RAY_ENVIRONMENT = {
    # Ray starts worker processes at nice 15: on a shared machine every other process (a training
    # run, a benchmark's client) would take the replicas' CPU. The service sets its own priorities
    # instead: the Segmenter lowers its own (SegmenterConfig.niceness) so that the HTTP path stays
    # responsive while the model is saturated.
    "RAY_worker_niceness": "0",
    # Serve's controller reconciles every 0.1 s by default; 0.5 s still rolls out and autoscales
    # promptly and takes a third of the controller's idle CPU (measured: docs/benchmarks.md).
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    # Replicas export Serve's request metrics every 100 ms by default; Prometheus scrapes every 15 s.
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "5000",
    # No idle worker processes started in advance: every process here is a replica or the tracker,
    # and an idle Python worker costs about 80 MB and a steady trickle of CPU.
    "RAY_enable_worker_prestart": "0",
    "RAY_prestart_worker_first_driver": "0",
}

# On one machine (`make serve`) only: nobody scrapes Ray's internal metrics there (the service's
# own Prometheus text is at /metrics), so Ray does not record them. A cluster keeps them.
LOCAL_RAY_ENVIRONMENT = {
    **RAY_ENVIRONMENT,
    "RAY_enable_metrics_collection": "0",
}


def apply(environment: dict[str, str]) -> None:
    """Set each variable unless the environment already has it (set before `ray.init`)."""
    for name, value in environment.items():
        os.environ.setdefault(name, value)
