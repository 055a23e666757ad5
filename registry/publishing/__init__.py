"""Publishing: validating a version's files, then making it visible in one atomic step.

Importing this package loads only the validators (standard library and PyYAML), so the
client can validate before pushing without the server's dependencies.
"""

from registry.publishing.validation import (
    REQUIRED_CARD_FIELDS,
    FileEntry,
    Problem,
    check_file_kind,
    check_layout,
    check_path,
    check_safetensors,
    folder_entries,
    parse_model_card,
    validate_folder,
    validate_version,
)

__all__ = [
    "REQUIRED_CARD_FIELDS",
    "FileEntry",
    "Problem",
    "check_file_kind",
    "check_layout",
    "check_path",
    "check_safetensors",
    "folder_entries",
    "parse_model_card",
    "validate_folder",
    "validate_version",
]
