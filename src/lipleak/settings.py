"""What settings dataclasses share: a dict for the output and a hash of what moves numbers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict


class HashedSettings:
    """Mixin for frozen settings dataclasses. ``NOT_HASHED`` names the fields that never
    change a number (batch size, backend, ...), so reruns that differ only there reuse
    finished results."""

    NOT_HASHED: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)

    def hashed_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in self.NOT_HASHED}

    def hash(self) -> str:
        blob = json.dumps(self.hashed_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
