"""Reliability harnesses shared by ``scripts/`` and ``tests/``: the stop-and-resume soak
(``reliability.soak``) and the generator of bad and odd image files (``reliability.fuzzfiles``).

They live beside the scripts, not in the installed ``lumicap`` package: no user of lumicap calls them.
``scripts/soak_resume.py`` and ``scripts/fuzz_inputs.py`` put this folder's parent on ``sys.path``; the test
suite does the same in ``tests/conftest.py``, so the full-size scripts and the short versions in the test
suite run the same code.
"""
