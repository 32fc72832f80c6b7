"""The HTML layer shared by ``report.html`` (protocol) and ``review.html`` (sync): Jinja2
templates with autoescaping, one stylesheet, and plotly.js embedded in the page.

Pages must work offline from ``file://``: nothing is fetched from the network, so the
charting library's JavaScript is read from the installed ``plotly`` package and inlined
once per page (docs/protocol.md, "The HTML layer"). Chart data goes into the page as JSON
inside ``<script type="application/json">`` and is read with ``JSON.parse``: ``data_json``
escapes ``<``, ``>`` and ``&`` so that no string (a file name) can close the element or
start markup, and the page never evaluates it as code.

Floor 0 of the import graph: nothing here imports the rest of lipleak, so both the protocol
report (floor 7) and the sync review page (floor 6) use it.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources

from markupsafe import Markup

__all__ = ["data_json", "plotly_js", "plotly_version", "render", "static"]

_PLOTLY_JS = ("plotly", "package_data", "plotly.min.js")


@functools.cache
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lipleak.html", "templates"),
        autoescape=True,
        # a misspelt variable must fail the render, not print nothing
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(plotly_js=plotly_js, static=static, data_json=data_json)
    return env


def render(template: str, **context) -> str:
    """``template`` (a file in lipleak/html/templates) rendered with ``context``."""
    return environment().get_template(template).render(**context)


@functools.cache
def plotly_js() -> Markup:
    """plotly.js from the installed plotly package (its minified bundle, ~4.8 MB), for a
    ``<script>`` element; the bundle is never fetched from a CDN."""
    res = resources.files(_PLOTLY_JS[0]).joinpath(*_PLOTLY_JS[1:])
    js = res.read_text(encoding="utf-8")
    # "</script" anywhere in it would end the inline element early
    if "</script" in js.lower():
        raise RuntimeError("plotly.min.js contains '</script': it cannot be inlined")
    return Markup(js)


@functools.cache
def plotly_version() -> str:
    from importlib.metadata import version

    return version("plotly")


@functools.cache
def static(name: str) -> Markup:
    """A file of lipleak/html/static (our own CSS or JavaScript), verbatim."""
    text = resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise RuntimeError(f"static/{name} would close its element early")
    return Markup(text)


def _finite(obj):
    # JSON has no NaN or infinity (JSON.parse rejects them): they become null
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def data_json(obj) -> Markup:
    """``obj`` as JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and
    ``&`` are written as ``\\u003c`` etc. (so ``</script>`` in a string cannot end the
    element), U+2028/U+2029 escaped too; NaN and infinities become null."""
    text = json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(ch, esc)
    return Markup(text)
