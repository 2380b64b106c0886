"""The services people are paged through, each in the shape it documents: Slack, Microsoft
Teams, Discord, PagerDuty, and Apprise for the long tail.

One module per service holds its options (a pydantic model, secrets marked), the message
it takes, built from a notice's facts (`facts.Facts`), and `send`. What all of them share:
the facts and their wording (`facts`), the option types (`options`), and how a service's
answer is read (`answers`: 429 and 5xx are retried, a 4xx that cannot work is permanent).
"""
