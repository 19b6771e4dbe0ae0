"""segkit's benchmark suite: segkit and its peers on the same data, in the same run.

Run ``python -m benches --help``. Nothing here asserts a speed: every workload first
checks that all tools return the same answer, then reports median times and ratios.
"""
