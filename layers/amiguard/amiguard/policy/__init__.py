"""Pure decisions: event or image state in, decision out. No boto3, no I/O."""
