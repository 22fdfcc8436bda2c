"""``python -m maxa_async.cli``: the same as the ``maxa`` console script."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
