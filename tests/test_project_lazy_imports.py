"""Importing the command line or a package loads none of the heavy libraries until a name is used."""

import subprocess
import sys

import pytest

HEAVY = ("sklearn", "matplotlib", "skops", "skimage", "scipy", "joblib", "distributed")

PACKAGES = ("featpipe.cli", "featpipe.pipeline", "featpipe.store", "featpipe.datasets", "featpipe.features",
            "featpipe.heads", "featpipe.report")


def _loaded_after(statement):
    """Top-level names of the modules loaded after running ``statement`` in a fresh interpreter."""
    code = (f"import sys\n{statement}\n"
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(finished.stderr.split())


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_loads_no_heavy_library(package):
    assert _loaded_after(f"import {package}") & set(HEAVY) == set()


def test_a_name_is_imported_on_first_use():
    loaded = _loaded_after("import featpipe.heads\nfeatpipe.heads.Softmax")
    assert "sklearn" in loaded


def test_help_loads_no_heavy_library():
    loaded = _loaded_after("from featpipe.cli import cli\n"
                           "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass")
    assert "click" in loaded and loaded & set(HEAVY) == set()
