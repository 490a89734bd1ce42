"""The fixture layer itself: a test's registrations do not leak into the next test.

The two tests run in file order; the second fails if the first one's provider and tool
outlived it (which is what ``global_registries`` in conftest.py prevents).
"""

from __future__ import annotations

from relaygraph import providers, tools
from relaygraph.providers import Provider, register_provider
from relaygraph.providers.offline import OfflineChatModel, OfflinePolicyModel
from smolagents import tool


@tool
def leaky_tool(x: int) -> str:
    """Echo.

    Args:
        x: a number
    """
    return str(x)


def test_registering_and_replacing_in_a_test() -> None:
    register_provider(Provider("leaky", lambda s: OfflinePolicyModel(), lambda s: OfflineChatModel(),
                               lambda s: "leaky"))
    register_provider(Provider("offline", lambda s: OfflinePolicyModel(), lambda s: OfflineChatModel(),
                               lambda s: "replaced"))
    tools.register_tool(leaky_tool)
    assert "leaky" in providers.provider_names() and "leaky_tool" in tools.known_tools()


def test_the_previous_tests_registrations_are_gone() -> None:
    assert "leaky" not in providers.provider_names()
    assert providers._PROVIDERS["offline"].label(None) != "replaced"  # type: ignore[arg-type]
    assert "leaky_tool" not in tools.known_tools()
