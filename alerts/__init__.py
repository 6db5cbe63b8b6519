"""The alert engine: rules, their evaluation on each stored quote, and the way out to the alerts topic.

rules parses the written form ("TSLA:5%/1h, IBM>150"); engine evaluates each new quote with state a
restart rebuilds from the database; outbox publishes stored alerts to the alerts topic, claimed by
one process at a time; routes says which named notification channels a rule's alerts go to; text says
an alert in words, for the log and for a person.
"""
