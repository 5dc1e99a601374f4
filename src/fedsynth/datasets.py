"""Built-in data of every modality, in one place: ``fedsynth.datasets.mds_cohort()`` and friends.

Tables: :func:`mds_cohort` simulates myelodysplastic-syndromes patients with known ground truth
(:func:`mds_ground_truth`); :func:`load_survset` loads the real survival tables that the
``SurvSet`` package ships offline. Nothing here downloads anything.
"""

from fedsynth.tabular.datasets import (
    MDSGroundTruth,
    list_survset,
    load_survset,
    mds_cohort,
    mds_ground_truth,
)

__all__ = ["MDSGroundTruth", "list_survset", "load_survset", "mds_cohort", "mds_ground_truth"]
