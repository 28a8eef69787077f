"""compact probe rows: integer times and latencies on SQLite, evidence columns may be empty

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

On SQLite, probe_results.checked_at becomes an integer of microseconds since 1970 and the four
latency columns integers of microseconds (monitor/store/models.py: ProbeTime, Millis); every
existing row is converted in place, to the microsecond, before the table is rebuilt. On
PostgreSQL the types stay (timestamp, double precision). On both, headers and facts may be
NULL, which a lean row (no evidence) stores instead of '{}'. No row is dropped: history is
kept whole; only new ok probes are written lean.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LATENCIES = ("latency_ms", "connect_ms", "tls_ms", "ttfb_ms")

# SQLAlchemy's SQLite DATETIME text is 'YYYY-MM-DD HH:MM:SS.ffffff' (always six digits).
TEXT_TO_MICROS = (
    "CAST(strftime('%s', substr(checked_at, 1, 19)) AS INTEGER) * 1000000"
    " + CAST(substr(checked_at || '.000000', 21, 6) AS INTEGER)"
)
MICROS_TO_TEXT = (
    "strftime('%Y-%m-%d %H:%M:%S', checked_at / 1000000, 'unixepoch')"
    " || '.' || printf('%06d', checked_at % 1000000)"
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(
            f"UPDATE probe_results SET checked_at = {TEXT_TO_MICROS} "
            "WHERE typeof(checked_at) = 'text'"
        )
        for column in LATENCIES:
            op.execute(
                f"UPDATE probe_results SET {column} = CAST(round({column} * 1000) AS INTEGER) "
                f"WHERE {column} IS NOT NULL"
            )
    with op.batch_alter_table("probe_results") as batch:
        if sqlite:
            batch.alter_column("checked_at", type_=sa.BigInteger(), existing_nullable=False)
            for column in LATENCIES:
                batch.alter_column(column, type_=sa.Integer(), existing_nullable=True)
        batch.alter_column("headers", existing_type=sa.JSON(), nullable=True)
        batch.alter_column("facts", existing_type=sa.JSON(), nullable=True, server_default=None)
    for column in ("headers", "facts"):  # json has no = on PostgreSQL: compare the text
        op.execute(
            f"UPDATE probe_results SET {column} = NULL WHERE CAST({column} AS TEXT) = '{{}}'"
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("UPDATE probe_results SET headers = '{}' WHERE headers IS NULL")
    op.execute("UPDATE probe_results SET facts = '{}' WHERE facts IS NULL")
    with op.batch_alter_table("probe_results") as batch:
        if sqlite:
            batch.alter_column("checked_at", type_=sa.DateTime(), existing_nullable=False)
            for column in LATENCIES:
                batch.alter_column(column, type_=sa.Float(), existing_nullable=True)
        batch.alter_column("headers", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("facts", existing_type=sa.JSON(), nullable=False, server_default="{}")
    if sqlite:
        op.execute(
            f"UPDATE probe_results SET checked_at = {MICROS_TO_TEXT} "
            "WHERE typeof(checked_at) = 'integer'"
        )
        for column in LATENCIES:
            op.execute(
                f"UPDATE probe_results SET {column} = {column} / 1000.0 WHERE {column} IS NOT NULL"
            )
