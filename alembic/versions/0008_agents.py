"""agents: who probes, from which region, and which agent's writer holds each target's state

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30

Adds `agents` (one row per `inferwatch run --agent NAME --region REGION`, with its heartbeat),
`agent_id` on `probe_results`, `transitions` and `monitor_runs` (NULL for every existing row:
those were written before agents), and `target_states.holder` (the agent whose writer may
change the state). Plain ADD COLUMNs of nullable values: no table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("targets_held", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
    )
    op.add_column("probe_results", sa.Column("agent_id", sa.Integer(), nullable=True))
    # SQLite cannot ADD a constraint to an existing table; batch mode rebuilds the small ones.
    for table in ("transitions", "monitor_runs", "target_states"):
        column = "holder" if table == "target_states" else "agent_id"
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{table}_{column}_agents"),
                "agents",
                [column],
                ["id"],
                ondelete="SET NULL",
            )


def downgrade() -> None:
    for table in ("target_states", "monitor_runs", "transitions"):
        column = "holder" if table == "target_states" else "agent_id"
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"fk_{table}_{column}_agents"), type_="foreignkey")
            batch.drop_column(column)
    with op.batch_alter_table("probe_results") as batch:
        batch.drop_column("agent_id")
    op.drop_table("agents")
