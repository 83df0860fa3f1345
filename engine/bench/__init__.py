"""Benchmarks as a product: tierdb layouts beside peers on seeded workloads (``tierdb bench``)."""
