"""Worker processes: the orchestrator (workflows + DB activities) and render workers (one per GPU)."""
