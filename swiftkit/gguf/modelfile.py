"""The Ollama Modelfile written beside a GGUF: FROM the file, the training template, its system prompt and stops.

For ms-swift's ChatML templates the TEMPLATE is Ollama's ChatML over `.Messages` (Ollama puts the Modelfile's
SYSTEM first when a request sends no system message), formatting a conversation exactly as
chat_template.chatml_prompt does; for others there is no TEMPLATE line and Ollama takes the chat template
stored in the GGUF. Pure.
"""
from __future__ import annotations

from swiftkit.errors import Problem

CHATML_TEMPLATE = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
                   '<|im_start|>assistant\n')


def problems(system: str | None) -> list[Problem]:
    if system and '"""' in system:
        return [Problem('the system prompt holds """, which ends a Modelfile string and cannot be escaped in one',
                        fix='write the system prompt without """ (train.system)')]
    return []


def name_for(gguf_name: str, several: bool) -> str:
    """`Modelfile` beside a lone GGUF; `STEM.Modelfile` beside each of several."""
    return f"{gguf_name.rsplit('.gguf', 1)[0]}.Modelfile" if several else "Modelfile"


def render(gguf_name: str, modelfile_name: str, *, chatml: bool, system: str | None, stops: tuple[str, ...]) -> str:
    lines = [f"# Written by swiftkit. In this dir: ollama create NAME -f {modelfile_name} && ollama run NAME",
             f"FROM ./{gguf_name}"]
    if chatml:
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
    if system is not None:
        lines.append(f'SYSTEM """{system}"""')
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    return "\n".join(lines) + "\n"

