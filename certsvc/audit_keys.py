"""The audit log's checkpoint keys: on the audit token, unlocked unattended with a service PIN.

Every checkpoint carries one signature line per active checkpoint key: Ed25519 (type 0x01, what
public witnesses require) and ECDSA P-256 (type 0x02), each made through the signing gate. This
is also where the service learns the public halves verifiers need (from the custody register,
so `certsvc audit verify` needs no token), publishes them as vkeys, announces a new key in the
log (`audit.keychain`), and keeps the anchor moving with each checkpoint it signs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from audit.anchor import Anchor, AnchorDamaged
from audit.bundle import build_bundle
from audit.checkpoints import parse_checkpoint
from audit.log import consistency_proof, size
from audit.note import InvalidNote, NoteKey, SignBytes, note_key, split_note
from audit.publish import CheckpointSigner, Published, latest_checkpoint, publish_checkpoint
from audit.query import event_range
from audit.trail import Attributed, record
from audit.witness_protocol import cosignatures
from certsvc.audit_tiles import CHECKPOINT, TilesWritten, publish_tiles
from certsvc.audit_trail import SYSTEM_ROLE
from certsvc.service_pins import service_pin
from certsvc.settings import Settings
from certsvc.witness_client import WitnessClient, Witnessing
from common.errors import ServiceFault
from signer.actor import Actor
from signer.custody import certificate_of
from signer.gate import GateTransaction, Subject, authorise_service, signing_transaction
from signer.models import HsmToken, KeyPurpose, KeyStatus, SigningKey
from signer.policy import SignPurpose
from signer.tokens import Pkcs11Tokens, TokenSession

# Who signs the checkpoints the service makes on its own (`Checkpointer`).
CHECKPOINTER = Actor("certsvc-checkpointer", 0, SYSTEM_ROLE)


class NoCheckpointKey(ServiceFault):
    """No audit-checkpoint key is registered for the body."""


def checkpoint_keys(db: Session, settings: Settings) -> list[SigningKey]:
    """Every audit-checkpoint key of the body, retired or not, oldest first: the checkpoints
    they signed still verify with them."""
    keys = list(
        db.scalars(
            select(SigningKey)
            .where(
                SigningKey.body_code == settings.body_code,
                SigningKey.purpose == KeyPurpose.AUDIT_CHECKPOINT,
            )
            .order_by(SigningKey.id)
        )
    )
    if not keys:
        raise NoCheckpointKey(
            f"no audit-checkpoint key for body {settings.body_code}: run `certsvc init`"
        )
    return keys


def signing_keys(keys: Sequence[SigningKey]) -> list[SigningKey]:
    """The keys that sign the next checkpoint: the active ones; all of them when none is, so
    that the signing gate refuses them (with an audit event) rather than nothing happening."""
    active = [key for key in keys if key.status is KeyStatus.ACTIVE]
    return active or list(keys)


def note_key_of(settings: Settings, key: SigningKey) -> NoteKey:
    """The key's verifier key under the log's name (its origin); for ECDSA also accepting the
    key ID that checkpoints signed before the spec's 0x02 rule carry."""
    public = certificate_of(key).public_key()
    if not isinstance(public, Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise NoCheckpointKey(f"audit-checkpoint key {key.label}: neither Ed25519 nor ECDSA")
    return note_key(settings.audit_origin, public, legacy_id=True)


def note_keys(db: Session, settings: Settings) -> list[NoteKey]:
    """Every checkpoint key of the body, as verifier keys: what opens any note the log signed."""
    return [note_key_of(settings, key) for key in checkpoint_keys(db, settings)]


def published_vkeys(db: Session, settings: Settings) -> list[str]:
    """The vkeys of the keys that sign checkpoints now, Ed25519 first: what the body publishes
    for verifiers and witnesses to pin."""
    keys = [note_key_of(settings, key) for key in signing_keys(checkpoint_keys(db, settings))]
    return [key.vkey() for key in sorted(keys, key=lambda k: k.type)]


def announce(db: Session, settings: Settings, actor: Actor, key: SigningKey, action: str) -> None:
    """Announce a checkpoint key in the log (`audit.keychain`): the next checkpoint, signed by
    the keys trusted until now, vouches for it (or for its retirement)."""
    record(
        db,
        actor,
        action,
        f"key:{key.id}",
        details={
            "key": key.label,
            "token": key.token_serial,
            "vkey": note_key_of(settings, key).vkey(),
        },
    )


class CheckpointKeyHolder:
    """Keeps the audit token logged in for this process and signs checkpoint notes with its
    keys, through the signing gate (service rules, counted, one event per signature); moves the
    anchor after each checkpoint it signs."""

    def __init__(
        self, settings: Settings, tokens: Pkcs11Tokens, sessions: sessionmaker[Session]
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._sessions = sessions
        self._lock = threading.Lock()
        self._logged_in: dict[str, TokenSession] = {}
        self.anchor = Anchor(settings.audit_anchor_path)
        self.witnesses = WitnessClient.from_settings(
            settings.audit_witnesses, settings.audit_witness_quorum
        )

    def unlock(self) -> None:
        """Log in to the tokens of the signing keys with their service PINs, unless this process
        is logged in.

        Call it before opening the transaction that publishes: logging in writes the PIN
        counter, which must not wait on the log's own lock (SQLite has one lock per file).
        """
        with self._sessions() as db:
            serials = {
                key.token_serial for key in signing_keys(checkpoint_keys(db, self._settings))
            }
            labels = {
                serial: label
                for serial, label in db.execute(
                    select(HsmToken.serial, HsmToken.label).where(HsmToken.serial.in_(serials))
                )
            }
        if set(labels) != serials:
            raise NoCheckpointKey("an audit-checkpoint key's token is not registered")
        with self._lock:
            for serial, label in labels.items():
                session = self._logged_in.get(serial)
                if session is None or not session.is_open:
                    pin = service_pin(self._settings.service_pins_file, label)
                    self._logged_in[serial] = self._tokens.login(serial, pin)

    def signer(self, unit: GateTransaction, actor: Actor) -> CheckpointSigner:
        """A checkpoint signer whose signatures `actor` asks the gate for, in `unit`'s
        transaction: the checkpoint and its events commit together, and the checkpoint covers
        its own events (`audit-checkpoint:<size>`, the last ones it holds)."""
        keys = checkpoint_keys(unit.db, self._settings)
        signers = [(key.id, note_key_of(self._settings, key)) for key in signing_keys(keys)]
        with self._lock:
            logged_in = dict(self._logged_in)
        serials = {key.id: key.token_serial for key in keys}

        def authorise() -> list[tuple[NoteKey, SignBytes]]:
            subject = Subject(f"audit-checkpoint:{size(unit.db) + len(signers)}")
            lines: list[tuple[NoteKey, SignBytes]] = []
            for key_id, verifier in signers:
                session = logged_in.get(serials[key_id])
                purpose = SignPurpose.AUDIT_CHECKPOINT
                permit = authorise_service(unit, actor, key_id, session, purpose, subject)
                lines.append((verifier, permit.sign))
            return sorted(lines, key=lambda line: line[0].type)  # Ed25519 first

        all_keys = [note_key_of(self._settings, key) for key in keys]
        return CheckpointSigner(self._settings.audit_origin, all_keys, authorise)

    def publish(
        self, sessions: sessionmaker[Session], actor: Actor, *, restart: bool = False
    ) -> Published:
        """Sign a checkpoint for the log as it is now (if it grew), then anchor it; with no
        witness configured, publish it too (else `witness` does). `restart` anchors it afresh
        whatever was anchored (`certsvc audit reanchor`, a first anchor)."""
        self.unlock()
        with signing_transaction(sessions) as unit:
            published = publish_checkpoint(
                unit.db, self.signer(unit, actor), self.anchor, restart=restart
            )
        published.anchor_in(self.anchor)
        if not self.witnesses.witnesses:
            self.witness()  # published as signed: nobody to ask
        return published

    def witness(self) -> Witnessing | None:
        """Publish the anchored checkpoint: at once when no witness is configured, else with
        the cosignatures gathered, once `CERTSVC_AUDIT_WITNESS_QUORUM` of them cosigned it. The
        witnesses' answers, or None when there was nothing new to publish or no one to ask;
        below the quorum the checkpoint published before stays so."""
        with self._sessions() as db:
            keys = note_keys(db, self._settings)
        anchored = self.anchor.read(keys)
        if anchored is None:
            return None
        published = self.anchor.published(keys)
        if published is not None and published_size(published) >= anchored.size:
            return None
        if not self.witnesses.witnesses:
            self.anchor.publish(anchored.note, anchored.checkpoint)
            return None

        def proof(old_size: int) -> list[bytes]:
            with self._sessions() as db:
                return consistency_proof(db, old_size, anchored.size)

        witnessing = self.witnesses.witness(anchored.note, anchored.checkpoint, proof, published)
        if witnessing.met:
            self.anchor.publish(witnessing.note, anchored.checkpoint)
        return witnessing

    def public_note(self) -> str | None:
        return public_note(self._settings, self._sessions, self.anchor, self.witnesses)

    def publish_tiles(self, directory: Path) -> TilesWritten | None:
        return publish_published_tiles(self.public_note(), self._sessions, directory)

    def close(self) -> None:
        with self._lock:
            for session in self._logged_in.values():
                session.close()
            self._logged_in.clear()


def published_size(note: str) -> int:
    """The tree size of a published (already opened) checkpoint note."""
    return parse_checkpoint(split_note(note)[0]).size


def public_note(
    settings: Settings, sessions: sessionmaker[Session], anchor: Anchor, witnesses: WitnessClient
) -> str | None:
    """The checkpoint note the body publishes: the published one (witnessed when a quorum is
    set); without a quorum, on an anchor from before publication, the anchored one. Needs no
    token: the relay's static files (`certsvc.public_static`) read it too."""
    with sessions() as db:
        keys = note_keys(db, settings)
    note = anchor.published(keys)
    if note is not None:
        try:  # the cosignatures of the configured witnesses must verify too
            cosignatures(note, [w.key for w in witnesses.witnesses])
        except InvalidNote as exc:
            raise AnchorDamaged(f"the published checkpoint: {exc}") from None
    if note is None and settings.audit_witness_quorum == 0:
        anchored = anchor.read(keys)
        note = anchored.note if anchored is not None else None
    return note


def publish_published_tiles(
    note: str | None, sessions: sessionmaker[Session], directory: Path
) -> TilesWritten | None:
    """Write the tiles of the published checkpoint `note` into `directory` unless they are
    there already; None when nothing is published or nothing changed."""
    if note is None:
        return None
    checkpoint_file = directory / CHECKPOINT
    if checkpoint_file.exists() and checkpoint_file.read_text() == note:
        return None
    with sessions() as db:
        return publish_tiles(db, note, parse_checkpoint(split_note(note)[0]), directory)


AUDIT_EXPORT = "audit.export"


def export_bundle(
    db: Session,
    settings: Settings,
    exporter: Attributed,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """The self-contained bundle of the events in [since, until) for an outside auditor
    (`certsvc audit verify-bundle`), with the certificates of the checkpoint keys. Who took
    which events out is itself an event, in `db`'s transaction: the log says who holds a copy."""
    start, end = event_range(db, since, until)
    latest = latest_checkpoint(db)
    if until is None and latest is not None:
        # Open-ended: what the newest checkpoint covers (the last export's own event is not).
        end = min(end, latest.size)
        start = min(start, end)
    certificates = [certificate_of(key) for key in checkpoint_keys(db, settings)]
    bundle = build_bundle(db, settings.audit_origin, certificates, start, end)
    record(
        db,
        exporter,
        AUDIT_EXPORT,
        f"audit-events:{start}-{end}",
        details={"events": len(bundle["events"])},
    )
    return bundle
