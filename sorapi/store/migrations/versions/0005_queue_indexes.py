"""Partial indexes for the slot gate and ETAs.

They cover an account's line of queued tasks, the running tasks, and the latest successes.

`queue_position`, the gate's snapshot and the sweeper read only tasks that are queued or running,
and ETAs read only the last hour's successes; without these they scan every task ever made.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_queued_line",
        "tasks",
        ["account_id", "created_at", "id"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_tasks_running", "tasks", ["account_id"], postgresql_where=sa.text("status = 'running'"))
    op.create_index(
        "ix_tasks_recent_successes", "tasks", ["finished_at"], postgresql_where=sa.text("status = 'succeeded'")
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_recent_successes", table_name="tasks")
    op.drop_index("ix_tasks_running", table_name="tasks")
    op.drop_index("ix_tasks_queued_line", table_name="tasks")
