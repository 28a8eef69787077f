"""The `inferwatch` command line: thin wrappers over config, probing, agent, store and report.

app.py holds the typer app and what the commands share; the commands live by concern in
probing.py (check, probe), diagnose.py (diagnose), running.py (run, up, dashboard, demo),
review.py (transitions, incidents, alerts), agents.py (agents) and admin.py (test-alert,
prune, db upgrade). They are registered here, in the order `inferwatch --help` lists them.
"""

from __future__ import annotations

from monitor.cli import admin, agents, diagnose, probing, review, running
from monitor.cli.app import app, db_app
from monitor.cli.review import parse_since
from monitor.cli.silence import silence_app

app.command()(probing.check)
app.command()(probing.probe)
app.command("diagnose")(diagnose.diagnose_command)
app.command()(running.run)
app.command()(running.up)
app.command()(running.dashboard)
app.command()(running.demo)
app.command()(review.transitions)
app.command()(review.incidents)
app.command()(review.alerts)
app.command()(agents.agents)
app.command("test-alert")(admin.test_alert)
app.command()(admin.prune)
app.add_typer(silence_app, name="silence")
db_app.command("upgrade")(admin.db_upgrade)

__all__ = ["app", "main", "parse_since"]


def main() -> None:
    app()
