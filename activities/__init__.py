"""Temporal activities: every side effect of a task (DB, S3, GPU) lives here."""
