"""Which checkpoint keys a verifier trusts, following the log's own announcements.

A new checkpoint key is announced by an entry of the log (`audit.checkpoint_key.add`, its vkey
in the details). Once a checkpoint signed by a key the verifier already trusts covers that
entry, the new key is trusted for the checkpoints after it; a key is dropped the same way
(`audit.checkpoint_key.retire`). So a verifier that pinned the log's vkeys once follows every
rotation with nothing but the log: the old key vouches for the new one, in history that the
old key's checkpoints commit to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from audit.note import NoteKey, OpenedNote, open_note, parse_vkey

KEY_ADDED = "audit.checkpoint_key.add"
KEY_RETIRED = "audit.checkpoint_key.retire"
ANNOUNCEMENTS = (KEY_ADDED, KEY_RETIRED)


def announced_key(event: Mapping[str, object]) -> tuple[str, NoteKey] | None:
    """(action, key) of an announcement, from a decoded leaf; None for any other entry.
    `InvalidNote` when an announcement's vkey is malformed."""
    action = event.get("action")
    if action not in ANNOUNCEMENTS:
        return None
    details = event.get("details")
    vkey = details.get("vkey") if isinstance(details, Mapping) else None
    return str(action), parse_vkey(vkey if isinstance(vkey, str) else "")


class KeyChain:
    """The keys trusted at this point of a walk through the log, in order."""

    def __init__(self, trusted: Iterable[NoteKey]) -> None:
        self.trusted: list[NoteKey] = list(trusted)
        self._pending: list[tuple[str, NoteKey]] = []

    def saw(self, event: Mapping[str, object]) -> None:
        """Take in the next entry (its decoded leaf): an announcement waits for a checkpoint."""
        announced = announced_key(event)
        if announced is not None:
            self._pending.append(announced)

    def open(self, note: str) -> OpenedNote:
        """Open the checkpoint covering the entries seen so far with the trusted keys; its
        announcements then take effect, for the checkpoints after it."""
        opened = open_note(note, self.trusted)
        for action, key in self._pending:
            if action == KEY_ADDED and key not in self.trusted:
                self.trusted.append(key)
            elif action == KEY_RETIRED and key in self.trusted:
                self.trusted.remove(key)
        self._pending.clear()
        return opened
