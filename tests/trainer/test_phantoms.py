"""Phantoms are deterministic, follow radiological convention, and the reader agrees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from trainer.cli import main
from trainer.manifest import read_manifest
from trainer.phantom_reading import read_phantom
from trainer.phantoms import Finding, generate_phantoms, render_phantom


def test_phantoms_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate_phantoms(tmp_path / "a", 12, size=32, seed=5)
    b = generate_phantoms(tmp_path / "b", 12, size=32, seed=5)
    c = generate_phantoms(tmp_path / "c", 12, size=32, seed=6)
    assert a.read_text() == b.read_text()
    records = read_manifest(a).records
    assert len(records) == 12
    for record in records:
        twin = b.parent / record.image.relative_to(a.parent)
        assert record.image.read_bytes() == twin.read_bytes()
    assert a.read_text() != c.read_text()
    assert read_manifest(a).dataset == "synthetic-phantoms"
    assert all(r.labels and r.patient_id and r.split for r in records)


def test_left_effusion_is_on_the_image_right() -> None:
    rng = np.random.default_rng(0)
    pixels = render_phantom(Finding("effusion", "left", "moderate"), 64, rng).astype(float)
    lower = pixels[36:44]  # the lung bases
    image_left, image_right = lower[:, 10:22].mean(), lower[:, 42:54].mean()
    assert image_right > image_left + 40  # fluid is brighter than aerated lung


def test_reader_agrees_with_labels_on_phantoms(tmp_path: Path) -> None:
    for size in (32, 64):
        manifest = generate_phantoms(tmp_path / str(size), 80, size=size, seed=11)
        records = read_manifest(manifest).records
        agree = 0
        for record in records:
            image = np.asarray(Image.open(record.image))
            agree += read_phantom(image).shows(Finding(**record.labels))
        assert agree >= 0.97 * len(records), (size, agree)


def test_reports_name_the_finding_and_side(tmp_path: Path) -> None:
    manifest = generate_phantoms(tmp_path, 60, size=32, seed=2)
    for record in read_manifest(manifest).records:
        labels, text = record.labels, record.text.lower()
        if labels["side"]:
            assert labels["side"] in text
        if labels["kind"] in ("effusion", "pneumothorax"):
            assert labels["kind"] in text


def test_cli_phantoms(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["phantoms", "--out", str(tmp_path), "-n", "5", "--size", "32", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert len(read_manifest(tmp_path / "manifest.jsonl").records) == 5
