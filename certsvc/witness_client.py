"""The log's side of C2SP tlog-witness: ask each configured witness to cosign a checkpoint
(`add-checkpoint`, with a consistency proof from the size it last cosigned), collect the
`cosignature/v1` lines, and say whether the quorum is met.

The size a witness last cosigned is remembered per process, and learnt from the published note's
cosignatures after a restart; a witness that answers 409 says its size, and the request is sent
once more from there. A witness that cosigned a larger tree than the checkpoint, or refuses it as
inconsistent (422), has seen another history: that is reported, never worked around.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from audit.checkpoints import Checkpoint, parse_checkpoint
from audit.note import InvalidNote, split_note
from audit.witness_protocol import (
    SIZE_CONTENT_TYPE,
    BadRequest,
    WitnessKey,
    add_checkpoint_body,
    cosignatures,
    parse_size_line,
    parse_witness_vkey,
)
from certsvc.settings import WitnessSetting

TIMEOUT_SECONDS = 10.0
# Consistency proof from `old_size` to the checkpoint's size (empty from 0 or the same size).
ProofFrom = Callable[[int], list[bytes]]
REFUSALS = {
    400: "refused the request as malformed (400)",
    403: "refused the log's signature (403): is the log's vkey configured there?",
    404: "does not know this log (404): is its origin configured there?",
    422: "refused the checkpoint as inconsistent with one it cosigned before (422): another "
    "history of this log was shown to it",
}


@dataclass(frozen=True)
class Witness:
    key: WitnessKey
    url: str


@dataclass(frozen=True)
class Answer:
    """One witness's answer: its cosignature line, or what went wrong (`kind` for logging
    a lasting failure once)."""

    witness: str
    line: str | None = None
    problem: str | None = None
    kind: str = "ok"


@dataclass(frozen=True)
class Witnessing:
    """The cosigned note (the log's note and the cosignature lines gathered) and each answer."""

    note: str
    size: int
    quorum: int
    answers: list[Answer] = field(default_factory=list)

    @property
    def cosigned(self) -> int:
        return sum(answer.line is not None for answer in self.answers)

    @property
    def met(self) -> bool:
        return self.cosigned >= self.quorum

    def problems(self) -> list[str]:
        return [f"{a.witness} {a.problem}" for a in self.answers if a.problem is not None]

    def failure_key(self) -> tuple[tuple[str, str], ...]:
        return tuple((a.witness, a.kind) for a in self.answers if a.problem is not None)


class WitnessClient:
    """Asks `witnesses`, in turn, to cosign; `quorum` of them must."""

    def __init__(self, witnesses: Sequence[Witness], quorum: int) -> None:
        self.witnesses = list(witnesses)
        self.quorum = quorum
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Sequence[WitnessSetting], quorum: int) -> WitnessClient:
        return cls([Witness(parse_witness_vkey(s.vkey), s.url) for s in settings], quorum)

    def witness(
        self, note: str, checkpoint: Checkpoint, proof: ProofFrom, previous: str | None = None
    ) -> Witnessing:
        """Ask every witness to cosign `note` (of `checkpoint`); `previous`, the note published
        before, tells the sizes witnesses cosigned last when this process does not know them."""
        answers = []
        lines = []
        with httpx.Client(timeout=TIMEOUT_SECONDS) as http:
            for witness in self.witnesses:
                answer = self._ask(http, witness, note, checkpoint, proof, previous)
                answers.append(answer)
                if answer.line is not None:
                    lines.append(answer.line)
        return Witnessing(note + "".join(lines), checkpoint.size, self.quorum, answers)

    def _ask(
        self,
        http: httpx.Client,
        witness: Witness,
        note: str,
        checkpoint: Checkpoint,
        proof: ProofFrom,
        previous: str | None,
    ) -> Answer:
        name = witness.key.name
        old = self._start_size(witness, previous)
        for attempt in range(2):
            if old > checkpoint.size:
                return Answer(
                    name,
                    problem=f"has cosigned a larger tree ({old}) than this checkpoint "
                    f"({checkpoint.size}): the log was rolled back, or forked",
                    kind="rollback",
                )
            body = add_checkpoint_body(old, proof(old) if 0 < old < checkpoint.size else [], note)
            try:
                response = http.post(
                    f"{witness.url}/add-checkpoint",
                    content=body,
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
            except httpx.HTTPError as exc:
                return Answer(name, problem=f"unreachable ({type(exc).__name__})", kind="network")
            if response.status_code == 409 and attempt == 0:
                try:
                    old = self._conflict_size(response)
                except BadRequest:
                    return Answer(name, problem="answered 409 without its size", kind="protocol")
                self._remember(name, old)
                continue
            if response.status_code == 200:
                return self._accepted(witness, note, checkpoint, response.text)
            problem = REFUSALS.get(response.status_code, f"answered {response.status_code}")
            return Answer(name, problem=problem, kind=str(response.status_code))
        return Answer(name, problem="answered 409 twice", kind="409")

    def _accepted(self, witness: Witness, note: str, checkpoint: Checkpoint, text: str) -> Answer:
        """The witness's own cosignature line among those it sent, once it verifies."""
        name = witness.key.name
        for line in text.splitlines(keepends=True):
            try:
                if line.endswith("\n") and cosignatures(note + line, [witness.key]):
                    self._remember(name, checkpoint.size)
                    return Answer(name, line=line)
            except InvalidNote:
                return Answer(name, problem="sent a cosignature that does not verify", kind="bad")
        return Answer(name, problem="answered 200 without its cosignature", kind="bad")

    def _conflict_size(self, response: httpx.Response) -> int:
        if response.headers.get("content-type", "").split(";")[0].strip() != SIZE_CONTENT_TYPE:
            raise BadRequest("409 without text/x.tlog.size")
        return parse_size_line(response.text.removesuffix("\n"))

    def _start_size(self, witness: Witness, previous: str | None) -> int:
        with self._lock:
            known = self._known.get(witness.key.name)
        if known is not None:
            return known
        if previous is not None:
            try:
                if cosignatures(previous, [witness.key]):
                    return parse_checkpoint(split_note(previous)[0]).size
            except InvalidNote:
                pass
        return 0

    def _remember(self, name: str, size: int) -> None:
        with self._lock:
            self._known[name] = size
