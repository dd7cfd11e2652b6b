"""The Lambda code: Messenger webhook in, OpenAI model, Messenger Send API out.

``app.lambda_handler`` is the entry point. The webhook path (``webhook``) only checks,
parses and hands the work on (``dispatch``); the slow part runs in ``worker``.
"""
