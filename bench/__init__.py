"""Benchmarks of the bridge: cold start, warm webhook latency, package, end to end, cost.

``python -m bench`` (``make bench``) runs them all against local stand-in servers and rewrites
``docs/BENCHMARKS.md``; ``--only NAME`` runs one part, ``--quick`` takes fewer samples.
"""
