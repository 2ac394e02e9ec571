"""`python -m acsnet.cli`: how the lab and the tests run the command."""

import sys

from acsnet.cli import main

sys.exit(main())
