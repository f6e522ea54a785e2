"""amiguard's command line, demo and embedded sandbox (the ``cli`` extra: moto, rich, PyYAML).

Never shipped in the Lambda layer: the runtime is :mod:`amiguard`, which must not import this package.
"""
