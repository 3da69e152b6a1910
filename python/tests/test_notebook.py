"""examples/notebooks/quickstart.ipynb executes (nbclient)."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from conftest import REPO  # noqa: E402


def test_quickstart_notebook_executes(tmp_path):
    path = REPO / "examples" / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "largest ergotropy" in outputs
    assert "concurrence:" in outputs
    # no cell warns (cell 4's peak.argmax() without a dim drew xarray's FutureWarning)
    warned = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("name") == "stderr" and "Warning" in o.get("text", "")]
    assert not warned, warned
