"""The HiPtah API client: pure Python, no bpy.

Public names are imported lazily, so that ``from hiptah_blender.client import
errors`` or the validation helpers never pull in pydantic or requests; the
Blender layer relies on that to register quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import *  # noqa: F403  (light: no third-party imports)
from .errors import __all__ as _error_names

if TYPE_CHECKING:
    # Re-exported lazily through __getattr__ below; listed here for type checkers.
    from .http import HiptahClient  # noqa: F401
    from .models import (  # noqa: F401
        GenerateRequest,
        GenerateResponse,
        Job,
        JobStatus,
        WebhookEvent,
        WebhookRegistration,
    )
    from .webhooks import WebhookVerificationError, verify_webhook  # noqa: F401

_LAZY = {
    "HiptahClient": "http",
    "GenerateRequest": "models",
    "GenerateResponse": "models",
    "Job": "models",
    "JobStatus": "models",
    "WebhookEvent": "models",
    "WebhookRegistration": "models",
    "verify_webhook": "webhooks",
    "WebhookVerificationError": "webhooks",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [*_error_names, *_LAZY]
