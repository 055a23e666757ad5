"""``generate``: labelled PNGs with full provenance, DICOM marked synthetic, seeds that
reproduce images, and refusal of withdrawn versions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from client.errors import VersionWithdrawn
from client.generate import GenerateOptions, Provenance, generate
from tests.client.conftest import run_cli

PROMPT = "Large left pleural effusion. No pneumothorax."
PROVENANCE_KEYS = {
    "synthetic", "model", "version", "prompt", "negative_prompt", "seed", "scheduler", "steps",
    "guidance", "software",
}  # fmt: skip


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


def test_generate_writes_labelled_pngs_dicom_and_a_contact_sheet(
    counted_server, client_dirs, open_tiny, tmp_path
):
    out = tmp_path / "out"
    done = run_cli(
        "--url", counted_server.url, "generate", "demo/tiny", PROMPT, "-n", "2", "--seed", "11",
        "--steps", "3", "--negative-prompt", "text, letters", "--dicom", "--out", str(out), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    pngs = [Path(line) for line in done.stdout.split()]
    assert [p.name for p in pngs] == ["00000-seed11.png", "00001-seed12.png"]
    for index, path in enumerate(pngs):
        text = Image.open(path).text
        assert set(text) >= PROVENANCE_KEYS
        assert text["synthetic"] == "true"
        assert text["model"] == "demo/tiny" and text["version"] == open_tiny.commit
        assert text["prompt"] == PROMPT and text["negative_prompt"] == "text, letters"
        assert text["seed"] == str(11 + index)
        assert (text["scheduler"], text["steps"], text["guidance"]) == ("dpm++", "3", "3")
        assert text["software"].startswith("registry-client ")
    sheet = Image.open(out / "contact-sheet.png")
    assert sheet.text["synthetic"] == "true" and sheet.size[0] >= 256

    import pydicom

    uids = set()
    for path in pngs:
        ds = pydicom.dcmread(path.with_suffix(".dcm"))
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.ConversionType == "SYN"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert "SYNTHETIC" in ds.SeriesDescription and "SYNTHETIC" in ds.ImageComments
        assert open_tiny.commit in ds.ImageComments
        # The prompt (often report text) stays out of the header; its digest links the files.
        assert PROMPT not in str(ds) and "text, letters" not in str(ds)
        assert hashlib.sha256(PROMPT.encode()).hexdigest() in ds.ImageComments
        assert str(ds.PatientName) == "" and ds.PatientID == ""
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
        uids.add(ds.SOPInstanceUID)
    assert len(uids) == 2

    asked = run_cli(
        "--url", counted_server.url, "generate", "demo/tiny", PROMPT, "--steps", "2", "--dicom",
        "--dicom-prompt", "--out", str(tmp_path / "asked"), "-q",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    (dcm,) = (tmp_path / "asked").glob("*.dcm")
    assert PROMPT in pydicom.dcmread(dcm).ImageComments  # only when asked for


def test_a_pulled_version_loads_with_stock_diffusers_offline(make_client, open_tiny, monkeypatch):
    from diffusers import DiffusionPipeline

    folder = make_client().pull("demo/tiny", quiet=True).path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipeline = DiffusionPipeline.from_pretrained(str(folder))
    assert type(pipeline).__name__ == "StableDiffusionPipeline"


def test_images_from_a_local_dir_copy_keep_their_provenance(make_client, open_tiny, tmp_path):
    client = make_client()
    folder = client.pull("demo/tiny", local_dir=tmp_path / "mine", link=False, quiet=True).path

    located, provenance = client.open_model(str(folder))

    assert located == folder
    assert (provenance.model, provenance.version) == ("demo/tiny", open_tiny.commit)


def test_the_same_seed_gives_the_same_image(tiny_model_dir, tmp_path):
    provenance = Provenance("local/tiny", "test")

    def run(name: str, **extra) -> list[Path]:
        options = GenerateOptions(prompts=[PROMPT], n=3, seed=40, steps=3, quiet=True, **extra)
        return generate(tiny_model_dir, tmp_path / name, options, provenance)

    first, again, single = run("a", batch_size=3), run("b", batch_size=3), run("c", batch_size=1)
    for a, b, c in zip(first, again, single, strict=True):
        assert np.array_equal(_pixels(a), _pixels(b))
        # Batched float maths may differ in the last bit: at most one grey level.
        assert np.abs(_pixels(a) - _pixels(c)).max() <= 1
    assert not np.array_equal(_pixels(first[0]), _pixels(first[1]))


def test_generate_refuses_a_withdrawn_version(
    registry, make_client, counted_server, client_dirs, open_tiny, tmp_path
):
    from registry.models import Version
    from registry.publishing.withdrawal import withdraw_version

    client = make_client()
    folder = client.pull("demo/tiny", quiet=True).path
    with registry.sessions() as db, db.begin():
        version = db.scalar(select(Version).where(Version.commit == open_tiny.commit))
        withdraw_version(db, version, "mislabelled laterality", actor=None, now=registry.now())

    with pytest.raises(VersionWithdrawn, match="mislabelled laterality"):
        client.open_model(str(folder))
    done = run_cli("--url", counted_server.url, "generate", "demo/tiny", PROMPT, "-q",
                   "--out", str(tmp_path / "never"))  # fmt: skip
    assert done.returncode == 6 and "withdrawn" in done.stderr
    assert not (tmp_path / "never").exists()


def test_images_are_grayscale_and_generation_json_keeps_numbers_as_numbers(
    tiny_model_dir, tmp_path
):
    import json

    options = GenerateOptions(prompts=[PROMPT], n=2, seed=3, steps=2, guidance=3.5, quiet=True)
    paths = generate(tiny_model_dir, tmp_path / "g", options, Provenance("local/tiny", "test"))
    for path in paths:
        assert Image.open(path).mode == "L"  # a chest X-ray has one channel, no tint
    record = json.loads((tmp_path / "g" / "generation.json").read_text())
    assert record["steps"] == 2 and record["guidance"] == 3.5
    assert isinstance(record["width"], int) and isinstance(record["height"], int)
    assert record["synthetic"] is True
    assert [image["seed"] for image in record["images"]] == [3, 4]


def test_dicom_carries_the_prompt_only_when_asked(tmp_path: Path) -> None:
    import pydicom

    from client.dicom import write_secondary_capture

    image = Image.new("L", (16, 16), 80)
    provenance = {"model": "demo/tiny", "prompt": PROMPT, "seed": "1"}
    for include, name in ((False, "plain.dcm"), (True, "with-prompt.dcm")):
        write_secondary_capture(
            image, tmp_path / name, provenance, study_uid="1.2.3", series_uid="1.2.3.4",
            instance_number=1, include_prompt=include,
        )  # fmt: skip
    assert PROMPT not in str(pydicom.dcmread(tmp_path / "plain.dcm"))
    assert PROMPT in pydicom.dcmread(tmp_path / "with-prompt.dcm").ImageComments
