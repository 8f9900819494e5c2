"""Reliability harnesses shared by ``scripts/`` and ``tests/``: the kill-and-resume soak
(``lumicap.testing.soak``) and the generator of bad and odd image files (``lumicap.testing.fuzzfiles``).

Nothing in the library imports this package; it exists so the full-size scripts and the short versions
in the test suite run the same code.
"""
