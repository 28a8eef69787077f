"""Persistence: ORM models, engines and migrations, and the queries the rest of the app uses."""

from monitor.store.db import DatabaseError, make_engine, open_database, upgrade
from monitor.store.models import Base, ProbeRecord, TargetRecord
from monitor.store.writes import save_results, sync_targets

__all__ = [
    "Base",
    "DatabaseError",
    "ProbeRecord",
    "TargetRecord",
    "make_engine",
    "open_database",
    "save_results",
    "sync_targets",
    "upgrade",
]
