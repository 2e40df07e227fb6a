"""Personal identifiers in, tokens out: validation, envelope encryption under HSM-held keys,
blind indexes, audited reveal."""
