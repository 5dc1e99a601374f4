"""Built-in tables: a simulated MDS cohort with known ground truth, and SurvSet's real datasets.

:func:`mds_cohort` simulates myelodysplastic-syndromes patients (clinical values, 32 mutation
flags, an IPSS-M-like score, overall survival, sites); :func:`mds_ground_truth` tells what is
true of it by construction. :func:`load_survset` loads the survival datasets that the
``SurvSet`` package ships offline.
"""

from fedsynth.tabular.datasets.mds import MDSGroundTruth, mds_cohort, mds_ground_truth
from fedsynth.tabular.datasets.survset import list_survset, load_survset

__all__ = ["MDSGroundTruth", "list_survset", "load_survset", "mds_cohort", "mds_ground_truth"]
