"""Commands of this area (see xinstruct/cli/__init__.py)."""

from ._app import app  # noqa: F401
