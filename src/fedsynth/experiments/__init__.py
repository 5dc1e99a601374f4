"""Experiments that compare ways of training: centralized (upper bound), isolated (lower bound)
and each federated strategy, scored every round on a holdout (:func:`run_experiment`)."""
