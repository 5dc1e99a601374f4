"""Tiny image generators on a few dozen simulated 32 x 32 MRI slices: the interface, not the
quality, is under test."""

from __future__ import annotations

import pytest

from fedsynth.imaging import brain_mri_cohort

#: Conditioned label columns and their declared values (the cohort's).
LABEL_VALUES = {
    "tumour_type": ["glioblastoma", "astrocytoma", "oligodendroglioma"],
    "idh_mutant": [0, 1],
}
#: Tiny settings per generator.
TINY = {
    "latent_diffusion": {
        "epochs": 2,
        "ae_epochs": 1,
        "batch_size": 12,
        "ae_channels": (8, 16),
        "latent_channels": 2,
        "unet_channels": (8, 16),
        "norm_groups": 4,
        "train_timesteps": 100,
        "sampling_steps": 3,
        "label_columns": ["tumour_type", "idh_mutant"],
        "device": "cpu",
    },
    "dp_gan": {
        "epochs": 2,
        "batch_size": 12,
        "noise_dim": 8,
        "width": 8,
        "norm_groups": 4,
        "label_columns": ["tumour_type", "idh_mutant"],
        "device": "cpu",
    },
}


@pytest.fixture(scope="session")
def cohort():
    """36 patients at 2 sites, 4 sequences, 32 x 32."""
    return brain_mri_cohort(36, sites=2, size=32, seed=0)


@pytest.fixture(scope="session")
def public_cohort():
    """Simulated images with another seed, declared public (the DP path's autoencoder)."""
    return brain_mri_cohort(24, sites=1, size=32, seed=99)
