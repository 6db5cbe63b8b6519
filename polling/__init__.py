"""The producer's loop: which symbol to call when, what to publish, and what to remember.

poller runs the calls the quote source schedules, within the budget; publisher tells new quotes
from repeats and gets them into Kafka without losing one; state keeps the budget, the quotes seen
and those Kafka has not acknowledged across restarts.
"""
