"""A small HTTP client of the Shears API, and the `shears submit / jobs / report` commands.

Only httpx: pipelines install it without torch.
"""

from shears_client.http import ApiError, ShearsClient

__all__ = ["ApiError", "ShearsClient"]
