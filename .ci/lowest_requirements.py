"""Print the lowest versions a pyproject.toml declares, as pip constraints (``name==low``).

The oldest leg of the compatibility matrix installs with these, so every lower bound
(``numpy>=1.23``, ``torch>=2.1``, ...) is one that is tested, not one that is hoped for.

    python .ci/lowest_requirements.py pyproject.toml[digits] backends/torch/pyproject.toml

Each argument is a pyproject file, optionally with extras in brackets whose requirements
are pinned too. Only ``>=`` bounds are pinned; requirements on wganx's own distributions
are left to the install. Environment markers are kept.
"""
from __future__ import annotations

import re
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from packaging.requirements import Requirement

OURS = re.compile(r"^wganx(-|$)")


def lowest(pyproject: str):
    path, _, extras = pyproject.partition("[")
    with open(path, "rb") as f:
        project = tomllib.load(f)["project"]
    lines = list(project.get("dependencies", []))
    for extra in filter(None, extras.rstrip("]").split(",")):
        lines += project["optional-dependencies"][extra]
    for line in lines:
        req = Requirement(line)
        bound = [s.version for s in req.specifier if s.operator == ">="]
        if OURS.match(req.name) or not bound:
            continue
        marker = f"; {req.marker}" if req.marker else ""
        yield f"{req.name}=={bound[0]}{marker}"


if __name__ == "__main__":
    print("\n".join(sorted({line for arg in sys.argv[1:] for line in lowest(arg)})))
