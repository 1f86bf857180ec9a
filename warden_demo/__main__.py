"""`python -m warden_demo` (what `make run` starts); `--help` lists the options."""

import sys

from warden_demo.launcher import main

sys.exit(main())
