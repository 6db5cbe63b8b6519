"""The Kafka plumbing: connections, the message format, and a broker for machines without Docker.

kafka_client builds producers, consumers and the topic from whatever carries the Kafka settings
(config.Settings does) and retries while the broker is not up; messages is the version-1 quote and
alert format and the validation every message passes before it is stored; local_broker runs a real
single-node Kafka from Maven jars (the root script local_kafka.py starts one).
"""
