"""The API's single declaration: :mod:`.table` lists every action, :mod:`.types` types its bodies.

The daemon's routing, request validation, the Python client, ``docs/openapi.json`` and ``docs/API.md``
all come from these two modules; adding an action means one entry in the table and its handler.
"""
