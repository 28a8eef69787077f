"""Scale: 10,000 targets at 60 s on this machine, against loopback nginx targets (issue 9).

Starts its own nginx (Debian `nginx-light`, /usr/sbin/nginx) on a free 127.0.0.1 port answering
200 with a small JSON body on /t/0 ... /t/N-1 (access log in the temp dir), writes a config with
N `kind: http` targets at --interval and --timeout and a SQLite database in the temp dir, and
runs `inferwatch run -c CONFIG` as a child process (the config's default concurrency unless
--concurrency is given). It waits until nginx has seen every target once (the first round is
spread over the first second), then a warm-up (default one interval, so every target is on its
slot), then measures a window of --seconds:

  CPU share    utime + stime (+ cutime + cstime, + live descendants) of the inferwatch process
               from /proc/<pid>/stat over the window, divided by the window's wall time: the
               share of one core (goal < 50 %)
  RSS          VmRSS from /proc/<pid>/status every second: at the window's start, peak in the
               window and at its end; VmHWM (the peak since start, warm-up included) at the end
               (goal < 300 MB)
  probes       rows of probe_results with checked_at in the window (done) against
               N x window / interval (expected); nginx's access-log lines in the window as a check
  false fail.  rows in the window whose outcome is not "ok": every target is a healthy nginx
               path, so each one is a false failure (goal 0)
  lag          checked_at (when the probe started) minus its slot, a target's slots being
               ANCHOR + slot_offset(name, interval) + k x interval (monitor/agent/scheduler.py):
               p50, p99 and max over the window's probes (goal p99 < 100 ms)
  bytes/probe  growth of the database file + its -wal over the window / probes in the window,
               and after `VACUUM INTO` a copy: the whole file / all probe_results rows, and
               probe_results' own pages (table + indexes, from dbstat) / rows
               (goal <= 150 bytes per ok probe)

Rows are read through SQLAlchemy with monitor/store/models.py's ProbeRecord and TargetRecord,
after inferwatch has stopped, so the figures do not depend on how checked_at is stored.
It also reports nginx's CPU in the window, what other processes on the machine used meanwhile
(a busy machine skews lag and CPU), and inferwatch's WARNING/ERROR log lines (missed or
skipped probes among them).

Everything runs in a temp dir on free loopback ports, as child processes that are stopped at
the end (also on Ctrl-C, SIGTERM, SIGHUP or an error; they get SIGTERM if this script is
killed). Prints the figures with the goal next to each; --json FILE saves them.

    .venv/bin/python benchmarks/scale.py                            # 10000 x 60 s, 600 s window
    .venv/bin/python benchmarks/scale.py --targets 2000 --interval 20 --seconds 60
    .venv/bin/python benchmarks/scale.py --seconds 180 --json /tmp/scale.json --keep
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.vs_blackbox import (
    REPO,
    Children,
    count_probes,
    inferwatch_conf,
    machine_busy,
    pct,
    prepare_process,
    start_nginx,
    tail,
    target_urls,
    tree_cpu,
    wait_all_targets,
)
from monitor.agent.scheduler import ANCHOR, slot_offset
from monitor.store import reads
from monitor.store.db import make_engine

GOALS = {
    "cpu_share_pct": 50.0,  # of one core, on average
    "rss_mb": 300.0,
    "false_failures": 0,
    "lag_p99_ms": 100.0,
    "bytes_per_ok_probe": 150.0,
}
LOG_LEVEL = re.compile(r" (WARNING|ERROR|CRITICAL) ")


# --- sampling ----------------------------------------------------------------------------------


def status_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def db_bytes(db: Path) -> int:
    """The database file and its -wal, in bytes (the -shm index is not data)."""
    total = 0
    for p in (db, db.with_name(db.name + "-wal")):
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


def db_used_bytes(db: Path) -> int:
    """The pages in use as a reader sees the database now (WAL frames included, free pages not)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    return int((pages - free) * size)


@dataclass
class Run:
    t_start: float = 0.0  # inferwatch started
    t_all: float = 0.0  # every target probed once
    t0: float = 0.0  # window
    t1: float = 0.0
    cpu: float = 0.0  # inferwatch, in the window
    cpu_lifetime: float = 0.0
    nginx_cpu: float = 0.0
    others_cpu: float = 0.0
    rss_kb: list[tuple[float, int]] = field(default_factory=list)  # (time, VmRSS) every second
    hwm_kb: int = 0
    db0: int = 0
    db1: int = 0
    used0: int = 0  # pages in use
    used1: int = 0
    nginx_probes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def window(self) -> float:
        return self.t1 - self.t0


def watch(
    run: Run, iw: subprocess.Popen[bytes], until: float, log: Path, every: float = 1.0
) -> None:
    """Sleep until `until`, sampling inferwatch's RSS every second; fail if it exits."""
    while True:
        if iw.poll() is not None:
            raise RuntimeError(f"inferwatch exited with {iw.returncode}:\n{tail(log)}")
        with contextlib.suppress(OSError, KeyError):
            run.rss_kb.append((time.time(), status_kb(iw.pid, "VmRSS")))
        left = until - time.time()
        if left <= 0:
            return
        time.sleep(min(every, left))


def stalled(run: Run, what: str, late: float) -> None:
    """Note a stall of this script (an overloaded or swapping machine): the figures are off."""
    if late > 2.0:
        run.notes.append(
            f"this script stalled {late:.1f} s {what} (machine overloaded, "
            "out of memory?): the CPU, lag and probe figures are not to be trusted"
        )


# --- reading the database ----------------------------------------------------------------------


@dataclass
class Rows:
    done: int = 0
    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # "outcome: detail" of the not-ok
    lags_ms: list[float] = field(default_factory=list)
    early: int = 0  # started before their slot (should never happen)


def lag_seconds(checked_at: datetime, name: str, interval: float) -> float:
    """checked_at minus the target's latest slot; a start just before a slot counts as early."""
    since = (checked_at - ANCHOR).total_seconds() - slot_offset(name, interval)
    lag = since % interval
    return lag - interval if lag > interval - min(1.0, interval / 10) else lag


def read_rows(db: Path, t0: float, t1: float, interval: float) -> Rows:
    rows = Rows()
    engine = make_engine(f"sqlite:///{db}")
    lo, hi = datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC)
    try:
        with Session(engine) as session:
            rows.total = reads.probe_count(session)
            samples = reads.probes_between(session, lo, hi)
    finally:
        engine.dispose()
    for probe in samples:
        rows.done += 1
        rows.outcomes[probe.outcome] += 1
        if probe.outcome != "ok":
            rows.failures[f"{probe.outcome}: {(probe.detail or '').strip()[:100]}"] += 1
        lag = lag_seconds(probe.checked_at, probe.target, interval)
        rows.early += lag < 0
        rows.lags_ms.append(lag * 1000)
    return rows


def vacuumed_sizes(db: Path, copy: Path) -> tuple[int, int | None]:
    """VACUUM INTO a copy: its size, and probe_results' own pages (table + indexes) in it."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        con.execute("VACUUM INTO ?", (str(copy),))
    finally:
        con.close()
    size = copy.stat().st_size
    con = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        own: int | None = con.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN "
            "(SELECT name FROM sqlite_master WHERE tbl_name = 'probe_results')"
        ).fetchone()[0]
    except sqlite3.Error:  # SQLite built without the dbstat table
        own = None
    finally:
        con.close()
    return size, own


def log_lines(log: Path, t0: float, t1: float) -> dict[str, Counter[str]]:
    """inferwatch's WARNING/ERROR lines before, in and after the window, by message (target
    names and times folded)."""
    seen: dict[str, Counter[str]] = {"before": Counter(), "window": Counter(), "after": Counter()}
    with contextlib.suppress(OSError), open(log, errors="replace") as f:
        for line in f:
            m = LOG_LEVEL.search(line)
            if not m:
                continue
            try:  # logging's asctime, local time
                at = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
                at += int(line[20:23]) / 1000
            except ValueError:
                at = t0  # a continuation line: count it in the window, to be seen
            msg = line[m.start() + 1 :].rstrip()
            msg = re.sub(r"\bt\d+\b|/t/\d+", lambda m: m[0].rstrip("0123456789") + "<i>", msg)
            msg = re.sub(r"\d{4}-\d\d-\d\d[ T][\d:.+]+", "<time>", msg)
            part = "before" if at < t0 else "window" if at < t1 else "after"
            seen[part][msg[:160]] += 1
    return seen


# --- the run ---------------------------------------------------------------------------------


def measure(args: argparse.Namespace, tmp: Path, kids: Children) -> dict[str, Any]:
    nginx, port = start_nginx(args.nginx, tmp, kids)
    db, conf, log = tmp / "inferwatch.db", tmp / "inferwatch.yaml", tmp / "inferwatch.log"
    text = inferwatch_conf(target_urls(port, args.targets), args.interval, args.timeout, db)
    if args.concurrency:
        text = f"concurrency: {args.concurrency}\n" + text
    conf.write_text(text)
    print(f"temp dir {tmp}; nginx on 127.0.0.1:{port}; starting inferwatch run ...", flush=True)

    run = Run(t_start=time.time())
    iw = kids.start("inferwatch", [args.inferwatch, "run", "-c", str(conf)], log, tmp)
    try:
        run.t_all = wait_all_targets(
            "inferwatch run",
            tmp / "access.log",
            run.t_start,
            args.targets,
            120 + 3 * args.interval,
            [iw],
        )
        print(
            f"every target probed once after {run.t_all - run.t_start:.1f} s; "
            f"warm-up {args.warmup:g} s, then a {args.seconds:g} s window ...",
            flush=True,
        )
        watch(run, iw, run.t_all + args.warmup, log)
        before = time.time()
        cpu0, ng0, busy0 = tree_cpu([iw.pid]), tree_cpu([nginx.pid]), machine_busy()
        run.db0, run.used0 = db_bytes(db), db_used_bytes(db)
        run.t0 = time.time()
        stalled(run, "at the window's start", run.t0 - before)
        watch(run, iw, run.t0 + args.seconds, log)
        run.t1 = time.time()
        stalled(run, "in the window", run.t1 - run.t0 - args.seconds)
        run.db1, run.used1 = db_bytes(db), db_used_bytes(db)
        cpu1, busy = tree_cpu([iw.pid]), machine_busy() - busy0
        run.nginx_cpu = tree_cpu([nginx.pid]) - ng0
        stalled(run, "at the window's end", time.time() - run.t1)
        run.cpu, run.cpu_lifetime = cpu1 - cpu0, cpu1
        run.others_cpu = max(0.0, busy - run.cpu - run.nginx_cpu)
        run.hwm_kb = status_kb(iw.pid, "VmHWM")
    finally:
        kids.stop(iw, grace=30)
    if iw.returncode not in (0, -signal.SIGTERM):
        run.notes.append(f"inferwatch exited with {iw.returncode} when stopped")
    run.nginx_probes, _ = count_probes(tmp / "access.log", run.t0, run.t1)
    rows = read_rows(db, run.t0, run.t1, args.interval)
    vac_size, vac_own = vacuumed_sizes(db, tmp / "vacuumed.db")
    return figures(args, run, rows, vac_size, vac_own, log_lines(log, run.t0, run.t1))


def figures(
    args: argparse.Namespace,
    run: Run,
    rows: Rows,
    vac_size: int,
    vac_own: int | None,
    logged: dict[str, Counter[str]],
) -> dict[str, Any]:
    in_window = [kb for t, kb in run.rss_kb if run.t0 <= t <= run.t1 + 1]
    mb = 1024.0
    ok = rows.outcomes.get("ok", 0)
    false_failures = rows.done - ok

    def per(n: float, d: int) -> float | None:
        return round(n / d, 1) if d else None

    return {
        "targets": args.targets,
        "interval_s": args.interval,
        "timeout_s": args.timeout,
        "concurrency": args.concurrency,
        "window_s": round(run.window, 3),
        "warmup_s": args.warmup,
        "first_round_s": round(run.t_all - run.t_start, 3),
        "cpu_share_pct": round(100 * run.cpu / run.window, 2),
        "cpu_s": round(run.cpu, 2),
        "cpu_ms_per_probe": round(1000 * run.cpu / rows.done, 3) if rows.done else None,
        "cpu_lifetime_s": round(run.cpu_lifetime, 2),
        "nginx_cpu_share_pct": round(100 * run.nginx_cpu / run.window, 2),
        "other_processes_cores": round(run.others_cpu / run.window, 2),
        "rss_start_mb": round(in_window[0] / mb, 1) if in_window else None,
        "rss_peak_mb": round(max(in_window) / mb, 1) if in_window else None,
        "rss_end_mb": round(in_window[-1] / mb, 1) if in_window else None,
        "rss_hwm_mb": round(run.hwm_kb / mb, 1),
        "probes_done": rows.done,
        "probes_expected": round(args.targets * run.window / args.interval),
        "probes_nginx": run.nginx_probes,
        "outcomes": dict(rows.outcomes),
        "false_failures": false_failures,
        "failures": dict(rows.failures.most_common(10)),
        "lag_p50_ms": round(pct(rows.lags_ms, 0.5), 2),
        "lag_p99_ms": round(pct(rows.lags_ms, 0.99), 2),
        "lag_max_ms": round(max(rows.lags_ms), 2) if rows.lags_ms else None,
        "lag_min_ms": round(min(rows.lags_ms), 2) if rows.lags_ms else None,
        "probes_early": rows.early,
        "db_growth_bytes": run.db1 - run.db0,
        "bytes_per_probe_growth": per(run.db1 - run.db0, rows.done),
        "used_growth_bytes": run.used1 - run.used0,
        "bytes_per_probe_used_growth": per(run.used1 - run.used0, rows.done),
        "rows_total": rows.total,
        "vacuumed_bytes": vac_size,
        "bytes_per_probe_vacuumed": per(vac_size, rows.total),
        "bytes_per_probe_table": per(vac_own, rows.total) if vac_own is not None else None,
        "log_warnings": {k: dict(c.most_common(20)) for k, c in logged.items()},
        "notes": run.notes,
        "goals": GOALS,
    }


# --- report ----------------------------------------------------------------------------------


def report(f: dict[str, Any]) -> None:
    def mark(passed: bool | None) -> str:
        return "" if passed is None else ("ok" if passed else "MISSED")

    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    lines: list[tuple[str, str, str, str]] = [
        ("targets x interval", f"{f['targets']} x {f['interval_s']:g} s", "", ""),
        ("window", f"{f['window_s']:.0f} s (after {f['warmup_s']:g} s warm-up)", "", ""),
        (
            "CPU share of one core",
            f"{f['cpu_share_pct']:.1f} % ({num(f['cpu_ms_per_probe'], '{:.3f}')} ms/probe)",
            "< 50 %",
            mark(f["cpu_share_pct"] < GOALS["cpu_share_pct"]),
        ),
        (
            "RSS peak / end",
            f"{num(f['rss_peak_mb'])} / {num(f['rss_end_mb'])} MB "
            f"(start {num(f['rss_start_mb'])}, VmHWM {f['rss_hwm_mb']:.1f})",
            "< 300 MB",
            mark(f["rss_peak_mb"] is not None and f["rss_peak_mb"] < GOALS["rss_mb"]),
        ),
        (
            "probes done / expected",
            f"{f['probes_done']} / {f['probes_expected']} (nginx saw {f['probes_nginx']})",
            "",
            "",
        ),
        ("false failures", str(f["false_failures"]), "0", mark(f["false_failures"] == 0)),
        (
            "lag p50 / p99 / max",
            f"{num(f['lag_p50_ms'])} / {num(f['lag_p99_ms'])} / {num(f['lag_max_ms'])} ms",
            "p99 < 100 ms",
            mark(bool(f["lag_p99_ms"] < GOALS["lag_p99_ms"])),
        ),
        (
            "bytes/probe: file growth",
            f"{num(f['bytes_per_probe_growth'])} ({f['db_growth_bytes']} B, db + wal; "
            f"pages in use {num(f['bytes_per_probe_used_growth'])})",
            "<= 150",
            "",
        ),
        (
            "bytes/probe: VACUUMed",
            f"{num(f['bytes_per_probe_vacuumed'])} file, {num(f['bytes_per_probe_table'])} "
            f"probe_results ({f['rows_total']} rows)",
            "<= 150",
            mark(
                f["bytes_per_probe_table"] <= GOALS["bytes_per_ok_probe"]
                if f["bytes_per_probe_table"] is not None
                else None
            ),
        ),
    ]
    print()
    for name, value, goal, verdict in lines:
        print(f"{name:<26} {value:<58} {goal:<13} {verdict}")
    print(
        f"\nfirst round {f['first_round_s']:.1f} s; outcomes {f['outcomes']}; "
        f"probes started before their slot {f['probes_early']} (lag min {f['lag_min_ms']} ms); "
        f"inferwatch CPU since start {f['cpu_lifetime_s']:.1f} s; nginx {f['nginx_cpu_share_pct']}"
        f" % of a core; other processes used {f['other_processes_cores']} cores meanwhile"
    )
    for failure, n in f["failures"].items():
        print(f"  false failure x{n}: {failure}")
    for part, what in (
        ("before", "before the window (start-up, warm-up)"),
        ("window", "in the window"),
        ("after", "after the window (stopping)"),
    ):
        if f["log_warnings"][part]:
            print(f"inferwatch logged (WARNING and above) {what}:")
            for msg, n in f["log_warnings"][part].items():
                print(f"  {n:>6} x {msg}")
    for note in f["notes"]:
        print(f"WARNING: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=10000, help="N targets (default 10000)")
    parser.add_argument(
        "--interval", type=float, default=60.0, help="probe interval, seconds (default 60)"
    )
    parser.add_argument(
        "--seconds", type=float, default=600.0, help="measured window, seconds (default 600)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds between every target's first probe and the window (default one interval)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="probe timeout, seconds (default 5)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="the config's `concurrency` (default: not set, the monitor's default)",
    )
    parser.add_argument(
        "--inferwatch",
        default=str(REPO / ".venv/bin/inferwatch"),
        help="the inferwatch command (default: the repo's .venv/bin/inferwatch)",
    )
    parser.add_argument("--nginx", default="/usr/sbin/nginx", help="(default /usr/sbin/nginx)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.interval
    missing = [p for p in (args.nginx, args.inferwatch) if not shutil.which(p)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install nginx-light; make install)")

    prepare_process()
    tmp = Path(tempfile.mkdtemp(prefix="scale-"))
    kids = Children()
    try:
        figs = measure(args, tmp, kids)
    except KeyboardInterrupt:
        print("interrupted: stopping the children", file=sys.stderr)
        kids.stop_all()
        sys.exit(130)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        for name in ("nginx-error.log", "inferwatch.log"):
            if (tmp / name).exists():
                print(f"--- {name}\n{tail(tmp / name)}", file=sys.stderr)
        raise
    finally:
        kids.stop_all()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(figs)
    if args.json:
        args.json.write_text(json.dumps(figs, indent=2) + "\n")


if __name__ == "__main__":
    main()
