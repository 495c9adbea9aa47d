"""`python -m green_operator.cli`: the `green-operator` command without its entry-point script."""

import sys

from green_operator.cli.main import main

sys.exit(main())
