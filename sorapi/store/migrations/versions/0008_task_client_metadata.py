"""Tasks carry the client's `metadata` labels, found again with `@>` through a GIN index.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("client_metadata", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")))
    with op.get_context().autocommit_block():  # a large tasks table keeps taking writes meanwhile
        op.create_index(
            "ix_tasks_client_metadata",
            "tasks",
            ["client_metadata"],
            postgresql_using="gin",
            postgresql_ops={"client_metadata": "jsonb_path_ops"},
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_tasks_client_metadata", table_name="tasks")
    op.drop_column("tasks", "client_metadata")
