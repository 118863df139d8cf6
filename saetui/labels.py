"""Labels: the feature labels of every loaded SAE, in one store.

Read as a mapping `(sae name, feature) -> label` (what the app and the CLI's tables look up), and per SAE as
`{feature: label}` (what search ranks against). The files they come from and go to belong to each SAE's
feature index (saetui.sae.search: load_labels / save_labels_of).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class Labels(Mapping[tuple[str, int], str]):
    """SAE name -> {feature: label}; `labels[(sae, feature)]`, `labels.get((sae, feature), "")`."""

    def __init__(self) -> None:
        self._by_sae: dict[str, dict[int, str]] = {}

    def __getitem__(self, key: tuple[str, int]) -> str:
        sae, feature = key
        return self._by_sae[sae][feature]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((sae, f) for sae, labels in self._by_sae.items() for f in labels)

    def __len__(self) -> int:
        return sum(len(labels) for labels in self._by_sae.values())

    def of(self, sae: str) -> dict[int, str]:
        """The labels of one SAE (read-only by convention: change them through `set` or `replace`)."""
        return self._by_sae.get(sae, {})

    def replace(self, sae: str, labels: dict[int, str]) -> None:
        """Every label of `sae` at once (a feature index's labels file, read or merged)."""
        self._by_sae[sae] = dict(labels)

    def set(self, sae: str, feature: int, label: str) -> None:
        """Label a feature; an empty label removes it."""
        labels = self._by_sae.setdefault(sae, {})
        if label:
            labels[feature] = label
        else:
            labels.pop(feature, None)

    def clear(self) -> None:
        self._by_sae.clear()
