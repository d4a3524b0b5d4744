"""`python -m pool.cli`, as before the CLI was a package (`python -m pool` is the usual way)."""

import sys

from pool.cli.app import main

sys.exit(main())
