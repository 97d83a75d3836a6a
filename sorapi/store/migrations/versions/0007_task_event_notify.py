"""Every task event announces itself: a trigger NOTIFYs `sorapi_task_events` with the task id.

Open event streams and `Prefer: wait` requests listen on that channel (one connection per API
process, sorapi.api.tasks.events), so a task's news reaches them when its transaction commits, from any
process that writes events, raw SQL included, and nobody polls the table.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION sorapi_notify_task_event() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('sorapi_task_events', NEW.task_id);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    op.execute(
        """
        CREATE TRIGGER task_events_notify AFTER INSERT ON task_events
        FOR EACH ROW EXECUTE FUNCTION sorapi_notify_task_event()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER task_events_notify ON task_events")
    op.execute("DROP FUNCTION sorapi_notify_task_event()")
