"""The ``maxa`` command line (``pip install 'maxa-async[cli]'``).

Commands: ``demo``, ``emulator``, ``token``, ``terminologies``, ``versions``, ``lookup``,
``search``, ``terms``, ``snapshot pull|sync|info``, ``validate`` (online, ``--offline`` or
``--hybrid``). ``maxa --help`` and ``maxa COMMAND --help`` say more.
"""

from __future__ import annotations

from ._app import cli, main

__all__ = ["cli", "main"]
