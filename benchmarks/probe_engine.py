"""Probe engine throughput: how long a pass over N targets takes, and the client CPU per probe.

The fake provider runs in a separate process so the figures are the monitor's own. The
baseline is what the design avoids: a new httpx client (and SSL context) per probe.

    .venv/bin/python benchmarks/probe_engine.py --targets 1000 --concurrency 20 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import time

import httpx

from monitor.domain.evidence import RequestSpec
from monitor.probing.engine import Prober, default_ssl_context


def serve(port_queue: multiprocessing.Queue, delay: float) -> None:  # type: ignore[type-arg]
    from monitor.demo.simulator import FakeProvider, Reply

    fake = FakeProvider().start()
    fake.route("/x", Reply(200, [[0.1, 0.2, 0.3]], delay=delay))
    port_queue.put(fake.url)
    while True:
        time.sleep(3600)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def shared_client_pass(url: str, n: int, concurrency: int) -> list[float]:
    async with Prober(concurrency) as prober:
        evidence = await prober.probe_many([(RequestSpec("GET", url), 10.0)] * n)
    assert all(e.status == 200 for e in evidence), {
        e.error_detail for e in evidence if e.status != 200
    }
    return [e.timings.total_ms or 0.0 for e in evidence]


async def client_per_probe_pass(url: str, n: int, concurrency: int) -> list[float]:
    slots = asyncio.Semaphore(concurrency)

    async def one() -> float:
        async with slots:
            start = time.perf_counter()
            async with httpx.AsyncClient(verify=default_ssl_context()) as client:
                response = await client.get(url)
            assert response.status_code == 200
            return (time.perf_counter() - start) * 1000

    return list(await asyncio.gather(*(one() for _ in range(n))))


def measure(
    name: str, run, url: str, n: int, concurrency: int, loop: str = "asyncio"
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    cpu0, wall0 = cpu(), time.perf_counter()
    if loop == "uvloop":
        import uvloop

        latencies = uvloop.run(run(url, n, concurrency))
    else:
        latencies = asyncio.run(run(url, n, concurrency))
    wall, used = time.perf_counter() - wall0, cpu() - cpu0
    latencies.sort()
    return {
        "name": name,
        "concurrency": concurrency,
        "wall_s": wall,
        "probes_per_s": n / wall,
        "cpu_ms_per_probe": used * 1000 / n,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * len(latencies)) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=1000, help="probes per pass (default 1000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 50])
    parser.add_argument(
        "--delay", type=float, default=0.02, help="server think time per answer (s)"
    )
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--ours-only", action="store_true", help="skip the baseline")
    args = parser.parse_args()

    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue, args.delay), daemon=True)
    server.start()
    url = queue.get(timeout=10) + "/x"
    try:
        rows = []
        for c in args.concurrency:
            rows.append(
                measure(
                    "shared client (inferwatch)",
                    shared_client_pass,
                    url,
                    args.targets,
                    c,
                    args.loop,
                )
            )
            if not args.ours_only:
                rows.append(
                    measure(
                        "client per probe (baseline)",
                        client_per_probe_pass,
                        url,
                        args.targets,
                        c,
                        args.loop,
                    )
                )
    finally:
        server.terminate()

    delay_ms = args.delay * 1000
    print(
        f"{args.targets} probes a pass, server delay {delay_ms:.0f} ms, server in its own process"
    )
    header = ("engine", "conc", "wall s", "probes/s", "CPU ms/probe", "p50 ms", "p95 ms")
    print("{:<30} {:>4} {:>7} {:>9} {:>13} {:>7} {:>7}".format(*header))
    for r in rows:
        print(
            f"{r['name']:<30} {r['concurrency']:>4} {r['wall_s']:>7.2f} {r['probes_per_s']:>9.0f} "
            f"{r['cpu_ms_per_probe']:>13.2f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f}"
        )
    for c in args.concurrency if not args.ours_only else ():
        ours, base = (r for r in rows if r["concurrency"] == c)
        cpu_ratio = base["cpu_ms_per_probe"] / ours["cpu_ms_per_probe"]
        wall_ratio = base["wall_s"] / ours["wall_s"]
        print(
            f"concurrency {c}: the baseline uses {cpu_ratio:.1f}x the CPU per probe "
            f"and takes {wall_ratio:.1f}x the wall time"
        )


if __name__ == "__main__":
    main()
