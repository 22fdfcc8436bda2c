"""The ``maxa`` commands, one module per group; ``maxa_async.cli._app`` registers them.

- ``lookups``: ``terminologies``, ``versions``, ``lookup``, ``search``, ``terms`` (read the gateway)
- ``token``: ``token`` (check the credentials and where each setting came from)
- ``validate``: ``validate`` (a file of rows, online, ``--offline`` or ``--hybrid``)
- ``snapshot``: ``snapshot pull|sync|info`` (the local SQLite file)
- ``serve``: ``serve --fhir`` (a FHIR terminology server)
- ``demo``: ``demo`` and ``emulator`` (the fake gateway)

A module here holds the click surface only: arguments, options, help texts and the checks
of their combinations. The work is done by the modules one level up (``_validate``,
``_snapshot``, ``_serve``, ``_demo``, ``_emulator``, ``_session``...).
"""
