"""Hook plumbing shared by the activation collector and the steering engine.

`HookSet` is a context manager: every hook registered through it is removed when the block exits,
whether the forward finished, raised, or was stopped early. Removal is idempotent.
`hidden_of` / `with_hidden` read and replace the hidden-state tensor in whatever a module passes
(a tensor, as transformers 5 decoder layers return, or a tuple whose first item is the tensor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from saetui.errors import HookPointError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn
    from torch.utils.hooks import RemovableHandle

    from saetui.models.architectures import HookPoint
    from saetui.models.model import ModelWithHooks

# fn(hidden) -> None to observe, or a tensor of the same shape to replace it.
HiddenFn = Callable[["torch.Tensor"], "torch.Tensor | None"]


def hidden_of(value: Any, where: str) -> torch.Tensor:
    """The hidden-state tensor in a module's output (or input args): a tensor, or a tuple's first item."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise HookPointError(f"{where} passed a {type(value).__name__}, expected a tensor or a tuple starting with one")


def with_hidden(value: Any, hidden: torch.Tensor) -> Any:
    """`value` with its hidden-state tensor replaced by `hidden`, keeping the container type."""
    if isinstance(value, (tuple, list)):
        return type(value)((hidden, *value[1:]))
    return hidden


class HookSet:
    """Hooks registered for the duration of a `with` block, then removed in `finally`.

    >>> with HookSet() as hooks:
    ...     hooks.on_output(layer, fn)
    ...     model(ids)
    """

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def on_output(self, module: nn.Module, fn: HiddenFn, where: str = "module") -> None:
        """Call fn on the module's output hidden state; a returned tensor replaces it."""

        def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
            new = fn(hidden_of(output, where))
            return None if new is None else with_hidden(output, new)

        self._handles.append(module.register_forward_hook(hook))

    def on_input(self, module: nn.Module, fn: HiddenFn, where: str = "module") -> None:
        """Call fn on the module's input hidden state (first positional arg or `hidden_states`)."""

        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> Any:
            if args:
                new = fn(hidden_of(args[0], where))
                return None if new is None else ((new, *args[1:]), kwargs)
            if "hidden_states" not in kwargs:
                raise HookPointError(f"{where} was called without a hidden-state argument")
            new = fn(hidden_of(kwargs["hidden_states"], where))
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def at(self, model: ModelWithHooks, hook: str | HookPoint, fn: HiddenFn, *, twin: nn.Module | None = None) -> None:
        """Call fn on the hidden state at a sae-lens hook point of `model` (its name, or a parsed HookPoint): on
        the input of the module carrying it (hook_resid_pre) or on its output. The one place hook points become
        modules. `twin`: hook the module at the same path in this copy of the model instead."""
        point = model.hook_point(hook) if isinstance(hook, str) else hook
        module, side = model.hook_module(point)
        if twin is not None:
            path = next(name for name, m in model.model.named_modules() if m is module)
            module = twin.get_submodule(path)
        where = hook if isinstance(hook, str) else point.name
        (self.on_input if side == "input" else self.on_output)(module, fn, where=where)

    def on_call(self, module: nn.Module, fn: Callable[[tuple, dict], None]) -> None:
        """Call fn(args, kwargs) before every forward of `module` (to observe its inputs)."""

        def hook(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            fn(args, kwargs)

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def remove(self) -> None:
        """Remove every hook; safe to call twice. A Ctrl+C landing midway (Python delivers it on entry to a function
        such as RemovableHandle.remove) does not leave the rest on the model, where a collector's hook would stop
        every later forward: a handle leaves the list once removed (removing one twice does nothing), and an
        interrupt waits until all are gone."""
        try:
            while self._handles:
                self._handles[-1].remove()
                self._handles.pop()
        except BaseException:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            raise

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
