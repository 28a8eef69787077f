"""deployment_jobs: when each once-per-deployment job (the daily prune) last ran

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30

With several agents on one PostgreSQL, a job that must run once per deployment takes an
advisory lock, and then looks here: another agent that ran it within its period means this
one skips it. One row per job: when (in the database's time) and by which agent (no foreign
key, like probe_results.agent_id: NULL for a tool without an agent).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_deployment_jobs")),
    )


def downgrade() -> None:
    op.drop_table("deployment_jobs")
