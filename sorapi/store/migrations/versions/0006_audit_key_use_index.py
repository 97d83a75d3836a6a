"""Key-use audit entries by age, for the retention prune (`sorapi.store.audit.prune_key_use`).

A partial index: only `key.use` rows (the per-request entries of Scale keys) are ever pruned, so
only they pay for it. Built CONCURRENTLY: on a deployment where the table is already large (the
reason for the prune), a plain build would block every audited request while it ran.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_audit_events_key_use_created",
            "audit_events",
            ["created_at"],
            postgresql_where=sa.text("action = 'key.use'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_audit_events_key_use_created", table_name="audit_events", postgresql_concurrently=True)
