"""``amiguard backtest``: what amiguard would have done over past CloudTrail history, from the events alone.

- :mod:`amiguard_cli.history` reads history: CloudTrail log files as S3 delivers them, EventBridge events, bare
  records, or CloudTrail ``LookupEvents`` (paced to its 2 requests per second per account and region).
- :mod:`.decide` routes each record through ``template.yaml``'s own rules and the functions' own policy code.
- :mod:`.command` is the subcommand: options, the report (table, JSON, CSV), exit codes as ``scan``.
"""
