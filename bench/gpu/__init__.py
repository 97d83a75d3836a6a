"""GPU benchmark of the speed profiles on real weights: `python -m bench.gpu --help`."""
