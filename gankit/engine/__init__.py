"""The training engine: build, step, loop, strategies (the lead writes this package; see distributed.py)."""
