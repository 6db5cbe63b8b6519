"""Alerts that reach people: notification channels, and delivery to each of them.

channels turns NOTIFY_URLS (apprise URLs, each optionally `name=`) into channels and sends one message;
schedule reads their quiet hours and digests; outgoing says which messages the waiting alerts make;
delivery walks every channel through the stored alerts its routes give it, at least once and in order,
on a thread of its own; check sends the test message of `consumer.py --notify-test [NAME]`.
"""
