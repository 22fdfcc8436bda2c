"""``python -m maxa_async.testing [--port 0] [--rps-limit R] ...``: run the fake gateway."""

import sys

from ._cli import run_from_args

if __name__ == "__main__":
    sys.exit(run_from_args())
