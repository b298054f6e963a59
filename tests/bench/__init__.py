"""Tests of the benchmark scripts (their options and a short run), not of performance."""
