"""A stand-in for bpy.types.UILayout that records what draw code asks for.

Background Blender never draws panels, so tests call ``Panel.draw(self_like, context)``
with one of these as ``layout`` and inspect the calls: labels shown, operators
offered (with the properties set on them), progress bars, enabled/alert flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class OperatorProps:
    """What ``layout.operator()`` returns: records the properties draw code sets."""

    def __init__(self) -> None:
        object.__setattr__(self, "values", {})

    def __setattr__(self, name: str, value: Any) -> None:
        self.values[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    layout: RecordingLayout  # the (sub-)layout the call was made on
    result: Any = None

    @property
    def text(self) -> str:
        return str(self.kwargs.get("text", ""))


@dataclass
class RecordingLayout:
    parent: RecordingLayout | None = None
    kind: str = "layout"
    enabled: bool = True
    active: bool = True
    alert: bool = False
    scale_y: float = 1.0
    scale_x: float = 1.0
    ui_units_x: float = 0.0
    alignment: str = "EXPAND"
    operator_context: str = "INVOKE_DEFAULT"
    use_property_split: bool = False
    use_property_decorate: bool = True
    context_pointers: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    # -- bookkeeping ----------------------------------------------------------
    @property
    def root(self) -> RecordingLayout:
        return self if self.parent is None else self.parent.root

    def _record(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any = None) -> Any:
        self.root.calls.append(Call(method, args, kwargs, self, result))
        return result

    def _sub(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RecordingLayout:
        sub = RecordingLayout(parent=self, kind=kind, context_pointers=dict(self.context_pointers))
        return self._record(kind, args, kwargs, sub)  # type: ignore[no-any-return]

    def effective(self, flag: str) -> bool:
        """enabled/alert as Blender resolves them: disabled if any parent is; alert if any is."""
        node: RecordingLayout | None = self
        values = []
        while node is not None:
            values.append(getattr(node, flag))
            node = node.parent
        return all(values) if flag in ("enabled", "active") else any(values)

    # -- sub-layouts ----------------------------------------------------------
    def row(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return self._sub("row", args, kwargs)

    def column(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return self._sub("column", args, kwargs)

    def box(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return self._sub("box", args, kwargs)

    def split(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return self._sub("split", args, kwargs)

    def grid_flow(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return self._sub("grid_flow", args, kwargs)

    # -- items ------------------------------------------------------------------
    def label(self, *args: Any, **kwargs: Any) -> None:
        self._record("label", args, kwargs)

    def prop(self, *args: Any, **kwargs: Any) -> None:
        self._record("prop", args, kwargs)

    def operator(self, *args: Any, **kwargs: Any) -> OperatorProps:
        return self._record("operator", args, kwargs, OperatorProps())  # type: ignore[no-any-return]

    def progress(self, *args: Any, **kwargs: Any) -> None:
        self._record("progress", args, kwargs)

    def template_list(self, *args: Any, **kwargs: Any) -> None:
        self._record("template_list", args, kwargs)

    def template_ID(self, *args: Any, **kwargs: Any) -> None:
        self._record("template_ID", args, kwargs)

    def template_icon(self, *args: Any, **kwargs: Any) -> None:
        self._record("template_icon", args, kwargs)

    def prop_search(self, *args: Any, **kwargs: Any) -> None:
        self._record("prop_search", args, kwargs)

    def separator(self, *args: Any, **kwargs: Any) -> None:
        self._record("separator", args, kwargs)

    def menu(self, *args: Any, **kwargs: Any) -> None:
        self._record("menu", args, kwargs)

    def context_pointer_set(self, name: str, data: Any) -> None:
        self.context_pointers[name] = data
        self._record("context_pointer_set", (name, data), {})

    # -- queries for tests ------------------------------------------------------------
    def find(self, method: str) -> list[Call]:
        return [c for c in self.root.calls if c.method == method]

    def texts(self, method: str = "label") -> list[str]:
        return [c.text for c in self.find(method)]

    def all_text(self) -> str:
        return "\n".join(c.text for c in self.root.calls if c.text)

    def operators(self, idname: str | None = None) -> list[Call]:
        return [c for c in self.find("operator") if idname is None or c.args[0] == idname]

    def icons(self) -> set[str]:
        return {str(c.kwargs["icon"]) for c in self.root.calls if c.kwargs.get("icon")}


@dataclass
class FakePanel:
    """Enough of a Panel/UIList instance for draw(): ``self.layout``."""

    layout: RecordingLayout = field(default_factory=RecordingLayout)
