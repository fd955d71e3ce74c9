"""The one error of backups and restores: its message tells the operator what to do."""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup or restore cannot go on; ``str()`` says why and how to fix it."""
