"""Benchmark scorers; importing a module registers its benchmark and scorer."""
