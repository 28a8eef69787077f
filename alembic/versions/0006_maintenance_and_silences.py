"""maintenance and silences: the silences table, quiet probes, rollups and transitions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

Adds `silences` (stored by `inferwatch silence add`), `probe_results.quiet` and
`probe_rollups.quiet` (probes inside a maintenance window or silence, left out of uptime) and
`transitions.quiet_reason` (why a change was not announced). Existing rows are not quiet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=True),
        sa.Column("tag", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    # Plain ADD COLUMN with a constant default: no table rebuild on SQLite, none on PostgreSQL.
    op.add_column(
        "probe_results",
        sa.Column("quiet", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "probe_rollups", sa.Column("quiet", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("transitions", sa.Column("quiet_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    for table, column in (
        ("transitions", "quiet_reason"),
        ("probe_rollups", "quiet"),
        ("probe_results", "quiet"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
