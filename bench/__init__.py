"""Benchmarks: runnable modules (`python -m bench.<name>`) that print a table and write JSON to bench/results/."""
