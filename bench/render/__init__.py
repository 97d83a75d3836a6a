"""Render worker benchmark: `python -m bench.render --help`."""
