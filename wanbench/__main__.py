"""``python -m wanbench``: the same as the ``wanbench`` command."""

import sys

from .cli import main

sys.exit(main())
