"""``python -m archrepair``: the ``archrepair`` command."""

import sys

from .cli import main

sys.exit(main())
