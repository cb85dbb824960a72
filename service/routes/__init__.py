"""One module per resource; each route reads like the API docs and delegates."""

from service.routes import datasets, health, jobs, models

ROUTERS = (models.router, datasets.router, jobs.router, health.router)
# Bodies these routes stream to disk under their own limit (see service.limits).
STREAMED_UPLOADS = frozenset({("POST", models.COLLECTION), ("POST", datasets.COLLECTION)})

__all__ = ["ROUTERS", "STREAMED_UPLOADS"]
