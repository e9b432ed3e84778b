"""`python -m seqapps` is the `seqapps` command."""

import sys

from seqapps.cli import main

sys.exit(main())
