"""Several agents on one PostgreSQL (issue 13): CPU per agent and of PostgreSQL, the write rate,
the takeover after a `kill -9`, and the alert latency.

Starts a throwaway Debian PostgreSQL (initdb + pg_ctl in a temp dir, on a Unix socket, run as
user postgres when this script is root), nginx (Debian `nginx-light`) on a free loopback port
answering 200 on /t/0 ... /t/N-1 and on /fail (503 while a flag file exists), and a local SMTP
server (aiosmtpd) that notes when each message arrives. It writes one config for all agents: N
`kind: http` targets at --interval, one more target `failing` on /fail at --fail-interval, email
alerts to the local server, `database:` the throwaway PostgreSQL; then starts --agents processes
`inferwatch run -c CONFIG --agent a1 --region r1` ... (--regions R spreads them round robin over
r1..rR). It waits until nginx has seen every target once, a warm-up (default one interval: the
agents have found each other and share the targets), then measures a window of --seconds:

  CPU per agent   utime + stime (+ children) of each agent process from /proc/<pid>/stat over
                  the window, as a share of one core, and its VmRSS at the window's end
  PostgreSQL CPU  the same for the postmaster and all its processes (backends that exited are
                  in the postmaster's cutime/cstime), as a share of one core
  write rate      probe_results rows with checked_at in the window, per second, in all and per
                  agent (each agent's share of the targets), against N x regions / interval:
                  every region probes every target, so R regions write R rows per target
  handed over     with R > 1, the results an agent hands to the target's holder in another
                  region (region_results; the holder takes and decides them): derived per agent
                  as its rows/s x the share of the targets it probed in the window that it does
                  not hold at the window's end (the handed rows are deleted when taken, so they
                  cannot be counted afterwards); expected (R - 1) / R of all rows
  machine         what the whole machine was busy meanwhile (2 cores = 200 %)

After the window, two events, one after the other:

  alert latency   the flag file is created: `failing` answers 503; its holder confirms the
                  failure after `failure_threshold` probes and the sender emails it. Measured
                  from the end of the confirming probe (the transition's probe: checked_at +
                  latency_ms) to the message's arrival at the SMTP server; then the flag is
                  removed and the recovery email measured the same way
  takeover        the last agent of region r1 gets `kill -9`. Its targets are those it probed in
                  the last interval. Measured from probe rows' agent_id: per target, the first
                  probe by another agent of its region after the kill (p50 / max of the delay
                  since the kill), and the time until target_states.holder names another agent
                  for all of the targets it held (polled every 0.5 s). Alone in its region (R
                  regions x 1 agent), nobody probes in its place (its region stops reporting;
                  the quorum counts the others): only the holder's move is measured, to agents
                  of the other regions

Rows are read through SQLAlchemy on monitor/store/models.py's models. Everything runs in temp
dirs as child processes that are stopped at the end (also on Ctrl-C, SIGTERM, SIGHUP or an
error); PostgreSQL is stopped with `pg_ctl -m immediate` and its files removed (--keep keeps
them). Prints the figures; --json FILE saves them. Needs root only to install the packages:
apt-get install postgresql nginx-light.

    .venv/bin/python benchmarks/agents.py                      # 10,000 x 60 s, 3 agents, 120 s
    .venv/bin/python benchmarks/agents.py --targets 300 --interval 10 --seconds 20
    .venv/bin/python benchmarks/agents.py --agents 4 --regions 2 --json /tmp/agents.json
    .venv/bin/python benchmarks/agents.py --targets 3000 --regions 3   # 3 regions x 1 agent
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port
from benchmarks.vs_blackbox import (
    REPO,
    Children,
    count_probes,
    duration,
    machine_busy,
    nginx_conf,
    pct,
    port_open,
    prepare_process,
    tail,
    target_urls,
    tree_cpu,
    wait_all_targets,
    wait_until,
)
from monitor.domain.agents import HEARTBEAT_S, LOST_AFTER_S
from monitor.store import reads
from monitor.store.db import make_engine

FAILING = "failing"  # the target made to fail for the alert latency

# --- the servers -----------------------------------------------------------------------------


class Postgres:
    """A throwaway cluster in `root` on a Unix socket; as user postgres when we are root
    (initdb refuses root)."""

    def __init__(self, root: Path):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            sys.exit("missing: Debian's PostgreSQL (apt-get install postgresql)")
        self.bin, self.root, self.data = bins[-1], root, root / "data"
        self.port = free_port()  # only the socket file's name uses it
        self.url = f"postgresql+psycopg://postgres@/agents?host={root}&port={self.port}"
        self.version = Path(self.bin).parent.name
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        self._run(f"{self.bin}/initdb -D {self.data} -A trust -U postgres")
        self._run(
            f"{self.bin}/pg_ctl -D {self.data} -l {root}/log -w start "
            f"-o '-p {self.port} -k {root} -c listen_addresses='"
        )
        self._run(
            f"{self.bin}/psql -h {root} -p {self.port} -U postgres -qc 'create database agents'"
        )

    def _run(self, command: str) -> None:
        argv = ["su", "postgres", "-c", command] if os.geteuid() == 0 else ["sh", "-c", command]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{command}: {done.stdout}{done.stderr}")

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(f"{self.bin}/pg_ctl -D {self.data} -m immediate -w stop")


class _Collect:
    def __init__(self, arrived: list[float]):
        self.arrived = arrived

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.arrived.append(time.time())
        return "250 OK"


def start_nginx(binary: str, tmp: Path, flag: Path, kids: Children) -> tuple[int, int]:
    """nginx serving /t/<i> (200) and /fail (503 while `flag` exists); (pid, port)."""
    port = free_port()
    fail = (
        "        location = /fail {\n"
        "            default_type application/json;\n"
        f'            if (-f {flag}) {{ return 503 \'{{"error":"down"}}\\n\'; }}\n'
        "            return 200 '{\"ok\":true}\\n';\n"
        "        }\n"
    )
    conf = nginx_conf(tmp, port).replace("        location /t/ {", fail + "        location /t/ {")
    (tmp / "nginx.conf").write_text(conf)
    nginx = kids.start(
        "nginx",
        [binary, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(tmp / "nginx.conf")],
        tmp / "nginx.out",
        tmp,
    )
    wait_until("nginx", lambda: port_open(port), 30, [nginx])
    return nginx.pid, port


def config_text(args: argparse.Namespace, url: str, port: int, smtp_port: int) -> str:
    lines = [
        f'database: "{url}"',
        f"defaults: {{interval: {duration(args.interval)}, timeout: {duration(args.timeout)}}}",
        "alerts:",
        f"  email: {{host: 127.0.0.1, port: {smtp_port}, security: none, "
        "sender: iw@example.com, recipients: [oncall@example.com], timeout: 2s}",
        "targets:",
        f'  - {{name: {FAILING}, kind: http, url: "http://127.0.0.1:{port}/fail", '
        f"interval: {duration(args.fail_interval)}, timeout: {duration(args.fail_interval / 2)}}}",
        *(
            f'  - {{name: t{i}, kind: http, url: "{u}"}}'
            for i, u in enumerate(target_urls(port, args.targets))
        ),
    ]
    return "\n".join(lines) + "\n"


# --- reading the database --------------------------------------------------------------------


def utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def agent_ids(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return reads.agent_ids(conn)


def probes_by_agent(engine: Engine, t0: float, t1: float) -> Counter[int | None]:
    with engine.connect() as conn:
        return Counter(reads.probes_by_agent(conn, utc(t0), utc(t1)))


def handed_over(
    engine: Engine, ids: dict[str, int], counted: Counter[int | None], t0: float
) -> dict[str, float]:
    """Per agent, the rows of the window it handed to another region's holder: its rows x the
    share of what it probed that it does not hold (held is a subset of probed)."""
    out = {}
    with engine.connect() as conn:
        for name, agent in ids.items():
            probed = reads.targets_probed_by(conn, agent, utc(t0))
            if probed:
                held = reads.targets_held_by(conn, agent) & probed
                out[name] = counted.get(agent, 0) * (1 - len(held) / len(probed))
    return out


def alert_latency(engine: Engine, target_id: int, to_ok: bool, arrived: float) -> dict[str, Any]:
    """The latest transition of `target_id` to ok (or away from it): its confirming probe's end
    to the email's arrival."""
    with engine.connect() as conn:
        row = reads.latest_deciding_probe(conn, target_id, to_ok)
    assert row is not None, "the transition behind the email is not stored"
    end = row.checked_at.timestamp() + (row.latency_ms or 0) / 1000
    return {"latency_ms": round(1000 * (arrived - end), 1), "decided_by": row.agent}


def warned(lines: list[str], phases: list[tuple[str, float]]) -> dict[str, int]:
    """Log lines counted by the phase they fell in (logging's asctime is local time)."""
    counted: Counter[str] = Counter()
    for line in lines:
        try:
            at = time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S"))
        except ValueError:  # a traceback's continuation line: counted in the last phase
            at = float("inf")
        counted[next((name for name, end in phases if at < end), phases[-1][0])] += 1
    return dict(counted)


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Figures:
    window: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] = field(default_factory=dict)
    takeover: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def measure_window(
    args: argparse.Namespace,
    agents: dict[str, subprocess.Popen[bytes]],
    pg: Postgres,
    nginx: int,
    engine: Engine,
    tmp: Path,
) -> dict[str, Any]:
    def cpu() -> dict[str, float]:
        out = {n: tree_cpu([p.pid]) for n, p in agents.items()}
        out["postgres"], out["nginx"] = tree_cpu([pg.postmaster()]), tree_cpu([nginx])
        return out

    c0, busy0, t0 = cpu(), machine_busy(), time.time()
    time.sleep(args.seconds)
    c1, busy1, t1 = cpu(), machine_busy(), time.time()
    rss = {}
    for name, proc in agents.items():
        if proc.poll() is not None:
            raise RuntimeError(f"agent {name} exited with {proc.returncode}")
        with open(f"/proc/{proc.pid}/status") as f:
            rss[name] = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) / 1024
    window = t1 - t0
    share = {k: round(100 * (c1[k] - c0[k]) / window, 1) for k in c0}
    ids = agent_ids(engine)
    counted = probes_by_agent(engine, t0, t1)
    rows = sum(counted.values())
    handed = handed_over(engine, ids, counted, t0) if args.regions > 1 else {}
    nginx_seen, _ = count_probes(tmp / "access.log", t0, t1)
    fail_rate = 1 / args.fail_interval
    return {
        "seconds": round(window, 1),
        "t0": t0,
        "t1": t1,
        "cpu_pct": share,
        "rss_mb": {k: round(v, 1) for k, v in rss.items()},
        "machine_busy_pct": round(100 * (busy1 - busy0) / window, 1),
        "rows": rows,
        "rows_per_s": round(rows / window, 1),
        "expected_per_s": round(args.regions * (args.targets / args.interval + fail_rate), 1),
        "rows_per_s_by_agent": {n: round(counted.get(i, 0) / window, 1) for n, i in ids.items()},
        "handed_per_s": round(sum(handed.values()) / window, 1),
        "handed_per_s_by_agent": {n: round(h / window, 1) for n, h in handed.items()},
        "nginx_requests_per_s": round(nginx_seen / window, 1),
    }


def measure_alert(
    args: argparse.Namespace, engine: Engine, flag: Path, arrived: list[float]
) -> dict[str, Any]:
    with engine.connect() as conn:
        target = reads.target_id(conn, FAILING)
    assert target is not None, f"no target {FAILING!r} in the database"
    before = len(arrived)
    timeout = 30 + 4 * args.fail_interval * 5
    flag.touch()
    started = time.time()
    wait_until("the failure's email", lambda: len(arrived) > before, timeout)
    down = alert_latency(engine, target, False, arrived[before])
    down["since_failing_s"] = round(arrived[before] - started, 2)
    flag.unlink()
    wait_until("the recovery's email", lambda: len(arrived) > before + 1, timeout)
    up = alert_latency(engine, target, True, arrived[before + 1])
    time.sleep(2 * args.fail_interval)  # a doubled send would have arrived by now
    return {"failure": down, "recovery": up, "emails": len(arrived) - before}


def measure_takeover(
    args: argparse.Namespace,
    agents: dict[str, subprocess.Popen[bytes]],
    regions: dict[str, str],
    engine: Engine,
) -> dict[str, Any]:
    victim = [n for n in agents if regions[n] == "r1"][-1]
    peers = {n for n in agents if regions[n] == "r1" and n != victim}
    if len(agents) == 1:  # nobody would take over: the wait would only run out
        return {"killed": None}
    ids = agent_ids(engine)
    if not peers:
        return holder_move(args, agents[victim], ids[victim], victim, engine)
    me, others = ids[victim], [ids[n] for n in peers]
    now = time.time()
    with engine.connect() as conn:
        # 1.5 intervals: the writer commits a probe up to a batch late
        mine = reads.targets_probed_by(conn, me, utc(now - 1.5 * args.interval))
        held = reads.targets_held_by(conn, me)
    agents[victim].send_signal(signal.SIGKILL)
    killed = time.time()
    agents[victim].wait(10)

    def resumed() -> dict[int, float]:
        with engine.connect() as conn:
            rows = reads.first_probes_by(conn, others, utc(killed))
        return {t: at.timestamp() for t, at in rows.items() if t in mine}

    handed: float | None = None
    deadline = killed + LOST_AFTER_S + 4 * HEARTBEAT_S + args.interval + 60
    while time.time() < deadline:
        if handed is None:
            with engine.connect() as conn:
                still = len(reads.targets_held_by(conn, me))
            if not still:
                handed = time.time() - killed
        if handed is not None and len(resumed()) == len(mine):
            break
        time.sleep(0.5)
    first = resumed()
    delays = [at - killed for at in first.values()]
    with engine.connect() as conn:
        last = reads.last_probes_by(conn, me)
    gaps = [first[t] - last[t].timestamp() for t in first if t in last]
    return {
        "killed": victim,
        "killed_at": killed,
        "targets_probed": len(mine),
        "targets_held": len(held),
        "probed_again": len(first),
        "first_probe_s": round(min(delays), 2) if delays else None,
        "probe_p50_s": round(pct(delays, 0.5), 2) if delays else None,
        "probe_max_s": round(max(delays), 2) if delays else None,
        "holder_moved_s": round(handed, 1) if handed is not None else None,
        "gap_p50_s": round(pct(gaps, 0.5), 2) if gaps else None,
        "gap_max_s": round(max(gaps), 2) if gaps else None,
    }


def holder_move(
    args: argparse.Namespace,
    proc: subprocess.Popen[bytes],
    me: int,
    victim: str,
    engine: Engine,
) -> dict[str, Any]:
    """kill -9 of an agent alone in its region: until the agents of the other regions hold
    every target it held (nobody probes in its place)."""
    with engine.connect() as conn:
        held = reads.targets_held_by(conn, me)
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    proc.wait(10)
    handed: float | None = None
    deadline = killed + LOST_AFTER_S + 4 * HEARTBEAT_S + args.interval + 60
    while handed is None and time.time() < deadline:
        with engine.connect() as conn:
            if not reads.targets_held_by(conn, me):
                handed = time.time() - killed
        time.sleep(0.5)
    return {
        "killed": victim,
        "killed_at": killed,
        "alone_in_region": True,
        "targets_held": len(held),
        "holder_moved_s": round(handed, 1) if handed is not None else None,
    }


def run(args: argparse.Namespace, tmp: Path, pgdir: Path, kids: Children) -> Figures:
    figures = Figures()
    tmp.chmod(0o755)  # nginx's workers (nobody) test the flag file in it
    flag = tmp / "fail.flag"
    pg = Postgres(pgdir)
    arrived: list[float] = []
    smtp_port = free_port()
    smtp = Controller(_Collect(arrived), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    engine: Engine | None = None
    try:
        nginx, port = start_nginx(args.nginx, tmp, flag, kids)
        conf = tmp / "inferwatch.yaml"
        conf.write_text(config_text(args, pg.url, port, smtp_port))
        print(f"temp dir {tmp}; PostgreSQL {pg.version} in {pgdir}; nginx :{port}", flush=True)
        # The schema first, as a deployment does: agents started together on an empty
        # database race to create it (alembic's CREATE TABLE), and all but one exit 1.
        subprocess.run(
            [args.inferwatch, "db", "upgrade", "-c", str(conf)],
            check=True,
            capture_output=True,
        )
        regions = {f"a{i + 1}": f"r{i % args.regions + 1}" for i in range(args.agents)}
        agents: dict[str, subprocess.Popen[bytes]] = {}
        start = time.time()
        for name, region in regions.items():
            argv = [args.inferwatch, "run", "-c", str(conf), "--agent", name, "--region", region]
            agents[name] = kids.start(name, argv, tmp / f"{name}.log", tmp)
        all_seen = wait_all_targets(
            "the agents",
            tmp / "access.log",
            start,
            args.targets,
            120 + 3 * args.interval,
            list(agents.values()),
        )
        print(
            f"every target probed once after {all_seen - start:.1f} s; warm-up {args.warmup:g} s,"
            f" then a {args.seconds:g} s window ...",
            flush=True,
        )
        time.sleep(args.warmup)
        engine = make_engine(pg.url)
        figures.window = measure_window(args, agents, pg, nginx, engine, tmp)
        print("window done; the alert ...", flush=True)
        figures.alert = measure_alert(args, engine, flag, arrived)
        print("alert done; kill -9 of an agent ...", flush=True)
        figures.takeover = measure_takeover(args, agents, regions, engine)
        for name, proc in agents.items():
            kids.stop(proc, grace=30)
            if proc.returncode not in (0, -signal.SIGKILL):
                figures.notes.append(f"{name} exited with {proc.returncode} when stopped")
        phases = [
            ("before the window", figures.window["t0"]),
            ("in the window", figures.window["t1"]),
            ("alert", figures.takeover.get("killed_at", float("inf"))),
            ("after the kill", float("inf")),
        ]
        for name in agents:
            logged = (tmp / f"{name}.log").read_text(errors="replace").splitlines()
            bad = [x for x in logged if " WARNING " in x or " ERROR " in x or "Traceback" in x]
            bad = [x for x in bad if "monitor.config" not in x]  # the config's own remarks
            if bad:
                figures.notes.append(
                    f"{name}: warnings/errors {warned(bad, phases)}, last: {bad[-1][24:]}"
                )
    finally:
        if engine is not None:
            engine.dispose()
        kids.stop_all()
        smtp.stop()
        pg.stop()
    return figures


# --- report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, f: Figures) -> None:
    w, a, t = f.window, f.alert, f.takeover
    print(
        f"\n{args.targets} targets x {args.interval:g} s, {args.agents} agents in "
        f"{args.regions} region(s); window {w['seconds']:.0f} s after {args.warmup:g} s warm-up"
    )
    for name, share in w["cpu_pct"].items():
        rss = f", RSS {w['rss_mb'][name]:.0f} MB" if name in w["rss_mb"] else ""
        rate = w["rows_per_s_by_agent"].get(name)
        probes = f", {rate:g} probes/s" if rate is not None else ""
        print(f"  CPU {name:<10} {share:5.1f} % of a core{rss}{probes}")
    print(f"  machine busy    {w['machine_busy_pct']:5.1f} % (of {100 * (os.cpu_count() or 1)} %)")
    print(
        f"  write rate      {w['rows_per_s']:g} probe rows/s (expected {w['expected_per_s']:g}; "
        f"nginx saw {w['nginx_requests_per_s']:g}/s)"
    )
    if args.regions > 1:
        by = " / ".join(f"{v:g}" for v in w["handed_per_s_by_agent"].values())
        print(
            f"  handed over     {w['handed_per_s']:g} results/s to another region's holder "
            f"({by} by agent; derived, expected {(args.regions - 1) / args.regions:.0%} of rows)"
        )
    print(
        f"  alert latency   failure {a['failure']['latency_ms']:g} ms "
        f"(decided by {a['failure']['decided_by']}, email {a['failure']['since_failing_s']:g} s "
        f"after the target began failing), recovery {a['recovery']['latency_ms']:g} ms; "
        f"{a['emails']} emails"
    )
    if t.get("killed") is None:
        print("  takeover        not measured: one agent, nobody to take over")
    elif t.get("alone_in_region"):
        print(
            f"  takeover        kill -9 of {t['killed']} (alone in its region; held "
            f"{t['targets_held']}): holder moved to other regions' agents after "
            f"{t['holder_moved_s']} s"
        )
    else:
        print(
            f"  takeover        kill -9 of {t['killed']} ({t['targets_probed']} targets probed, "
            f"{t['targets_held']} held): holder moved after {t['holder_moved_s']} s; "
            f"{t['probed_again']} probed again by others after {t['first_probe_s']} s (first), "
            f"{t['probe_p50_s']} s (p50), {t['probe_max_s']} s (max); longest gap between "
            f"probes {t['gap_max_s']} s (p50 {t['gap_p50_s']} s)"
        )
    for note in f.notes:
        print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=10_000, help="N targets (default 10000)")
    parser.add_argument("--interval", type=float, default=60.0, help="I seconds (default 60)")
    parser.add_argument("--agents", type=int, default=3, help="agent processes (default 3)")
    parser.add_argument("--regions", type=int, default=1, help="regions, round robin (default 1)")
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="measured window (default 120)"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="after every first probe (default: interval)"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="probe timeout (default min(interval / 2, 10))"
    )
    parser.add_argument(
        "--fail-interval", type=float, default=2.0, help="the failing target's interval (default 2)"
    )
    parser.add_argument("--inferwatch", default=str(REPO / ".venv/bin/inferwatch"))
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (configs, logs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    args.warmup = args.interval if args.warmup is None else args.warmup
    args.timeout = min(args.interval / 2, 10.0) if args.timeout is None else args.timeout
    missing = [p for p in (args.nginx, args.inferwatch) if not shutil.which(p)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (apt-get install nginx-light; make install)")

    prepare_process()
    tmp = Path(tempfile.mkdtemp(prefix="agents-"))
    # Its own dir: user postgres cannot enter this script's 0700 temp dirs.
    pgdir = Path(tempfile.mkdtemp(prefix="agents-pg-"))
    kids = Children()
    try:
        figures = run(args, tmp, pgdir, kids)
    except KeyboardInterrupt:
        print("interrupted: stopping the children", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name}\n{tail(log)}", file=sys.stderr)
        raise
    finally:
        if args.keep:
            print(f"kept {tmp} and {pgdir}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(pgdir, ignore_errors=True)
    report(args, figures)
    if args.json:
        out = {"args": {k: v for k, v in vars(args).items() if k != "json"}, **vars(figures)}
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
