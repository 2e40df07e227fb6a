"""Published test vectors for C2SP signed notes, copied verbatim from their sources.

- `SPEC_ED25519`: the example of c2sp.org/signed-note (C2SP/C2SP, signed-note.md, § "Verifier
  keys"), licensed CC BY 4.0.
- `GO_ED25519`: golang.org/x/mod/sumdb/note (note_test.go, TestSignerVerifier), BSD-3-Clause,
  Copyright The Go Authors.
- `REKOR_ECDSA`, `PIXEL_ECDSA`, `BAD_*`: transparency-dev/formats (note/note_verifier_test.go,
  TestNewECDSAVerifier and TestECDSAVerifier), Apache License 2.0, Copyright 2021 Google LLC:
  real notes of the Sigstore Rekor log and the Pixel transparency log, signature type 0x02, key
  ID = SHA-256 of the DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

SPEC_ED25519 = (
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "This is an example message.\n"
    "\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOB"
    "H3mFXmRKuwHjG1Yu72IneyaQM=\n",
)
GO_ED25519 = (
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
    "pRZb6KE6RyyBwJnAM=\n",
)
_REKOR_KEY = (
    "AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNhtmPtrWm3U1eQXBogSMdGvXwBcK5AW5i0hrZLOC96l+smGNM7nwZ4Qv"
    "FK/4sueRoVj//QP22Ni4Qt9DPfkWLc="
)
_REKOR_NOTE = (
    "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n"
    "\n"
    "\u2014 rekor.sigstore.dev wNI9ajBEAiARInWIWyCdyG27CO6LPnPekyw20qO0YJfoaPaowGp/XgIgc+qEHS3"
    "+GKVClgqq20uDLet7MCoTURUCRdxwWBHHufk=\n"
)
REKOR_ECDSA = ("rekor.sigstore.dev+c0d23d6a+" + _REKOR_KEY, _REKOR_NOTE)
PIXEL_ECDSA = (
    "pixel6_transparency_log+91c16e30+AjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN+4x0Jk1yTwvLFI9A4NDdGZ"
    "cX0aiWVdWM5XJVy0M4VWD3AvyW5Q6Hs9A0mcDkpUoYgn+KKPNzFC0H3nN3q6JQ8=",
    "DEFAULT\n10\nbsWRucJU5xJPHb5eBdOm6+DM+VelCZBuvtI3sHERJ9Y=\n"
    "\n"
    "\u2014 pixel6_transparency_log kcFuMDBFAiEAhqMAP8P6qf6QxtUJhzMhbN+MbZ9dwfUHzGQJmffJHtoCIG"
    "D0cNe47dHWBoPwYdgBCepB06/+g5O1FmYjXl06owL4\n",
)
VALID = (SPEC_ED25519, GO_ED25519, REKOR_ECDSA, PIXEL_ECDSA)

# A verifier key under another name: the signature is from an unknown key.
BAD_NAME = ("bananas.sigstore.dev+c0d23d6a+" + _REKOR_KEY, _REKOR_NOTE)
# A signature that does not verify under the right key.
BAD_SIGNATURE = (
    REKOR_ECDSA[0],
    "Rekor\n798034\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\n"
    "\n"
    "\u2014 rekor.sigstore.dev THIS/IS/PROBABLY/NOT/A/VALID/SIGNATURE/ANy/MOREowGp/XgIgc+qEHS3+GKVC"
    "lgqq20uDLet7MCoTURUCRdxwWBHHufk=\n",
)
# Verifier keys to refuse: a key ID that is not the key's, a type that is not ECDSA.
BAD_VKEYS = (
    "rekor.sigstore.dev+00000000+" + _REKOR_KEY,
    "rekor.sigstore.dev+12345678+AwEB",
    "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
    "bananas.sigstore.dev+12344556",
)
