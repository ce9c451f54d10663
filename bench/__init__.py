"""Benchmarks of issue 7: the gateway against a mobilityhouse `ocpp` central system, same load, same run.

`python -m bench [--quick] [--only FIGURE]`; the method and the last results are in docs/performance.md.
"""
