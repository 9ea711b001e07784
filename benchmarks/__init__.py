"""Benchmarks: committed commands that measure carebed and print their figures."""
