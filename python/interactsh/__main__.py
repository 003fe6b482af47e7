"""Allow ``python -m interactsh`` to start the server."""

import sys

from interactsh.cli import main

sys.exit(main())
