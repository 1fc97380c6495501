"""`kubectl herald`: a kubectl plugin for Herald's Publications (docs/kubectl-plugin.md).

Installed as the console script ``kubectl-herald``, which kubectl runs for ``kubectl herald ...``.
"""

__version__ = "0.1.0"
