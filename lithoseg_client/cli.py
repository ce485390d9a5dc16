"""`lithoseg segment|batch|status|cancel`: the client's commands (`lithoseg --help` lists all).

    lithoseg segment core1.jpg core2.jpg --out results/     # overlay, mask and JSON per photo
    lithoseg batch photos/ --report report.csv               # a folder or a ZIP; one row per photo
    lithoseg status JOB_ID
    lithoseg cancel JOB_ID

The service and key come from `--url` / `--api-key` or `LITHOSEG_URL` / `LITHOSEG_API_KEY`.
Progress: a bar per job (tiles done of the job's tiles) and one for the batch (photos done).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lithoseg_client.client import Client
from lithoseg_client.types import ApiError, Job, JobState

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".heic", ".heif", ".avif"}


def photos_in(source: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every image in a folder (sorted) or a ZIP."""
    if source.is_dir():
        return [(p.name, p.read_bytes()) for p in sorted(source.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            names = [n for n in sorted(archive.namelist()) if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.endswith("/")]
            return [(Path(n).name, archive.read(n)) for n in names]
    raise SystemExit(f"lithoseg: {source} is neither a folder nor a ZIP archive.")


def run_job(client: Client, name: str, data: bytes, args: argparse.Namespace, position: int) -> tuple[Job, JobState]:
    """Submit one photo and follow it to its end with a progress bar of its tiles."""
    depth = depth_fields(args)
    job = client.submit(data, filename=name, mask_weight=args.mask_weight, gate=False if args.no_gate else None, depth=depth)
    with tqdm(total=0, desc=name[:30], unit="tile", position=position, leave=False, disable=args.quiet) as bar:

        def progress(completed: int, total: int) -> None:
            bar.total = total
            bar.n = completed
            bar.refresh()

        state = client.wait(job.job_id, timeout=args.timeout, on_progress=progress)
    return job, state


def depth_fields(args: argparse.Namespace) -> dict[str, Any] | None:
    """The depth options of `segment` as the API's fields, or None when no depths were given."""
    if getattr(args, "top_depth", None) is None and getattr(args, "bottom_depth", None) is None:
        return None
    return {
        "top_depth": args.top_depth,
        "bottom_depth": args.bottom_depth,
        "depth_unit": args.depth_unit,
        "columns": args.columns,
        "layout": args.layout,
    }


def save_outputs(client: Client, job: Job, state: JobState, name: str, out: Path) -> None:
    """Write a job's JSON, and when it finished its overlay, mask and (with depths) its log as CSV and LAS."""
    stem = Path(name).stem
    (out / f"{stem}.json").write_text(json.dumps(state.raw, indent=1))
    if state.finished and not state.rejected:
        (out / f"{stem}.overlay.png").write_bytes(client.overlay(job.job_id))
        (out / f"{stem}.mask.png").write_bytes(client.mask(job.job_id))
        if (state.result or {}).get("depth_log"):
            (out / f"{stem}.log.csv").write_text(client.depth_log(job.job_id, "csv"))
            (out / f"{stem}.las").write_text(client.depth_log(job.job_id, "las"))


def coverage_column(name: str) -> str:
    """The report column of one class's coverage."""
    return f"coverage_{name.replace(' ', '_')}"


def report_row(name: str, job: Job, state: JobState) -> dict[str, Any]:
    """One photo's row of the batch report."""
    result = state.result or {}
    coverage = result.get("coverage", {})
    return {
        "photo": name,
        "job_id": job.job_id,
        "status": state.status,
        "rejected": bool(result.get("rejected")),
        "rock_fraction": round(result.get("rock_fraction", 0.0), 4) if result else "",
        # every rock class of the service's class table (its class_map, id -> name), present or not
        **{coverage_column(name): round(coverage.get(name, 0.0), 4) for cid, name in result.get("class_map", {}).items() if cid != "0"},
        "error": state.error or "",
    }


def run_many(client: Client, photos: list[tuple[str, bytes]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every photo through the service, `--parallel` at a time, outputs and report rows in order."""
    out = Path(args.out) if getattr(args, "out", None) else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any] | None] = [None] * len(photos)
    with tqdm(total=len(photos), desc="photos", unit="photo", position=0, disable=args.quiet) as overall:

        def one(index: int) -> None:
            name, data = photos[index]
            try:
                job, state = run_job(client, name, data, args, 1 + index % args.parallel)
            except ApiError as exc:
                rows[index] = {"photo": name, "job_id": "", "status": "refused", "rejected": "", "rock_fraction": "", "error": exc.detail}
            else:
                if out:
                    save_outputs(client, job, state, name, out)
                rows[index] = report_row(name, job, state)
            overall.update(1)

        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(one, range(len(photos))))
    return [r for r in rows if r is not None]


def write_report(rows: list[dict[str, Any]], path: Path) -> None:
    """The batch report as CSV, one row per photo, a column per class present in any."""
    coverage = dict.fromkeys(key for row in rows for key in row if key.startswith("coverage_"))  # in the service's class order
    fields = ["photo", "job_id", "status", "rejected", "rock_fraction", *coverage, "error"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def parser() -> argparse.ArgumentParser:
    """The client commands' options (segment, batch, status, cancel)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("LITHOSEG_URL", "http://127.0.0.1:8000"), help="the service (LITHOSEG_URL)")
    common.add_argument("--api-key", default=os.environ.get("LITHOSEG_API_KEY"), help="your API key (LITHOSEG_API_KEY)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    jobs = argparse.ArgumentParser(add_help=False)
    jobs.add_argument("--mask-weight", type=float, default=None, help="overlay opacity, 0-1")
    jobs.add_argument("--no-gate", action="store_true", help="segment even pictures the content gate would reject")
    jobs.add_argument("--parallel", type=int, default=4, help="jobs in flight at once")
    jobs.add_argument("--timeout", type=float, default=None, help="give up on a job after this many seconds")
    top = argparse.ArgumentParser(prog="lithoseg")
    commands = top.add_subparsers(dest="command", required=True)
    segment = commands.add_parser("segment", parents=[common, jobs], help="segment photos; overlay, mask and JSON into --out")
    segment.add_argument("photos", nargs="+", type=Path)
    segment.add_argument("--out", required=True)
    depth = segment.add_argument_group("depth (one box photo): a log in depth, saved as <photo>.log.csv and <photo>.las")
    depth.add_argument("--top-depth", type=float, help="depth at the top of the photo's core")
    depth.add_argument("--bottom-depth", type=float, help="depth at the bottom of the photo's core")
    depth.add_argument("--depth-unit", choices=("m", "ft"), default="m")
    depth.add_argument("--columns", type=int, help="core columns (or rows) in the box; found in the photo when left out")
    depth.add_argument("--layout", choices=("columns", "rows"), default="columns", help="columns: left to right, each top down")
    batch = commands.add_parser("batch", parents=[common, jobs], help="segment a folder or ZIP of photos; a CSV report")
    batch.add_argument("source", type=Path)
    batch.add_argument("--report", required=True, type=Path)
    batch.add_argument("--out", default=None, help="also save each photo's overlay, mask and JSON here")
    status = commands.add_parser("status", parents=[common], help="a job's status (JSON)")
    status.add_argument("job_id")
    cancel = commands.add_parser("cancel", parents=[common], help="cancel a job")
    cancel.add_argument("job_id")
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one client command; exit status 0 when every photo finished."""
    args = parser().parse_args(argv)
    if not args.api_key:
        print("lithoseg: give an API key with --api-key or LITHOSEG_API_KEY.", file=sys.stderr)
        return 2
    with Client(args.url, args.api_key) as client:
        try:
            if args.command == "status":
                print(json.dumps(client.job(args.job_id).raw, indent=1))
            elif args.command == "cancel":
                client.cancel(args.job_id)
                print(f"{args.job_id}: cancelled")
            elif args.command == "segment":
                missing = [str(p) for p in args.photos if not p.is_file()]
                if missing:
                    print(f"lithoseg: no such file: {', '.join(missing)}", file=sys.stderr)
                    return 2
                if depth_fields(args) is not None and len(args.photos) > 1:
                    print("lithoseg: depths belong to one box photo; segment each photo with its own depths.", file=sys.stderr)
                    return 2
                rows = run_many(client, [(p.name, p.read_bytes()) for p in args.photos], args)
                for row in rows:
                    print(
                        f"{row['photo']}: {row['status']}{' (not a core photo)' if row['rejected'] is True else ''} {row['error']}".rstrip()
                    )
                return 0 if all(r["status"] == "finished" for r in rows) else 1
            else:
                photos = photos_in(args.source)
                if not photos:
                    print(f"lithoseg: no photos in {args.source}.", file=sys.stderr)
                    return 2
                rows = run_many(client, photos, args)
                write_report(rows, args.report)
                done = sum(r["status"] == "finished" for r in rows)
                print(f"{done} of {len(rows)} photos finished; report in {args.report}")
                return 0 if done == len(rows) else 1
        except ApiError as exc:
            print(f"lithoseg: the service answered {exc.status}: {exc.detail}", file=sys.stderr)
            return 1
    return 0
