"""Faust's aiokafka transport with true end offsets, so tables recover their whole changelog on Tansu.

Faust rebuilds a table by reading its changelog up to the partitions' end offsets. On Tansu those come back
short (see :mod:`tacit.kafka`), and the last records of the changelog, the newest state of some
conversations, would be silently skipped after every restart or rebalance. The only change here is where
those end offsets come from.
"""

from __future__ import annotations

from collections.abc import Mapping

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from tacit.kafka import end_offsets


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        transport = self.transport
        bootstrap = faust_aiokafka.server_list(transport.url, transport.default_port)
        return await end_offsets(bootstrap, partitions)


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """A Faust app whose consumers use :class:`Transport`."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)
