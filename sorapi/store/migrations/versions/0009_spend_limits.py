"""Spend caps: a monthly credit limit per account and per API key, and the key that created each task.

Both limits live on the account row (the key's in a map keyed by key id), the row every hold locks:
the check reads them at no cost and a limit change never interleaves with a hold. Captures of the
month are found through a partial index.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("monthly_credit_limit", sa.BigInteger(), nullable=True))
    op.add_column(
        "accounts", sa.Column("key_credit_limits", JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    op.add_column("tasks", sa.Column("key_id", sa.String(length=40), nullable=True))
    with op.get_context().autocommit_block():  # the ledger keeps taking writes meanwhile
        op.create_index(
            "ix_ledger_captures_account_created",
            "ledger_entries",
            ["account_id", "created_at"],
            postgresql_where=sa.text("kind = 'capture'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_ledger_captures_account_created", table_name="ledger_entries")
    op.drop_column("tasks", "key_id")
    op.drop_column("accounts", "key_credit_limits")
    op.drop_column("accounts", "monthly_credit_limit")
