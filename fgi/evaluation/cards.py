"""What the evaluation knows of each method: its card, read from data, never from its code.

predict@<method> writes `data/predictions/<method>/method.json` (`fgi.methods.Method.card`):
name, display name, citation, role (`proposed`, `baseline`, `reference`), whether
it learns, and the values its paper published. `evaluate` collects the cards of
the compared methods, in the order of `methods` in params.yaml, into
`reports/methods.json`; the tables, figures, report, study and seeds read them
there. So the evaluation imports no method, and a method from another package
shows in every table under its own name. A method whose weights are a release's
(`models.<name>.released`) is displayed `<name> (released)`, and its card's `released`
line (the release, its training split, the test faces it saw) goes under every table.
"""

from __future__ import annotations

import json
from pathlib import Path

from fgi import files
from fgi.errors import UserError

CARD = "method.json"
CARDS = "methods.json"


def external(name: str) -> dict:
    """The card of `eval.external.<name>`: outputs made elsewhere, by a method we know nothing of."""
    return {"name": name, "display": name, "citation": "external", "role": "baseline", "learned": False,
            "published": {}, "external": True}


def released_line(record: dict) -> str:
    """What the tables say under a method whose weights are a release's (model.pt's `released`,
    `fgi.training.released`): which release, its training split, and the test faces it saw."""
    split = record.get("training_split") or "an unpublished split"
    overlap = record["overlap"]
    seen = (f"{overlap['seen']} of {overlap['of']} test faces seen in training" if overlap["seen"] is not None
            else f"test faces seen in training: unknown ({overlap['why']})")
    return f"released weights ({record['release']}), trained on {split}; {seen}"


def with_release(card: dict, record: dict | None) -> dict:
    """The card of a method whose model.pt holds `record` (None: trained here, the card as it is)."""
    if record is None:
        return card
    return {**card, "display": f"{card['display']} (released)", "released": released_line(record)}


class Cards(dict):
    """{name: card}, in the tables' order."""

    def display(self, name: str) -> str:
        return self[name]["display"] if name in self else name

    def citation(self, name: str) -> str:
        return self[name]["citation"] if name in self else "external"

    def order(self, present) -> list[str]:
        """The names in `present`, the carded ones first in card order, then the rest as they come."""
        present = list(dict.fromkeys(present))
        return [m for m in self if m in present] + [m for m in present if m not in self]

    def with_role(self, role: str) -> list[str]:
        return [name for name, card in self.items() if card["role"] == role]

    def proposed(self) -> str | None:
        """The method Table 5 compares with every other (the first `proposed` one)."""
        return next(iter(self.with_role("proposed")), None)

    def learned(self) -> list[str]:
        return [name for name, card in self.items() if card["learned"]]

    def released_note(self) -> str:
        """One sentence per method with released weights, for the notes under the tables; '' for none."""
        return " ".join(f"{card['display']}: {card['released']}." for card in self.values() if card.get("released"))

    def predicted(self) -> list[str]:
        """The methods the pipeline ran (`methods`), not `eval.external`'s outputs made elsewhere."""
        return [name for name, card in self.items() if not card.get("external")]


def read_card(folder: Path, name: str) -> dict:
    path = folder / CARD
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: missing or not JSON ({err}); run `dvc repro predict@{name}`") from err
    if card.get("name") != name:
        raise UserError(f"{path}: the card of {card.get('name')!r}, not {name!r}; run `dvc repro predict@{name}`")
    return card


def write_cards(path: Path, cards: Cards) -> None:
    files.write_json_atomic(path, list(cards.values()))


def load_cards(path: Path) -> Cards:
    """The cards `evaluate` wrote; an older run without them gets plain names."""
    if not path.is_file():
        return Cards()
    return Cards((card["name"], card) for card in json.loads(path.read_text()))
