"""Built-in image data: the simulated brain MRI cohort with its ground truth."""

from fedsynth.imaging.datasets.brain_mri import (
    SEQUENCES,
    TUMOUR_TYPES,
    BrainMRITruth,
    TumourRule,
    brain_mri_cohort,
)

__all__ = ["SEQUENCES", "TUMOUR_TYPES", "BrainMRITruth", "TumourRule", "brain_mri_cohort"]
