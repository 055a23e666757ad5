"""Import MIMIC-CXR-JPG (or the DICOM release): frontal images and report impressions.

Layout: ``ROOT/files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`` (or ``.dcm``), the metadata
CSV ``mimic-cxr-2.0.0-metadata.csv[.gz]`` with ``ViewPosition``, optionally the official
``mimic-cxr-2.0.0-split.csv[.gz]``, and report texts ``REPORTS/files/pXX/pNNNNNNNN/
sNNNNNNNN.txt``. Writes a manifest whose image root is ROOT; splits never share a patient.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from transformers import CLIPTokenizer

from trainer.errors import TrainerError
from trainer.manifest import write_manifest
from trainer.phi import ScrubCounts, scrub_text

FRONTAL_VIEWS = ("PA", "AP")
METADATA_NAME = "mimic-cxr-2.0.0-metadata.csv"
SPLIT_NAME = "mimic-cxr-2.0.0-split.csv"
SPLIT_NAMES = {"train": "train", "validate": "validation", "test": "test"}
IMAGE_SUFFIXES = (".jpg", ".dcm")
_HEADING = re.compile(r"^\s*([A-Z][A-Z &/,()-]{2,}):", re.MULTILINE)


class MimicImportError(TrainerError):
    """A MIMIC-CXR folder that cannot be imported, with what is missing."""


@dataclass
class ImportReport:
    """What the import wrote and what it skipped (and why)."""

    manifest: Path
    written: int = 0
    truncated: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    patients: Counter[str] = field(default_factory=Counter)  # per split
    phi: ScrubCounts = field(default_factory=ScrubCounts)


def report_section(text: str, names: tuple[str, ...]) -> str | None:
    """The text under the first heading in ``names`` (e.g. IMPRESSION), up to the next one."""
    headings = list(_HEADING.finditer(text))
    for wanted in names:
        for i, heading in enumerate(headings):
            if heading.group(1).strip() == wanted:
                end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
                body = " ".join(text[heading.end() : end].split())
                if body:
                    return body
    return None


def impression_or_findings(text: str) -> str | None:
    """The impression section; the findings section when there is no impression."""
    return report_section(text, ("IMPRESSION", "IMPRESSIONS")) or report_section(
        text, ("FINDINGS",)
    )


def fit_to_tokens(text: str, tokenizer: CLIPTokenizer) -> tuple[str, bool]:
    """Cut ``text`` at a word boundary to fit the tokenizer (77 with BOS/EOS); was it cut?"""
    limit = tokenizer.model_max_length

    def length(candidate: str) -> int:
        return len(tokenizer(candidate, truncation=False).input_ids)

    if length(text) <= limit:
        return text, False
    words = text.split()
    low, high = 0, len(words)  # the longest prefix of words that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if length(" ".join(words[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low]), True


def _read_csv(path: Path) -> list[dict[str, str]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


def _find(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _image_path(root: Path, folder: Path, dicom_id: str) -> Path | None:
    """The JPEG (or DICOM) of ``dicom_id`` relative to root, if it is there."""
    for suffix in IMAGE_SUFFIXES:
        if (root / folder / f"{dicom_id}{suffix}").is_file():
            return folder / f"{dicom_id}{suffix}"
    return None


def _report_text(path: Path) -> str | None:
    """The impression (or findings) of a report file; None if missing or empty."""
    if not path.is_file():
        return None
    return impression_or_findings(path.read_text("utf-8", errors="replace"))


def _patient_split(subject: str, official: dict[str, str], validation_fraction: float) -> str:
    if subject in official:
        return official[subject]
    digest = hashlib.sha256(f"mimic-split:{subject}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8]) / 2**64 < validation_fraction else "train"


def import_mimic(
    root: Path,
    reports: Path,
    out: Path,
    *,
    tokenizer: CLIPTokenizer,
    metadata: Path | None = None,
    split_csv: Path | None = None,
    validation_fraction: float = 0.05,
    views: tuple[str, ...] = FRONTAL_VIEWS,
    scrub_phi: bool = True,
) -> ImportReport:
    """Write a manifest of frontal images with their impressions; count every skip.

    ``tokenizer`` should be the base model's (it decides what fits in 77 tokens); texts
    are scrubbed of PHI and ``___`` markers (trainer/phi.py) before they are cut to fit.
    """
    root, reports = Path(root).resolve(), Path(reports)
    metadata = metadata or _find(root, METADATA_NAME)
    if metadata is None or not Path(metadata).is_file():
        raise MimicImportError(f"{root}: no {METADATA_NAME}[.gz]; pass --metadata")
    split_csv = split_csv or _find(root, SPLIT_NAME)
    official = {}
    if split_csv is not None:
        for row in _read_csv(Path(split_csv)):
            official[row["subject_id"]] = SPLIT_NAMES.get(row["split"], row["split"])
    report_root = reports / "files" if (reports / "files").is_dir() else reports
    result = ImportReport(manifest=Path(out))
    texts: dict[tuple[str, str], tuple[str, bool] | None] = {}
    rows = []
    for row in _read_csv(Path(metadata)):
        subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
        if row.get("ViewPosition", "").strip().upper() not in views:
            result.skipped["not a frontal view"] += 1
            continue
        folder = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        image = _image_path(root, folder, dicom)
        if image is None:
            result.skipped["image missing"] += 1
            continue
        if (subject, study) not in texts:
            report = report_root / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
            section = _report_text(report)
            if section and scrub_phi:
                section, counts = scrub_text(section)
                result.phi.add(counts)
            texts[subject, study] = fit_to_tokens(section, tokenizer) if section else None
        if texts[subject, study] is None:
            result.skipped["report missing or without impression/findings"] += 1
            continue
        text, cut = texts[subject, study]
        result.truncated += cut
        split = _patient_split(subject, official, validation_fraction)
        rows.append(
            {
                "image": image.as_posix(),
                "text": text,
                "patient_id": subject,
                "study_id": study,
                "split": split,
            }
        )
    for split in {r["split"] for r in rows}:
        result.patients[split] = len({r["patient_id"] for r in rows if r["split"] == split})
    result.written = len(rows)
    write_manifest(
        out,
        rows,
        image_root=root,
        dataset="mimic-cxr-jpg",
        description=(
            "MIMIC-CXR-JPG frontal (PA/AP) radiographs with the impression section of their "
            "reports (findings when no impression), split by patient."
        ),
    )
    return result
