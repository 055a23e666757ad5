"""Image-text manifests (JSONL or CSV): read, check and write them.

Each record names an ``image`` (relative to the image root) and its ``text``; optional
``patient_id``, ``split`` and ``labels``. A JSONL manifest may start with a header line
``{"manifest": {"image_root": "...", "dataset": "...", "description": "..."}}``; the image
root is the manifest's own folder unless the header (written by ``import-mimic``) names one.
Records whose image resolves outside the root, is missing, or whose text is empty are
skipped and counted, never fatal one by one.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


class ManifestError(TrainerError):
    """A manifest that cannot be used at all (unreadable, wrong format, nothing usable)."""


@dataclass(frozen=True)
class Record:
    """One usable image-text pair."""

    image: Path  # resolved, inside the image root
    text: str
    patient_id: str | None = None
    split: str | None = None
    labels: dict[str, Any] | None = None


@dataclass
class Manifest:
    """The usable records of a manifest and the count of each reason for a skip."""

    path: Path
    image_root: Path
    records: list[Record]
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[dict[str, Any]] = field(default_factory=list)  # {"image", "reason"}
    dataset: str | None = None  # a short name, e.g. mimic-cxr-jpg, for the model card
    description: str | None = None

    def select(self, split: str | None) -> list[Record]:
        """Records of one split (``None``: all; ``train`` also takes records without one)."""
        if split is None:
            return list(self.records)
        if split == "train":
            return [r for r in self.records if r.split in (None, "", "train")]
        return [r for r in self.records if r.split == split]


def _raw_rows(path: Path, skipped: Counter[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return the rows of a JSONL or CSV manifest and its header (empty if none)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or not {"image", "text"} <= set(reader.fieldnames):
            raise ManifestError(f"{path}: a CSV manifest needs a header with image,text columns")
        return list(reader), {}
    rows: list[dict[str, Any]] = []
    header: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            skipped["line is not JSON"] += 1
            continue
        if not isinstance(row, dict):
            skipped["line is not a JSON object"] += 1
        elif number == 1 and isinstance(row.get("manifest"), dict):
            header = row["manifest"]
        else:
            rows.append(row)
    return rows, header


def read_manifest(path: Path, *, image_root: Path | None = None) -> Manifest:
    """Read and check a manifest; raise ManifestError only if no record is usable."""
    path = Path(path)
    skipped: Counter[str] = Counter()
    rows, header = _raw_rows(path, skipped)
    # A root given on the command line is relative to the working directory; one named in
    # the manifest's header is relative to the manifest's folder.
    if image_root is not None:
        root = Path(image_root).resolve()
    else:
        root = (path.parent / header.get("image_root", ".")).resolve()
    records = []
    skipped_rows: list[dict[str, Any]] = []
    for row in rows:
        image, text = row.get("image"), row.get("text")
        if not isinstance(image, str) or not image.strip():
            skipped["no image path"] += 1
            continue
        resolved = (root / image).resolve()
        why = None
        if not resolved.is_relative_to(root):
            why = "image outside the manifest's folder"
        elif resolved.suffix.lower() not in IMAGE_SUFFIXES:
            why = "not a PNG, JPEG or DICOM file"
        elif not resolved.is_file():
            why = "image missing"
        elif not isinstance(text, str) or not text.strip():
            why = "empty text"
        if why is not None:
            skipped[why] += 1
            skipped_rows.append({"image": image, "reason": why})
        else:
            labels = row.get("labels")
            records.append(
                Record(
                    image=resolved,
                    text=" ".join(text.split()),
                    patient_id=_optional_str(row.get("patient_id")),
                    split=_optional_str(row.get("split")),
                    labels=labels if isinstance(labels, dict) else None,
                )
            )
    if not records:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.items()) or "it has no records"
        raise ManifestError(f"{path}: no usable image-text pairs ({reasons})")
    return Manifest(
        path=path,
        image_root=root,
        records=records,
        skipped=skipped,
        skipped_rows=skipped_rows,
        dataset=_optional_str(header.get("dataset")),
        description=_optional_str(header.get("description")),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def write_manifest(
    path: Path,
    rows: Iterable[dict[str, Any]],
    *,
    image_root: Path | None = None,
    dataset: str | None = None,
    description: str | None = None,
) -> Path:
    """Write rows as JSONL after a header line naming the image root and dataset."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"image_root": str(image_root) if image_root else None}
    header.update(dataset=dataset, description=description)
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"manifest": {k: v for k, v in header.items() if v}}) + "\n")
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
