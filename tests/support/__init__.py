"""The harness the tests (and the bench) stand on, one module per thing it starts or fakes.

- ``database``: a PostgreSQL server (configured or embedded), the migrated template and the
  per-test databases cloned from it;
- ``app``: the gateway application in-process (aiohttp's test client);
- ``gateway``: the gateway as a real process (``qiwi-gw serve``), ready once ``/readyz`` is;
- ``backend``: the merchant's backend, real local HTTP servers receiving webhooks;
- ``qiwi``: QIWI's side, XML answers read, pays sent and remembered;
- ``postgres``: PostgreSQL servers of a test's own (stopped, started, replicated);
- ``rows``: rows seeded and read directly; ``cli``: ``qiwi-gw`` run in-process or as a process;
- ``console``: the operator console beside the gateway;
- ``chaos``: the fault-injection suite's scale, invariants and report (docs/reliability.md);
- ``intake``: hostile callers in a process of their own (``python -m tests.support.intake``);
- ``hardening_figures`` and ``image_check``: commands (``python -m tests.support.<name>``).
"""
