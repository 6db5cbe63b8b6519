"""The consumer's machinery between a Kafka poll and the database.

store validates a poll batch and writes it in one transaction with the alerts it fires, waiting
out a locked database; durable_offsets syncs the WAL beside the storing and hands back the Kafka
offsets of what is on disk; stored_log says what was stored, at most once a second; reload reads
the alert rules and notification URLs again on SIGHUP.
"""
