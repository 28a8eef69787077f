"""region states and results: each region's own state per target, and other regions' results
waiting for the target's holder; transitions say which regions confirmed them

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30

With agents in several regions, a target's holder keeps each region's own state machine
(`target_region_states`, one row per target and region) and changes the target's state when a
quorum of regions confirms it (monitor/domain/quorum.py). The agents of the other regions hand
their results to the holder through `region_results`: one row per result (the stored probe's
id), taken (deleted) by the holder in the transaction that decides it. `transitions.regions`
lists the regions that confirmed a change; `transitions.region` is set on a regional
observation, one region's own change the target's state did not follow.
`monitor_runs.last_result` names the last result the run's writer committed, so a batch retried
after its commit's answer was lost (the connection dropped just then) is not written twice.
Plain ADD COLUMNs of nullable values: no table rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "target_region_states",
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.id"],
            name=op.f("fk_target_region_states_target_id_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("target_id", "region", name=op.f("pk_target_region_states")),
    )
    op.create_table(
        "region_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("probe_id", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["targets.id"],
            name=op.f("fk_region_results_target_id_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region_results")),
    )
    op.create_index(
        op.f("ix_region_results_target_id"), "region_results", ["target_id"], unique=False
    )
    op.add_column("transitions", sa.Column("regions", sa.JSON(), nullable=True))
    op.add_column("transitions", sa.Column("region", sa.String(length=64), nullable=True))
    op.add_column("monitor_runs", sa.Column("last_result", sa.String(length=160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitor_runs") as batch:
        batch.drop_column("last_result")
    with op.batch_alter_table("transitions") as batch:
        batch.drop_column("region")
        batch.drop_column("regions")
    op.drop_index(op.f("ix_region_results_target_id"), table_name="region_results")
    op.drop_table("region_results")
    op.drop_table("target_region_states")
