"""Layout parameters shared by the layout tests (imported by conftest.py and the tests)."""

from __future__ import annotations

# "<preset>@memory" / "<preset>@file": the same layout with its cold tier on an object store
# (cold_url memory://<per-test name> or file://<tmp>/bucket), see layout_spec().
COLD_LAYOUTS = ["hot+warm+cold", "warm+cold", "hot+warm+cold@memory", "hot+warm+cold@file",
                "warm+cold@memory", "warm+cold@file"]
LAYOUTS = ["memory", "warm", "hot+warm", *COLD_LAYOUTS]


def layout_name(layout: str) -> str:
    """The preset name of a layout parameter (``"warm+cold@file"`` -> ``"warm+cold"``)."""
    return layout.partition("@")[0]


def layout_spec(layout: str, path) -> str:
    """A ``Layout.parse`` text for a layout parameter; object-store variants get a cold_url
    private to ``path`` (the test's tmp dir)."""
    name, _, backend = layout.partition("@")
    if not backend:
        return name
    if backend == "memory":
        return f"{name}:cold_url=memory://layouts{str(path).replace('/', '_')}"
    return f"{name}:cold_url=file://{path}/bucket"
