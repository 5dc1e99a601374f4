"""Checking an uploaded zip of images: every refusal names the zip and the member at fault."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedsynth.exceptions import ImageDataError
from fedsynth.web.image_uploads import MAX_SIDE, read_image_zip


def png(size: int = 32, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_zip(n: int = 12, *, labels: bool = True, extra: dict | None = None) -> bytes:
    """``n`` 32x32 PNGs under ``scans/`` with a labels CSV (column ``file``, label ``grade``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(n):
            archive.writestr(f"scans/img{i:02d}.png", png(seed=i))
        if labels:
            rows = "".join(f"img{i:02d}.png,{i % 2}\n" for i in range(n))
            archive.writestr("labels.csv", "file,grade\n" + rows)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def read(tmp_path, content: bytes, name: str = "scans.zip"):
    archive = tmp_path / "upload.zip"
    archive.write_bytes(content)
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    return read_image_zip(archive, filename=name, workdir=work)


def refusal(tmp_path, content: bytes, name: str = "scans.zip") -> str:
    with pytest.raises(ImageDataError) as caught:
        read(tmp_path, content, name)
    text = str(caught.value)
    assert name in text and str(tmp_path) not in text  # the zip named, no server path
    return text


def test_png_zip_with_labels_is_read(tmp_path):
    loaded = read(tmp_path, image_zip())
    assert loaded.layout == "png/tiff"
    assert loaded.images.shape == (12, 1, 32, 32)
    assert loaded.images.labels["grade"].tolist() == [i % 2 for i in range(12)]
    assert loaded.images.images.min() >= 0.0 and loaded.images.images.max() <= 1.0


def test_missing_labels_csv_is_named(tmp_path):
    assert "has no labels CSV" in refusal(tmp_path, image_zip(labels=False))


def test_labels_without_images_are_named(tmp_path):
    content = image_zip(extra={"unused.csv": "x"})
    assert "holds 2 CSV files" in refusal(tmp_path, content)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(10):
            archive.writestr(f"img{i}.png", png(seed=i))
        rows = "".join(f"img{i}.png,0\n" for i in range(12))
        archive.writestr("labels.csv", "file,grade\n" + rows)
    text = refusal(tmp_path, buffer.getvalue())
    assert "2 label row(s) name a file that is not among the images" in text
    assert "'img10.png'" in text and "'img11.png'" in text


def test_mixed_shapes_are_named(tmp_path):
    content = image_zip(extra={"scans/odd.png": png(size=48)})
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        labels = archive.read("labels.csv").decode() + "odd.png,1\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(buffer, "w") as out:
        for info in source.infolist():
            data = labels.encode() if info.filename == "labels.csv" else source.read(info)
            out.writestr(info.filename, data)
    text = refusal(tmp_path, buffer.getvalue())
    assert "images must share one height x width" in text and "'scans/odd.png'" in text


def test_not_a_zip_and_no_images(tmp_path):
    assert "is not a zip archive" in refusal(tmp_path, b"file,grade\na.png,1\n", "labels.zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert "holds no PNG, TIFF, NIfTI or DICOM image" in refusal(tmp_path, buffer.getvalue())


def test_unsafe_members_zip_bombs_and_huge_images_are_refused(tmp_path):
    assert "points outside the archive" in refusal(
        tmp_path, image_zip(extra={"../evil.png": png()})
    )
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scans/big.tif", bytes(64 * 1024**2))
    text = refusal(tmp_path, bomb.getvalue())
    assert "'scans/big.tif'" in text and "zip bomb" in text
    huge = image_zip(extra={"scans/huge.png": png(size=MAX_SIDE + 1)})
    assert f"'scans/huge.png' ({MAX_SIDE + 1} x {MAX_SIDE + 1})" in refusal(tmp_path, huge)


def test_too_many_pixel_values_are_refused_before_decoding(tmp_path, monkeypatch):
    import fedsynth.web.image_uploads as uploads

    monkeypatch.setattr(uploads, "MAX_VALUES", 11 * 32 * 32)
    assert "12,288 pixel values in all; at most 11,264" in refusal(tmp_path, image_zip(12))


def test_too_few_images_are_refused(tmp_path):
    assert "a run needs at least 8" in refusal(tmp_path, image_zip(n=3))


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"upload/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def test_nifti_volumes_are_read_as_axial_slices(tmp_path):
    from tests.imaging.test_loaders import _nifti

    source = tmp_path / "source"
    source.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.nii.gz", "b.nii.gz"):
        _nifti(source / name, rng.random((16, 16, 5)).astype(np.float32))
    (source / "labels.csv").write_text("file,grade\na.nii.gz,1\nb.nii.gz,2\n")
    loaded = read(tmp_path, _zip_folder(source), "volumes.zip")
    assert loaded.layout == "nifti" and loaded.images.shape == (10, 1, 16, 16)
    assert loaded.images.labels["grade"].tolist() == [1] * 5 + [2] * 5


def test_dicom_series_is_read_by_its_marker(tmp_path):
    from pydicom.uid import generate_uid

    from tests.imaging.test_loaders import _dicom

    source = tmp_path / "source"
    source.mkdir()
    series = generate_uid()
    for i in range(8):  # half without a suffix: found by the DICOM marker
        name = f"slice{i}.dcm" if i % 2 else f"IM{i:04d}"
        _dicom(source / name, np.full((12, 12), 100 + i), float(i), i + 1, series)
    loaded = read(tmp_path, _zip_folder(source), "series.zip")
    assert loaded.layout == "dicom" and loaded.images.shape == (8, 1, 12, 12)
    assert "PatientName" not in loaded.images.labels.columns
