"""The base layer: what every other part of the project may import, and which imports none of it.

- ``paper``: the paper's numbers, the one source of every default.
- ``files``: atomic writes (and small JSON records read back), checks that an output can be
  written, before a long job.
- ``downloads``: one URL into the cache, with progress, resume and checks.
- ``arguments``: command-line options made from settings dataclasses (the CLI and the app).

Only the standard library is imported here (and one of these modules by another).
"""
