"""CI copies this folder outside the checkout and runs it against the installed wheel."""

pytest_plugins = ["maxa_async.testing.pytest_plugin"]
