"""JobTracker: the detached, named actor that owns job records and the FIFO queue.

Every change to a record is written through to the ResultStore before the caller hears of it,
so the actor's memory is only a cache: when Ray restarts the actor (it is created with unlimited
restarts) `__init__` reloads every record; queued jobs keep their places and jobs that were
running go back to the head of the queue, in submission order. No accepted job is lost.

Jobs are dispatched to the JobRunner deployment in submission order, at most
`jobs_in_flight_per_replica` per live Segmenter replica at a time; their tiles interleave in the
Segmenter's batches. The tracker also counts the backlog in tiles (queued jobs estimated from
their image size and the model's tiling, running jobs by the tiles they have left), which the
Segmenter replicas report to Serve's autoscaler with their heartbeat (`heartbeat`); it holds the
per-key rate limit shared by every Ingress replica (`admit`) and the drift statistics of finished
jobs (`drift`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import ray
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from deployments.jobs import JOBS_PREFIX, TERMINAL, JobRecord, QueueFullError, attempt_prefix, job_prefix, record_key
from deployments.rate_limit import RateLimiter
from deployments.settings import Settings
from pipelines.drift import DriftMonitor, observation
from pipelines.resolution import segmentation_plans
from storage import ObjectNotFound, StoreError, open_store

logger = logging.getLogger("ray.serve")

MAX_ATTEMPTS = 3  # a job whose runner call itself fails (a replica died) is retried this often
TRACKER_NAMESPACE = "lithoseg"
REPLICA_SILENCE_S = 15.0  # a Segmenter replica not heard from for this long is no longer counted
MODEL_REFRESH_S = 5.0  # how often the model's tiling (for the backlog estimate) is read again
STORE_BACKOFF_S = (1.0, 30.0)  # while the result store fails: first and longest pause before dispatching again
# Placed on the head node: the head lives as long as the cluster, so the tracker is never on a
# worker node the autoscaler removes (its state is in the store either way).
HEAD_NODE = {"node:__internal_head__": 0.001}


@ray.remote(num_cpus=0, resources=HEAD_NODE, max_restarts=-1, max_task_retries=-1, max_concurrency=1000)  # type: ignore[call-overload]  # Ray's stub lacks actor options
class JobTracker:
    """The job records and the FIFO queue, written through to the store; dispatches jobs to the runner."""

    def __init__(self, settings: Settings, runner: DeploymentHandle, segmenter: DeploymentHandle) -> None:
        self.settings = settings
        self.runner = runner
        self.segmenter = segmenter
        self.model: dict[str, Any] | None = None  # the Segmenter's info(), for tile estimates
        self.tile_estimates: dict[str, int] = {}  # queued job -> tiles, for the model in `self.model`
        self.replicas_seen: dict[str, float] = {}  # Segmenter replica -> last heartbeat (monotonic)
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.drift_monitor = DriftMonitor(window=settings.drift_window, threshold=settings.drift_threshold)
        self._model_watch: asyncio.Task[None] | None = None
        self.tiles_completed = 0  # since this actor started: tiles per second is its rate
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)
        self.records: dict[str, JobRecord] = {}
        self.queue: deque[str] = deque()
        self.running: dict[str, asyncio.Task[None]] = {}
        self.idempotent: dict[tuple[str, str], str] = {}
        self.done_events: dict[str, asyncio.Event] = {}  # jobs someone is waiting on (long poll)
        self.next_seq = 0
        self._background: asyncio.Task[None] | None = None
        # the result store failing: no job is dispatched before `store_retry_at` (monotonic); the
        # pause doubles while it keeps failing; each job waiting on it since when (wall clock)
        self.store_retry_at = 0.0
        self.store_backoff = STORE_BACKOFF_S[0]
        self.store_waiting_since: dict[str, float] = {}
        self._reload()

    # -- state ---------------------------------------------------------------------------------

    def _reload(self) -> None:
        interrupted = []
        for key in self.store.list(JOBS_PREFIX):
            if not key.endswith("/record.json"):
                continue
            try:
                record = JobRecord.from_dict(self.store.get_json(key))
            except (StoreError, ValueError, TypeError):
                logger.exception("Skipping unreadable job record %s", key)
                continue
            self.records[record.job_id] = record
            if record.idempotency_key:
                self.idempotent[(record.owner, record.idempotency_key)] = record.job_id
            if record.status == "started":
                interrupted.append(record)
        for record in interrupted:
            record.status = "queued"
        ordered = sorted((r for r in self.records.values() if r.status == "queued"), key=lambda r: r.seq)
        self.queue = deque(r.job_id for r in ordered)
        self.next_seq = max((r.seq for r in self.records.values()), default=-1) + 1
        if self.records:
            logger.info("JobTracker reloaded %d jobs; %d queued (%d were running)", len(self.records), len(self.queue), len(interrupted))

    async def _persist(self, record: JobRecord) -> None:
        await asyncio.to_thread(self.store.put_json, record_key(record.job_id), record.to_dict())

    def _ensure_started(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._housekeeping())
            self._dispatch()
        if self._model_watch is None or self._model_watch.done():
            self._model_watch = asyncio.get_running_loop().create_task(self._watch_model())

    # -- API used by the ingress ---------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        self._ensure_started()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = {}
        for record in self.records.values():
            by_status[record.status] = by_status.get(record.status, 0) + 1
        return {
            "jobs": by_status,
            "queued": len(self.queue),
            "in_flight": len(self.running),
            "in_flight_limit": self.in_flight_limit(),
            "segmenter_replicas": self.live_replicas(),
            "backlog_tiles": self.backlog_tiles(),
            "tiles_completed": self.tiles_completed,
            "waiting_for_store": len(self.store_waiting_since),
        }

    # -- scaling -------------------------------------------------------------------------------

    async def heartbeat(self, replica: str) -> dict[str, Any]:
        """A Segmenter replica's autoscaling report: it is alive; it gets the backlog to report."""
        self._ensure_started()
        known = self.live_replicas()
        self.replicas_seen[replica] = time.monotonic()
        if self.live_replicas() > known:
            self._dispatch()  # more replicas: more jobs may run
        return {"backlog_tiles": self.backlog_tiles()}

    def live_replicas(self) -> int:
        """Segmenter replicas heard from recently; at least 1 (without an autoscaling config the
        replicas send no heartbeat, and the one there is still runs jobs)."""
        cutoff = time.monotonic() - REPLICA_SILENCE_S
        for replica in [r for r, seen in self.replicas_seen.items() if seen < cutoff]:
            del self.replicas_seen[replica]
        return max(1, len(self.replicas_seen))

    def in_flight_limit(self) -> int:
        return self.settings.jobs_in_flight_per_replica * self.live_replicas()

    def _estimate(self, record: JobRecord) -> int:
        """Tiles a queued job will take: the Tiler's plan for its image size (0 before the model
        is known, or for a raw upload without dimensions)."""
        if record.job_id in self.tile_estimates:
            return self.tile_estimates[record.job_id]
        height, width = record.image.get("height"), record.image.get("width")
        if self.model is None or not height or not width:
            return 0
        _, plans = segmentation_plans(int(height), int(width), self.model)
        self.tile_estimates[record.job_id] = estimate = sum(len(plan) for plan in plans)
        return estimate

    def backlog_tiles(self) -> int:
        """Tiles still to do: every queued job's estimate, and what running jobs have left."""
        queued = sum(self._estimate(self.records[job_id]) for job_id in self.queue if job_id in self.records)
        running = 0
        for job_id in self.running:
            record = self.records.get(job_id)
            if record is None:
                continue
            total = record.total_tiles if record.total_tiles is not None else self._estimate(record)
            running += max(0, total - record.completed_tiles)
        return queued + running

    async def _watch_model(self) -> None:
        while True:
            try:
                model = self.settings.resolve_model(await self.segmenter.info.remote())
                if self.model is None or model.get("key") != self.model.get("key"):
                    self.tile_estimates.clear()
                    if self.model is not None:
                        self.drift_monitor.reset()  # a new model: a new reference window
                self.model = model
            except Exception:  # no replica yet, or one restarting
                logger.debug("Could not read the Segmenter's model", exc_info=True)
            await asyncio.sleep(MODEL_REFRESH_S)

    # -- admission and drift -------------------------------------------------------------------

    async def admit(self, owner: str) -> int | None:
        """One request of `owner` against the service-wide rate limit: None, or the seconds to wait."""
        return self.rate_limiter.retry_after(owner)

    async def drift(self) -> dict[str, Any]:
        return self.drift_monitor.report()

    async def find_idempotent(self, owner: str, idempotency_key: str) -> dict[str, Any] | None:
        self._ensure_started()
        job_id = self.idempotent.get((owner, idempotency_key))
        return self.records[job_id].public() if job_id in self.records else None

    async def submit(
        self,
        job_id: str,
        owner: str,
        mask_weight: float,
        idempotency_key: str | None,
        filename: str | None,
        image: dict[str, Any],
        gate: bool = True,
        raw: dict[str, Any] | None = None,
        depth: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Queue a job whose upload is already in the store. Returns (job, created)."""
        self._ensure_started()
        if idempotency_key:
            existing = self.idempotent.get((owner, idempotency_key))
            if existing in self.records:
                return self.records[existing].public(), False
        if len(self.queue) >= self.settings.max_queued_jobs:
            raise QueueFullError(f"The queue is full ({len(self.queue)} jobs waiting); retry later.")
        record = JobRecord(
            job_id,
            owner,
            self.next_seq,
            time.time(),
            mask_weight,
            idempotency_key=idempotency_key,
            filename=filename,
            image=image,
            gate=gate,
            raw=raw,
            depth=depth,
        )
        self.next_seq += 1
        await self._persist(record)
        self.records[job_id] = record
        if idempotency_key:
            self.idempotent[(owner, idempotency_key)] = job_id
        self.queue.append(job_id)
        self._dispatch()
        return record.public(), True

    async def get(self, job_id: str, owner: str) -> dict[str, Any] | None:
        self._ensure_started()
        record = self.records.get(job_id)
        return record.public() if record and record.owner == owner else None

    async def wait(self, job_id: str, owner: str, timeout: float) -> dict[str, Any] | None:
        """The job once it has ended, or as it is after `timeout` seconds (long polling)."""
        self._ensure_started()
        record = self.records.get(job_id)
        if record is None or record.owner != owner:
            return None
        if record.status not in TERMINAL:
            event = self.done_events.setdefault(job_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
        record = self.records.get(job_id, record)
        return record.public()

    def _wake(self, job_id: str) -> None:
        event = self.done_events.pop(job_id, None)
        if event is not None:
            event.set()

    async def cancel(self, job_id: str, owner: str) -> dict[str, Any] | None:
        """Cancel a queued or running job (kept, as `cancelled`), or forget a finished one."""
        self._ensure_started()
        record = self.records.get(job_id)
        if record is None or record.owner != owner:
            return None
        if record.status in TERMINAL:
            await self._forget(record)
            return {"job_id": job_id, "status": record.status, "deleted": True}
        if job_id in self.queue:
            self.queue.remove(job_id)
            self.tile_estimates.pop(job_id, None)
        task = self.running.pop(job_id, None)
        if task is not None:
            task.cancel()
        record.status, record.finished_at, record.error, record.cleaned = "cancelled", time.time(), None, False
        await self._persist(record)
        self._wake(job_id)
        await self._clean(record)
        self._dispatch()
        logger.info("Job %s cancelled", job_id)
        return {"job_id": job_id, "status": "cancelled", "deleted": False}

    # -- running jobs --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if time.monotonic() < self.store_retry_at:
            return  # the store is failing: _store_failed scheduled the next try
        while self.queue and len(self.running) < self.in_flight_limit():
            job_id = self.queue.popleft()
            self.tile_estimates.pop(job_id, None)
            self.running[job_id] = asyncio.get_running_loop().create_task(self._run(job_id))

    async def _run(self, job_id: str) -> None:
        record = self.records[job_id]
        record.status, record.started_at, record.attempts = "started", time.time(), record.attempts + 1
        record.completed_tiles, record.total_tiles = 0, None
        attempt = record.attempts
        stream = None
        try:
            await self._persist(record)
            stream = cast(DeploymentResponseGenerator, self.runner.options(stream=True).run.remote(job_id, record.options()))
            outcome: dict[str, Any] = {}
            async for event in stream:
                if "progress" in event:  # in memory only: a restarted job starts its tiles again
                    completed, record.total_tiles = event["progress"]
                    self.tiles_completed += max(0, completed - record.completed_tiles)
                    record.completed_tiles = completed
                else:
                    outcome = event
        except asyncio.CancelledError:
            if stream is not None:
                stream.cancel()
            raise
        except ObjectNotFound:  # the upload itself is gone (deleted by hand, or a store that lost it)
            logger.exception("Job %s: its upload is missing from the store", job_id)
            await self._finish(record, error="The uploaded image is no longer in the result store; submit it again.")
        except StoreError as exc:  # the store failed, not the job: it waits for the store, no attempt spent
            gave_up = self._store_failed(record, exc)
            if gave_up:
                await self._finish(record, error=gave_up)
        except Exception as exc:  # the call itself failed: a replica died...
            logger.exception("Job %s attempt %d failed", job_id, record.attempts)
            if record.attempts < MAX_ATTEMPTS and record.status == "started":
                record.status = "queued"
                self.queue.appendleft(job_id)
                await self._persist_or_log(record)
            else:
                await self._finish(record, error=f"Processing failed after {record.attempts} attempts ({type(exc).__name__}).")
        else:
            self._store_recovered(job_id)
            if record.status == "started":
                if not outcome:
                    outcome = {"error": "Processing ended without a result."}
                await self._finish(record, result=outcome.get("result"), error=outcome.get("error"), attempt=attempt)
        finally:
            if self.running.get(job_id) is asyncio.current_task():
                del self.running[job_id]
            self._dispatch()

    def _store_failed(self, record: JobRecord, exc: StoreError) -> str | None:
        """Back to the head of the queue without spending an attempt, and no dispatching until the
        pause is over. In memory only: the store is what failed (a restarted tracker finds the job
        started and queues it again the same way). After `store_outage_s` of waiting, the job
        fails instead: returns the reason, naming the store's error."""
        since = self.store_waiting_since.setdefault(record.job_id, time.time())
        if record.status != "started":
            return None
        if time.time() - since > self.settings.store_outage_s:
            self.store_waiting_since.pop(record.job_id, None)
            return f"The result store was unavailable for over {self.settings.store_outage_s:.0f} s: {exc}"
        logger.warning("Job %s waits for the result store (%s); dispatching pauses %.3g s", record.job_id, exc, self.store_backoff)
        record.status, record.attempts = "queued", record.attempts - 1
        self.queue.appendleft(record.job_id)
        self.store_retry_at = time.monotonic() + self.store_backoff
        asyncio.get_running_loop().call_later(self.store_backoff, self._resume_after_store_pause)
        self.store_backoff = min(STORE_BACKOFF_S[1], self.store_backoff * 2)
        return None

    def _resume_after_store_pause(self) -> None:
        # the timer ends the pause itself, so dispatching never hinges on comparing two clocks
        self.store_retry_at = 0.0
        self._dispatch()

    def _store_recovered(self, job_id: str) -> None:
        self.store_waiting_since.pop(job_id, None)
        self.store_backoff = STORE_BACKOFF_S[0]

    async def _persist_or_log(self, record: JobRecord) -> None:
        """Persist a change the tracker can also rebuild (a job back in the queue: a restarted
        tracker finds it started and queues it again), so a failing store only costs a log line."""
        try:
            await self._persist(record)
        except StoreError:
            logger.warning("Could not record job %s as %s; the store is failing", record.job_id, record.status)

    async def _persist_until_stored(self, record: JobRecord) -> None:
        """Persist a job's end, however long the store takes to come back: a result is committed
        once, and nobody hears of it before it is stored."""
        pause = STORE_BACKOFF_S[0]
        while True:
            try:
                await self._persist(record)
                return
            except StoreError as exc:
                logger.warning("Job %s ended but its record could not be stored (%s); retrying in %.3g s", record.job_id, exc, pause)
                await asyncio.sleep(pause)
                pause = min(STORE_BACKOFF_S[1], pause * 2)

    async def _finish(self, record: JobRecord, result: dict[str, Any] | None = None, error: str | None = None, attempt: int = 0) -> None:
        record.finished_at = time.time()
        record.status = "failed" if error else "finished"
        record.error, record.result = error, None if error else result
        record.result_attempt = attempt if result is not None and not error else 0
        record.cleaned = False
        await self._persist_until_stored(record)
        self._wake(record.job_id)
        if result is not None and not error:
            classes = [c["name"] for c in (self.model or {}).get("classes", []) if c.get("id")]
            self.drift_monitor.add(observation(result), classes)
        await self._clean(record)
        logger.info(
            "Job %s %s in %.2fs%s",
            record.job_id,
            record.status,
            record.finished_at - (record.started_at or record.finished_at),
            f": {error}" if error else "",
        )

    # -- housekeeping --------------------------------------------------------------------------

    async def _clean(self, record: JobRecord) -> None:
        """Delete what an ended job no longer needs (its upload, other attempts' PNGs), then record
        that it is done. The record says `cleaned: false` until then, so a tracker killed in between,
        or a store that failed, leaves the work to the housekeeping rather than to nobody."""
        try:
            await asyncio.to_thread(self._delete_artifacts, record.job_id, keep=record.result_attempt or None)
        except StoreError:
            logger.warning("Could not delete job %s's upload and superseded attempts; the housekeeping will retry", record.job_id)
            return
        record.cleaned = True
        await self._persist_or_log(record)

    async def _clean_pending(self) -> None:
        for record in [r for r in self.records.values() if r.status in TERMINAL and not r.cleaned]:
            await self._clean(record)

    def _delete_artifacts(self, job_id: str, keep: int | None = None) -> None:
        """Every object of the job but its record (and, with `keep`, but that attempt's PNGs)."""
        kept = attempt_prefix(job_id, keep) if keep else None
        for key in self.store.list(job_prefix(job_id)):
            if key == record_key(job_id) or (kept is not None and key.startswith(kept) and key.count("/") == kept.count("/")):
                continue
            self.store.delete(key)

    async def _forget(self, record: JobRecord) -> None:
        await asyncio.to_thread(self._delete_artifacts, record.job_id)
        await asyncio.to_thread(self.store.delete, record_key(record.job_id))
        self.records.pop(record.job_id, None)
        if record.idempotency_key:
            self.idempotent.pop((record.owner, record.idempotency_key), None)

    async def _housekeeping(self) -> None:
        """Cleans up after ended jobs whose cleanup was cut short, and deletes finished jobs older
        than the result TTL."""
        interval = min(60.0, self.settings.result_ttl_s / 4)
        while True:
            await self._clean_pending()
            await asyncio.sleep(interval)
            cutoff = time.time() - self.settings.result_ttl_s
            expired = [r for r in self.records.values() if r.status in TERMINAL and (r.finished_at or 0) < cutoff]
            for record in expired:
                try:
                    await self._forget(record)
                except StoreError:
                    logger.exception("Could not delete expired job %s", record.job_id)


@dataclass(frozen=True)
class TrackerRef:
    """The job tracker as `deployments/app.py` wires it into the graph: a detached actor of this
    name, started by the Ingress (with the JobRunner and Segmenter handles it dispatches to) and
    found by name by the Segmenter replicas that report their backlog to it. A name, not a
    handle: the actor outlives any one deployment, and whichever replica comes first starts it."""

    name: str
    namespace: str = TRACKER_NAMESPACE

    def start(self, settings: Settings, runner: DeploymentHandle, segmenter: DeploymentHandle) -> Any:
        """The tracker's handle, starting it if no replica has yet."""
        return JobTracker.options(name=self.name, namespace=self.namespace, lifetime="detached", get_if_exists=True).remote(  # type: ignore[attr-defined]
            settings, runner, segmenter
        )

    def find(self) -> Any | None:
        """The tracker's handle, or None while no Ingress has started it."""
        try:
            return ray.get_actor(self.name, namespace=self.namespace)
        except ValueError:
            return None
