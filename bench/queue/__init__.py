"""Queued tasks: what waiting costs, create pace beside a long line, and a mixed-plan drain that loses nothing."""
