"""Append-only Merkle log (RFC 6962/9162) of every security event, signed checkpoints and
inclusion and consistency proofs."""
