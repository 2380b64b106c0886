"""`python -m runwatch_client exec -- CMD`, the same as the `runwatch` command."""
import sys

from .cli import main

sys.exit(main())
