"""Benchmarks that print tables; never run as tests."""
