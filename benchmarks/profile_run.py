"""Where `inferwatch run`'s CPU per probe goes: nginx targets on loopback, a measured window,
and (with py-spy installed) a sampling profile of that window, summed by component.

Starts nginx as `benchmarks/vs_blackbox.py` does (the same config and targets), then
`inferwatch run` alone on N targets every I seconds (SQLite). After every target has been probed
once and a warm-up, it measures a window: the process's CPU (all threads, /proc) per probe made
(nginx's access log), and, with `--profile`, py-spy's samples of the same window. py-spy is for
profiling only and not a dependency: `.venv/bin/pip install py-spy`.

    .venv/bin/python benchmarks/profile_run.py --targets 1000 --interval 5 --seconds 30
    .venv/bin/python benchmarks/profile_run.py --targets 1000 --interval 5 --seconds 30 --profile
    .venv/bin/python benchmarks/profile_run.py ... --profile --native   # C frames: syscalls, GC

Without --native, py-spy does not stop the process (its figures are the least disturbed);
--native pauses it at each sample to read C frames: the CPU figure is then higher than usual,
the shares are what to read. `--inferwatch PATH` measures another build (a wrapper script).
Runs on one machine spread by ±10-20%: compare builds in alternating runs.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import vs_blackbox as vb

ROOT = Path(__file__).resolve().parents[1]
_FILE = re.compile(r"\(([^:()]*\.py):\d+\)")
# Leaf C functions that are system calls (with --native), reported as such.
_SYSCALLS = {
    "connect",
    "write",
    "read",
    "close",
    "epoll_pwait",
    "epoll_ctl",
    "syscall",
    "getpid",
    "socket",
    "ioctl",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "recv",
    "send",
}


def component(frames: list[str]) -> str:
    """What a sample was doing: a system call or the collector (native), else the package of
    its deepest Python frame (monitor's by subpackage)."""
    leaf = frames[-1].split(" (")[0]
    if leaf in _SYSCALLS:
        return f"syscall {leaf}"
    if any("gc_collect" in f for f in frames):
        return "garbage collector"
    files = [m.group(1) for f in frames if (m := _FILE.search(f))]
    if not files:
        return "native (event loop, C code)"
    path = files[-1]
    if path.startswith("monitor/"):
        return "/".join(path.split("/")[:2])
    if frames[-1].startswith("Runner.run "):
        return "native (event loop, C code)"  # the loop's own C code under asyncio.run
    return path.split("/")[0]


def summarise(raw: Path, top: int) -> list[str]:
    """py-spy's raw (collapsed) output as shares by thread and by component."""
    threads: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames, n = stack.split(";"), int(count)
        total += n
        main = "MainThread" in frames[0]
        threads["probing loop (main thread)" if main else "other threads (writer, sender)"] += n
        parts[("" if main else "[thread] ") + component(frames[1:] or frames)] += n
    out = [f"{total} samples"]
    out += [f"  {v / total:6.1%}  {k}" for k, v in threads.most_common()]
    out += ["by component:"] + [f"  {v / total:6.1%}  {k}" for k, v in parts.most_common(top)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    parser.add_argument("--warmup", type=float, help="after every target's first probe")
    parser.add_argument("--profile", action="store_true", help="py-spy the window")
    parser.add_argument("--native", action="store_true", help="py-spy --native (pauses)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw samples here")
    parser.add_argument("--inferwatch", default=str(ROOT / ".venv/bin/inferwatch"))
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else args.interval + 1
    spy = shutil.which("py-spy", path=str(ROOT / ".venv/bin")) or shutil.which("py-spy")
    if args.profile and spy is None:
        sys.exit("--profile needs py-spy: .venv/bin/pip install py-spy")

    vb.prepare_process()
    kids = vb.Children()
    tmp = Path(tempfile.mkdtemp(prefix="profile_run-"))
    try:
        _, port = vb.start_nginx(args.nginx, tmp, kids)
        conf = tmp / "inferwatch.yaml"
        urls = vb.target_urls(port, args.targets)
        timeout = min(args.interval, 10.0)
        conf.write_text(vb.inferwatch_conf(urls, args.interval, timeout, tmp / "inferwatch.db"))
        start = time.time()
        iw = kids.start(
            "inferwatch", [args.inferwatch, "run", "-c", str(conf)], tmp / "iw.log", tmp
        )
        vb.wait_all_targets(
            "inferwatch run", tmp / "access.log", start, args.targets, 60 + 3 * args.interval, [iw]
        )
        time.sleep(warmup)
        cpu0, t0 = vb.tree_cpu([iw.pid]), time.time()
        raw = args.raw or tmp / "samples.txt"
        if args.profile:
            mode = "--native" if args.native else "--nonblocking"
            argv = [spy, "record", "-p", str(iw.pid), "-d", str(round(args.seconds))]
            argv += ["-r", str(args.rate), "-f", "raw", "-o", str(raw), "--threads", mode]
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        else:
            time.sleep(args.seconds)
        cpu1, t1 = vb.tree_cpu([iw.pid]), time.time()
        if iw.poll() is not None:
            sys.exit(f"inferwatch exited during the run:\n{vb.tail(tmp / 'iw.log')}")
        done, _ = vb.count_probes(tmp / "access.log", t0, t1)
        expected = args.targets * (t1 - t0) / args.interval
        print(
            f"{args.targets} targets every {args.interval:g} s, {t1 - t0:.1f} s window: "
            f"{done} probes (expected {expected:.0f}), CPU {cpu1 - cpu0:.2f} s, "
            f"{(cpu1 - cpu0) * 1000 / max(done, 1):.3f} ms per probe"
        )
        if args.profile:
            print("\n".join(summarise(raw, args.top)))
    finally:
        kids.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
