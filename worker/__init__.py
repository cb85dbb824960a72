"""The Celery worker: claims jobs from the job store and runs the engine in a sandboxed child.

Deliberately empty: `python -m worker.child` must not pay for Celery or SQLAlchemy imports.
"""
