"""The owner's command line for a deployed bridge: users, limits, usage reports, forgetting,
and replaying the dead-letter queue.

It talks to the stack's DynamoDB table and SQS queues directly (``python -m admin --help``);
see docs/ADMIN.md. Writes go through ``handler.store.Store`` so they match what the bot writes.
"""
