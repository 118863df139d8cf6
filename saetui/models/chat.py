"""Chat templates: a conversation rendered with the tokenizer's own template, as token ids with per-token roles.

Instruct models expect their prompt wrapped in the chat template they were trained on
(`<start_of_turn>user ...`, `<|start_header_id|>user<|end_header_id|>`, `<|im_start|>user`). The template
already writes the BOS token where the model wants one, so the rendered text is tokenized with
`add_special_tokens=False`: exactly the ids of `tokenizer.apply_chat_template(messages, tokenize=True)`,
one BOS, no off-by-one (adding special tokens again would give two BOS and shift every position).

Every token gets a role: "system", "user" or "assistant" when it lies inside that message's text, else
"template" (BOS, turn markers, role names, the newlines the template adds, the generation prompt).
Messages are located in the rendered text in order (their text as given, else stripped, since most
templates trim it); a message the template rewrote beyond recognition leaves its tokens marked
"template", with a warning.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from saetui.errors import InputError, first_line
from saetui.inputs import check_text

if TYPE_CHECKING:
    from saetui.models.model import ModelWithHooks

ROLES = ("system", "user", "assistant")
TEMPLATE = "template"

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}

#: How a prompt is read: False = plain text; True = one user turn in the model's chat template; a list of
#: {"role", "content"} messages = the conversation so far, the prompt (if any) its next user turn.
Chat = Union[bool, Sequence[Message]]


def is_chat(chat: Chat) -> bool:
    """True for chat=True and for a conversation (a list, even an empty one)."""
    return chat is True or (chat is not None and not isinstance(chat, bool))


def model_input(model: ModelWithHooks, prompt: str | None, chat: Chat = False, system: str | None = None, *,
                reply: bool = False) -> str | ChatTokens:
    """What a prompt becomes: the text itself (chat False), or the conversation rendered with the model's
    chat template: [system] + the history in `chat` (a list; True = none) + the prompt as the next user
    turn, ending with the template's generation prompt unless it ends with the assistant.

    reply=True (generation) refuses a conversation that ends with the assistant's turn. One-line errors:
    a model without a chat template, a template that refuses a system turn, a system prompt without chat."""
    if not is_chat(chat):
        if system is not None:
            raise InputError("a system prompt needs a chat prompt (--chat)")
        if prompt is None:
            raise InputError("empty prompt: type some text first")
        return check_text(prompt)
    if prompt is not None:
        check_text(prompt)
    if system is not None:
        check_text(system, "system prompt")
    messages = conversation(prompt, [] if chat is True else chat, system)
    if reply and messages[-1]["role"] == "assistant":
        raise InputError("the conversation ends with the assistant's turn: add a user turn to generate a reply")
    return model.render_chat(messages)


@dataclass
class ChatTokens:
    """A rendered conversation.

    messages:          the conversation, as checked
    text:              the template's output (what the tokenizer saw)
    ids:               token ids, == apply_chat_template(messages, tokenize=True, add_generation_prompt=...)
    roles:             per token: "system" | "user" | "assistant" | "template"
    generation_prompt: whether the template's assistant-turn opener ends the text (the model replies next)
    """

    messages: list[dict[str, str]]
    text: str
    ids: list[int]
    roles: list[str]
    generation_prompt: bool = True
    missing: list[int] = field(default_factory=list)  # messages whose text could not be located

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def template(self) -> list[bool]:
        """Per token: True where the template wrote it, not a message."""
        return [r == TEMPLATE for r in self.roles]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The conversation as a list of {"role", "content"} dicts, or a one-line InputError."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise InputError(f"a conversation is a list of {{'role', 'content'}} messages, got {type(messages).__name__}")
    if not messages:
        raise InputError("empty conversation: give at least one message")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InputError(f"message {i} is not a {{'role', 'content'}} dict: {m!r:.80}")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise InputError(f"message {i}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise InputError(f"message {i}: content must be text, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise InputError(f"message {i}: a system turn can only open the conversation")
        out.append({"role": role, "content": content})
    return out


def conversation(prompt: str | None = None, history: Sequence[Mapping[str, Any]] = (),
                 system: str | None = None) -> list[dict[str, str]]:
    """[system] + history + [user: prompt]: the messages for one more user turn (prompt None: history as is)."""
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InputError(f"a conversation is a list of {{'role', 'content'}} messages, got {type(history).__name__}")
    messages = [dict(m) if isinstance(m, Mapping) else m for m in history]
    if system is not None:
        if messages and messages[0].get("role") == "system":
            raise InputError("the conversation already opens with a system turn: give --system once")
        messages.insert(0, {"role": "system", "content": system})
    if prompt is not None:
        messages.append({"role": "user", "content": prompt})
    return check_messages(messages)


def render_chat(tokenizer: Any, messages: Sequence[Mapping[str, Any]], *, name: str = "the model",
                add_generation_prompt: bool | None = None) -> ChatTokens:
    """Render `messages` with the tokenizer's chat template and tokenize the text with add_special_tokens=False.

    add_generation_prompt: default True unless the conversation ends with the assistant's turn (then the
    rendered conversation is analyzed as it stands). Refused in one line: a tokenizer without a chat
    template, a template that rejects the conversation (a system turn it does not take, roles that do
    not alternate), naming the model.
    """
    messages = check_messages(messages)
    if not has_chat_template(tokenizer):
        raise InputError(f"model {name} has no chat template: use it without --chat (its tokenizer_config.json "
                         "has no chat_template)")
    if add_generation_prompt is None:
        add_generation_prompt = messages[-1]["role"] != "assistant"
    text = _render(tokenizer, messages, name, add_generation_prompt)
    enc = _encode(tokenizer, text)
    ids = [int(i) for i in enc["input_ids"]]
    offsets = enc.get("offset_mapping") if hasattr(enc, "get") else None
    if offsets is None:
        offsets = _offsets_by_decoding(tokenizer, ids)
    roles, missing = _roles(text, messages, offsets)
    if missing:
        warnings.warn(f"the chat template of {name} rewrote message(s) {', '.join(map(str, missing))}: their tokens "
                      "are marked as template tokens", stacklevel=2)
    return ChatTokens(messages, text, ids, roles, bool(add_generation_prompt), missing)


def _render(tokenizer: Any, messages: list[dict[str, str]], name: str, add_generation_prompt: bool) -> str:
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # noqa: BLE001 - jinja2 TemplateError, or whatever the template raises
        if messages[0]["role"] == "system" and len(messages) > 1:
            try:
                tokenizer.apply_chat_template(messages[1:], tokenize=False, add_generation_prompt=add_generation_prompt)
            except Exception:  # noqa: BLE001 - not the system turn's fault: the general error below
                pass
            else:
                raise InputError(f"the chat template of {name} does not take a system turn ({first_line(exc)}): "
                                 "leave out --system") from None
        raise InputError(f"the chat template of {name} refused the conversation: {first_line(exc)}") from None
    if not isinstance(text, str):
        raise InputError(f"the chat template of {name} did not render text (got {type(text).__name__})")
    return text


def _encode(tokenizer: Any, text: str) -> Any:
    """The rendered text's ids (no special tokens added: the template wrote them), with offsets where the tokenizer has them."""
    if getattr(tokenizer, "is_fast", False):
        return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return tokenizer(text, add_special_tokens=False)


def _offsets_by_decoding(tokenizer: Any, ids: list[int]) -> list[tuple[int, int]]:
    """Character spans from the lengths of decoded prefixes (slow tokenizers have no offset mapping)."""
    out, prev = [], 0
    for i in range(len(ids)):
        end = len(tokenizer.decode(ids[: i + 1], skip_special_tokens=False))
        out.append((prev, max(prev, end)))
        prev = max(prev, end)
    return out


def _roles(text: str, messages: list[dict[str, str]], offsets: Sequence[Sequence[int]]) -> tuple[list[str], list[int]]:
    """Per token: the role of the message whose text it overlaps, else "template"; and the messages not found."""
    spans: list[tuple[int, int, str]] = []
    missing: list[int] = []
    cursor = 0
    for i, m in enumerate(messages):
        content = m["content"]
        for needle in (content, content.strip()):
            if not needle:
                break
            at = text.find(needle, cursor)
            if at >= 0:
                spans.append((at, at + len(needle), m["role"]))
                cursor = at + len(needle)
                break
        else:
            missing.append(i)
    roles = []
    for start, end in offsets:
        role = TEMPLATE
        for s, e, r in spans:
            if start < e and end > s:  # the token overlaps the message's text
                role = r
                break
        roles.append(role)
    return roles, missing
