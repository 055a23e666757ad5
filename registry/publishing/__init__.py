"""Publishing: upload sessions, validation at commit, review, signed versions, withdrawal."""
