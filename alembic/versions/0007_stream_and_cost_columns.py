"""streamed probes and probe cost: ttft_ms, tokens_per_s and usage_tokens on probe_results

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

Three nullable columns (NULL for every existing row and every probe that does not stream or
report usage): time to first token, output tokens per second after it, and the tokens the
probe cost. On SQLite `ttft_ms` is integer microseconds like the other timings (see
monitor/store/models.py `Millis`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("ttft_ms", "tokens_per_s", "usage_tokens")


def upgrade() -> None:
    # Plain ADD COLUMN, nullable: no table rebuild on SQLite, none on PostgreSQL.
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column(
        "probe_results", sa.Column("ttft_ms", sa.Integer() if sqlite else sa.Float(), nullable=True)
    )
    op.add_column("probe_results", sa.Column("tokens_per_s", sa.Float(), nullable=True))
    op.add_column("probe_results", sa.Column("usage_tokens", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_results") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
