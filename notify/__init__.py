"""Alerts that reach people: notification channels (apprise URLs), the text a person reads, and delivery."""
