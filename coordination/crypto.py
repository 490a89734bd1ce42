"""Message authentication for the protocols: each replica signs what it sends.

PBFT's safety rests on a faulty replica being unable to speak for an honest one — in a view
change, a replica forwards the prepares it collected as proof, so they must be unforgeable.
Two keyrings, both built on maintained cryptography (never hand-rolled):

* :class:`Ed25519Keyring` — real public-key signatures (``cryptography``): what a deployment
  and the consensus graph use; anyone holding the public keys can verify.
* :class:`HmacKeyring` — HMAC-SHA256 (stdlib ``hmac``) under a per-replica secret, the MAC
  authenticators of the PBFT paper's normal case: ~300× cheaper, used by the property tests
  to run thousands of schedules. A replica only ever holds its *own* :class:`Signer`; the
  keyring's verify side stands in for the public-key directory.

Keys derive from a seed so that a simulated run is reproducible from its printed seed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from relaygraph.coordination.ballots import canonical_json


def signed_bytes(src: str, kind: str, body: Any) -> bytes:
    return canonical_json([src, kind, body])


class Signer(Protocol):
    """What one replica holds: the power to sign as itself, and nobody else."""

    owner: str

    def sign(self, kind: str, body: Any) -> str: ...


class Keyring(Protocol):
    def signer(self, owner: str) -> Signer: ...

    def verify(self, src: str, kind: str, body: Any, signature: str) -> bool: ...


class _HmacSigner:
    def __init__(self, owner: str, key: bytes) -> None:
        self.owner, self._key = owner, key

    def sign(self, kind: str, body: Any) -> str:
        return hmac.new(self._key, signed_bytes(self.owner, kind, body), hashlib.sha256).hexdigest()


class HmacKeyring:
    """Per-replica HMAC-SHA256 keys derived from ``seed``."""

    def __init__(self, members: Sequence[str], seed: int | str = 0) -> None:
        self._keys = {m: hashlib.sha256(f"relaygraph-hmac:{seed}:{m}".encode()).digest() for m in members}

    def signer(self, owner: str) -> Signer:
        return _HmacSigner(owner, self._keys[owner])

    def verify(self, src: str, kind: str, body: Any, signature: str) -> bool:
        key = self._keys.get(src)
        if key is None or not isinstance(signature, str):
            return False
        expected = hmac.new(key, signed_bytes(src, kind, body), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)


class _Ed25519Signer:
    def __init__(self, owner: str, key: Ed25519PrivateKey) -> None:
        self.owner, self._key = owner, key

    def sign(self, kind: str, body: Any) -> str:
        return self._key.sign(signed_bytes(self.owner, kind, body)).hex()


class Ed25519Keyring:
    """Ed25519 key pairs per member (private keys derived from ``seed``; public keys shared)."""

    def __init__(self, members: Sequence[str], seed: int | str = 0) -> None:
        self._private = {m: Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"relaygraph-ed25519:{seed}:{m}".encode()).digest()) for m in members}
        self.public: dict[str, Ed25519PublicKey] = {m: k.public_key() for m, k in self._private.items()}

    def signer(self, owner: str) -> Signer:
        return _Ed25519Signer(owner, self._private[owner])

    def verify(self, src: str, kind: str, body: Any, signature: str) -> bool:
        key = self.public.get(src)
        if key is None or not isinstance(signature, str):
            return False
        try:
            key.verify(bytes.fromhex(signature), signed_bytes(src, kind, body))
        except (InvalidSignature, ValueError):
            return False
        return True
