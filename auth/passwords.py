"""Password hashing with Argon2id (argon2-cffi)."""
from __future__ import annotations

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError


class PasswordHasher:
    """Hashes and checks passwords; verifying an unknown user costs the same as a known one."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy_hash = self._argon2.hash("timing-equaliser")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no stored hash, burn the same time and say False."""
        try:
            return self._argon2.verify(stored_hash or self._dummy_hash, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._argon2.check_needs_rehash(stored_hash)
