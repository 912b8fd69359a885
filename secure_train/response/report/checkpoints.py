"""Where a checkpoint stands: signature, audit trail up to it, gate verdict (looked up by digest).

A checkpoint's signed provenance pins the audit log's head when it was saved
(``audit_head = {events, head}``). Its *trail verifies* when the log's hash chain verifies up to
that many events and the event at that position still has that hash, so a log broken or
rewritten *after* a checkpoint leaves the checkpoint's own trail intact, and one broken before
it does not.

Gate verdicts are found by the checkpoint's SHA-256 (``checkpoint_sha256`` in signed
attestations), never by file name, so a renamed or replaced file cannot borrow a verdict.

Example:
    >>> status = CheckpointStatus(path="last.ckpt", sha256="ab" * 32, size=10, signature="verified",
    ...                           trail="verified", gate="passed")
    >>> status.qualifies, status.problems()
    (True, [])
    >>> CheckpointStatus(path="x.ckpt", sha256="", size=0, signature="failed").problems()[0]
    'signature failed'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from secure_train.core.audit_log import GENESIS_HASH

__all__ = ["CheckpointStatus"]


@dataclass
class CheckpointStatus:
    """One checkpoint file as evidence.

    Attributes:
        path: as shown (relative to the run directory when inside it).
        sha256: digest of the file's bytes; ``size`` in bytes.
        signature: ``verified`` / ``failed`` / ``unsigned`` / ``not checked`` (no public key).
        trail: ``verified`` / ``broken`` / ``unknown`` (no signed ``audit_head``).
        gate: ``passed`` / ``failed`` / ``none`` / ``unverified`` (no key to check the
            attestation) / ``invalid`` (attestation signature fails).
        global_step: from the signed provenance.
        audit_head: ``{events, head}`` from the signed provenance.
        gate_file: the attestation the verdict comes from.
        errors: what failed, per aspect.
    """

    path: str
    sha256: str
    size: int
    signature: str = "not checked"
    trail: str = "unknown"
    gate: str = "none"
    global_step: int | None = None
    audit_head: dict[str, Any] | None = None
    gate_file: str | None = None
    key_fingerprint: str | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def qualifies(self) -> bool:
        """Signature verified, audit trail verified up to it, and a passing, verified gate attestation."""
        return self.signature == "verified" and self.trail == "verified" and self.gate == "passed"

    def problems(self, *, require_gate: bool = True) -> list[str]:
        """Why this checkpoint does not qualify as a known-good rollback target (empty when it does)."""
        out = []
        if self.signature != "verified":
            out.append(
                f"signature {self.signature}" + (f": {self.errors['signature']}" if "signature" in self.errors else "")
            )
        if self.trail != "verified":
            out.append(f"audit trail {self.trail}" + (f": {self.errors['trail']}" if "trail" in self.errors else ""))
        if require_gate and self.gate != "passed":
            out.append(f"gate {self.gate}" + (f": {self.errors['gate']}" if "gate" in self.errors else ""))
        return out

    def check_trail(self, hashes: list[str], verified: int, chain_error: str | None) -> None:
        """Set :attr:`trail` from the log's event hashes, of which the first ``verified`` verify."""
        head = self.audit_head
        if not head or "events" not in head:
            self.trail = "unknown"
            self.errors["trail"] = "no audit head in the signed provenance"
            return
        events, digest = int(head["events"]), str(head.get("head"))
        if events > verified:
            self.trail = "broken"
            self.errors["trail"] = f"the log verifies for {verified} events, the checkpoint pins {events}" + (
                f" ({chain_error})" if chain_error else ""
            )
        elif (hashes[events - 1] if events else GENESIS_HASH) != digest:
            self.trail = "broken"
            self.errors["trail"] = f"event {events - 1} no longer has the hash the checkpoint pinned (log rewritten)"
        else:
            self.trail = "verified"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "qualifies": self.qualifies}
