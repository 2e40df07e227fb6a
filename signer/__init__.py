"""Keys on PKCS#11 tokens: custody, signing sessions, signatures verified before they leave,
and the X.509 certificates that tie each key to its certifying body."""
