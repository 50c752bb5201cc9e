"""Prompt formats: how each model of a comparison is prompted (chat template, system prompt, few-shot
examples as turns), resolved at plan time from the config and the model's tokenizer files.

The template's text (not its file name) is part of every run key of a model prompted with it, so
an edited template is scored again and two models prompted the same way share nothing they should
not. Rendering goes through lm-eval's own chat-template path (`apply_chat_template` of the
backends); this module only finds, checks and names the template. No model or tokenizer is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from harness.config import PromptFormatFields
from harness.errors import HarnessError
from harness.records import PromptFormat

# where a tokenizer keeps its chat template, newest convention first (transformers >= 4.43 writes
# chat_template.jinja; before, tokenizer_config.json held it, sometimes as a list of named ones)
TEMPLATE_FILE = "chat_template.jinja"


def model_fingerprint_with(model_fp: str, prompt: PromptFormat) -> str:
    """A model's run identity under a prompt format: its weights' fingerprint alone when prompts are
    plain (stores written before prompt formats keep serving), else weights and format together."""
    if prompt.plain:
        return model_fp
    return hashlib.sha256(f"{model_fp}:prompt:{prompt.identity()}".encode()).hexdigest()


def tokenizer_template(folder: Path) -> str | None:
    """The chat template a tokenizer folder holds (its default one), or None."""
    file = folder / TEMPLATE_FILE
    if file.is_file():
        return file.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except (json.JSONDecodeError, AttributeError) as e:
        raise HarnessError(f"{config}: not a JSON object ({e}); the tokenizer folder is damaged") from None
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template.strip() else None


def check_template(text: str, where: str) -> None:
    """A template that does not parse is refused before any model loads, with its line."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols"]).parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise HarnessError(f"{where}: line {e.lineno}: the chat template does not parse: {e.message}; "
                           "fix the template (Jinja syntax)") from None


def resolve_prompt_format(fields: PromptFormatFields, folders: list[Path], who: str) -> PromptFormat:
    """`fields` (a model's keys in the config) against its tokenizer `folders` (searched in order:
    an adapter's own, then its base's). `who` names the model in errors."""
    setting = fields.chat_template
    if setting == "none":
        template, source = None, "none"
    elif setting == "auto":
        template = next((t for f in folders if (t := tokenizer_template(f)) is not None), None)
        source = "tokenizer" if template is not None else "auto: none in the tokenizer"
        if template is not None:
            check_template(template, f"{who}: the tokenizer's chat template ({folders[0]})")
    else:
        path = Path(setting)
        try:
            template = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HarnessError(f"{who}: chat_template {path}: cannot read it ({e})") from None
        check_template(template, str(path))
        source = str(path)
    if fields.fewshot_as_multiturn and template is None:
        where = folders[0] if folders else "no local tokenizer"
        raise HarnessError(f"{who}: fewshot_as_multiturn needs a chat template, and chat_template {setting} "
                           f"found none in {where}; give a template file or drop fewshot_as_multiturn")
    return PromptFormat(template=template, source=source, system_prompt=fields.system_prompt,
                        fewshot_as_multiturn=fields.fewshot_as_multiturn)


def format_mismatch(adapter_dir: Path, prompt: PromptFormat, who: str) -> list[str]:
    """Warnings when a candidate is evaluated in another prompt format than its trainer's manifest
    (train_manifest.json beside the adapter) says it was trained in; none without a manifest."""
    from harness.persisted import TrainManifest, read_record
    from harness.records import TRAIN_MANIFEST

    path = Path(adapter_dir) / TRAIN_MANIFEST
    if not path.is_file():
        return []
    trained = read_record(path, TrainManifest).prompt_format
    if trained is None:
        return []
    if trained.chat and prompt.template is None:
        return [f"{who}: trained on chat records (chat template sha256 {(trained.template_sha256 or '?')[:12]}) "
                "but evaluated on plain-text prompts: its scores are for prompts it never saw in training; "
                "set `chat_template` for it"]
    if not trained.chat and prompt.template is not None:
        return [f"{who}: trained on plain prompt/completion text but evaluated with a chat template "
                f"({prompt.describe()})"]
    warnings = []
    if trained.chat and trained.template_sha256 and trained.template_sha256 != prompt.template_sha256:
        warnings.append(f"{who}: evaluated with another chat template (sha256 {prompt.template_sha256[:12]}) "
                        f"than it was trained with ({trained.template_sha256[:12]})")
    if trained.chat and trained.system_prompts and prompt.system_prompt not in trained.system_prompts:
        seen = ", ".join("none (the template's default)" if s is None else repr(s[:40]) for s in trained.system_prompts)
        warnings.append(f"{who}: evaluated with system prompt {prompt.system_prompt!r} but trained with {seen}")
    return warnings
