"""Benchmarks of the Smart PBX integration (run them with ``scripts/bench``).

Every figure is set against a baseline measured in the same run, because absolute times
on small shared machines drift from run to run. See BENCHMARKS.md for the method and the
latest results. Not part of the test suite.
"""
