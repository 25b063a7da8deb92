"""The plugin manager: built-ins first, then every distribution's entry point in the
group `pointsmall`."""

import inspect
from functools import cache
from typing import Any

import pluggy

hookimpl = pluggy.HookimplMarker("pointsmall")


@cache
def plugin_manager() -> pluggy.PluginManager:
    from pointsmall import hookspecs
    from pointsmall.payments import manual

    pm = pluggy.PluginManager("pointsmall")
    pm.add_hookspecs(hookspecs)
    pm.register(manual, name="pointsmall.payments.manual")
    pm.load_setuptools_entrypoints("pointsmall")
    return pm


async def call_first(hook_name: str, **kwargs: Any) -> Any:
    """Call a `firstresult` hook and await its answer when a plugin returned an awaitable
    (providers talk HTTP; the hooks themselves stay plain pluggy)."""
    result = getattr(plugin_manager().hook, hook_name)(**kwargs)
    return await result if inspect.isawaitable(result) else result


def payment_providers() -> frozenset[str]:
    return frozenset(
        name for names in plugin_manager().hook.pointsmall_payment_providers() for name in names
    )
