"""One plaintext gate: nothing outside `vault` decrypts, and the vault hands a value out only
through `reveal`. Read from the code itself (every `.py` of the packages and bench/), so a new
caller that goes around the gate fails here before review."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import vault

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("audit", "bench", "certify", "certsvc", "common", "hsm_sim", "printing", "signer")
SCANNED += ("verify",)
# Names that decrypt (values, or data keys under the KEK): the vault's private path, the KEK
# session's decryption, and every cipher object's `decrypt`.
DECRYPTING = {"decrypt", "aes_gcm_decrypt", "open_entries", "decrypt_entry", "unwrap_version"}
# The decryptions outside `vault`: the PKCS#11 call inside the token session's
# `aes_gcm_decrypt`, which only the vault's key unwrapping calls (checked by the rule above);
# and the console opening a staff account's own TOTP secret (no personal value: a second
# factor, sealed under the console's key file, bound to the account).
ALLOWED = {
    ("signer/tokens.py", "aes_gcm_decrypt", "decrypt"),
    ("certsvc/console/totp.py", "check_code", "decrypt"),
}
# Objects whose `open`/private members reach plaintext: the vault and its key ring.
VAULT_NAMES = {"vault", "keyring"}


def _module_files() -> Iterator[Path]:
    for package in SCANNED:
        yield from sorted((ROOT / package).rglob("*.py"))


def _is_vault_object(node: ast.expr) -> bool:
    """`vault`, `issuer.vault`, `self.keyring`…: an expression naming the vault or its keys."""
    if isinstance(node, ast.Name):
        return node.id in VAULT_NAMES
    return isinstance(node, ast.Attribute) and node.attr in VAULT_NAMES


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.functions: list[str] = []
        self.found: list[str] = []

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.path}:{getattr(node, 'lineno', 0)}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _private_vault_module(alias.name):
                self._flag(node, f"imports {alias.name}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        for alias in node.names:
            if _private_vault_module(module) or _private_vault_module(f"{module}.{alias.name}"):
                self._flag(node, f"imports {alias.name} from {module}")
            elif alias.name in DECRYPTING:
                self._flag(node, f"imports {alias.name}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DECRYPTING:
            self._flag(node, f"uses {node.id}")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        inside = self.functions[-1] if self.functions else ""
        if node.attr in DECRYPTING and (self.path, inside, node.attr) not in ALLOWED:
            self._flag(node, f"calls .{node.attr}")
        elif _is_vault_object(node.value) and (
            node.attr == "open" or (node.attr.startswith("_") and not node.attr.startswith("__"))
        ):
            self._flag(node, f"opens the vault (.{node.attr})")
        self.generic_visit(node)


def _private_vault_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "vault" and any(part.startswith("_") for part in parts[1:])


def decrypting_code(source: str, path: str) -> list[str]:
    """Where `source` (the file at `path` under the repository) decrypts or reaches the vault's
    private path."""
    finder = _Finder(path)
    finder.visit(ast.parse(source, filename=path))
    return finder.found


def test_nothing_outside_the_vault_decrypts() -> None:
    files = list(_module_files())
    assert {f.relative_to(ROOT).parts[0] for f in files} == set(SCANNED)
    found = [
        finding
        for path in files
        for finding in decrypting_code(path.read_text(), path.relative_to(ROOT).as_posix())
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("name = vault.open(db, [token])[token].value", "opens the vault (.open)"),
        ("issuer.vault._open(db, tokens)", "opens the vault (._open)"),
        ("self.vault.keyring._keys", "opens the vault (._keys)"),
        ("from vault._plaintext import open_entries", "imports open_entries from vault._plaintext"),
        ("from vault import _crypto", "imports _crypto from vault"),
        ("import vault._plaintext", "imports vault._plaintext"),
        ("from vault.store import decrypt", "imports decrypt"),
        ("keys.newest.decrypt(kind, token, sealed)", "calls .decrypt"),
        ("AESGCM(key).decrypt(nonce, data, aad)", "calls .decrypt"),
        ("session.aes_gcm_decrypt(label, nonce, aad, body)", "calls .aes_gcm_decrypt"),
        ("f = open_entries", "uses open_entries"),
        (
            "def aes_gcm_decrypt(self):\n    return key.decrypt(data)",
            "calls .decrypt",  # allowed in signer/tokens.py only
        ),
    ],
)
def test_the_check_sees_each_way_around_the_gate(source: str, what: str) -> None:
    [finding] = decrypting_code(source, "certify/example.py")
    assert finding.endswith(what)


def test_the_token_sessions_own_decrypt_is_the_one_exception() -> None:
    allowed = "def aes_gcm_decrypt(self):\n    return key.decrypt(data)"
    assert decrypting_code(allowed, "signer/tokens.py") == []
    elsewhere = "def sign(self):\n    return key.decrypt(data)"
    assert decrypting_code(elsewhere, "signer/tokens.py") != []


def _public_callables() -> Iterator[tuple[str, object]]:
    """Every public function and public method of the vault's public modules."""
    for info in pkgutil.iter_modules(vault.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"vault.{info.name}")
        for name, member in vars(module).items():
            if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(member):
                yield f"vault.{info.name}.{name}", member
            elif inspect.isclass(member):
                for attr, method in vars(member).items():
                    function = getattr(method, "__func__", method)
                    if not attr.startswith("_") and inspect.isfunction(function):
                        yield f"vault.{info.name}.{name}.{attr}", function


def test_only_reveal_returns_values() -> None:
    """`Opened` (a token's kind and value in the clear) is what decrypting yields; among the
    vault's public functions only `reveal` returns it."""
    returning = sorted(
        name
        for name, function in _public_callables()
        if "Opened" in str(inspect.get_annotations(function).get("return", ""))
    )
    assert returning == ["vault.reveal.reveal"]
