"""``python -m secure_train`` is the ``secure-train`` command."""

import sys

from secure_train.cli import main

sys.exit(main())
