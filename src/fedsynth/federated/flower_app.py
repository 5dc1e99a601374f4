"""fedsynth's Flower app as Flower sees it: its ``pyproject.toml``, the folder ``flwr run``
takes at a real deployment, and the bundle a local run sends the sites; and the Flower version
that :mod:`~fedsynth.federated.runtime` was written for.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from fedsynth.federated.errors import FederationError
from fedsynth.federated.settings import RunSettings

#: The Flower version whose internal APIs the runtime uses (see :mod:`~.runtime`).
FLOWER_VERSION = "1.41.0"


def check_flower_version() -> None:
    """Fail clearly when the installed Flower is not the version this runtime was written for."""
    import flwr

    if flwr.__version__ != FLOWER_VERSION:
        raise FederationError(
            f"fedsynth's federated runtime needs flwr=={FLOWER_VERSION}, found {flwr.__version__}"
            f"; install it with: pip install flwr=={FLOWER_VERSION}"
        )


APP_NAME = "fedsynth-federated"


def app_pyproject(settings: RunSettings | None = None) -> str:
    """The ``pyproject.toml`` of fedsynth's Flower app.

    The app's code is the installed ``fedsynth`` package (``fedsynth.federated.server_app:app``
    and ``fedsynth.federated.client_app:app``), which every site and the coordinator install
    beforehand; the bundle sent to the sites holds this file only. ``settings`` become the
    defaults of ``[tool.flwr.app.config]``.
    """
    import tomli_w

    from fedsynth import __version__

    config = settings.to_run_config() if settings is not None else {}
    document = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {
            "name": APP_NAME,
            "version": __version__.split("+")[0],
            "description": "fedsynth: federated training of synthetic-data generators",
            "dependencies": [f"flwr>={FLOWER_VERSION}", f"fedsynth=={__version__}"],
        },
        "tool": {
            "flwr": {
                "app": {
                    "publisher": "fedsynth",
                    "components": {
                        "serverapp": "fedsynth.federated.server_app:app",
                        "clientapp": "fedsynth.federated.client_app:app",
                    },
                    "config": config,
                }
            }
        },
    }
    return tomli_w.dumps(document)


def write_app(directory: str | os.PathLike, settings: RunSettings | None = None) -> Path:
    """Write the Flower app to ``directory``, for ``flwr run`` at a real deployment.

    ``flwr run`` rewrites the app's ``pyproject.toml``: give it this directory, never a project's
    own. Returns the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text(app_pyproject(settings))
    (directory / "README.md").write_text(_APP_README)
    return directory


_APP_README = """# fedsynth federated app

The ServerApp and ClientApp are in the installed `fedsynth` package
(`fedsynth.federated.server_app`, `fedsynth.federated.client_app`); install the same fedsynth
version at the coordinator and at every site.
"""


def build_fab(settings: RunSettings) -> bytes:
    """The app bundle (FAB) that a run sends the sites: the app's ``pyproject.toml`` and
    README only (the code is the installed fedsynth)."""
    from flwr.cli.build import build_fab_from_files

    files = {
        "pyproject.toml": app_pyproject(settings).encode(),
        "README.md": _APP_README.encode(),
    }
    with warnings.catch_warnings():
        # Flower 1.41 uses a pattern style that the installed pathspec deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        return build_fab_from_files(files)[0]
