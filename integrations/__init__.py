"""Built-in integrations (sheets, sms, webhook) and the broker worker runtime.

Each integration registers itself in the `formwright.integrations` entry-point group; the webapp
finds them only through that group (webapp/plugins.py), never by importing this package.
`runtime.py` consumes their work queues and `cli.py` adds `formwright workers` through the
`formwright.commands` group.
"""
