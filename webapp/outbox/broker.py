"""RabbitMQ naming, topology and message format, shared by the relay and the workers.

    exchange  <ns>formwright.events (topic, durable)
       │  response.submitted / response.updated / response.deleted   (bound by `response.#`)
       │  delivery.retry.<kind>                                     (an owner's retry of one row)
       ▼
    <ns>formwright.<kind>               quorum work queue; rejects and over-delivered messages
       │                                dead-letter (at-least-once) to <ns>formwright.<kind>.dead
       ├─► <ns>formwright.<kind>.retry.<s>   one quorum queue per delay tier: messages wait there
       │                                     `s` seconds (x-message-ttl), then dead-letter back to
       │                                     the work queue (via the default exchange, so the
       │                                     other kinds never see them again)
       └─► <ns>formwright.<kind>.dead        poison and exhausted messages, for operators

Every declaration is idempotent: the relay and each worker declare what they use at start.
Changing a queue's arguments needs a new name (tiers carry their delay in the name for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import AbstractChannel, AbstractExchange

from webapp.settings import Settings

EXCHANGE = "formwright.events"
DELIVERY_RETRY = "delivery.retry"
# A message that keeps killing its consumer (redelivered this often) is dead-lettered, not looped.
DELIVERY_LIMIT = 20
_QUORUM_DLX = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def _prefix(namespace: str) -> str:
    return namespace if not namespace or namespace.endswith(".") else namespace + "."


@dataclass(frozen=True, slots=True)
class Topology:
    namespace: str
    tiers: tuple[int, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(_prefix(settings.amqp_namespace), tuple(settings.retry_tiers))

    @property
    def exchange(self) -> str:
        return f"{self.namespace}{EXCHANGE}"

    def work_queue(self, kind: str) -> str:
        return f"{self.namespace}formwright.{kind}"

    def retry_queue(self, kind: str, seconds: int) -> str:
        return f"{self.work_queue(kind)}.retry.{seconds}"

    def dead_queue(self, kind: str) -> str:
        return f"{self.work_queue(kind)}.dead"

    def tier_for(self, seconds: float) -> int:
        """The shortest tier that waits at least `seconds` (the longest when none does)."""
        return next((t for t in self.tiers if t >= seconds), self.tiers[-1])


def routing_key(event: dict[str, Any]) -> str:
    if event["type"] == DELIVERY_RETRY:
        return f"{DELIVERY_RETRY}.{event['kind']}"
    return str(event["type"])


async def declare(channel: AbstractChannel, topology: Topology, kinds: list[str]) -> AbstractExchange:
    """Declare the exchange and, per kind, its work, retry and dead queues with their bindings."""
    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    for kind in kinds:
        work = topology.work_queue(kind)
        await channel.declare_queue(topology.dead_queue(kind), durable=True, arguments={"x-queue-type": "quorum"})
        queue = await channel.declare_queue(work, durable=True, arguments={
            "x-queue-type": "quorum", "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.dead_queue(kind), "x-delivery-limit": DELIVERY_LIMIT,
            **_QUORUM_DLX})
        await queue.bind(exchange, "response.#")
        await queue.bind(exchange, f"{DELIVERY_RETRY}.{kind}")
        for seconds in topology.tiers:
            await channel.declare_queue(topology.retry_queue(kind, seconds), durable=True, arguments={
                "x-queue-type": "quorum", "x-message-ttl": seconds * 1000, "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": work, **_QUORUM_DLX})
    return exchange


def message(event: dict[str, Any], *, headers: dict[str, Any] | None = None, body: bytes | None = None) -> aio_pika.Message:
    """A persistent JSON message whose message_id is the event id (consumers dedupe on it)."""
    return aio_pika.Message(
        body=body if body is not None else msgspec.json.encode(event),
        content_type="application/json",
        message_id=str(event.get("event_id", "")) or None,
        type=str(event.get("type", "")) or None,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers or {},
    )


def decode(body: bytes) -> Any:
    """The JSON in a message body; ValueError (a poison message) when it is not JSON."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"the body is not JSON ({exc})") from None
