"""The raw token operation, private to `signer`: only `signer.gate` imports it (a test reads
every module and fails if anything else does). Nothing here checks a rule or writes an event;
that is the gate's work."""
