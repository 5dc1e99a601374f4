"""The experiments run federations: they share the federated tests' sites and transport."""

from tests.federated.conftest import mds, two_sites  # noqa: F401  (fixtures)
