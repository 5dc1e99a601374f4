"""What every modality shares: the estimator base and its parameters, model files, the registry
of generators keyed by modality, progress events, differential privacy (configuration,
mechanisms, accounting, DP-SGD) and the base of validation metrics.

Nothing in ``core`` knows about tables, images or notes; the modality packages
(:mod:`fedsynth.tabular`, :mod:`fedsynth.imaging`, :mod:`fedsynth.text`) build on it, and
:mod:`fedsynth.federated` uses only what it declares public.
"""
