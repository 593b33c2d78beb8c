"""Benchmarks: `make bench` runs every bench/bench_*.py module's `main()`.

Each benchmark measures its baseline in the same run and prints ratios, because these
machines are noisy: absolute numbers from different runs are not comparable.
"""
