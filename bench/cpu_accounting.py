"""Where the service's CPU goes: CPU milliseconds per tile for every process of the service, read
from /proc before and after a saturated run (the table in docs/benchmarks.md).

    $(scripts/venv.sh)/bin/python -m bench.cpu_accounting [--images 40] [--small]

Starts the service as `make serve` does, sends `--images` synthetic photos (or 768² pictures with
`--small`) from 32 clients that submit and long-poll, and prints each process's CPU time per
finished tile, the total, and the client's own share. Stop anything else running on the machine
first: its CPU is not counted, but it slows the service down.
"""

from __future__ import annotations

import argparse
import os
import resource

from bench.helpers import free_port
from bench.run import KEY, LONG_POLL_S, OUT, PHOTO_SIZES, SMALL_SIZES, bench_images, run_clients, service_call
from bench.service_process import ServiceProcess, cpu_spent, process_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--small", action="store_true", help="768² pictures (4 tiles) instead of photo-sized ones")
    args = parser.parse_args()
    pool = bench_images(8, SMALL_SIZES if args.small else PHOTO_SIZES)
    service = ServiceProcess(free_port(), KEY, OUT / "store", rate_limit_per_minute="0", max_queued_jobs="2000")
    service.start()
    try:
        call = service_call(service.base, LONG_POLL_S)
        call(pool[0])  # warm-up
        before, client_before = process_times(service.pid), resource.getrusage(resource.RUSAGE_SELF)
        seconds, results = run_clients([pool[i % len(pool)] for i in range(args.images)], 32, call)
        after, client_after = process_times(service.pid), resource.getrusage(resource.RUSAGE_SELF)
    finally:
        service.stop()
    tiles = sum(r["tiles"] for r in results)
    print(f"{args.images} images, {tiles} tiles in {seconds:.1f} s: {tiles / seconds:.2f} tiles/s")
    spent = sorted(((cpu - before.get(pid, (name, 0.0))[1], name, pid) for pid, (name, cpu) in after.items()), reverse=True)
    for cpu, name, pid in spent:
        if cpu > 0:
            print(f"  {name[:48]:<48} {pid:>7}  {cpu:7.2f} s  {1000 * cpu / tiles:6.1f} ms/tile")
    total = cpu_spent(before, after)
    client = client_after.ru_utime + client_after.ru_stime - client_before.ru_utime - client_before.ru_stime
    print(
        f"service {1000 * total / tiles:.1f} ms/tile in all; the clients "
        f"{1000 * client / tiles:.1f} ms/tile; wall x cores {seconds * (os.cpu_count() or 1):.1f} s"
    )


if __name__ == "__main__":
    main()
