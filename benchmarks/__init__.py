"""lethe's benchmarks: speed against the limits, forgetting quality against retraining.

Run them with `make bench` (`python -m benchmarks.run --full`) or `make bench-quick`.
"""
