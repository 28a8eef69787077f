"""Side by side: `inferwatch run` vs Prometheus + blackbox_exporter probing the same nginx targets.

Starts its own nginx (Debian `nginx-light`) on 127.0.0.1 with N paths (/t/0 ... /t/N-1) and an
access log, then, one after the other in the same run:

1. the peer: `prometheus-blackbox-exporter` and `prometheus` (Debian packages), Prometheus
   scraping the exporter's /probe?module=http_2xx&target=... for the N targets every I seconds
   (the standard blackbox relabelling; the http prober opens a fresh connection per probe);
2. `inferwatch run` on a generated config with the same N `kind: http` targets at interval I and
   a SQLite database in the temp dir.

Each side starts, probes every target once (seen in nginx's log), runs a warm-up (default
I + 1 s, so every target is on its steady slot), then a measured window of --seconds. For the
window it reports the CPU of the side's processes from /proc/<pid>/stat (utime + stime +
cutime + cstime; the peer is Prometheus + blackbox_exporter together), the probes it made
(nginx's access log lines in the window, checked by User-Agent), the expected number
(N x window / I), CPU per probe and the ratio, and the latency each side recorded: blackbox's
`probe_duration_seconds` samples in the window from Prometheus' HTTP API, inferwatch's
`probe_results.latency_ms` rows in the window from its database.

Everything runs in a temp dir on free loopback ports, as child processes that are stopped at
the end (also on Ctrl-C, SIGTERM or an error; they get SIGTERM if this script is killed).
Needs root only to install the packages: apt-get install nginx-light prometheus
prometheus-blackbox-exporter.

    .venv/bin/python benchmarks/vs_blackbox.py                      # 500 targets x 5 s x 60 s
    .venv/bin/python benchmarks/vs_blackbox.py --targets 1000 --interval 10 --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from benchmarks.common import free_port
from monitor.store import reads
from monitor.store.db import make_engine

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOG_LINE = re.compile(r'^(?P<msec>[\d.]+) "(?P<req>[^"]*)" (?P<status>\d+) "(?P<ua>[^"]*)"$')


# --- processes -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if this script dies without cleaning up."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Children:
    """The processes this script started; all stopped (TERM, then KILL) by stop_all."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops them in order
        )
        out.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self.procs = [(n, p) for n, p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.procs)):
            self.stop(proc)


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17
    return sum(int(v) for v in fields[11:15]) / CLK_TCK


def tree_cpu(pids: list[int]) -> float:
    """CPU of the processes and their live descendants (reaped ones are in cutime/cstime)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat") as f:
                    s = f.read()
                ppid = int(s[s.rindex(")") + 2 :].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    total, todo, seen = 0.0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
        todo.extend(children.get(pid, []))
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    idle = cpu[3] + (cpu[4] if len(cpu) > 4 else 0)  # idle + iowait
    return (sum(cpu[:8]) - idle) / CLK_TCK  # user..steal; guest is inside user


def wait_until(what: str, check, timeout: float, procs=()) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: process {p.args[0]} exited with {p.returncode}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")


def http_get(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return bytes(r.read())


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- configs ---------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def nginx_conf(tmp: Path, port: int) -> str:
    return f"""
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 16384; }}
http {{
    log_format bench '$msec "$request" $status "$http_user_agent"';
    access_log {tmp}/access.log bench;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    keepalive_timeout 5s;
    server {{
        listen 127.0.0.1:{port};
        location /t/ {{
            default_type application/json;
            return 200 '{{"ok":true}}\\n';
        }}
    }}
}}
"""


def target_urls(port: int, n: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/t/{i}" for i in range(n)]


def blackbox_conf(timeout: float) -> str:
    # http_2xx as in the Debian default blackbox.yml, timeout explicit
    return f"modules:\n  http_2xx:\n    prober: http\n    timeout: {duration(timeout)}\n"


def prometheus_conf(urls: list[str], interval: float, timeout: float, bb_port: int) -> str:
    lines = [
        "global:",
        f"  scrape_interval: {duration(interval)}",
        f"  scrape_timeout: {duration(timeout)}",
        "  evaluation_interval: 1m",
        "scrape_configs:",
        "  - job_name: blackbox",
        "    metrics_path: /probe",
        "    params:",
        "      module: [http_2xx]",
        "    static_configs:",
        "      - targets:",
        *(f"          - {u}" for u in urls),
        "    relabel_configs:",
        "      - source_labels: [__address__]",
        "        target_label: __param_target",
        "      - source_labels: [__param_target]",
        "        target_label: instance",
        "      - target_label: __address__",
        f"        replacement: 127.0.0.1:{bb_port}",
    ]
    return "\n".join(lines) + "\n"


def inferwatch_conf(urls: list[str], interval: float, timeout: float, db: Path) -> str:
    lines = [
        f"database: sqlite:///{db}",
        f"defaults: {{interval: {duration(interval)}, timeout: {duration(timeout)}}}",
        "targets:",
        *(f'  - {{name: t{i}, kind: http, url: "{u}"}}' for i, u in enumerate(urls)),
    ]
    return "\n".join(lines) + "\n"


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    pids: list[int] = field(default_factory=list)
    t0: float = 0.0
    t1: float = 0.0
    cpu_window: float = 0.0
    cpu_lifetime: float = 0.0
    cpu_parts: dict[str, float] = field(default_factory=dict)
    nginx_cpu: float = 0.0
    others_cpu: float = 0.0
    probes: int = 0
    user_agents: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    recorded: int = 0
    not_ok: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def window(self) -> float:
        return self.t1 - self.t0


def count_probes(log: Path, t0: float, t1: float) -> tuple[int, dict[str, int]]:
    total, agents = 0, dict[str, int]()
    with open(log, errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line.rstrip("\n"))
            if not m or not m["req"].startswith("GET /t/"):
                continue
            if t0 <= float(m["msec"]) < t1:
                total += 1
                agents[m["ua"]] = agents.get(m["ua"], 0) + 1
    return total, agents


def wait_all_targets(
    what: str, log: Path, since: float, n: int, timeout: float, procs: list[subprocess.Popen[bytes]]
) -> float:
    """Wait until every one of the n target paths has been probed since `since`; its time."""
    seen: set[str] = set()
    offset = 0

    def check() -> bool:
        nonlocal offset
        with open(log, errors="replace") as f:
            f.seek(offset)
            chunk = f.read()
        end = chunk.rfind("\n") + 1
        offset += len(chunk[:end].encode())
        for line in chunk[:end].splitlines():
            m = LOG_LINE.match(line)
            if m and m["req"].startswith("GET /t/") and float(m["msec"]) >= since:
                seen.add(m["req"].split()[1])
        return len(seen) >= n

    wait_until(f"{what} (all {n} targets probed once)", check, timeout, procs)
    return time.time()


def measure_window(
    side: Side, warmup: float, seconds: float, nginx_pid: int, parts: dict[str, int]
) -> None:
    time.sleep(warmup)
    ng0 = tree_cpu([nginx_pid])
    before = {k: tree_cpu([p]) for k, p in parts.items()}
    busy0 = machine_busy()
    side.t0 = time.time()
    time.sleep(seconds)
    side.t1 = time.time()
    busy = machine_busy() - busy0
    after = {k: tree_cpu([p]) for k, p in parts.items()}
    side.nginx_cpu = tree_cpu([nginx_pid]) - ng0
    side.cpu_parts = {k: after[k] - before[k] for k in parts}
    side.cpu_window = sum(side.cpu_parts.values())
    # what else ran meanwhile (other jobs on a shared machine, this script's own sleep is ~0)
    side.others_cpu = max(0.0, busy - side.cpu_window - side.nginx_cpu)
    side.cpu_lifetime = sum(after.values())


def prom_query(port: int, query: str, at: float) -> list[dict[str, Any]]:
    qs = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}"})
    body = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/query?{qs}"))
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus query {query!r}: {body}")
    return list(body["data"]["result"])


def prom_samples(port: int, metric: str, side: Side) -> list[float]:
    # A range selector at t1 returns every raw sample in (t1 - window, t1]
    rng = f"{round(side.window * 1000)}ms"
    values: list[float] = []
    for series in prom_query(port, f"{metric}[{rng}]", side.t1):
        values.extend(float(v) for _, v in series["values"])
    return values


def run_blackbox(
    args: argparse.Namespace,
    tmp: Path,
    kids: Children,
    urls: list[str],
    nginx: subprocess.Popen[bytes],
) -> Side:
    side = Side("Prometheus + blackbox_exporter")
    start = time.time()
    bb_port, prom_port = free_port(), free_port()
    (tmp / "blackbox.yml").write_text(blackbox_conf(args.timeout))
    (tmp / "prometheus.yml").write_text(prometheus_conf(urls, args.interval, args.timeout, bb_port))
    bb = kids.start(
        "blackbox_exporter",
        [
            args.blackbox,
            f"--config.file={tmp}/blackbox.yml",
            f"--web.listen-address=127.0.0.1:{bb_port}",
            "--log.level=warn",
        ],
        tmp / "blackbox.log",
        tmp,
    )
    wait_until("blackbox_exporter", lambda: port_open(bb_port), 30, [bb])
    prom = kids.start(
        "prometheus",
        [
            args.prometheus,
            f"--config.file={tmp}/prometheus.yml",
            f"--storage.tsdb.path={tmp}/prometheus-data",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        tmp / "prometheus.log",
        tmp,
    )
    side.pids = [prom.pid, bb.pid]
    try:
        wait_until(
            "prometheus", lambda: http_get(f"http://127.0.0.1:{prom_port}/-/ready"), 60, [bb, prom]
        )
        wait_all_targets(
            "prometheus",
            tmp / "access.log",
            start,
            args.targets,
            60 + 3 * args.interval,
            [bb, prom],
        )
        measure_window(
            side,
            args.warmup,
            args.seconds,
            nginx.pid,
            {"prometheus": prom.pid, "blackbox_exporter": bb.pid},
        )
        for p in (bb, prom):
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited during the run")
        side.probes, side.user_agents = count_probes(tmp / "access.log", side.t0, side.t1)
        time.sleep(1)  # let the last scrapes of the window land in the head block
        side.latencies_ms = [
            v * 1000 for v in prom_samples(prom_port, "probe_duration_seconds", side)
        ]
        side.connect_ms = [
            v * 1000
            for v in prom_samples(prom_port, 'probe_http_duration_seconds{phase="connect"}', side)
        ]
        success = prom_samples(prom_port, "probe_success", side)
        side.recorded = len(success)
        side.not_ok = sum(1 for v in success if v != 1.0)
    finally:
        kids.stop(prom)
        kids.stop(bb)
    return side


def prepare_process() -> None:
    """Room for many sockets, and SIGINT/SIGTERM/SIGHUP raised as KeyboardInterrupt, so the
    caller's cleanup stops the children (a shell starting this in the background hands it
    SIGINT ignored)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)


def start_nginx(binary: str, tmp: Path, kids: Children) -> tuple[subprocess.Popen[bytes], int]:
    """nginx serving the targets from `tmp` on a free loopback port, once it accepts."""
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_conf(tmp, port))
    nginx = kids.start(
        "nginx",
        [binary, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(tmp / "nginx.conf")],
        tmp / "nginx.out",
        tmp,
    )
    wait_until("nginx", lambda: port_open(port), 30, [nginx])
    return nginx, port


def run_inferwatch(
    args: argparse.Namespace,
    tmp: Path,
    kids: Children,
    urls: list[str],
    nginx: subprocess.Popen[bytes],
) -> Side:
    side = Side("inferwatch run")
    start = time.time()
    db = tmp / "inferwatch.db"
    conf = tmp / "inferwatch.yaml"
    conf.write_text(inferwatch_conf(urls, args.interval, args.timeout, db))
    log = tmp / "inferwatch.log"
    iw = kids.start("inferwatch", [args.inferwatch, "run", "-c", str(conf)], log, tmp)
    side.pids = [iw.pid]
    try:
        wait_all_targets(
            "inferwatch run", tmp / "access.log", start, args.targets, 60 + 3 * args.interval, [iw]
        )
        measure_window(side, args.warmup, args.seconds, nginx.pid, {"inferwatch": iw.pid})
        if iw.poll() is not None:
            raise RuntimeError(f"inferwatch exited during the run:\n{tail(log)}")
        side.probes, side.user_agents = count_probes(tmp / "access.log", side.t0, side.t1)
    finally:
        kids.stop(iw, grace=20)
    if iw.returncode not in (0, -signal.SIGTERM):
        side.notes.append(f"inferwatch exited with {iw.returncode}")
    # Through the store's reads: on SQLite times and latencies are integer microseconds.
    engine = make_engine(f"sqlite:///{db}")
    try:
        with Session(engine) as session:
            probes = reads.probes_between(
                session,
                datetime.fromtimestamp(side.t0, UTC),
                datetime.fromtimestamp(side.t1, UTC),
            )
    finally:
        engine.dispose()
    rows = [(p.checked_at, p.latency_ms, p.connect_ms, p.outcome) for p in probes]
    for checked_at, latency, connect, outcome in rows:
        if side.t0 <= checked_at.timestamp() < side.t1:
            side.recorded += 1
            side.not_ok += outcome != "ok"
            if latency is not None:
                side.latencies_ms.append(float(latency))
            if connect is not None:
                side.connect_ms.append(float(connect))
    return side


# --- report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]  # nearest rank


def report(args: argparse.Namespace, sides: list[Side]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "targets": args.targets,
        "interval_s": args.interval,
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "sides": [],
    }
    print(
        f"\n{args.targets} loopback nginx targets, every {args.interval:g} s, "
        f"measured window {args.seconds:g} s, {args.warmup:g} s after every target's first probe, "
        f"fresh connection per probe on both sides\n"
    )
    hdr = (
        "side",
        "expected",
        "done",
        "recorded",
        "not ok",
        "CPU s",
        "CPU ms/probe",
        "nginx ms/probe",
        "p50 ms",
        "p99 ms",
        "connect p50",
        "connect p99",
    )
    fmt = "{:<31} {:>8} {:>7} {:>8} {:>6} {:>7} {:>12} {:>14} {:>7} {:>7} {:>11} {:>11}"
    print(fmt.format(*hdr))
    for s in sides:
        expected = args.targets * s.window / args.interval
        per_probe = s.cpu_window * 1000 / s.probes if s.probes else float("nan")
        nginx_pp = s.nginx_cpu * 1000 / s.probes if s.probes else float("nan")
        row = {
            "side": s.name,
            "window_s": round(s.window, 3),
            "expected": round(expected),
            "done": s.probes,
            "recorded": s.recorded,
            "not_ok": s.not_ok,
            "cpu_s": round(s.cpu_window, 2),
            "cpu_parts_s": {k: round(v, 2) for k, v in s.cpu_parts.items()},
            "cpu_ms_per_probe": round(per_probe, 3),
            "nginx_cpu_ms_per_probe": round(nginx_pp, 3),
            "cpu_lifetime_s": round(s.cpu_lifetime, 2),
            "other_processes_cores": round(s.others_cpu / s.window, 2) if s.window else None,
            "latency_p50_ms": round(pct(s.latencies_ms, 0.5), 3),
            "latency_p99_ms": round(pct(s.latencies_ms, 0.99), 3),
            "latency_min_ms": round(min(s.latencies_ms), 3) if s.latencies_ms else None,
            "connect_p50_ms": round(pct(s.connect_ms, 0.5), 3),
            "connect_p99_ms": round(pct(s.connect_ms, 0.99), 3),
            "user_agents": s.user_agents,
            "notes": s.notes,
        }
        out["sides"].append(row)
        print(
            fmt.format(
                s.name,
                row["expected"],
                s.probes,
                s.recorded,
                s.not_ok,
                f"{s.cpu_window:.2f}",
                f"{per_probe:.2f}",
                f"{nginx_pp:.3f}",
                f"{row['latency_p50_ms']:.2f}",
                f"{row['latency_p99_ms']:.2f}",
                f"{row['connect_p50_ms']:.2f}",
                f"{row['connect_p99_ms']:.2f}",
            )
        )
    print()
    for s, row in zip(sides, out["sides"], strict=True):
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in s.cpu_parts.items())
        agents = ", ".join(f"{n} x {ua!r}" for ua, n in sorted(s.user_agents.items()))
        print(
            f"{s.name}: CPU in the window {parts}; since start {s.cpu_lifetime:.2f} s; "
            f"latency min {row['latency_min_ms']} ms over {len(s.latencies_ms)} samples; "
            f"nginx saw {agents or 'nothing'}; other processes on the machine used "
            f"{row['other_processes_cores']} cores meanwhile"
        )
        for note in s.notes:
            print(f"  note: {note}")
    by_name = {s.name: row for s, row in zip(sides, out["sides"], strict=True)}
    ours, peer = by_name.get("inferwatch run"), by_name.get("Prometheus + blackbox_exporter")
    if ours and peer and peer["cpu_ms_per_probe"] > 0:
        ratio = ours["cpu_ms_per_probe"] / peer["cpu_ms_per_probe"]
        out["cpu_ratio"] = round(ratio, 3)
        print(
            f"\nCPU per probe, inferwatch / peer: {ratio:.2f}x "
            f"({ours['cpu_ms_per_probe']:.2f} vs {peer['cpu_ms_per_probe']:.2f} ms)"
        )
        d50 = ours["latency_p50_ms"] - peer["latency_p50_ms"]
        d99 = ours["latency_p99_ms"] - peer["latency_p99_ms"]
        out["latency_diff_p50_ms"], out["latency_diff_p99_ms"] = round(d50, 3), round(d99, 3)
        print(f"recorded latency, inferwatch - peer: p50 {d50:+.2f} ms, p99 {d99:+.2f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=500, help="N targets (default 500)")
    parser.add_argument("--interval", type=float, default=5.0, help="I seconds (default 5)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured window per side (default 60)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds between every target's first probe and the window (default interval + 1)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="probe timeout on both sides (default min(interval, 10))",
    )
    parser.add_argument("--sides", choices=["both", "inferwatch", "blackbox"], default="both")
    parser.add_argument("--inferwatch", default=str(REPO / ".venv/bin/inferwatch"))
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--blackbox", default="/usr/bin/prometheus-blackbox-exporter")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.interval + 1
    if args.timeout is None:
        args.timeout = min(args.interval, 10.0)
    needed = (
        [args.nginx]
        + ([args.inferwatch] if args.sides != "blackbox" else [])
        + ([args.prometheus, args.blackbox] if args.sides != "inferwatch" else [])
    )
    missing = [p for p in needed if not shutil.which(p)]
    if missing:
        sys.exit(
            f"missing: {', '.join(missing)} (apt-get install nginx-light prometheus "
            "prometheus-blackbox-exporter; make install for inferwatch)"
        )

    prepare_process()
    tmp = Path(tempfile.mkdtemp(prefix="vs_blackbox-"))
    kids = Children()
    sides: list[Side] = []
    try:
        nginx, port = start_nginx(args.nginx, tmp, kids)
        urls = target_urls(port, args.targets)
        print(f"temp dir {tmp}; nginx on 127.0.0.1:{port}", flush=True)
        if args.sides in ("both", "blackbox"):
            print("phase 1: Prometheus + blackbox_exporter ...", flush=True)
            sides.append(run_blackbox(args, tmp, kids, urls, nginx))
        if args.sides in ("both", "inferwatch"):
            print("phase 2: inferwatch run ...", flush=True)
            sides.append(run_inferwatch(args, tmp, kids, urls, nginx))
    except KeyboardInterrupt:
        print("interrupted: stopping the children", file=sys.stderr)
        kids.stop_all()
        sys.exit(130)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        for name in ("nginx-error.log", "blackbox.log", "prometheus.log", "inferwatch.log"):
            if (tmp / name).exists():
                print(f"--- {name}\n{tail(tmp / name)}", file=sys.stderr)
        raise
    finally:
        kids.stop_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    figures = report(args, sides)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
