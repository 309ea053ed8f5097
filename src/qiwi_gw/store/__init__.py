"""SQL by purpose, one module per job. Every statement is a constant with ``$n`` parameters.

``payments``: intake's writes and look-ups; ``queue``: the webhook queue (claim, outcomes,
release, resend); ``reports``: the operator's reads; ``attempts``, ``http_log``: their tables;
``registry``: the registry reconcile reads.
"""
