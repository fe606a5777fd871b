"""``python -m dl1`` (and ``torchrun -m dl1``): the ``dl1`` command."""

import sys

from dl1.cli import main

sys.exit(main())
