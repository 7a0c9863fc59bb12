"""Wan2.1-shaped text-to-video reference workload (random seeded weights) for wanbench."""
