"""Experiments over task streams: one run (``run``), sweeps (``sweep``), and their results (``results``)."""
