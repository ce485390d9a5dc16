"""Where the service's memory goes: every process's resident memory, split into heap, libraries
and Ray's object store, on a fresh service, after a saturated run of photos, and at the peak of
the 1,500 × 40,000 scan (the tables in docs/benchmarks.md).

    $(scripts/venv.sh)/bin/python -m bench.memory_accounting [--images 40] [--no-scan]

Starts the service as `make serve` does. The peak is the moment the RSS sum over all processes
was highest, sampled every 0.25 s, which is what `large_scan_peak_rss_mb` reports.
"""

from __future__ import annotations

import argparse

from bench.helpers import free_port
from bench.run import KEY, LONG_POLL_S, OUT, PHOTO_SIZES, bench_images, large_scan, run_clients, service_call
from bench.service_process import ProcessMemory, ServiceProcess, process_memory


def print_table(title: str, processes: dict[int, ProcessMemory]) -> None:
    print(f"\n{title}")
    print(f"  {'process':<44} {'RSS':>7} {'heap':>7} {'libs':>7} {'store':>7} {'PSS':>7}")
    for memory in sorted(processes.values(), key=lambda m: -m.rss):
        print(f"  {memory.name[:44]:<44} {memory.rss:7.0f} {memory.anon:7.0f} {memory.file:7.0f} {memory.shmem:7.0f} {memory.pss:7.0f}")
    total = ProcessMemory("all", *(sum(getattr(m, f) for m in processes.values()) for f in ("anon", "file", "shmem", "pss")))
    print(
        f"  {'all ' + str(len(processes)) + ' processes':<44} {total.rss:7.0f} "
        f"{total.anon:7.0f} {total.file:7.0f} {total.shmem:7.0f} {total.pss:7.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="photos sent at concurrency 32 before the scan (0: none)")
    parser.add_argument("--no-scan", action="store_true")
    args = parser.parse_args()
    service = ServiceProcess(free_port(), KEY, OUT / "store", rate_limit_per_minute="0", max_queued_jobs="2000")
    service.start()
    try:
        print_table("fresh service (MB)", process_memory(service.pid))
        if args.images:
            pool = bench_images(8, PHOTO_SIZES)
            run_clients([pool[i % len(pool)] for i in range(args.images)], 32, service_call(service.base, LONG_POLL_S))
            print_table(f"after {args.images} photos at concurrency 32 (MB)", process_memory(service.pid))
        if not args.no_scan:
            figures = large_scan(service.base, service.pid)
            print_table(f"at the 1,500 × 40,000 scan's peak, {figures['large_scan_seconds']:.1f} s (MB)", figures["at_peak"])
    finally:
        service.stop()


if __name__ == "__main__":
    main()
