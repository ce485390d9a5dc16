"""Rolling statistics of what the service sees, and an alarm when they move away from a reference.

Each finished job adds one observation: its core score (the content gate's), its mean
confidence, its rock fraction and the coverage of each class. The first `window` observations
after start (or after `reset`) are the reference; the most recent `window` are the current window.
A statistic is in alarm when the current mean moves from the reference mean by more than
`threshold` standard errors of the difference (Welch's z, with a floor on the spread so that a
constant reference does not make every change an alarm), once both windows hold at least
`min_count` observations. Framework-free: the job tracker holds one and feeds it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

MIN_SPREAD = 0.02  # a statistic's standard deviation is taken as at least this (values are 0-1)


@dataclass
class RunningWindow:
    """The last `size` observations of one statistic, with their mean and standard error."""

    values: deque[float]

    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else math.nan

    def std(self) -> float:
        n = len(self.values)
        if n < 2:
            return math.nan
        mean = self.mean()
        return math.sqrt(sum((v - mean) ** 2 for v in self.values) / (n - 1))


def shift_z(reference: Iterable[float], current: Iterable[float]) -> float:
    """Welch's z of the difference of two means, spreads floored at MIN_SPREAD."""
    ref, cur = list(reference), list(current)
    if not ref or not cur:
        return math.nan
    ref_window, cur_window = RunningWindow(deque(ref)), RunningWindow(deque(cur))
    ref_std = max(ref_window.std() if len(ref) > 1 else 0.0, MIN_SPREAD)
    cur_std = max(cur_window.std() if len(cur) > 1 else 0.0, MIN_SPREAD)
    error = math.sqrt(ref_std**2 / len(ref) + cur_std**2 / len(cur))
    return (cur_window.mean() - ref_window.mean()) / error


def observation(result: dict[str, Any]) -> dict[str, float]:
    """The statistics of one finished job's result (a rejected picture counts only by its score)."""
    stats: dict[str, float] = {}
    if result.get("core_score") is not None:
        stats["core_score"] = float(result["core_score"])
    if result.get("rejected"):
        return stats
    if result.get("mean_confidence") is not None:
        stats["confidence"] = float(result["mean_confidence"])
    if result.get("rock_fraction") is not None:
        stats["rock_fraction"] = float(result["rock_fraction"])
    rock = float(result.get("rock_fraction") or 0.0)
    for name, share in (result.get("coverage") or {}).items():
        if name in (result.get("detected_classes") or {}) and rock > 0:
            stats[f"coverage:{name}"] = float(share) / rock  # share of the rock, not of the picture
    return stats


@dataclass
class DriftMonitor:
    """Recent results against a reference window, per statistic; an alarm when one moves too far."""

    window: int = 200
    threshold: float = 4.0
    min_count: int = 20
    reference: dict[str, list[float]] = field(default_factory=dict)
    current: dict[str, deque[float]] = field(default_factory=dict)
    seen: int = 0
    alarms_total: int = 0
    _in_alarm: set[str] = field(default_factory=set)

    def add(self, stats: dict[str, float], class_names: Iterable[str] = ()) -> None:
        """One job's statistics. Classes in `class_names` absent from `stats` count as 0 coverage."""
        values = dict(stats)
        if "rock_fraction" in values:  # a job with rock: every known class has a share, maybe 0
            for name in class_names:
                values.setdefault(f"coverage:{name}", 0.0)
        in_reference = self.seen < self.window
        self.seen += 1
        for key, value in values.items():
            if in_reference:
                self.reference.setdefault(key, []).append(value)
            self.current.setdefault(key, deque(maxlen=self.window)).append(value)
        alarms = set(self._alarms())
        self.alarms_total += len(alarms - self._in_alarm)
        self._in_alarm = alarms

    def reset(self) -> None:
        """Start a new reference window from the next job (after a model rollout, say)."""
        self.reference, self.current, self.seen, self._in_alarm = {}, {}, 0, set()

    def _z(self, key: str) -> float:
        reference, current = self.reference.get(key, []), self.current.get(key, deque())
        if len(reference) < self.min_count or len(current) < self.min_count or self.seen <= self.window:
            return math.nan  # no current window distinct from the reference yet
        return shift_z(reference, current)

    def _alarms(self) -> list[str]:
        return [key for key in self.current if abs(self._z(key)) > self.threshold]

    def report(self) -> dict[str, Any]:
        statistics = {}
        for key in sorted(self.current):
            reference, current = self.reference.get(key, []), self.current[key]
            z = self._z(key)
            statistics[key] = {
                "reference_mean": _round(RunningWindow(deque(reference)).mean()),
                "reference_n": len(reference),
                "current_mean": _round(RunningWindow(current).mean()),
                "current_std": _round(RunningWindow(current).std()),
                "current_n": len(current),
                "z": _round(z),
                "alarm": bool(abs(z) > self.threshold) if not math.isnan(z) else False,
            }
        alarms = self._alarms()
        return {
            "n": self.seen,
            "window": self.window,
            "threshold_z": self.threshold,
            "reference_complete": self.seen >= self.window,
            "alarm": bool(alarms),
            "alarms": alarms,
            "alarms_total": self.alarms_total,
            "statistics": statistics,
        }


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
