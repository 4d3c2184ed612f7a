"""``python -m memento_lab.cli``: the same as the ``memento-lab`` command."""

import sys

from memento_lab.cli import main

sys.exit(main())
