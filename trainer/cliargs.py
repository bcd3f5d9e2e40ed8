"""Argument checks shared by the corpus verbs (trainer.corpus and trainer.english.cli): counts, and
output folders checked before any work starts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trainer.shards import DataError


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (the corpus verbs' counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give one of at least 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def writable_folder(path: Path, flag: str) -> Path:
    """``path`` as a folder this process can make or write into, checked before any work: a file
    there, or under a file, or a folder without write permission is a DataError naming ``flag``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataError(f"{flag} {path}: is a file, not a folder; give a folder (it is made if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise DataError(f"{flag} {path}: cannot be made, {existing} is a file; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"cannot be made: {existing} is not writable"
        raise DataError(f"{flag} {path}: {what}; give a folder you can write to")
    return path
