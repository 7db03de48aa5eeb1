"""``python -m vizwidgets``: see :mod:`vizwidgets.cli`."""

import sys

from vizwidgets.cli import main

sys.exit(main())
