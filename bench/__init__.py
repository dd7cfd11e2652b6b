"""Benchmarks of the bridge: cold start, warm webhook latency, package, end to end, the
powertools alternative, and cost.

``python -m bench`` (``make bench``) runs them all against the local stand-ins
(``local.harness.Harness``) and rewrites ``docs/BENCHMARKS.md``; ``--only NAME`` runs one
part, ``--quick`` takes fewer samples.
"""
