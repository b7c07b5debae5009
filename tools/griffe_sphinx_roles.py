"""A griffe extension for the docs site (mkdocs.yml): the docstrings' Sphinx roles
(:class:`~apikeys.Foo`, :meth:`bar`...) become mkdocstrings cross-references, and
reST's ``::`` before a literal block goes (the indented block is Markdown code).

A name is resolved in the scope of the docstring's object, as Sphinx would; a
target the site does not document (a private base class, the standard library)
renders as plain code instead of a broken link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|exc|mod|obj):`(?P<body>[^`]+)`")
LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*$", re.MULTILINE)
LITERAL_AFTER = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
TITLED = re.compile(r"(?P<title>.+?)\s*<(?P<target>[^>]+)>")


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if isinstance(member, griffe.Object):  # aliases are documented where they point
            yield from _objects(member)


def _identifier(obj: griffe.Object, target: str) -> str:
    if target.startswith("apikeys."):
        return target
    head, _, rest = target.partition(".")
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, ValueError):
        return target
    return f"{resolved}.{rest}" if rest else resolved


def _link(obj: griffe.Object, match: re.Match[str]) -> str:
    body = match["body"].strip()
    titled = TITLED.fullmatch(body)
    if titled:
        title, target = titled["title"], titled["target"].lstrip("~.")
    else:
        target = body.lstrip("~.")
        title = target.rsplit(".", 1)[-1] if body.startswith("~") else target
    identifier = html.escape(_identifier(obj, target.removesuffix("()")))
    code = f"<code>{html.escape(title)}</code>"
    return f'<autoref identifier="{identifier}" optional>{code}</autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                text = ROLE.sub(partial(_link, obj), obj.docstring.value)
                text = LITERAL_AFTER.sub(":", LITERAL_ALONE.sub("", text))
                obj.docstring.value = text
