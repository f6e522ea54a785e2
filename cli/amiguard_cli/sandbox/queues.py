"""Draining the sandbox's SQS queues, where moto's EventBridge and SNS leave what they deliver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class PolledQueue:
    """An SQS queue a Lambda event source mapping polls (``BatchSize: 1``, ``ReportBatchItemFailures``).

    Each message is one synchronous invocation (no asynchronous retries); a record that fails is received again
    once its visibility timeout has passed, and its ``maxReceiveCount``-th failure moves it to the queue's
    dead-letter queue, as SQS's redrive policy does.
    """

    url: str
    arn: str
    region: str
    max_receives: int
    visibility_timeout: int
    dead_letter_url: str = ""
    receives: dict[str, int] = field(default_factory=dict)  # message body -> receives so far

    def take(self, sqs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every message now on the queue: (its body, the Lambda event of one record)."""
        while messages := sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                body = str(message["Body"])
                self.receives[body] = self.receives.get(body, 0) + 1
                yield body, self._event(message, self.receives[body])

    def settle(self, sqs: Any, body: str, *, failed: bool) -> bool:
        """After the invocation: a failed record goes back on the queue, or, at its last receive, to the
        dead-letter queue (True)."""
        if not failed:
            self.receives.pop(body, None)
            return False
        if self.receives.get(body, 0) < self.max_receives:
            sqs.send_message(QueueUrl=self.url, MessageBody=body)
            return False
        self.receives.pop(body, None)
        if self.dead_letter_url:
            sqs.send_message(QueueUrl=self.dead_letter_url, MessageBody=body)
        return True

    def _event(self, message: dict[str, Any], receives: int) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": message["MessageId"],
                    "receiptHandle": message["ReceiptHandle"],
                    "body": message["Body"],
                    "attributes": {"ApproximateReceiveCount": str(receives)},
                    "messageAttributes": {},
                    "md5OfBody": message["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.region,
                }
            ]
        }


def record_failed(result: dict[str, Any] | None, error: str | None) -> bool:
    """Whether an event source mapping counts its one record as failed (an error, or a reported item failure)."""
    return error is not None or bool((result or {}).get("batchItemFailures"))
