"""``python -m fedsynth.cli``: the ``fedsynth`` command without the installed script."""

import sys

from fedsynth.cli import main

sys.exit(main())
