"""What a Session holds, and the few things every part of it uses: the lock, the model and SAEs it requires,
the labels, the prompt as the model reads it (`chat_prompt`), and decoding generated ids. Session
(saetui.session) is this state with its methods, some of them in saetui.session_steering and
saetui.session_discovery."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Sequence

from saetui.errors import InputError
from saetui.inputs import check_int
from saetui.labels import Labels
from saetui.models.chat import Chat, is_chat

if TYPE_CHECKING:
    from saetui.models.chat import ChatTokens
    from saetui.models.model import ModelWithHooks
    from saetui.sae.analyzer import AnalysisResult
    from saetui.sae.contrast import ContrastResult
    from saetui.sae.manager import LoadedSAE, SAEManager
    from saetui.steering.spec import Spec


class SessionState:
    """Model, SAEs, their labels, the steering specs and the last results, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.model: ModelWithHooks | None = None
        self.saes: SAEManager | None = None
        self.specs: list[Spec] = []  # the steering specs of the default rows (see `generate`)
        self.labels = Labels()
        self.last: AnalysisResult | None = None
        self.last_latency: float | None = None
        self.last_contrast: ContrastResult | None = None  # what save_vector saves by default
        self.indexes: dict[str, Any] = {}  # SAE name -> FeatureIndex, where one was built
        # generation decodes with a static KV cache and a compiled step: None = on CUDA only, False = never
        # (the eager loop), True = also elsewhere (saetui.steering.static)
        self.compile: bool | None = None

    def chat_prompt(self, prompt: str | None, chat: Chat = False, system: str | None = None, *,
                    reply: bool = False) -> str | ChatTokens:
        """What a prompt becomes for the loaded model: the text itself, or with `chat` the conversation rendered
        with its chat template (saetui.models.chat.model_input: the rules and the one-line errors)."""
        from saetui.models.chat import model_input

        if not is_chat(chat):  # plain text needs no model (and is checked before one loads)
            return model_input(None, prompt, chat, system)  # type: ignore[arg-type]
        return model_input(self._require_model(), prompt, chat, system, reply=reply)

    def sae(self, key: str | int | None = None) -> LoadedSAE:
        """A loaded SAE by name, hook name, layer number or spec (None: the only one)."""
        return self._require_saes().get(key)

    # ------------------------------------------------------------------ helpers
    def decode(self, ids: Sequence[int]) -> str:
        """Generated token ids as text, special tokens (e.g. an end-of-turn marker) left out."""
        model = self._require_model()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InputError(f"ids is a list of token ids, got {ids!r:.60}")
        checked = [check_int(i, "a token id", 0, model.vocab_size - 1) for i in ids]
        return model.tokenizer.decode(checked, skip_special_tokens=True)

    def _require_model(self) -> ModelWithHooks:
        if self.model is None:
            raise InputError("no model loaded yet")
        return self.model

    def _require_saes(self) -> SAEManager:
        if self.saes is None or len(self.saes) == 0:
            raise InputError("no SAE loaded yet")
        return self.saes
