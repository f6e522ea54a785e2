"""Adapters: the only code that touches boto3. Clients are passed in, never created at import time."""
