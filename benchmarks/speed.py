"""Speed of wganx against plain hand-written loops: ``python benchmarks/speed.py --help``.

The same code as ``wganx bench`` (``wganx_bench.harness``).
"""
import sys

import wganx  # noqa: F401 - first: sets the protobuf implementation NNabla needs
from wganx_bench.harness import cli

if __name__ == "__main__":
    sys.exit(cli())
