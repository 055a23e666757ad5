"""Bad input is skipped and counted (or refused with a clear message), never a crash mid-epoch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainer.cli import main
from trainer.manifest import ManifestError, read_manifest
from trainer.training import fit


def broken_dataset(phantom_manifest: Path, folder: Path) -> Path:
    """Six good phantoms plus one example of each kind of bad record."""
    shutil.copytree(phantom_manifest.parent, folder)
    good = read_manifest(folder / "manifest.jsonl").records[:6]
    (folder / "images" / "garbage.png").write_bytes(b"this is not a PNG at all")
    truncated = good[0].image.read_bytes()
    (folder / "images" / "truncated.png").write_bytes(truncated[: len(truncated) // 2])
    (folder.parent / "secret.png").write_bytes(good[0].image.read_bytes())
    rows = [{"image": str(r.image.relative_to(folder)), "text": r.text} for r in good]
    rows += [
        {"image": "images/does-not-exist.png", "text": "Small left pleural effusion."},
        {"image": "images/garbage.png", "text": "Small left pleural effusion."},
        {"image": "images/truncated.png", "text": "Small right pleural effusion."},
        {"image": str(good[1].image.relative_to(folder)), "text": "   "},
        {"image": "../secret.png", "text": "Normal chest radiograph."},
        {"image": str(good[2].image), "text": "an absolute path inside the folder is fine"},
    ]
    lines = [json.dumps(row) for row in rows] + ["{not json"]
    manifest = folder / "broken.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_manifest_counts_each_kind_of_bad_record(phantom_manifest: Path, tmp_path: Path) -> None:
    loaded = read_manifest(broken_dataset(phantom_manifest, tmp_path / "data"))
    assert len(loaded.records) == 9  # 6 good + 2 unreadable-but-present + absolute path
    assert loaded.skipped == {
        "image missing": 1,
        "empty text": 1,
        "image outside the manifest's folder": 1,
        "line is not JSON": 1,
    }


@pytest.mark.parametrize("cache_latents", [True, False])
def test_fit_skips_and_counts_bad_records(
    quick_config, phantom_manifest: Path, tmp_path: Path, cache_latents: bool
) -> None:
    manifest = broken_dataset(phantom_manifest, tmp_path / "data")
    result = fit(
        quick_config(train_manifest=manifest, max_train_steps=2, cache_latents=cache_latents)
    )
    assert result.global_step == 2
    dataset = result.summary["dataset"]
    assert dataset["examples_used"] == 7
    assert dataset["skipped"]["unreadable image"] == 2
    assert dataset["skipped"]["image outside the manifest's folder"] == 1


def test_image_that_breaks_mid_epoch_is_dropped_from_its_batch(
    quick_config, phantom_manifest: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    shutil.copytree(phantom_manifest.parent, folder)
    records = read_manifest(folder / "manifest.jsonl").records

    def corrupt_everything(step: int, loss: float) -> None:
        if step == 1:  # after the images were checked: every later batch loses all of them
            for record in records:
                record.image.write_bytes(b"corrupted")

    config = quick_config(
        train_manifest=folder / "manifest.jsonl", cache_latents=False, max_train_steps=3
    )
    result = fit(config, on_step=corrupt_everything)
    assert result.global_step == 3


def test_cli_reports_an_unusable_manifest_plainly(tiny_base: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "empty.csv"
    manifest.write_text("image,text\nmissing.png,Left effusion.\n")
    result = CliRunner().invoke(
        main,
        ["fit", "--base", str(tiny_base), "--data", str(manifest), "--out", str(tmp_path / "r")],
    )
    assert result.exit_code == 1
    assert "no usable image-text pairs (1 image missing)" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(ManifestError, match="image,text"):
        bad = tmp_path / "bad.csv"
        bad.write_text("path,caption\na.png,b\n")
        read_manifest(bad)


def test_csv_manifest_and_declared_image_root(phantom_manifest: Path, tmp_path: Path) -> None:
    records = read_manifest(phantom_manifest).records[:3]
    csv_manifest = tmp_path / "pairs.csv"
    lines = ["image,text"] + [f"{r.image.name},{r.text.replace(',', ' ')}" for r in records]
    csv_manifest.write_text("\n".join(lines) + "\n")
    assert read_manifest(csv_manifest, image_root=records[0].image.parent).records[0].image == (
        records[0].image
    )
    header = {"manifest": {"image_root": str(phantom_manifest.parent)}}
    jsonl = tmp_path / "elsewhere.jsonl"
    body = [json.dumps({"image": f"images/{r.image.name}", "text": r.text}) for r in records]
    jsonl.write_text("\n".join([json.dumps(header), *body]) + "\n")
    assert len(read_manifest(jsonl).records) == 3


def test_manifest_given_by_a_relative_path(
    phantom_manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fit --data phantoms/manifest.jsonl` from the dataset's parent folder finds the images."""
    monkeypatch.chdir(phantom_manifest.parent.parent)
    relative = Path(phantom_manifest.parent.name) / phantom_manifest.name
    loaded = read_manifest(relative)
    assert not loaded.skipped
    assert loaded.records[0].image.is_file()
    # A root given on the command line is relative to the working directory.
    root = Path(phantom_manifest.parent.name)
    assert len(read_manifest(relative, image_root=root).records) == len(loaded.records)
