"""Loaders: PNG/TIFF folders, NIfTI and DICOM, on tiny files written here and on real images
shipped inside scikit-image and pydicom."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import skimage.data
import skimage.io
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from fedsynth.exceptions import ImageDataError, InvalidDataError
from fedsynth.imaging.loaders import load_dicom_series, load_image_folder, load_nifti


def _pngs(folder: Path, n: int = 3, shape=(16, 16)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    for i in range(n):
        skimage.io.imsave(folder / f"img{i}.png", rng.integers(0, 255, shape, dtype=np.uint8))
    return pd.DataFrame({"file": [f"img{i}.png" for i in range(n)], "y": [0, 1, 0][:n]})


def test_image_error_is_a_data_error():
    assert issubclass(ImageDataError, InvalidDataError)


def test_png_folder_with_labels(tmp_path):
    labels = _pngs(tmp_path)
    labels.iloc[::-1].to_csv(tmp_path / "labels.csv", index=False)
    images = load_image_folder(tmp_path, tmp_path / "labels.csv")
    assert images.shape == (3, 1, 16, 16)
    assert images.channels == ("gray",)
    assert images.labels["file"].tolist() == ["img0.png", "img1.png", "img2.png"]
    assert images.labels["y"].tolist() == [0, 1, 0]
    assert images.images.min() >= 0 and images.images.max() <= 1
    raw = skimage.io.imread(tmp_path / "img1.png")
    np.testing.assert_allclose(images.images[1, 0], raw / 255, atol=1e-6)


def test_tiff_pages_are_channels_and_16_bit_values_can_be_kept(tmp_path):
    volume = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8) * 100
    skimage.io.imsave(tmp_path / "a.tif", volume, check_contrast=False)
    images = load_image_folder(tmp_path, rescale=False, channels=["T1", "T2"])
    assert images.shape == (1, 2, 8, 8)
    np.testing.assert_array_equal(images.images[0], volume.astype(np.float32))


def test_real_images_shipped_with_scikit_image(tmp_path):
    (tmp_path / "fundus").mkdir()
    skimage.io.imsave(tmp_path / "fundus" / "retina.png", skimage.data.retina()[::8, ::8])
    phantom = (skimage.data.shepp_logan_phantom()[::4, ::4] * 65535).astype(np.uint16)
    (tmp_path / "ct").mkdir()
    skimage.io.imsave(tmp_path / "ct" / "phantom.tif", phantom, check_contrast=False)
    retina = load_image_folder(tmp_path / "fundus")
    assert retina.channels == ("red", "green", "blue")
    assert retina.sources == ("retina.png",)
    ct = load_image_folder(tmp_path / "ct")
    assert ct.shape == (1, 1, 100, 100)
    assert ct.images.max() == pytest.approx(1.0)


def test_folder_errors_name_the_files(tmp_path):
    labels = _pngs(tmp_path)
    skimage.io.imsave(tmp_path / "big.png", np.zeros((20, 20), np.uint8), check_contrast=False)
    with pytest.raises(ImageDataError, match=r"big.png"):
        load_image_folder(tmp_path)
    (tmp_path / "big.png").unlink()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageDataError, match=r"broken.png.*cannot be read"):
        load_image_folder(tmp_path)
    (tmp_path / "broken.png").unlink()
    extra = pd.concat([labels.iloc[1:], pd.DataFrame({"file": ["gone.png"], "y": [1]})])
    with pytest.raises(ImageDataError) as caught:
        load_image_folder(tmp_path, extra)
    assert "img0.png" in str(caught.value) and "without a label row" in str(caught.value)
    assert "gone.png" in str(caught.value) and "not among the images" in str(caught.value)
    with pytest.raises(ImageDataError, match="3 channel names"):
        load_image_folder(tmp_path, labels, channels=["a", "b", "c"])
    with pytest.raises(ImageDataError, match="no column 'path'"):
        load_image_folder(tmp_path, labels, file_column="path")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageDataError, match=r"no .png"):
        load_image_folder(tmp_path / "empty")


def test_folder_paths_empty_files_and_label_files_as_users_write_them(tmp_path):
    labels = _pngs(tmp_path)
    with pytest.raises(ImageDataError, match=r"img0.png' is a file; expected the folder"):
        load_image_folder(tmp_path / "img0.png")
    (tmp_path / "blank.png").write_bytes(b"")
    with pytest.raises(ImageDataError, match=r"file 'blank.png' is empty \(0 bytes\)"):
        load_image_folder(tmp_path, labels)
    (tmp_path / "blank.png").unlink()
    dotted = labels.assign(file=["./img0.png", "img1.png", "./img2.png"])
    assert load_image_folder(tmp_path, dotted).labels["y"].tolist() == [0, 1, 0]
    semicolons = tmp_path / "labels.csv"
    labels.to_csv(semicolons, sep=";", index=False)
    with pytest.raises(ImageDataError, match="looks semicolon-separated: save it with commas"):
        load_image_folder(tmp_path, semicolons)


def _nifti(path: Path, data: np.ndarray, zooms=(1.0, 1.0, 2.0), flip_x: bool = False) -> None:
    affine = np.diag([*zooms, 1.0])
    if flip_x:
        affine[0, 0] = -zooms[0]
    nib.save(nib.Nifti1Image(data, affine), path)


def test_nifti_slices_volumes_and_orientation(tmp_path):
    data = np.zeros((6, 5, 4), np.float32)
    data[1:5, 1:4, 1:3] = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    _nifti(tmp_path / "a.nii.gz", data)
    # Stored left-to-right: the loader flips it back to RAS, so both volumes line up.
    _nifti(tmp_path / "b.nii.gz", data[::-1].copy(), flip_x=True)
    labels = pd.DataFrame({"file": ["a.nii.gz", "b.nii.gz"], "idh": [1, 0]})
    volumes = load_nifti(tmp_path, labels=labels, slices="volumes")
    assert volumes.shape == (2, 1, 6, 5, 4)
    assert volumes.spacing == (1.0, 1.0, 2.0)
    assert volumes.orientation == ("R", "A", "S")
    assert volumes.labels["stored_orientation"].tolist() == ["RAS", "LAS"]
    np.testing.assert_allclose(volumes.images[0], volumes.images[1])
    axial = load_nifti(tmp_path, labels=labels)
    assert axial.shape == (4, 1, 6, 5)  # two non-empty slices per volume
    assert axial.labels["slice"].tolist() == [1, 2, 1, 2]
    assert axial.labels["idh"].tolist() == [1, 1, 0, 0]
    assert axial.spacing == (1.0, 1.0)


def test_nifti_channel_groups_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("s1_t1", "s1_t2", "s2_t1", "s2_t2"):
        _nifti(tmp_path / f"{name}.nii", rng.random((4, 4, 3)).astype(np.float32))
    groups = [
        [tmp_path / "s1_t1.nii", tmp_path / "s1_t2.nii"],
        [tmp_path / "s2_t1.nii", tmp_path / "s2_t2.nii"],
    ]
    two = load_nifti(groups, slices="volumes", channels=["T1", "T2"])
    assert two.shape == (2, 2, 4, 4, 3)
    _nifti(tmp_path / "odd.nii", rng.random((4, 4, 3)).astype(np.float32), zooms=(2, 2, 2))
    with pytest.raises(ImageDataError, match=r"spacing.*odd.nii"):
        load_nifti([tmp_path / "s1_t1.nii", tmp_path / "odd.nii"])
    _nifti(tmp_path / "small.nii", rng.random((3, 4, 3)).astype(np.float32))
    with pytest.raises(ImageDataError, match=r"small.nii"):
        load_nifti([tmp_path / "s1_t1.nii", tmp_path / "small.nii"])
    (tmp_path / "bad.nii").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageDataError, match=r"bad.nii.*cannot be read"):
        load_nifti([tmp_path / "bad.nii"])
    with pytest.raises(ImageDataError, match="3 channel names"):
        load_nifti(groups, channels=["a", "b", "c"])


def _dicom(path: Path, pixels: np.ndarray, z: float, instance: int, series: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series
    ds.Modality = "MR"
    ds.PatientName = "Secret^Name"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [0.5, 0.75]
    ds.SliceThickness = 3.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, z]
    ds.InstanceNumber = instance
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_series_sorted_in_space_and_rescaled(tmp_path):
    series = generate_uid()
    # Written in shuffled order with instance numbers that disagree with the positions.
    for i, z in enumerate([5.0, -5.0, 0.0]):
        _dicom(tmp_path / f"f{i}.dcm", np.full((4, 6), int(z) + 10), z, 3 - i, series)
    volume = load_dicom_series(tmp_path)
    assert volume.shape == (1, 1, 3, 4, 6)
    np.testing.assert_allclose(volume.images[0, 0, :, 0, 0], [2 * v - 100 for v in (5, 10, 15)])
    assert volume.spacing == (5.0, 0.5, 0.75)
    assert volume.orientation == ("S", "P", "L")
    assert "PatientName" not in volume.labels.columns
    slices = load_dicom_series(tmp_path, slices="axial")
    assert slices.shape == (3, 1, 4, 6)
    assert slices.sources == ("f1.dcm", "f2.dcm", "f0.dcm")


def test_dicom_errors_name_the_files(tmp_path):
    series = generate_uid()
    _dicom(tmp_path / "a.dcm", np.zeros((4, 6)), 0.0, 1, series)
    _dicom(tmp_path / "b.dcm", np.zeros((5, 6)), 1.0, 2, series)
    with pytest.raises(ImageDataError, match=r"b.dcm"):
        load_dicom_series(tmp_path)
    (tmp_path / "b.dcm").unlink()
    _dicom(tmp_path / "c.dcm", np.zeros((4, 6)), 1.0, 2, generate_uid())
    with pytest.raises(ImageDataError, match="2 series"):
        load_dicom_series(tmp_path)
    (tmp_path / "c.dcm").unlink()
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageDataError, match=r"notes.txt"):
        load_dicom_series(tmp_path)


def test_dicom_file_shipped_with_pydicom(tmp_path):
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("MR_small.dcm"))
    (tmp_path / source.name).write_bytes(source.read_bytes())
    mr = load_dicom_series(tmp_path, slices="axial")
    assert mr.shape == (1, 1, 64, 64)
    assert mr.channels == ("MR",)
    assert mr.labels.loc[0, "Modality"] == "MR"
    assert mr.images.std() > 0
