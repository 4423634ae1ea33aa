"""lethe's benchmarks: speed against the limits, forgetting quality against retraining.

Run them with `make bench` (`python benchmarks/run.py --full`) or `make bench-quick`.
"""
