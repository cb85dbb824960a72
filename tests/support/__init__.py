"""Real processes for tests: redis-server, PostgreSQL databases, Celery workers, the API.

Every process is started on a free port, logs to a file that is shown when the test fails,
and is stopped (its whole process group) when the test ends. Nothing here is a mock.
"""
