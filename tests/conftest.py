"""Root pytest configuration: marks tests by folder, nothing heavy.

Inputs: the collected test items. Output: every test under tests/integration/ carries
the ``integration`` marker and every test under tests/e2e/ the ``e2e`` marker, even
when its module forgets them, so ``-m "not integration and not e2e"`` always selects
exactly the stack-free tests. No fixtures, no clients, no imports of the app here:
the stack fixtures live in tests/integration/conftest.py (reused by tests/e2e/).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_TESTS_ROOT = Path(__file__).resolve().parent
_FOLDER_MARKERS = {"integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(_TESTS_ROOT).parts[0]
        except ValueError:
            continue
        marker = _FOLDER_MARKERS.get(folder)
        if marker is not None and item.get_closest_marker(marker) is None:
            item.add_marker(getattr(pytest.mark, marker))
