"""Merge the credits (0002) and webhooks (0003) branches into one head.

Revision ID: 0004
Revises: 0002, 0003
"""

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
