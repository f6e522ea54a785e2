"""``amiguard demo``: realistic scenarios played through the real handlers on the sandbox account.

Each act is a function ``act(sandbox, timeline)`` in its own module; :data:`ACTS` lists them in order.
"""
