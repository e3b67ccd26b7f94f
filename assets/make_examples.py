"""Regenerate the app's example inputs: three drawn people, three driving clips, and their poses.

The pictures are people of the drawn world (``dreampose.world``, no photos of real people), and
their poses are drawn from the same geometry, so the examples need no pose detector;
``examples.json`` ties each pose file to its picture and lists the pairs the app offers
(see ``dreampose/world/examples.py``).

    python assets/make_examples.py               # pictures, poses and index
    python assets/make_examples.py --poses-only  # poses and index for the pictures already here
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere
    from dreampose.world.examples import write_examples

    print(write_examples(HERE, pictures="--poses-only" not in sys.argv))
