"""Schemathesis hooks of the contract test (tests/contract/schemathesis.toml)."""

import schemathesis

# Postcard bodies go on the wire as the bytes generated for them.
schemathesis.serializer.alias("application/x-postcard", "application/octet-stream")
