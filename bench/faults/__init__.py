"""`python -m bench.faults`: the stack under a steady load while each component is killed or stopped in turn."""
