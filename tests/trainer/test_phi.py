"""Report texts are scrubbed of PHI before training; counts land in the run summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from trainer.cli import main
from trainer.manifest import read_manifest
from trainer.phi import scrub_text
from trainer.training import fit

REPORT = (
    "Compared to the prior study of 03/14/2186 at 10:45, there is a new moderate left pleural "
    "effusion. Findings discussed with Dr. Smith by telephone at 11:30 a.m. on ___. "
    "92-year-old man, MRN 12345678. Mild cardiomegaly, unchanged since ___."
)
PHI = ("2186", "10:45", "11:30", "Smith", "92", "12345678", "___", "telephone")


def test_scrub_removes_each_kind_and_keeps_the_findings() -> None:
    clean, counts = scrub_text(REPORT)
    assert not [piece for piece in PHI if piece in clean], clean
    assert "new moderate left pleural effusion" in clean and "Mild cardiomegaly" in clean
    assert "90+" in clean  # ages over 89 are aggregated, younger ones kept
    assert scrub_text("A 45 year old woman. No pneumothorax.")[0] == (
        "A 45 year old woman. No pneumothorax."
    )
    assert counts.to_dict() == {
        "texts": 1, "texts_changed": 1, "communication_sentences": 1, "signature_sentences": 0,
        "mrn_like_numbers": 1,
        "dates": 1, "times": 1, "ages_over_89": 1, "names": 1, "deid_markers": 2,
    }  # fmt: skip


def test_fit_trains_on_scrubbed_texts_and_reports_the_counts(
    quick_config, phantom_manifest: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    shutil.copytree(phantom_manifest.parent, folder)
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows[1]["text"] = REPORT  # the header is row 0
    for row in rows[2:]:
        if row.get("split") == "validation":
            row["text"] = f"{row['text']} Seen on 01/02/2150 by Dr. Jones."
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    result = fit(quick_config(train_manifest=folder / "manifest.jsonl", max_train_steps=1))
    counts = result.summary["dataset"]["phi_scrub"]
    assert counts["deid_markers"] == 2 and counts["names"] >= 2 and counts["dates"] >= 2
    prompts = " ".join(result.summary["validation_prompts"])  # these go into the model card
    assert "01/02/2150" not in prompts and "Jones" not in prompts
    from trainer.export import export_run

    card = (
        export_run(result.output_dir, tmp_path / "export", sample_steps=1) / "README.md"
    ).read_text()
    assert "Jones" not in card and "01/02/2150" not in card

    checked = CliRunner().invoke(
        main, ["check-manifest", str(folder / "manifest.jsonl"), "--show-scrubbed", "1"]
    )
    assert checked.exit_code == 0, checked.output
    assert "texts changed" in checked.output and "deid markers 2" in checked.output
    assert len(read_manifest(folder / "manifest.jsonl").records) == len(rows) - 1


def test_signatures_untitled_names_and_other_forms_of_phi_are_scrubbed() -> None:
    """Local reports sign with a name and degree, relay findings to named staff, spell ages."""
    cases = {
        "Small left effusion. Electronically signed by John Smith, MD on 2/3/2150.": (
            "Small left effusion.", ["John", "Smith"]),
        "No pneumothorax. Dictated by: Jane Doe, M.D. Transcribed 03-04-2150 1430.": (
            "No pneumothorax.", ["Jane", "Doe", "1430"]),
        "Mild cardiomegaly. Reviewed with Dr.Smith.": ("Mild cardiomegaly.", ["Smith"]),
        "Findings were relayed to the ED physician Sarah Connor. Right lower lobe opacity.": (
            "Right lower lobe opacity.", ["Sarah", "Connor"]),
        "Patient MRN: A1234567. Stable nodule.": ("Patient. Stable nodule.", ["A1234567"]),
        "She is ninety-four years old. Clear lungs.": (
            "She is 90+ year old. Clear lungs.", ["ninety"]),
        "Reviewed by Peter Parker, RN. Heart size normal.": ("Heart size normal.", ["Parker"]),
    }  # fmt: skip
    for text, (expected, gone) in cases.items():
        clean, counts = scrub_text(text)
        assert clean == expected, (text, clean)
        assert not [piece for piece in gone if piece in clean], (text, clean)
        assert counts.texts_changed == 1
    assert scrub_text("Signed by John Smith, MD.")[1].found["signature_sentences"] == 1
    # Findings that look like names or numbers stay.
    for kept in ("Mild Cardiomegaly. Lines and tubes unchanged.", "A 45 year old woman.",
                 "Frontal Chest, PA and lateral views. Signs of hyperinflation."):  # fmt: skip
        assert scrub_text(kept)[0] == kept
