"""Temporal workflows: pure orchestration, no I/O."""
