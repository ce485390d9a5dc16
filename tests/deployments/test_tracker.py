"""The job tracker's own class in-process, with stand-in handles for the runner and the Segmenter:
the backlog it reports for autoscaling, the jobs it runs per live Segmenter replica, the shared
rate limit and the drift statistics of finished jobs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deployments.settings import DEFAULT_MODEL, Settings
from deployments.tracker import JobTracker
from pipelines.model import read_config
from pipelines.resolution import segmentation_plans

Tracker = JobTracker.__ray_actor_class__  # the class Ray wraps, without Ray


def model_info() -> dict[str, Any]:
    config = read_config(DEFAULT_MODEL)
    return {
        "key": str(DEFAULT_MODEL), "version": config.version, "tile_size": config.tile_size, "tile_overlap": config.tile_overlap,
        "output_stride": config.output_stride, "max_short_side": config.max_short_side, "scales": config.scales,
        "classes": config.classes,
    }  # fmt: skip


class Call:
    """What `handle.method.remote(...)` returns: awaitable, or async-iterable when streaming."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self):  # type: ignore[no-untyped-def]
        async def get() -> Any:
            return self.value

        return get().__await__()


class StandInSegmenter:
    def __init__(self) -> None:
        self.info = type("Method", (), {"remote": staticmethod(lambda: Call(model_info()))})()


class StandInRunner:
    """Runs each job as two tiles; a job waits at its first tile until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.run = type("Method", (), {"remote": self._run})()

    def options(self, **_: Any) -> StandInRunner:
        return self

    async def _run(self, job_id: str, options: dict[str, Any]):  # type: ignore[no-untyped-def]
        self.started.append(job_id)
        yield {"progress": [0, 2]}
        await self.release.wait()
        yield {"progress": [2, 2]}
        yield {
            "result": {
                "rock_fraction": 0.5,
                "coverage": {"background": 0.5, "sandstone": 0.5},
                "detected_classes": {"sandstone": [1, 2, 3]},
                "mean_confidence": 0.8,
                "core_score": 0.9,
                "rejected": False,
            }
        }


def new_tracker(tmp_path, **settings: Any) -> tuple[Any, StandInRunner]:
    runner = StandInRunner()
    tracker = Tracker(Settings(store_url=(tmp_path / "store").as_uri(), **settings), runner, StandInSegmenter())
    return tracker, runner


async def submit(tracker: Any, n: int, size: tuple[int, int] = (1200, 1600)) -> list[str]:
    ids = []
    for i in range(n):
        job, _ = await tracker.submit(f"00000000-0000-4000-8000-{i:012d}", "owner", 0.5, None, None, {"height": size[0], "width": size[1]})
        ids.append(job["job_id"])
    return ids


async def stop(tracker: Any) -> None:
    """Cancel the tracker's tasks before the event loop closes."""
    tasks = [t for t in (tracker._background, tracker._model_watch, *tracker.running.values()) if t is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Lets the tracker's tasks run (its store writes go through threads) until `condition()`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the tracker did not get there"
        await asyncio.sleep(0.005)


def test_backlog_counts_queued_jobs_by_their_tile_plan_and_running_jobs_by_tiles_left(tmp_path):
    async def scenario() -> None:
        tracker, runner = new_tracker(tmp_path, jobs_in_flight_per_replica=1)
        tracker.model = model_info()
        await submit(tracker, 3)
        await until(lambda: runner.started and tracker.records[runner.started[0]].total_tiles == 2)
        assert len(tracker.running) == 1 and len(tracker.queue) == 2
        _, plans = segmentation_plans(1200, 1600, model_info())
        per_job = sum(len(plan) for plan in plans)
        assert per_job > 2
        assert tracker.backlog_tiles() == 2 * per_job + 2  # the running job reported 0 of 2 tiles done
        assert tracker.stats()["backlog_tiles"] == tracker.backlog_tiles()
        runner.release.set()
        await until(lambda: not tracker.queue and not tracker.running)
        assert tracker.backlog_tiles() == 0 and tracker.tiles_completed == 6
        await stop(tracker)

    asyncio.run(scenario())


def test_scale_search_off_counts_only_the_working_size(tmp_path):
    async def scenario() -> None:
        tracker, runner = new_tracker(tmp_path, jobs_in_flight_per_replica=1, scale_search=False)
        tracker.model = tracker.settings.resolve_model(model_info())  # as _watch_model reads it
        await submit(tracker, 2, size=(1200, 1600))
        await until(lambda: runner.started and tracker.records[runner.started[0]].total_tiles == 2)
        _, plans = segmentation_plans(1200, 1600, {**model_info(), "scales": None})
        assert tracker.backlog_tiles() == len(plans[0]) + 2
        await stop(tracker)

    asyncio.run(scenario())


def test_jobs_in_flight_grow_with_the_segmenter_replicas_heard_from(tmp_path):
    async def scenario() -> None:
        tracker, runner = new_tracker(tmp_path, jobs_in_flight_per_replica=2)
        ids = await submit(tracker, 7)
        await until(lambda: len(runner.started) == 2)
        assert tracker.live_replicas() == 1 and len(tracker.running) == 2
        for replica in ("a", "b", "c"):
            report = await tracker.heartbeat(replica)
            assert report["backlog_tiles"] >= 0
        await until(lambda: len(runner.started) == 6)
        assert tracker.live_replicas() == 3 and tracker.in_flight_limit() == 6 and len(tracker.running) == 6
        assert sorted(tracker.running) == ids[:6]  # dispatched in submission order
        await tracker.heartbeat("a")  # the same replica again counts once
        assert tracker.live_replicas() == 3
        tracker.replicas_seen["b"] = tracker.replicas_seen["c"] = -1e9  # silent for long: gone
        assert tracker.live_replicas() == 1 and tracker.in_flight_limit() == 2
        await stop(tracker)

    asyncio.run(scenario())


def test_the_rate_limit_is_one_for_every_caller(tmp_path):
    async def scenario() -> None:
        tracker, _ = new_tracker(tmp_path, rate_limit_per_minute=2)
        assert await tracker.admit("k") is None and await tracker.admit("k") is None
        wait = await tracker.admit("k")  # a third request, from whichever Ingress replica: refused
        assert wait is not None and wait >= 1
        assert await tracker.admit("other") is None
        await stop(tracker)

    asyncio.run(scenario())


def test_finished_jobs_feed_the_drift_statistics(tmp_path):
    async def scenario() -> None:
        tracker, runner = new_tracker(tmp_path)
        tracker.model = model_info()
        runner.release.set()
        await submit(tracker, 3)
        await until(lambda: tracker.drift_monitor.seen == 3)
        report = await tracker.drift()
        assert report["n"] == 3
        assert report["statistics"]["confidence"]["current_mean"] == pytest.approx(0.8)
        assert report["statistics"]["coverage:sandstone"]["current_mean"] == pytest.approx(1.0)
        assert report["statistics"]["coverage:limestone"]["current_mean"] == 0.0  # a known class not seen
        await stop(tracker)

    asyncio.run(scenario())


# -- a failing result store, attempts ----------------------------------------------------------


class FlakyRunner(StandInRunner):
    """Fails its first `store_failures` runs with the store's error, then its next `crashes` with a
    crash (a replica dying), then runs as StandInRunner with `release` already set; every run
    writes a PNG into its attempt's folder, as the Compositor does."""

    def __init__(self, store: Any, store_failures: int = 0, crashes: int = 0) -> None:
        super().__init__()
        self.store, self.store_failures, self.crashes = store, store_failures, crashes
        self.release.set()
        self.attempts: list[int] = []

    async def _run(self, job_id: str, options: dict[str, Any]):  # type: ignore[no-untyped-def]
        from deployments.jobs import mask_key
        from storage import StoreUnavailable

        self.attempts.append(options["attempt"])
        self.store.put(mask_key(job_id, options["attempt"]), f"attempt {options['attempt']}".encode())
        if self.store_failures:
            self.store_failures -= 1
            raise StoreUnavailable("Cannot write jobs/x/mask.png: No space left on device.")
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("the replica died")
        async for event in super()._run(job_id, options):
            yield event


def flaky_tracker(tmp_path, store_failures: int = 0, crashes: int = 0, **settings: Any) -> tuple[Any, FlakyRunner]:
    tracker, _ = new_tracker(tmp_path, **settings)
    runner = FlakyRunner(tracker.store, store_failures, crashes)
    tracker.runner = runner
    return tracker, runner


def test_a_failing_store_spends_no_attempt_and_pauses_dispatching_until_it_is_back(tmp_path, monkeypatch):
    monkeypatch.setattr("deployments.tracker.STORE_BACKOFF_S", (0.05, 0.2))

    async def scenario() -> None:
        tracker, runner = flaky_tracker(tmp_path, store_failures=5)
        tracker.store_backoff = 0.05
        (job_id,) = await submit(tracker, 1)
        await until(lambda: tracker.records[job_id].status == "finished")
        record = tracker.records[job_id]
        assert runner.attempts == [1, 1, 1, 1, 1, 1]  # six runs, all attempt 1: the store's failures spent nothing
        assert record.attempts == 1 and record.result_attempt == 1 and record.error is None
        assert tracker.store_backoff == 0.05  # reset once the store worked again
        await stop(tracker)

    asyncio.run(scenario())


def test_a_store_that_stays_down_fails_the_job_with_the_stores_reason(tmp_path, monkeypatch):
    monkeypatch.setattr("deployments.tracker.STORE_BACKOFF_S", (0.02, 0.05))

    async def scenario() -> None:
        tracker, _ = flaky_tracker(tmp_path, store_failures=10_000, store_outage_s=0.3)
        tracker.store_backoff = 0.02
        (job_id,) = await submit(tracker, 1)
        await until(lambda: tracker.records[job_id].status == "failed" and not tracker.running)
        error = tracker.records[job_id].error
        assert error.startswith("The result store was unavailable for over 0 s") and "No space left on device" in error
        assert not tracker.queue and not tracker.running
        await stop(tracker)

    asyncio.run(scenario())


def test_each_attempt_writes_its_own_folder_and_only_the_committed_one_is_kept(tmp_path):
    from deployments.jobs import JOBS_PREFIX, mask_key

    async def scenario() -> None:
        tracker, runner = flaky_tracker(tmp_path, crashes=2)
        (job_id,) = await submit(tracker, 1)
        await until(lambda: tracker.records[job_id].status == "finished")
        assert runner.attempts == [1, 2, 3]
        public = tracker.records[job_id].public()
        assert public["attempt"] == 3
        await until(lambda: tracker.store.get(mask_key(job_id, 3)) == b"attempt 3")
        await until(
            lambda: list(tracker.store.list(JOBS_PREFIX))
            == [f"{JOBS_PREFIX}{job_id}/attempt-3/mask.png", f"{JOBS_PREFIX}{job_id}/record.json"]
        )
        await stop(tracker)

    asyncio.run(scenario())


def test_an_ended_job_whose_cleanup_was_cut_short_is_cleaned_by_the_housekeeping(tmp_path):
    from deployments.jobs import record_key, upload_key

    async def scenario() -> None:
        tracker, runner = new_tracker(tmp_path)
        runner.release.set()
        (job_id,) = await submit(tracker, 1)
        await until(lambda: tracker.records[job_id].status == "finished" and tracker.records[job_id].cleaned)
        # as if the tracker had died between recording the end and deleting the upload
        tracker.store.put(upload_key(job_id), b"left behind")
        tracker.records[job_id].cleaned = False
        await tracker._persist(tracker.records[job_id])
        reloaded = Tracker(tracker.settings, runner, StandInSegmenter())
        assert reloaded.records[job_id].cleaned is False
        await reloaded._clean_pending()
        assert list(reloaded.store.list(upload_key(job_id))) == []
        assert tracker.store.get_json(record_key(job_id))["cleaned"] is True
        await stop(tracker)

    asyncio.run(scenario())
