"""Synthetic tables: clinical variables, gene-mutation profiles and survival.

* :mod:`~fedsynth.tabular.metadata`: column kinds (inferred, overridable) and their checks;
* :mod:`~fedsynth.tabular.transforms`: the reversible encoder of tables for neural generators;
* :mod:`~fedsynth.tabular.generators`: gaussian_copula, bayesian_network, ctgan, tvae, vae_bgm,
  tab_ddpm, auto;
* :mod:`~fedsynth.tabular.validation`: SAFE validation (fidelity, diversity, utility, survival,
  genomic, privacy; CSF and GSF);
* :mod:`~fedsynth.tabular.datasets`: the simulated MDS cohort and SurvSet's real tables;
* :mod:`~fedsynth.tabular.privacy`: private column domains and the copy guard;
* :mod:`~fedsynth.tabular.augmentation`: rebalancing a cohort with synthetic rows.
"""
