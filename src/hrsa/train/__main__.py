"""``python -m hrsa.train SPEC.json``: see :func:`hrsa.train.launch.main`."""

import sys

from .launch import main

sys.exit(main())
