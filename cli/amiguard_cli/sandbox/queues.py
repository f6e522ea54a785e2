"""Draining the sandbox's SQS queues, where moto's EventBridge and SNS leave what they deliver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def drain(sqs: Any, queue_url: str) -> Iterator[dict[str, Any]]:
    """Every message body on the queue (parsed JSON), each deleted once it is taken, until the queue is empty."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            yield json.loads(message["Body"])
