"""Benchmarks of scorestream components against a real local broker (not part of the package)."""
