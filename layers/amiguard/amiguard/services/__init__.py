"""Use cases: one per Lambda function, joining a policy to its adapters."""
