"""import-mimic on a synthetic folder in MIMIC-CXR-JPG layout; DICOM input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from trainer.cli import main
from trainer.images import UnreadableImageError, load_xray, xray_to_tensor
from trainer.manifest import read_manifest
from trainer.mimic import fit_to_tokens, import_mimic, impression_or_findings
from trainer.tokenizer import build_clip_tokenizer

LONG_IMPRESSION = " ".join(
    ["Stable moderate left pleural effusion with adjacent atelectasis."] * 12
)


def report(findings: str | None, impression: str | None) -> str:
    parts = ["                                 FINAL REPORT", " EXAMINATION:  CHEST (PA AND LAT)"]
    parts.append(" INDICATION:  ___F with cough.  Eval for pneumonia.")
    if findings is not None:
        parts.append(f" FINDINGS:  \n \n {findings}")
    if impression is not None:
        parts.append(f" IMPRESSION:  \n \n {impression}")
    return "\n \n".join(parts) + "\n"


STUDIES = {  # subject, study: (findings, impression, views)
    ("10000032", "50414267"): (
        "Lungs clear.",
        "No acute cardiopulmonary process.",
        ["PA", "LATERAL"],
    ),
    ("10000032", "53189527"): ("Small left effusion.", None, ["AP"]),
    ("10000764", "57375967"): (None, LONG_IMPRESSION, ["PA", "LL"]),
    ("10000898", "50771383"): ("", "", ["AP"]),  # empty report
    ("10000935", "51178377"): ("Heart enlarged.", "Moderate cardiomegaly.", ["PA"]),
    ("10000980", "58206436"): ("x", "Right pneumothorax.", ["PA"]),  # image file missing
}


@pytest.fixture
def mimic_root(tmp_path: Path) -> tuple[Path, Path]:
    root, reports = tmp_path / "mimic-cxr-jpg", tmp_path / "mimic-cxr-reports"
    rows = [
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns"
    ]
    for (subject, study), (findings, impression, views) in STUDIES.items():
        folder = f"p{subject[:2]}/p{subject}"
        for number, view in enumerate(views):
            dicom = f"{study}-{number}"
            rows.append(f"{dicom},{subject},{study},CHEST (PA AND LAT),{view},32,40")
            image = root / "files" / folder / f"s{study}" / f"{dicom}.jpg"
            image.parent.mkdir(parents=True, exist_ok=True)
            if subject != "10000980":
                Image.new("L", (40, 32), 90).save(image)
        text = reports / "files" / folder / f"s{study}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text(report(findings, impression))
    (root / "mimic-cxr-2.0.0-metadata.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    return root, reports


def test_import_mimic_keeps_frontal_views_and_impressions(
    mimic_root: tuple[Path, Path], tmp_path: Path
) -> None:
    root, reports = mimic_root
    tokenizer = build_clip_tokenizer(tmp_path / "tok")
    result = import_mimic(root, reports, tmp_path / "out" / "train.jsonl", tokenizer=tokenizer)
    assert result.written == 4
    assert result.skipped == {
        "not a frontal view": 2,
        "report missing or without impression/findings": 1,
        "image missing": 1,
    }
    assert result.truncated == 1
    manifest = read_manifest(result.manifest)
    assert manifest.image_root == root.resolve() and manifest.dataset == "mimic-cxr-jpg"
    texts = {r.image.name: r.text for r in manifest.records}
    assert texts["50414267-0.jpg"] == "No acute cardiopulmonary process."
    assert texts["53189527-0.jpg"] == "Small left effusion."  # findings when no impression
    long_text = texts["57375967-0.jpg"]
    assert LONG_IMPRESSION.startswith(long_text) and len(tokenizer(long_text).input_ids) <= 77
    splits: dict[str, set[str]] = {}
    for record in manifest.records:
        splits.setdefault(record.patient_id, set()).add(record.split)
    assert all(len(s) == 1 for s in splits.values())  # a patient lives in one split only


def test_import_mimic_uses_the_official_split_and_the_cli(
    mimic_root: tuple[Path, Path], tiny_base: Path, tmp_path: Path
) -> None:
    root, reports = mimic_root
    split = root / "mimic-cxr-2.0.0-split.csv"
    split.write_text(
        "dicom_id,study_id,subject_id,split\n"
        "50414267-0,50414267,10000032,validate\n51178377-0,51178377,10000935,test\n"
    )
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(
        main,
        ["import-mimic", "--root", str(root), "--reports", str(reports), "--out", str(out),
         "--base", str(tiny_base)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "texts longer than 77 tokens (truncated): 1" in result.output
    assert "skipped 2: not a frontal view" in result.output
    by_patient = {r.patient_id: r.split for r in read_manifest(out).records}
    assert by_patient["10000032"] == "validation" and by_patient["10000935"] == "test"


def test_section_extraction_and_word_boundary_truncation(tmp_path: Path) -> None:
    assert impression_or_findings(report("Clear lungs.", "Normal.")) == "Normal."
    assert impression_or_findings(report(None, None)) is None
    tokenizer = build_clip_tokenizer(tmp_path)
    short, cut = fit_to_tokens("Small left effusion.", tokenizer)
    assert (short, cut) == ("Small left effusion.", False)


def write_dicom(path: Path, pixels: np.ndarray, photometric: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.astype(np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)


def test_dicom_input_is_windowed_and_monochrome1_inverted(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 4095, 40), (30, 1))
    write_dicom(tmp_path / "m2.dcm", ramp, "MONOCHROME2")
    write_dicom(tmp_path / "m1.dcm", ramp, "MONOCHROME1")
    m2 = np.asarray(load_xray(tmp_path / "m2.dcm"), dtype=float)
    m1 = np.asarray(load_xray(tmp_path / "m1.dcm"), dtype=float)
    assert m2[:, 0].mean() < 10 and m2[:, -1].mean() > 245
    np.testing.assert_allclose(m1, 255 - m2, atol=1)
    tensor = xray_to_tensor(load_xray(tmp_path / "m2.dcm"), 32)
    assert tensor.shape == (3, 32, 32) and tensor.min() >= -1 and tensor.max() <= 1
    (tmp_path / "bad.dcm").write_bytes(b"DICM but not really")
    with pytest.raises(UnreadableImageError):
        load_xray(tmp_path / "bad.dcm")
    assert pydicom.dcmread(tmp_path / "m1.dcm").PhotometricInterpretation == "MONOCHROME1"


def test_import_mimic_counts_tokens_with_the_bases_tokenizer(
    mimic_root: tuple[Path, Path], tiny_base: Path, tmp_path: Path
) -> None:
    """It counted with the project's report tokenizer whatever the base (SD 1.5's CLIP...)."""
    import shutil

    from transformers import CLIPTokenizer

    from trainer.tokenizer import write_clip_tokenizer_files

    root, reports = mimic_root
    base = tmp_path / "byte-level-base"  # a base whose tokenizer spends a token per character
    shutil.copytree(tiny_base, base)
    (base / "tokenizer" / "tokenizer.json").unlink()
    write_clip_tokenizer_files(base / "tokenizer", words=[])
    tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")

    missing = CliRunner().invoke(
        main, ["import-mimic", "--root", str(root), "--reports", str(reports), "--out", "x.jsonl"]
    )
    assert missing.exit_code == 2 and "--base" in missing.output
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(
        main,
        ["import-mimic", "--root", str(root), "--reports", str(reports), "--out", str(out),
         "--base", str(base)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    texts = {r.image.name: r.text for r in read_manifest(out).records}
    long_text = texts["57375967-0.jpg"]
    assert len(tokenizer(long_text).input_ids) <= 77 < len(tokenizer(long_text + " x").input_ids)
    assert len(long_text.split()) < 20  # the report tokenizer would have kept ~75 words
    assert "PHI scrub: 0 of 4 texts changed" in result.output
