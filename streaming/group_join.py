"""A rejoin asked for by a metadata change stays asked for until a join has been applied.

kafka-python 3.0.12 runs a group join in the background; when poll()'s timeout ends first, the next
poll() takes the join up again, but only if the consumer still needs to rejoin then. A rejoin for a
metadata change (the group's leader sees a topic's partitions for the first time, or more of them)
counts as needed only while the leader's last assignment differs from the metadata, and the leader
makes the new assignment inside the join. So once a join outlasts its poll(), the next poll() finds
nothing to do and never applies what the join brought: the consumer keeps the old partitions and
never fetches the ones the group gave it (tests/streaming/test_group_join.py). The Java client
counts a pending join as needing one (rejoinNeededOrPending); here such a rejoin is turned into the
coordinator's own flag, which only an applied join clears.
"""

from __future__ import annotations

from kafka import KafkaConsumer


def keep_rejoins_asked_for(consumer: KafkaConsumer) -> None:
    """Make every rejoin the consumer's coordinator finds needed last until a join is applied."""
    coordinator = consumer._coordinator
    needs_rejoin = coordinator.need_rejoin

    def need_rejoin() -> bool:
        if not needs_rejoin():
            return False
        coordinator.request_rejoin()  # cleared by join_group_async once the join's assignment is applied
        return True

    coordinator.need_rejoin = need_rejoin
