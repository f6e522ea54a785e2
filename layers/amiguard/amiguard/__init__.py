"""amiguard: event-driven governance for Amazon Machine Images.

Layers, from pure to impure: ``models`` (pydantic shapes), ``policy`` (decisions), ``aws`` (the only code
that touches boto3), ``services`` (one use case per Lambda function). Entry points live in
``functions/<name>/app.py`` (Lambda) and the separate ``amiguard_cli`` package (CLI, demo, sandbox),
which the layer never ships.
"""

__version__ = "0.1.0"
