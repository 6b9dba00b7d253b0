"""The chat template a GGUF carries: the one the model was trained with, its default system prompt the recipe's.

llama.cpp, Ollama and LM Studio format a conversation with the Jinja chat template stored in the GGUF
(`tokenizer.chat_template`), and use its default system prompt when a request sends none. ms-swift trained
the model with its own template (Python, not Jinja) and a system prompt (train.system, else the template's
default). The commonest complaint about GGUF files is a model that answers wrongly after conversion because the
two differ. For ms-swift's ChatML templates (qwen2_5 and kin), `choose` renders the model's own template the
way transformers does and compares it, string for string, with the prompt ms-swift builds:
- it matches and its default system prompt is the recipe's: it is kept;
- it matches but its default system prompt is another (Qwen's "You are Qwen, created by Alibaba Cloud..."
  while the recipe trained under its own): that default is replaced in the template's text, and checked again;
- otherwise (no template, or one that formats differently): a plain ChatML template with the recipe's default.
For other ms-swift templates the model's own is kept and the answers in llama.cpp are the proof. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CHATML = ("chatml", "qwen", "qwen2", "qwen2_5")
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
SAMPLE_SYSTEM, SAMPLE_QUERY = "You check templates.", "Who are you?\nSay it in one line."


@dataclass(frozen=True)
class Choice:
    text: str | None  # the template to store (None: the model has none and swiftkit could not write one)
    source: str  # "the model's own" | "the model's own, default system prompt replaced" | "ChatML written by swiftkit"
    system: str | None  # the default system prompt it applies when a request sends none
    stops: tuple[str, ...] = ()  # texts that end a turn
    notes: list[str] = field(default_factory=list)


def chatml_prompt(messages: list[dict], default_system: str | None) -> str:
    """What ms-swift's ChatML templates send the model for `messages`, ready for the answer."""
    out = []
    if messages and messages[0]["role"] == "system":
        out.append(f"{IM_START}system\n{messages[0]['content']}{IM_END}\n")
        messages = messages[1:]
    elif default_system is not None:
        out.append(f"{IM_START}system\n{default_system}{IM_END}\n")
    out += [f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages]
    return "".join(out) + f"{IM_START}assistant\n"


def jinja_literal_body(text: str) -> str:
    """`text` as the inside of a single-quoted Jinja string."""
    return text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")


def chatml_template(default_system: str | None) -> str:
    default = (f"{{{{- '{IM_START}system\\n{jinja_literal_body(default_system)}{IM_END}\\n' }}}}"
               if default_system is not None else "")
    return ("{%- if messages and messages[0]['role'] == 'system' %}"
            f"{{{{- '{IM_START}system\\n' + messages[0]['content'] + '{IM_END}\\n' }}}}"
            f"{{%- else %}}{default}{{%- endif %}}"
            "{%- for message in messages %}{%- if message['role'] != 'system' or not loop.first %}"
            f"{{{{- '{IM_START}' + message['role'] + '\\n' + message['content'] + '{IM_END}\\n' }}}}"
            "{%- endif %}{%- endfor %}"
            f"{{%- if add_generation_prompt %}}{{{{- '{IM_START}assistant\\n' }}}}{{%- endif %}}")


def render(template: str, messages: list[dict]) -> str:
    """As transformers' apply_chat_template renders it (a sandbox, trim_blocks and lstrip_blocks)."""
    import json

    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False: json.dumps(x, indent=indent,
                                                                                   ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, tools=None,
                                            bos_token="", eos_token="")


def formats_as_trained(template: str, system: str | None) -> str | None:
    """None when `template` formats both a conversation with a system prompt and one without it as ms-swift's
    ChatML does (the latter with `system` as the default); else what differs."""
    cases = [([{"role": "system", "content": SAMPLE_SYSTEM}, {"role": "user", "content": SAMPLE_QUERY}], "with a system prompt"),
             ([{"role": "user", "content": SAMPLE_QUERY}], "without one")]
    for messages, what in cases:
        try:
            got = render(template, messages)
        except Exception as exc:  # noqa: BLE001 - any template error means it cannot be used as it is
            return f"it fails to render ({type(exc).__name__}: {exc})"
        want = chatml_prompt(messages, system)
        if got != want:
            return f"it formats a conversation {what} as {got[:120]!r}, training saw {want[:120]!r}"
    return None


def choose(model_template: str | None, swift_template: str | None, system: str | None,
           template_default: str | None) -> Choice:
    """The template to store: `system` is the prompt training used (None: the template's default,
    `template_default`, which ms-swift sends when the recipe sets none)."""
    trained = system if system is not None else template_default
    if swift_template not in CHATML:
        notes = [f"ms-swift's {swift_template or 'template'} is not ChatML: the model's own chat template is kept "
                 "unchecked, and the answers in llama.cpp are the check"]
        return Choice(model_template, "the model's own", trained, (), notes)
    stops = (IM_END, IM_START)
    if model_template:
        why = formats_as_trained(model_template, trained)
        if why is None:
            return Choice(model_template, "the model's own", trained, stops)
        if template_default and trained and template_default != trained and template_default in model_template:
            replaced = model_template.replace(template_default, jinja_literal_body(trained))
            if formats_as_trained(replaced, trained) is None:
                return Choice(replaced, "the model's own, default system prompt replaced", trained, stops,
                              [f"its default system prompt {template_default!r} is now the recipe's {trained!r}"])
        notes = [f"the model's own chat template is not what training used: {why}"]
    else:
        notes = ["the model has no chat template"]
    written = chatml_template(trained)
    why = formats_as_trained(written, trained)
    if why is not None:  # a system prompt Jinja cannot carry as written: say so, the answers in llama.cpp decide
        notes.append(f"swiftkit's ChatML template does not reproduce training either: {why}")
    return Choice(written, "ChatML written by swiftkit", trained, stops, notes)
