"""structured facts on probes and transitions; channel-neutral alert events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the JSON columns; existing rows get an empty object."""
    for table in ("probe_results", "transitions", "alerts"):
        column = "event" if table == "alerts" else "facts"
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(column, sa.JSON(), server_default="{}", nullable=False),
            )


def downgrade() -> None:
    for table in ("probe_results", "transitions", "alerts"):
        column = "event" if table == "alerts" else "facts"
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
