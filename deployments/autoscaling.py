"""The Segmenter's autoscaling policy: replicas sized from the job backlog, in tiles.

Serve's default policy scales on the requests a deployment has ongoing. The Segmenter's are
bounded by design (the tracker runs a few jobs at a time, the Tiler keeps a few tiles per job in
flight), so a thousand queued jobs would leave it at one replica. Instead each Segmenter replica
reports the backlog the job tracker counts (`record_autoscaling_stats`: the tiles of every queued
job, estimated from its image size and the model's tiling, plus the tiles running jobs still
have to do), and this policy asks for

    replicas = ceil(backlog_tiles / tiles_per_replica)

within the deployment's `min_replicas`..`max_replicas`. `tiles_per_replica` is the backlog one
replica is meant to hold: its throughput (tiles/s) times how long a backlog may take to drain.
Serve applies `upscale_delay_s` and `downscale_delay_s` around it (and `upscaling_factor` /
`downscaling_factor` if set), as for its own policy. Also kept: Serve's ongoing-requests rule, so a
burst of synchronous `POST /segment` calls (which never enter the queue) still scales it.

Configured in `serve_config.yaml` (Segmenter `autoscaling_config.policy`). Serve pickles this
module by value into its controller, so it imports only the standard library.
"""

from __future__ import annotations

import math
from typing import Any

BACKLOG_METRIC = "backlog_tiles"


def replicas_for_backlog(backlog_tiles: float, tiles_per_replica: float) -> int:
    """Replicas that hold `backlog_tiles` at `tiles_per_replica` each (0 for no backlog)."""
    if tiles_per_replica <= 0:
        raise ValueError("tiles_per_replica must be positive.")
    return math.ceil(max(0.0, backlog_tiles) / tiles_per_replica)


def replicas_for_requests(ongoing_requests: float, target_ongoing_requests: float) -> int:
    """Serve's own rule: enough replicas for each to hold `target_ongoing_requests`."""
    return math.ceil(max(0.0, ongoing_requests) / target_ongoing_requests) if target_ongoing_requests > 0 else 0


def clamp(replicas: int, low: int, high: int) -> int:
    """`replicas` held between `low` and `high`."""
    return max(low, min(high, replicas))


class BacklogPolicy:
    """Serve custom autoscaling policy (a class: Serve builds it once with `policy_kwargs`)."""

    def __init__(self, tiles_per_replica: float = 512.0) -> None:
        if tiles_per_replica <= 0:
            raise ValueError("tiles_per_replica must be positive.")
        self.tiles_per_replica = float(tiles_per_replica)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        """`ctx` is Serve's `AutoscalingContext`. Every replica reports the same backlog (the
        tracker's), averaged by Serve over its look-back window; the largest report is used, so
        a replica that just started (and reports little history) does not hide it."""
        reports = (ctx.aggregated_metrics or {}).get(BACKLOG_METRIC, {})
        backlog = max(reports.values(), default=0.0)
        target = ctx.config.get_target_ongoing_requests() if ctx.config is not None else 0
        wanted = max(replicas_for_backlog(backlog, self.tiles_per_replica), replicas_for_requests(ctx.total_num_requests, target))
        replicas = clamp(wanted, ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas)
        return replicas, {BACKLOG_METRIC: backlog}
