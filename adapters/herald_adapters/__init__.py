"""Herald's platform adapters: the program each publication attempt's Job runs.

The contract it implements is docs/adapter-contract.md; per-platform details are
in docs/adapters.md.
"""

from ._contract import AdapterError, Content, ErrorClass, Media, Mode, Payload, RateLimit, Result, Settings
from ._redact import Redactor

__version__ = "0.1.0"

__all__ = [
    "AdapterError",
    "Content",
    "ErrorClass",
    "Media",
    "Mode",
    "Payload",
    "RateLimit",
    "Redactor",
    "Result",
    "Settings",
    "__version__",
]
