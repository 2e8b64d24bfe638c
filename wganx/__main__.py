"""``python -m wganx`` works like ``wganx``."""
import sys

from .cli import main

sys.exit(main())
