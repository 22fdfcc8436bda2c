"""The ``maxa`` command line (``pip install 'maxa-async[cli]'``).

Commands: ``demo``, ``emulator``, ``token``, ``terminologies``, ``versions``, ``lookup``,
``search``, ``terms``, ``snapshot pull|sync|info``, ``validate`` (online, ``--offline`` or
``--hybrid``), ``serve --fhir``. ``maxa --help`` and ``maxa COMMAND --help`` say more.

Each command group is a module in ``commands/``; ``_app.py`` registers them and says where
a new command, option or setting goes.
"""

from __future__ import annotations

from ._app import cli, main

__all__ = ["cli", "main"]
