"""``amiguard demo``: realistic scenarios played through the real handlers on the sandbox account.

Each act is a function ``act(sandbox, timeline)`` in its own module; :data:`ACTS` lists them in order. An act
narrates with ``timeline.step`` (shown in ``--full`` only) and lets events flow with ``timeline.settle()`` (or
hands a direct invocation to ``timeline.delivery``); the default short form derives its one line per event from
those deliveries and their findings alone, so a new act needs no rendering code.
"""
