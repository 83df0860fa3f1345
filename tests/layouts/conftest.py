from __future__ import annotations

import pytest
from layout_params import LAYOUTS, layout_spec


def _open_store(path, layout, **kw):
    import engine

    kw.setdefault("layout", engine.Layout.parse(layout_spec(layout, path), background=False))
    return engine.open(path / "db", **kw)


@pytest.fixture(params=LAYOUTS)
def layout(request):
    return request.param


@pytest.fixture
def open_store():
    """Open ``path/db`` with a layout preset (background movement off unless a Layout is given)."""
    return _open_store
