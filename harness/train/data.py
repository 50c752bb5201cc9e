"""Training records: prompt/completion JSONL and chat `messages` JSONL, encoded with loss masks.

    {"prompt": "Claim: ...\\nCategory:", "completion": " FALL"}
    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}

A prompt/completion record learns its completion (plus EOS). A chat record is rendered with the
tokenizer's chat template and learns every assistant turn (with whatever the template puts at the
end of a turn); system and user turns are context only. Every malformed line is an error naming
the file and line; nothing is skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from harness.errors import HarnessError
from harness.records import PromptFormatRecord
from harness.sources.prompts import tokenizer_template

IGNORE = -100  # label value the loss skips (prompt, non-assistant and padding tokens)
ROLES = ("system", "user", "assistant", "tool")

Encoded = tuple[list[int], list[int]]  # input ids, labels


def read_records(path: Path) -> list[tuple[str, dict]]:
    """(where, record) per line, where = 'file:line'; each a prompt/completion or a chat record."""
    from harness.util.files import read_jsonl

    rows = []
    for where, row in read_jsonl(path, "training data file", "check --data"):
        if "messages" in row:
            rows.append((where, {"messages": _check_messages(row["messages"], where)}))
            continue
        if not isinstance(row.get("prompt"), str) or not isinstance(row.get("completion"), str):
            raise HarnessError(f"{where}: expected an object with string fields 'prompt' and 'completion', "
                               "or a chat record with 'messages'")
        if not row["completion"]:
            raise HarnessError(f"{where}: empty 'completion': nothing to learn from this line")
        rows.append((where, {"prompt": row["prompt"], "completion": row["completion"]}))
    if not rows:
        raise HarnessError(f"{path}: no records")
    return rows


def _check_messages(messages: object, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise HarnessError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise HarnessError(f"{where}: messages[{i}] must be an object with 'role' (one of "
                               f"{', '.join(ROLES)}) and string 'content'; got {str(m)[:80]}")
    if not any(m["role"] == "assistant" and m["content"] for m in messages):
        raise HarnessError(f"{where}: no non-empty assistant message: nothing to learn from this line")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def encode_pair(tok: PreTrainedTokenizerBase, prompt: str, completion: str) -> Encoded:
    """Token ids and labels: prompt tokens (with the tokenizer's BOS) are masked from the loss."""
    prompt_ids = tok(prompt)["input_ids"]
    completion_ids = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids


def encode_chat(tok: PreTrainedTokenizerBase, messages: list[dict], where: str) -> Encoded:
    """Render with the chat template; label the tokens of each assistant turn.

    A turn's text is what rendering the conversation up to and including it adds to rendering it
    up to the generation prompt before it; tokens are mapped to text by their character offsets,
    so the labels follow the template whatever markers it uses."""
    if not tok.chat_template:
        raise HarnessError(f"{where}: a chat record, but the tokenizer has no chat template; pass "
                           "--chat-template FILE (a Jinja template) or use prompt/completion records")

    def render(msgs: list[dict], prompt: bool) -> str:
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=prompt)

    text = render(messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, upto = render(messages[:i], True), render(messages[: i + 1], False)
        if not (text.startswith(upto) and upto.startswith(before)):
            raise HarnessError(f"{where}: the chat template does not render turn {i} as a continuation of "
                               "the turns before it, so its tokens cannot be told apart; use a template "
                               "that renders conversations turn by turn")
        spans.append((len(before), len(upto)))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    starts = [s for s, _ in enc["offset_mapping"]]
    labels = [t if any(a <= s < b for a, b in spans) else IGNORE for t, s in zip(ids, starts, strict=True)]
    return ids, labels


def encode_records(tok: PreTrainedTokenizerBase, records: list[tuple[str, dict]], max_length: int) -> list[Encoded]:
    """Encode every record (read_records' rows) once; a record over `max_length` tokens is an error."""
    encoded = []
    for where, r in records:
        ids, labels = (encode_chat(tok, r["messages"], where) if "messages" in r
                       else encode_pair(tok, r["prompt"], r["completion"]))
        if len(ids) > max_length:
            raise HarnessError(f"{where}: record is {len(ids)} tokens, over max_length {max_length}; "
                               "shorten it or raise --max-length")
        if all(label == IGNORE for label in labels):
            raise HarnessError(f"{where}: no token to learn after encoding (the assistant text rendered empty)")
        encoded.append((ids, labels))
    return encoded


def prompt_format(tok: PreTrainedTokenizerBase, records: list[tuple[str, dict]],
                  template_file: str | None = None) -> dict:
    """The prompt format of the training records (records.PromptFormatRecord's fields); `template_file`:
    the --chat-template file the tokenizer's template was set from, if any."""
    systems: list[str | None] = []
    chat = False
    for _, r in records:
        if "messages" not in r:
            continue
        chat = True
        system = next((m["content"] for m in r["messages"] if m["role"] == "system"), None)
        if system not in systems and len(systems) < 5:
            systems.append(system)
    if not (chat and tok.chat_template):
        return PromptFormatRecord.of("none", None, systems).model_dump()
    if template_file is None:  # told apart from the base's own by its text
        own = tokenizer_template(Path(tok.name_or_path)) if Path(tok.name_or_path).is_dir() else None
        template_file = "tokenizer" if own == tok.chat_template else "--chat-template"
    sha = hashlib.sha256(tok.chat_template.encode()).hexdigest()
    return PromptFormatRecord.of(template_file, sha, systems).model_dump()
