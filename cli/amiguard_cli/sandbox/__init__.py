"""The embedded sandbox: moto as the AWS account, CloudTrail records for every mutating EC2 call,
``template.yaml``'s own EventBridge rules for routing, and each function's real ``lambda_handler``.

Only the CLI and the tests import this package; it needs the ``cli`` extra (moto, PyYAML, rich).
"""
