"""What the client and the registry both apply, in one place: standard library and PyYAML only.

- ``rules``: repo ids, names, tags, commits, digests, database ids, control characters,
  and the canonical JSON form of a manifest (the bytes that get signed and hashed);
- ``safetensors_header``: reads and checks a safetensors header without torch or numpy;
- ``model_card``: parses a model card's YAML front matter and checks its required fields.

The registry imports these (it already depends on the client package for ``client.merkle``);
nothing here imports the registry, Flask, SQLAlchemy, torch or numpy
(``tests/client/test_shared.py`` checks this in a fresh interpreter).
"""
